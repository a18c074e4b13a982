package forecast

import "math"

// The error measures of the M4 competition (Makridakis, Spiliotis and
// Assimakopoulos, "The M4 Competition: 100,000 time series and 61
// forecasting methods", IJF 36(1), 2020; first results IJF 34(4), 2018),
// for one forecast of h steps against the h actual values that followed
// the history.

// SMAPE is the symmetric mean absolute percentage error, in percent:
// (200/h) sum |y - f| / (|y| + |f|). A step where both are zero is a
// perfect forecast and adds nothing (M4 never meets it: its series are
// positive).
func SMAPE(actual, fc []float64) float64 {
	s := 0.0
	for i, y := range actual {
		if d := math.Abs(y) + math.Abs(fc[i]); d > 0 {
			s += math.Abs(y-fc[i]) / d
		}
	}
	return 200 * s / float64(len(actual))
}

// MASEScale is the denominator of MASE for a history: the mean absolute
// difference between observations one period m apart, the in-sample error
// of the seasonal naive forecast. A history no longer than one period is
// scaled by its lag-1 differences. It is 0 (MASE undefined) for a history
// that never changes at that lag.
func MASEScale(history []float64, m int) float64 {
	if m < 1 || len(history) <= m {
		m = 1
	}
	s, c := 0.0, 0
	for t := m; t < len(history); t++ {
		s += math.Abs(history[t] - history[t-m])
		c++
	}
	if c == 0 {
		return 0
	}
	return s / float64(c)
}

// MASE is the mean absolute scaled error: the forecast's mean absolute
// error over MASEScale. NaN when the scale is 0.
func MASE(actual, fc []float64, scale float64) float64 {
	if scale <= 0 {
		return math.NaN()
	}
	s := 0.0
	for i, y := range actual {
		s += math.Abs(y - fc[i])
	}
	return s / float64(len(actual)) / scale
}

// MSIS is M4's mean scaled interval score of a central interval of
// coverage level: the interval's width, plus 2/(1-level) times how far
// each actual value falls outside it, averaged over the steps and divided
// by MASEScale (Gneiting and Raftery, JASA 2007). Lower is better; NaN
// when the scale is 0.
func MSIS(actual, lower, upper []float64, level, scale float64) float64 {
	if scale <= 0 {
		return math.NaN()
	}
	a := 1 - level
	s := 0.0
	for i, y := range actual {
		s += upper[i] - lower[i]
		if y < lower[i] {
			s += 2 / a * (lower[i] - y)
		}
		if y > upper[i] {
			s += 2 / a * (y - upper[i])
		}
	}
	return s / float64(len(actual)) / scale
}

// OWA is M4's overall weighted average of a method's mean sMAPE and mean
// MASE relative to a reference's over the same forecasts:
// (sMAPE/sMAPE_ref + MASE/MASE_ref) / 2. Below 1 beats the reference.
func OWA(smape, mase, refSMAPE, refMASE float64) float64 {
	return (smape/refSMAPE + mase/refMASE) / 2
}
