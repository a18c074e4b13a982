package forecast

import (
	"fmt"
	"strings"
)

// Combo forecasts by the equal-weight mean of its members' forecasts. Equal
// weights are the rule, not a fitted choice: estimated weights rarely beat
// them out of sample (the "forecast combination puzzle"; Smith and Wallis,
// Oxford Bulletin of Economics and Statistics, 2009), and the M4
// competition found combinations among the most accurate methods
// (Makridakis et al., IJF 2018).
//
// The interval's bounds are the means of the members' bounds: averaging
// quantiles, which keeps the members' common shape and spread (Lichtendahl,
// Grushka-Cockayne and Winkler, Management Science 2013). When the members
// disagree this is narrower than the spread of their forecasts would
// suggest, wider than what their shared errors would; the backtest reports
// its coverage.
type Combo struct {
	Members []Method
}

// Combination is the default method: the equal-weight mean of damped
// Holt-Winters with additive and with multiplicative seasonality for a
// series that is seasonal at Options.Season (by the test of Seasonal), and
// of the damped trend model and Theta for one that is not.
//
// The two Holt-Winters models see the same seasonal cycle in different
// ways (a pattern that adds, or scales with the level), so their errors
// partly cancel. Theta joins only without seasonality: it removes a
// seasonal pattern fixed over the whole history, which a pattern that
// drifts defeats; on the M4 hourly series seasonal naive beats it and the
// other decomposition benchmarks by far (test sMAPE 13.9 against 18.1,
// Makridakis et al. 2018), while without seasonality Theta is among the
// best simple methods (it won the M3 competition) and a damped trend model
// is its natural partner.
func Combination() Method { return combination{} }

type combination struct{}

// Name implements Method.
func (combination) Name() string { return NameCombination }

// Forecast implements Method.
func (combination) Forecast(y []float64, o Options) (Forecast, error) {
	c := Combo{Members: []Method{HoltWinters{Seasonality: Additive}, HoltWinters{Seasonality: Multiplicative}}}
	if !Seasonal(y, o.period()) {
		c.Members = []Method{HoltWinters{Seasonality: Additive}, Theta{}}
	}
	return c.Forecast(y, o)
}

// Name implements Method: the members' names joined by "+".
func (c Combo) Name() string {
	names := make([]string, len(c.Members))
	for i, m := range c.Members {
		names[i] = m.Name()
	}
	return strings.Join(names, "+")
}

// Forecast implements Method.
func (c Combo) Forecast(y []float64, o Options) (Forecast, error) {
	if len(c.Members) == 0 {
		return Forecast{}, fmt.Errorf("a combination needs at least one member")
	}
	h := o.Horizon
	out := newForecast(h, "")
	models := make([]string, 0, len(c.Members))
	w := 1 / float64(len(c.Members))
	for _, m := range c.Members {
		// Forecast, not Run: y is checked and scaled already, and the
		// floor at zero applies to the mean, not to each member.
		f, err := m.Forecast(y, o)
		if err != nil {
			return Forecast{}, fmt.Errorf("%s: %w", m.Name(), err)
		}
		for i := range h {
			out.Point[i] += w * f.Point[i]
			out.Lower[i] += w * f.Lower[i]
			out.Upper[i] += w * f.Upper[i]
		}
		models = append(models, m.Name()+": "+f.Model)
	}
	out.Model = "mean of " + strings.Join(models, "; ")
	return out, nil
}

// parseCombo reads "a+b+c", a combination of named methods.
func parseCombo(name string) (Method, error) {
	parts := strings.Split(name, "+")
	c := Combo{}
	for _, p := range parts {
		m, err := single(p)
		if err != nil {
			return nil, err
		}
		c.Members = append(c.Members, m)
	}
	return c, nil
}
