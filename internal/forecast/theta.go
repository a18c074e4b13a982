package forecast

import (
	"fmt"
	"math"
)

// sesFit is simple exponential smoothing fitted to a series.
type sesFit struct {
	alpha, level float64 // the smoothing parameter and the level after the last observation
	sigma        float64 // root mean square of the one-step errors
}

// Bounds of a smoothing parameter, as the R forecast package's ets uses.
const (
	alphaMin = 1e-4
	alphaMax = 0.9999
)

// fitSES fits simple exponential smoothing by least squares over the
// one-step errors. For a given alpha every one-step forecast is linear in
// the initial level, so the initial level has a closed form and only alpha
// is searched (a grid, then golden section).
func fitSES(x []float64) sesFit {
	sse := func(alpha float64) float64 {
		_, s := sesRun(x, alpha, sesInitial(x, alpha))
		return s
	}
	alpha, s := goldenGrid(sse, alphaMin, alphaMax, 20)
	level, _ := sesRun(x, alpha, sesInitial(x, alpha))
	return sesFit{alpha: alpha, level: level, sigma: math.Sqrt(s / float64(len(x)))}
}

// sesInitial is the initial level that minimises the squared one-step
// errors for this alpha: the forecast of x[t] is a_t + (1-alpha)^t l0,
// where a_t is the forecast from l0 = 0, so l0 is the least-squares
// coefficient of (1-alpha)^t on x[t] - a_t.
func sesInitial(x []float64, alpha float64) float64 {
	a, c := 0.0, 1.0
	num, den := 0.0, 0.0
	for _, v := range x {
		num += (v - a) * c
		den += c * c
		a += alpha * (v - a)
		c *= 1 - alpha
	}
	if den == 0 {
		return x[0]
	}
	return num / den
}

// sesRun smooths x from level l0 and returns the final level and the sum
// of squared one-step errors.
func sesRun(x []float64, alpha, l0 float64) (level, sse float64) {
	level = l0
	for _, v := range x {
		e := v - level
		sse += e * e
		level += alpha * e
	}
	return level, sse
}

// SES is simple exponential smoothing on the seasonally adjusted series,
// the M4 benchmark of that name. Its interval is that of the local-level
// model, variance sigma^2 (1 + (h-1) alpha^2) (Hyndman et al.,
// "Forecasting with Exponential Smoothing", 2008, Table 6.1).
type SES struct{}

// Name implements Method.
func (SES) Name() string { return NameSES }

// Forecast implements Method.
func (SES) Forecast(y []float64, o Options) (Forecast, error) {
	return thetaForecast(y, o, false)
}

// Theta is the Theta method of Assimakopoulos and Nikolopoulos (IJF 2000),
// the M4 benchmark, in the form Hyndman and Billah (IJF 2003) showed it to
// be: simple exponential smoothing with a drift of half the slope of the
// series' linear trend, on the seasonally adjusted series (classical
// multiplicative decomposition when the 90% autocorrelation test finds it
// seasonal), reseasonalised. Its interval is SES's, the drift taken as
// known.
type Theta struct{}

// Name implements Method.
func (Theta) Name() string { return NameTheta }

// Forecast implements Method.
func (Theta) Forecast(y []float64, o Options) (Forecast, error) {
	return thetaForecast(y, o, true)
}

func thetaForecast(y []float64, o Options, drift bool) (Forecast, error) {
	s := deseasonalizer(y, o.period())
	x := s.adjust(y)
	n := len(x)
	b := 0.0
	name := "SES"
	if drift {
		b = slope(x) / 2
		name = "theta"
	}
	fit := fitSES(x)
	z := zScore(o.level())
	f := newForecast(o.Horizon, fmt.Sprintf("%s alpha=%.4g drift=%.4g on the seasonally adjusted series (%s)", name, fit.alpha, b, s))
	a := fit.alpha
	// Hyndman and Billah's closed form of the Theta forecast: the SES level
	// plus b((h-1) + 1/alpha - (1-alpha)^n/alpha) with b half the slope.
	tail := 1/a - math.Pow(1-a, float64(n))/a
	for i := range o.Horizon {
		h := float64(i + 1)
		p := fit.level + b*(h-1+tail)
		d := z * fit.sigma * math.Sqrt(1+(h-1)*a*a)
		t := n + i
		f.set(i, s.restore(p, t), s.scale(d, t))
	}
	return f, nil
}

// slope is the least-squares slope of x on 0, 1, ..., n-1.
func slope(x []float64) float64 {
	n := float64(len(x))
	if n < 2 {
		return 0
	}
	tm := (n - 1) / 2
	xm := 0.0
	for _, v := range x {
		xm += v
	}
	xm /= n
	num, den := 0.0, 0.0
	for t, v := range x {
		d := float64(t) - tm
		num += d * (v - xm)
		den += d * d
	}
	return num / den
}
