package forecast

import (
	"fmt"
	"math"
)

// zScore is the standard normal quantile that bounds a central interval of
// coverage level.
func zScore(level float64) float64 { return math.Sqrt2 * math.Erfinv(level) }

// newForecast allocates a forecast of h steps.
func newForecast(h int, model string) Forecast {
	return Forecast{Model: model, Point: make([]float64, h), Lower: make([]float64, h), Upper: make([]float64, h)}
}

// set stores step i's point forecast and a symmetric interval of half-width d.
func (f *Forecast) set(i int, point, d float64) {
	f.Point[i], f.Lower[i], f.Upper[i] = point, point-d, point+d
}

// SeasonalNaive forecasts each step by the observation one cycle earlier:
// the last cycle repeats. Its interval assumes the seasonal differences are
// independent with the variance they had in the history, so the variance
// grows by one such step per cycle ahead (Hyndman and Athanasopoulos,
// "Forecasting: Principles and Practice", 3rd ed., §5.5). A series shorter
// than one cycle, or a period of 1, is forecast by Naive.
type SeasonalNaive struct{}

// Name implements Method.
func (SeasonalNaive) Name() string { return NameSeasonalNaive }

// Forecast implements Method.
func (SeasonalNaive) Forecast(y []float64, o Options) (Forecast, error) {
	m, n := o.period(), len(y)
	if m <= 1 || n < m {
		f, err := Naive{}.Forecast(y, o)
		if m > 1 {
			f.Model = fmt.Sprintf("naive (%d observations, less than one cycle of %d)", n, m)
		}
		return f, err
	}
	sigma := diffSigma(y, m)
	z := zScore(o.level())
	f := newForecast(o.Horizon, fmt.Sprintf("seasonal naive, period %d", m))
	for i := range o.Horizon {
		k := i / m // whole cycles past the first
		f.set(i, y[n-m+i%m], z*sigma*math.Sqrt(float64(k+1)))
	}
	return f, nil
}

// diffSigma is the root mean square of the lag-m differences of y, 0 when
// there are none.
func diffSigma(y []float64, m int) float64 {
	s, c := 0.0, 0
	for t := m; t < len(y); t++ {
		d := y[t] - y[t-m]
		s += d * d
		c++
	}
	if c == 0 {
		return 0
	}
	return math.Sqrt(s / float64(c))
}

// Naive forecasts every step by the last observation (the random walk); its
// interval grows with the square root of the steps ahead.
type Naive struct{}

// Name implements Method.
func (Naive) Name() string { return NameNaive }

// Forecast implements Method.
func (Naive) Forecast(y []float64, o Options) (Forecast, error) {
	sigma := diffSigma(y, 1)
	z := zScore(o.level())
	f := newForecast(o.Horizon, "naive")
	last := y[len(y)-1]
	for i := range o.Horizon {
		f.set(i, last, z*sigma*math.Sqrt(float64(i+1)))
	}
	return f, nil
}

// Naive2 is the M4 competition's reference: Naive on the series with its
// seasonal pattern removed (classical multiplicative decomposition, when the
// 90% autocorrelation test finds the series seasonal; see Seasonal), the
// pattern put back on the forecast. OWA is measured against it in M4.
type Naive2 struct{}

// Name implements Method.
func (Naive2) Name() string { return NameNaive2 }

// Forecast implements Method.
func (Naive2) Forecast(y []float64, o Options) (Forecast, error) {
	s := deseasonalizer(y, o.period())
	x := s.adjust(y)
	sigma := diffSigma(x, 1)
	z := zScore(o.level())
	n := len(y)
	f := newForecast(o.Horizon, "naive on the seasonally adjusted series ("+s.String()+")")
	last := x[n-1]
	for i := range o.Horizon {
		t := n + i
		f.set(i, s.restore(last, t), s.scale(z*sigma*math.Sqrt(float64(i+1)), t))
	}
	return f, nil
}
