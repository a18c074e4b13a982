// Package forecast predicts a regular series (accelerator-hours per hour or
// per day, or any series observed at a fixed step) some steps ahead, with
// prediction intervals, and scores forecasters by rolling-origin backtests
// with the M4 competition's error measures.
//
// It is pure, like the scheduling core: no I/O, no goroutines, no clock, no
// randomness, so the same series and options always give the same
// forecast, bit for bit.
//
// Run makes a forecast in three phases:
//
//  1. Check the input (Options.check, finite values) and scale it by a
//     power of two, which is exact.
//  2. Fit: the Method chooses its own parameters from the history alone
//     (seasonality test, decomposition, bounded Nelder-Mead on the
//     in-sample squared error over the horizon for Holt-Winters).
//  3. Project: point forecasts and intervals at Options.Level, scaled
//     back, floored at zero when the history has no negative value
//     (demand cannot be negative).
//
// docs/PLANNING.md describes the methods and their backtest on the M4
// hourly series.
package forecast

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Series is one regular series: its identifier and its observations in time
// order, one per step.
type Series struct {
	ID     string
	Values []float64
}

// Options say what to forecast.
type Options struct {
	// Horizon is the number of steps ahead to forecast (at least 1).
	Horizon int
	// Season is the number of steps in one seasonal cycle: 24 for hourly
	// observations with a daily cycle, 7 for daily ones with a weekly cycle;
	// 0 or 1 for none. Methods test whether the series really is seasonal
	// at this period before they model it.
	Season int
	// Level is the coverage of the prediction intervals, in (0, 1); 0 means
	// DefaultLevel.
	Level float64
}

// DefaultLevel is the coverage of prediction intervals when Options.Level is 0.
const DefaultLevel = 0.95

func (o Options) level() float64 {
	if o.Level == 0 {
		return DefaultLevel
	}
	return o.Level
}

// period is the seasonal period, 1 for none.
func (o Options) period() int {
	if o.Season < 1 {
		return 1
	}
	return o.Season
}

// MaxHorizon and MaxSeason bound Options so a typo cannot ask for a
// billion-step forecast.
const (
	MaxHorizon = 100_000
	MaxSeason  = 100_000
)

func (o Options) check() error {
	if o.Horizon < 1 || o.Horizon > MaxHorizon {
		return fmt.Errorf("horizon %d: want 1..%d", o.Horizon, MaxHorizon)
	}
	if o.Season < 0 || o.Season > MaxSeason {
		return fmt.Errorf("season %d: want 0..%d (0 or 1: not seasonal)", o.Season, MaxSeason)
	}
	if l := o.Level; l != 0 && !(l > 0 && l < 1) {
		return fmt.Errorf("level %g: want a coverage in (0, 1), such as 0.95", l)
	}
	return nil
}

// ErrEmpty is returned for a series without observations.
var ErrEmpty = errors.New("series has no observations")

func checkSeries(y []float64) error {
	if len(y) == 0 {
		return ErrEmpty
	}
	for i, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("observation %d is %v: want a finite number", i+1, v)
		}
	}
	return nil
}

// Forecast is a point forecast with its prediction interval, one value per
// step ahead.
type Forecast struct {
	// Method names the method that made it; Model says what it fitted
	// (for example "ETS(A,Ad,M) alpha=0.42 beta=0.01 gamma=0.12 phi=0.98"),
	// including any fallback a short or degenerate series forced.
	Method, Model string
	Point         []float64
	// Lower and Upper bound the central prediction interval of coverage Level.
	Lower, Upper []float64
	Level        float64
}

// Method is one way of forecasting.
type Method interface {
	// Name is the method's name, as --method spells it.
	Name() string
	// Forecast fits the method to the history y and forecasts o.Horizon
	// steps past its end.
	Forecast(y []float64, o Options) (Forecast, error)
}

// Names of the methods.
const (
	NameSeasonalNaive = "snaive"
	NameNaive         = "naive"
	NameNaive2        = "naive2"
	NameSES           = "ses"
	NameHoltWintersA  = "hw-additive"
	NameHoltWintersM  = "hw-multiplicative"
	NameTheta         = "theta"
	NameCombination   = "comb"
	// NameDefault is the method used when none is named.
	NameDefault = NameCombination
)

// Methods returns every method, the default first, in a stable order.
func Methods() []Method {
	return []Method{
		Combination(),
		SeasonalNaive{},
		Naive{},
		Naive2{},
		SES{},
		HoltWinters{Seasonality: Additive},
		HoltWinters{Seasonality: Multiplicative},
		Theta{},
	}
}

// Names lists the methods' names, the default first.
func Names() []string {
	ms := Methods()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name()
	}
	return out
}

// ByName returns the method called name: one of Names, or several of them
// joined by "+" for their equal-weight combination ("theta+snaive").
func ByName(name string) (Method, error) {
	if strings.Contains(name, "+") {
		return parseCombo(name)
	}
	return single(name)
}

func single(name string) (Method, error) {
	for _, m := range Methods() {
		if m.Name() == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("method %q: want one of %s, or several joined by '+'", name, strings.Join(Names(), ", "))
}

// Run checks its inputs and asks m for a forecast; it is what callers use
// rather than m.Forecast, so every method gets the same checks and the same
// non-negative floor.
func Run(m Method, y []float64, o Options) (Forecast, error) {
	if err := o.check(); err != nil {
		return Forecast{}, err
	}
	if err := checkSeries(y); err != nil {
		return Forecast{}, err
	}
	// The methods work on the series divided by a power of two near its
	// largest magnitude: squared errors of values near 1e300 would
	// overflow, and a power of two scales every float exactly, so the
	// forecast of 2y is exactly twice that of y.
	scale := powerOfTwoScale(y)
	if scale != 1 {
		x := make([]float64, len(y))
		for i, v := range y {
			x[i] = v / scale
		}
		y = x
	}
	f, err := m.Forecast(y, o)
	if err != nil {
		return Forecast{}, fmt.Errorf("%s: %w", m.Name(), err)
	}
	for _, v := range [][]float64{f.Point, f.Lower, f.Upper} {
		for i := range v {
			v[i] *= scale
		}
	}
	if f.Method == "" {
		f.Method = m.Name()
	}
	f.Level = o.level()
	if slices.Min(y) >= 0 {
		floor(f.Point)
		floor(f.Lower)
		floor(f.Upper)
	}
	return f, nil
}

// powerOfTwoScale is the power of two at or above the largest magnitude
// in y, 1 for zeros.
func powerOfTwoScale(y []float64) float64 {
	top := 0.0
	for _, v := range y {
		top = max(top, math.Abs(v))
	}
	if top == 0 {
		return 1
	}
	_, exp := math.Frexp(top)
	return math.Ldexp(1, exp)
}

// floor sets negative values, which a non-negative quantity cannot take, to
// zero; the M4 benchmarks do the same.
func floor(v []float64) {
	for i := range v {
		if v[i] < 0 {
			v[i] = 0
		}
	}
}
