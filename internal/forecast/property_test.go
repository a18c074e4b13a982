package forecast

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// genCase draws a series of some shape, a season and a horizon.
func genCase(t *rapid.T) ([]float64, Options) {
	season := rapid.SampledFrom([]int{0, 1, 4, 7, 12, 24}).Draw(t, "season")
	n := rapid.IntRange(1, 240).Draw(t, "n")
	horizon := rapid.IntRange(1, 60).Draw(t, "horizon")
	level := rapid.Float64Range(-50, 1000).Draw(t, "level")
	trend := rapid.Float64Range(-2, 2).Draw(t, "trend")
	amp := rapid.Float64Range(0, 1).Draw(t, "amplitude")
	noise := rapid.SliceOfN(rapid.Float64Range(-1, 1), n, n).Draw(t, "noise")
	noiseScale := rapid.Float64Range(0, 50).Draw(t, "noise scale")
	mult := rapid.Bool().Draw(t, "multiplicative")
	period := max(season, 1)
	y := make([]float64, n)
	for i := range y {
		s := math.Sin(2 * math.Pi * float64(i%period) / float64(period))
		base := level + trend*float64(i)
		if mult {
			y[i] = base*(1+amp*s) + noiseScale*noise[i]
		} else {
			y[i] = base + 100*amp*s + noiseScale*noise[i]
		}
	}
	return y, Options{Horizon: horizon, Season: season, Level: rapid.SampledFrom([]float64{0, 0.8, 0.95, 0.99}).Draw(t, "level")}
}

// TestPropertyForecastsAreSound: every method, on any series, gives
// Horizon finite forecasts inside their intervals, the same ones twice.
func TestPropertyForecastsAreSound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		y, o := genCase(t)
		for _, m := range Methods() {
			f, err := Run(m, y, o)
			if err != nil {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			if len(f.Point) != o.Horizon || len(f.Lower) != o.Horizon || len(f.Upper) != o.Horizon {
				t.Fatalf("%s: %d/%d/%d values, want %d", m.Name(), len(f.Point), len(f.Lower), len(f.Upper), o.Horizon)
			}
			for i := range f.Point {
				if !finite(f.Point[i]) || !finite(f.Lower[i]) || !finite(f.Upper[i]) {
					t.Fatalf("%s step %d: %g [%g, %g] not finite; %s", m.Name(), i+1, f.Point[i], f.Lower[i], f.Upper[i], f.Model)
				}
				if !(f.Lower[i] <= f.Point[i] && f.Point[i] <= f.Upper[i]) {
					t.Fatalf("%s step %d: %g outside [%g, %g]; %s", m.Name(), i+1, f.Point[i], f.Lower[i], f.Upper[i], f.Model)
				}
			}
			again, _ := Run(m, y, o)
			if diff := cmp.Diff(f, again); diff != "" {
				t.Fatalf("%s: a second run differs (-first +second):\n%s", m.Name(), diff)
			}
		}
	})
}

// TestPropertyIntervalsWiden: the uncertainty of a forecast grows with the
// steps ahead. Where a multiplicative seasonal pattern scales the interval
// (Holt-Winters, and the decomposition methods Naive2, SES and Theta), it
// is the width over the seasonal index that grows, step by step; the
// width itself follows the cycle. For every method, the combination
// included, an interval is at least as wide as the one a whole cycle
// earlier, at the same point of the cycle.
func TestPropertyIntervalsWiden(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		y, o := genCase(t)
		if o.Level == 0 {
			o.Level = DefaultLevel
		}
		p := o.period()
		for _, m := range Methods() {
			f, err := m.Forecast(y, o) // before the floor at zero cuts intervals
			if err != nil {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			// The width, and its rounding error: Upper - Point loses the
			// last bits of the larger of the two.
			width := func(i int) (float64, float64) {
				return f.Upper[i] - f.Point[i], 1e-12 * (math.Abs(f.Upper[i]) + math.Abs(f.Point[i]))
			}
			for i := p; i < o.Horizon; i++ {
				w0, e0 := width(i - p)
				w1, e1 := width(i)
				if w1 < w0-e0-e1 {
					t.Fatalf("%s: width %g at step %d, %g a cycle later; %s", m.Name(), w0, i-p+1, w1, f.Model)
				}
			}
			if _, ok := m.(combination); ok {
				continue // the mean of a width that follows the cycle and one that does not
			}
			index := func(int) float64 { return 1 }
			switch {
			case strings.HasPrefix(f.Model, "ETS(A,Ad,M)"):
				mod := fitHW(y, p, true, o.Horizon)
				index = func(i int) float64 { return mod.season[(len(y)+i)%p] }
			case strings.Contains(f.Model, "multiplicative seasonal indices"):
				s := deseasonalizer(y, p)
				index = func(i int) float64 { return s.at(len(y) + i) }
			}
			for i := 1; i < o.Horizon; i++ {
				w0, e0 := width(i - 1)
				w1, e1 := width(i)
				if s0, s1 := index(i-1), index(i); w1/s1 < (w0-e0-e1)/s0 {
					t.Fatalf("%s: width %g over index %g at step %d, %g over %g at step %d; %s", m.Name(), w0, s0, i, w1, s1, i+1, f.Model)
				}
			}
		}
	})
}

// TestPropertySeasonalNaiveRepeatsTheLastCycle, whole cycles ahead.
func TestPropertySeasonalNaiveRepeatsTheLastCycle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		y, o := genCase(t)
		m := o.period()
		if len(y) < m {
			t.Skip("shorter than a cycle")
		}
		f, err := SeasonalNaive{}.Forecast(y, o)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range f.Point {
			if want := y[len(y)-m+i%m]; p != want {
				t.Fatalf("step %d: %g, want %g, the value one cycle of %d earlier", i+1, p, want, m)
			}
		}
	})
}

// TestPropertyScaleEquivariance: demand counted in other units gives the
// same forecast in those units. A power of two scales floats exactly, so
// the results must match exactly.
func TestPropertyScaleEquivariance(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		y, o := genCase(t)
		k := rapid.SampledFrom([]float64{0.25, 2, 1024}).Draw(t, "scale")
		ky := make([]float64, len(y))
		for i, v := range y {
			ky[i] = k * v
		}
		for _, m := range Methods() {
			f, _ := Run(m, y, o)
			g, _ := Run(m, ky, o)
			for i := range f.Point {
				if g.Point[i] != k*f.Point[i] || g.Lower[i] != k*f.Lower[i] || g.Upper[i] != k*f.Upper[i] {
					t.Fatalf("%s step %d: %g [%g, %g] for %g y, want %g times %g [%g, %g]", m.Name(), i+1,
						g.Point[i], g.Lower[i], g.Upper[i], k, k, f.Point[i], f.Lower[i], f.Upper[i])
				}
			}
		}
	})
}
