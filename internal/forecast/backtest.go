package forecast

import (
	"fmt"
	"math"
)

// BacktestOptions say how to backtest: forecast Options.Horizon steps from
// each of Origins origins, the last one Horizon steps before the end of
// the series and each earlier one Step steps before the next (rolling
// origin evaluation; Tashman, IJF 2000). Each forecast sees only the
// observations before its origin and is scored on the Horizon after it.
// MASE is scaled by seasonal differences at Options.Season (1 when 0).
type BacktestOptions struct {
	Options
	Origins int // at least 1; 0 means 1
	Step    int // steps between origins; 0 means Horizon
}

func (b BacktestOptions) origins() int { return max(b.Origins, 1) }

func (b BacktestOptions) step() int {
	if b.Step <= 0 {
		return b.Horizon
	}
	return b.Step
}

// Score is how one method did from one origin of one series.
type Score struct {
	Series string
	Method string
	Origin int // 0 for the last origin, 1 for the one before, ...
	SMAPE  float64
	MASE   float64 // NaN when the history's scale is 0
	MSIS   float64 // NaN with MASE
	// Covered of Points actual values fell inside the prediction interval.
	Covered, Points int
}

// Backtest forecasts s from each origin with each method and scores the
// forecasts. An origin that leaves fewer than MinHistory observations
// before it is skipped (the scores say which were made).
func Backtest(s Series, methods []Method, b BacktestOptions) ([]Score, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if b.Origins < 0 || b.Step < 0 {
		return nil, fmt.Errorf("origins %d, step %d: want 0 or more", b.Origins, b.Step)
	}
	h := b.Horizon
	var out []Score
	for k := range b.origins() {
		end := len(s.Values) - h - k*b.step()
		if end < MinHistory {
			break
		}
		hist, actual := s.Values[:end], s.Values[end:end+h]
		scale := MASEScale(hist, b.period())
		for _, m := range methods {
			f, err := Run(m, hist, b.Options)
			if err != nil {
				return nil, fmt.Errorf("series %s, origin %d: %w", s.ID, k, err)
			}
			sc := Score{Series: s.ID, Method: m.Name(), Origin: k, Points: h,
				SMAPE: SMAPE(actual, f.Point), MASE: MASE(actual, f.Point, scale),
				MSIS: MSIS(actual, f.Lower, f.Upper, f.Level, scale)}
			for i, y := range actual {
				if y >= f.Lower[i] && y <= f.Upper[i] {
					sc.Covered++
				}
			}
			out = append(out, sc)
		}
	}
	return out, nil
}

// MinHistory is the fewest observations a backtest forecasts from.
const MinHistory = 2

// Summary is a method's accuracy over many forecasts: the means of their
// sMAPE, MASE and MSIS (the mean over forecasts with a defined MASE for
// the last two), OWA against seasonal naive and against M4's Naive2 where
// those were backtested on the same forecasts, and the share of actual
// values inside the prediction intervals.
type Summary struct {
	Method            string
	Forecasts         int // scored forecasts (series x origins)
	Undefined         int // of them without a MASE (flat history)
	SMAPE, MASE, MSIS float64
	OWA, OWANaive2    float64 // NaN without the reference
	Coverage          float64
}

// Summarise aggregates scores by method, in the order methods first
// appear in scores.
func Summarise(scores []Score) []Summary {
	type acc struct {
		n, undef          int
		smape, mase, msis float64
		covered, points   int
	}
	var order []string
	by := map[string]*acc{}
	for _, s := range scores {
		a := by[s.Method]
		if a == nil {
			a = &acc{}
			by[s.Method] = a
			order = append(order, s.Method)
		}
		a.n++
		a.smape += s.SMAPE
		if math.IsNaN(s.MASE) {
			a.undef++
		} else {
			a.mase += s.MASE
			a.msis += s.MSIS
		}
		a.covered += s.Covered
		a.points += s.Points
	}
	out := make([]Summary, len(order))
	for i, name := range order {
		a := by[name]
		out[i] = Summary{Method: name, Forecasts: a.n, Undefined: a.undef,
			SMAPE: a.smape / float64(a.n), MASE: a.mase / float64(a.n-a.undef),
			MSIS: a.msis / float64(a.n-a.undef), Coverage: float64(a.covered) / float64(a.points),
			OWA: math.NaN(), OWANaive2: math.NaN()}
	}
	ref := func(name string) (Summary, bool) {
		for _, s := range out {
			if s.Method == name {
				return s, true
			}
		}
		return Summary{}, false
	}
	sn, okSN := ref(NameSeasonalNaive)
	n2, okN2 := ref(NameNaive2)
	for i := range out {
		if okSN && sn.Forecasts == out[i].Forecasts {
			out[i].OWA = OWA(out[i].SMAPE, out[i].MASE, sn.SMAPE, sn.MASE)
		}
		if okN2 && n2.Forecasts == out[i].Forecasts {
			out[i].OWANaive2 = OWA(out[i].SMAPE, out[i].MASE, n2.SMAPE, n2.MASE)
		}
	}
	return out
}
