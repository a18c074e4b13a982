package forecast

import (
	"fmt"
	"math"
)

// acf returns the sample autocorrelations of y at lags 1..maxLag.
func acf(y []float64, maxLag int) []float64 {
	n := len(y)
	mean := 0.0
	for _, v := range y {
		mean += v
	}
	mean /= float64(n)
	den := 0.0
	for _, v := range y {
		den += (v - mean) * (v - mean)
	}
	r := make([]float64, maxLag+1)
	if den == 0 {
		return r
	}
	for k := 1; k <= maxLag && k < n; k++ {
		s := 0.0
		for t := k; t < n; t++ {
			s += (y[t] - mean) * (y[t-k] - mean)
		}
		r[k] = s / den
	}
	return r
}

// MinSeasonalCycles is the number of full cycles a series needs before any
// method models its seasonality: the M4 benchmarks' rule, which leaves
// enough data to tell a cycle from noise.
const MinSeasonalCycles = 3

// Seasonal reports whether y is seasonal at period m by the test the M4
// competition's benchmarks use: at least MinSeasonalCycles full cycles, and
// the autocorrelation at lag m outside the 90% band of Bartlett's
// approximation, |r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n).
func Seasonal(y []float64, m int) bool {
	n := len(y)
	if m <= 1 || n < MinSeasonalCycles*m {
		return false
	}
	r := acf(y, m)
	s := 0.0
	for k := 1; k < m; k++ {
		s += r[k] * r[k]
	}
	return math.Abs(r[m]) > 1.645*math.Sqrt((1+2*s)/float64(n))
}

// seasonality is a fixed seasonal pattern: one index per position in the
// cycle, position 0 being the series' first observation. A multiplicative
// pattern's indices average 1, an additive one's 0. The zero value, with
// no indices, is "not seasonal".
type seasonality struct {
	index []float64
	mult  bool
}

func (s seasonality) seasonal() bool { return len(s.index) > 1 }

// at is the index for observation t (0-based; t >= len(y) for forecasts).
func (s seasonality) at(t int) float64 {
	if !s.seasonal() {
		if s.mult {
			return 1
		}
		return 0
	}
	return s.index[t%len(s.index)]
}

// adjust removes the pattern from y.
func (s seasonality) adjust(y []float64) []float64 {
	out := make([]float64, len(y))
	for t, v := range y {
		if s.mult {
			out[t] = v / s.at(t)
		} else {
			out[t] = v - s.at(t)
		}
	}
	return out
}

// restore puts the pattern back into a value at observation t.
func (s seasonality) restore(v float64, t int) float64 {
	if s.mult {
		return v * s.at(t)
	}
	return v + s.at(t)
}

// scale puts the pattern back into a deviation at observation t (an
// interval's half-width), which an additive pattern leaves alone.
func (s seasonality) scale(d float64, t int) float64 {
	if s.mult {
		return d * s.at(t)
	}
	return d
}

func (s seasonality) String() string {
	switch {
	case !s.seasonal():
		return "not seasonal"
	case s.mult:
		return fmt.Sprintf("multiplicative seasonal indices, period %d", len(s.index))
	default:
		return fmt.Sprintf("additive seasonal indices, period %d", len(s.index))
	}
}

// deseasonalizer returns the seasonal pattern the M4 benchmarks remove
// before they forecast: nothing unless Seasonal(y, m); else a classical
// multiplicative decomposition, or an additive one when some observation is
// not positive (a ratio to a trend at or below zero means nothing).
func deseasonalizer(y []float64, m int) seasonality {
	if !Seasonal(y, m) {
		return seasonality{mult: true}
	}
	return decompose(y, m, positive(y))
}

func positive(y []float64) bool {
	for _, v := range y {
		if v <= 0 {
			return false
		}
	}
	return true
}

// decompose is the classical decomposition (Macaulay's ratio-to-moving-
// average, as R's decompose): a centred moving average of one cycle
// (2 x m when m is even) is the trend; each position's index is the mean
// ratio (or difference) of the observations to the trend there,
// normalised to average 1 (or 0). y must hold at least two cycles.
func decompose(y []float64, m int, mult bool) seasonality {
	n := len(y)
	trend := centredMA(y, m)
	sum := make([]float64, m)
	cnt := make([]int, m)
	for t := range n {
		if math.IsNaN(trend[t]) || (mult && trend[t] <= 0) {
			continue
		}
		d := y[t] - trend[t]
		if mult {
			d = y[t] / trend[t]
		}
		sum[t%m] += d
		cnt[t%m]++
	}
	idx := make([]float64, m)
	mean := 0.0
	for i := range idx {
		if cnt[i] == 0 {
			return seasonality{mult: mult}
		}
		idx[i] = sum[i] / float64(cnt[i])
		mean += idx[i] / float64(m)
	}
	for i := range idx {
		if mult {
			if mean <= 0 || idx[i] <= 0 {
				return seasonality{mult: mult}
			}
			idx[i] /= mean
		} else {
			idx[i] -= mean
		}
	}
	return seasonality{index: idx, mult: mult}
}

// centredMA is the centred moving average of one cycle of m observations:
// for even m the 2 x m average (half weights on the two ends), for odd m
// the plain m average. Where the window does not fit it is NaN.
func centredMA(y []float64, m int) []float64 {
	n := len(y)
	out := make([]float64, n)
	half := m / 2
	for t := range n {
		if t-half < 0 || t+half >= n {
			out[t] = math.NaN()
			continue
		}
		s := 0.0
		if m%2 == 1 {
			for k := t - half; k <= t+half; k++ {
				s += y[k]
			}
			out[t] = s / float64(m)
			continue
		}
		for k := t - half + 1; k < t+half; k++ {
			s += y[k]
		}
		s += 0.5 * (y[t-half] + y[t+half])
		out[t] = s / float64(m)
	}
	return out
}
