// Package carbon holds grid carbon-intensity series: a strict reader of
// series CSV files, regular series on a grid of fixed steps, the integral a
// meter needs (intensity over an interval), and the forecasts the
// scheduling core plans on (a series itself, the series with seeded
// Gaussian noise, or a constant). It is pure: it reads only the bytes it is
// given, reads no clock, and draws random numbers only from a seed.
package carbon

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Series is a carbon intensity, in gCO2 per kWh, that holds for steps of
// Step seconds: Values[k] holds over [Start+k*Step, Start+(k+1)*Step).
// Start is a multiple of Step (Unix time: a 30-minute series starts on
// the hour or the half hour), so series of one step share their grid. A
// constant series holds one value at every time.
type Series struct {
	Start, Step int64
	Values      []float64
	constant    bool
}

// Constant is a series of one intensity at every time, on a grid of step
// seconds.
func Constant(v float64, step int64) Series {
	return Series{Step: step, Values: []float64{v}, constant: true}
}

// IsConstant reports whether s holds one value at every time.
func (s Series) IsConstant() bool { return s.constant }

// End is the end of the last step (for a constant series, the largest
// time).
func (s Series) End() int64 {
	if s.constant {
		return math.MaxInt64
	}
	return s.Start + int64(len(s.Values))*s.Step
}

// floorDiv is a/b rounded towards minus infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// StepOf is the start of the step of the grid that holds t.
func (s Series) StepOf(t int64) int64 { return floorDiv(t, s.Step) * s.Step }

// At is the intensity at time t; false outside the series.
func (s Series) At(t int64) (float64, bool) {
	if s.constant {
		return s.Values[0], true
	}
	if t < s.Start || t >= s.End() {
		return 0, false
	}
	return s.Values[(t-s.Start)/s.Step], true
}

// Integral is the intensity integrated over [from, to), in gCO2/kWh x
// seconds: the grams a load of 1 kW emits over the interval is
// Integral/3600. It is false when the series does not cover the interval.
func (s Series) Integral(from, to int64) (float64, bool) {
	if to <= from {
		return 0, true
	}
	if s.constant {
		return s.Values[0] * float64(to-from), true
	}
	if from < s.Start || to > s.End() {
		return 0, false
	}
	sum := 0.0
	for t := from; t < to; {
		k := (t - s.Start) / s.Step
		end := min(s.Start+(k+1)*s.Step, to)
		sum += s.Values[k] * float64(end-t)
		t = end
	}
	return sum, true
}

// Mean is the mean intensity of the steps in [from, to) the series holds
// (all of it for from >= to); NaN when none.
func (s Series) Mean(from, to int64) float64 {
	if s.constant {
		return s.Values[0]
	}
	lo, hi := 0, len(s.Values)
	if from < to {
		lo = int(max(0, floorDiv(from-s.Start, s.Step)))
		hi = int(min(int64(len(s.Values)), floorDiv(to-s.Start+s.Step-1, s.Step)))
	}
	if hi <= lo {
		return math.NaN()
	}
	sum := 0.0
	for _, v := range s.Values[lo:hi] {
		sum += v
	}
	return sum / float64(hi-lo)
}

// Slice is the part of s whose steps lie in [from, to), from and to
// rounded out to the grid.
func (s Series) Slice(from, to int64) Series {
	if s.constant {
		return s
	}
	lo := int(max(0, floorDiv(from-s.Start, s.Step)))
	hi := int(min(int64(len(s.Values)), floorDiv(to-s.Start+s.Step-1, s.Step)))
	if hi < lo {
		hi = lo
	}
	return Series{Start: s.Start + int64(lo)*s.Step, Step: s.Step, Values: s.Values[lo:hi:hi]}
}

// Steps returns the values of the steps from the one holding from to the
// one holding to-1, fewer where the series ends (none where it has not
// begun by from). A constant series gives one value per step.
func (s Series) Steps(from, to int64) []float64 {
	if to <= from {
		return nil
	}
	first := s.StepOf(from)
	n := floorDiv(to-1-first, s.Step) + 1
	if s.constant {
		out := make([]float64, n)
		for i := range out {
			out[i] = s.Values[0]
		}
		return out
	}
	if first < s.Start {
		return nil
	}
	lo := (first - s.Start) / s.Step
	hi := min(lo+n, int64(len(s.Values)))
	if hi <= lo {
		return nil
	}
	return append([]float64(nil), s.Values[lo:hi]...)
}

// WithNoise is s with Gaussian noise of standard deviation sd added to
// every step, drawn from seed: the forecast error model of Wiesner et
// al., "Let's Wait Awhile" (Middleware '21), where sd is a share of the
// series' mean. Intensities stay as drawn, negative ones included, as in
// that model: noise only misleads the planner, it is never metered.
func (s Series) WithNoise(sd float64, seed uint64) Series {
	out := s
	out.Values = make([]float64, len(s.Values))
	r := rand.New(rand.NewPCG(seed, 0x6e6f697365))
	for i, v := range s.Values {
		out.Values[i] = v + sd*r.NormFloat64()
	}
	return out
}

// Forecast answers the scheduling core's forecast questions from one
// series per site (a topology domain's path): it implements
// sched.Forecast. Every series has the forecast's step.
type Forecast struct {
	step  int64
	sites map[string]Series
}

// NewForecast makes an empty forecast of steps of step seconds.
func NewForecast(step int64) (*Forecast, error) {
	if step <= 0 {
		return nil, fmt.Errorf("step %d: want a positive number of seconds", step)
	}
	return &Forecast{step: step, sites: map[string]Series{}}, nil
}

// ErrStep is returned when a series' step is not the forecast's.
var ErrStep = errors.New("the series' step is not the forecast's")

// Set makes s the forecast of site.
func (f *Forecast) Set(site string, s Series) error {
	if s.Step != f.step {
		return fmt.Errorf("site %s: step %d s: %w (%d s)", site, s.Step, ErrStep, f.step)
	}
	f.sites[site] = s
	return nil
}

// Series returns the forecast of site.
func (f *Forecast) Series(site string) (Series, bool) {
	s, ok := f.sites[site]
	return s, ok
}

// StepSec is the length of one step.
func (f *Forecast) StepSec() int64 { return f.step }

// Intensity is the forecast for site over [from, to), one value per step
// from the step that holds from (see Series.Steps); none for a site the
// forecast does not know.
func (f *Forecast) Intensity(site string, from, to int64) []float64 {
	s, ok := f.sites[site]
	if !ok {
		return nil
	}
	return s.Steps(from, to)
}
