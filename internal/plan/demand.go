package plan

import (
	"fmt"
	"sort"

	"github.com/gpufleet/gpufleet/internal/forecast"
)

// Scenario is the demand a replay plays: the point forecast, or the upper
// bound of its interval.
type Scenario uint8

const (
	// P50 is the point forecast: demand as likely to be above as below.
	P50 Scenario = iota
	// P90 is the upper bound of the 80% interval: demand's 90th
	// percentile, each week.
	P90
)

func (s Scenario) String() string {
	if s == P90 {
		return "p90"
	}
	return "p50"
}

// ParseScenario reads p50 or p90.
func ParseScenario(s string) (Scenario, error) {
	switch s {
	case "p50":
		return P50, nil
	case "p90":
		return P90, nil
	}
	return 0, fmt.Errorf("scenario %q: want p50 (the point forecast) or p90 (its 90th percentile)", s)
}

// intervalLevel is the coverage of the forecast's central interval whose
// upper bound is the 90th percentile.
const intervalLevel = 0.8

// Demand is one series over the horizon: its weekly history and the
// forecast of its accelerator-hours per week, commitments included.
type Demand struct {
	Key     Key       `json:"key"`
	History []float64 `json:"history"`
	// Point, Lower and Upper are per week of the horizon: the point
	// forecast and its 80% interval (Lower the 10th and Upper the 90th
	// percentile), Committed added to each.
	Point     []float64 `json:"point"`
	Lower     []float64 `json:"lower"`
	Upper     []float64 `json:"upper"`
	Committed []float64 `json:"committed"`
	// Model is what the forecaster fitted ("" for a series that is only
	// committed).
	Model   string    `json:"model"`
	Shape   Shape     `json:"shape"`
	Profile []float64 `json:"profile"`
}

// Week returns the demand of horizon week w (1-based) in a scenario.
func (d *Demand) Week(s Scenario, w int) float64 {
	if s == P90 {
		return d.Upper[w-1]
	}
	return d.Point[w-1]
}

// ForecastOptions say how to forecast.
type ForecastOptions struct {
	// Horizon is the number of weeks ahead.
	Horizon int
	// Method forecasts each series; nil is the default combination.
	Method forecast.Method
}

// Forecast forecasts every weekly series over the horizon and adds the
// commitments to their series (a commitment of a series without history
// is a series of its own, with the default shape). Weeks are the step: an
// order and a lead time are counted in weeks, and a damped trend fitted to
// daily steps flattens within a few weeks. The season is a year (52
// weeks), which the forecaster models only where the history shows it.
func Forecast(ws []Weekly, commitments []Commitment, o ForecastOptions) ([]Demand, error) {
	if o.Horizon < 1 {
		return nil, fmt.Errorf("horizon %d: want at least one week", o.Horizon)
	}
	m := o.Method
	if m == nil {
		m = forecast.Combination()
	}
	opts := forecast.Options{Horizon: o.Horizon, Season: 52, Level: intervalLevel}
	var out []Demand
	idx := map[Key]int{}
	for _, w := range ws {
		f, err := forecast.Run(m, w.Weeks, opts)
		if err != nil {
			return nil, fmt.Errorf("forecast %s: %w", w.Key, err)
		}
		d := Demand{Key: w.Key, History: w.Weeks, Point: f.Point, Lower: f.Lower, Upper: f.Upper,
			Committed: make([]float64, o.Horizon), Model: f.Model, Shape: w.Shape, Profile: w.Profile}
		if !d.Shape.valid() {
			d.Shape = DefaultShape
		}
		idx[w.Key] = len(out)
		out = append(out, d)
	}
	for _, c := range commitments {
		i, ok := idx[c.Key]
		if !ok {
			i = len(out)
			idx[c.Key] = i
			out = append(out, Demand{Key: c.Key, Point: make([]float64, o.Horizon), Lower: make([]float64, o.Horizon),
				Upper: make([]float64, o.Horizon), Committed: make([]float64, o.Horizon), Shape: DefaultShape, Profile: []float64{1}})
		}
		d := &out[i]
		to := c.To
		if to == 0 || to > o.Horizon {
			to = o.Horizon
		}
		for w := c.From; w <= to; w++ {
			add := c.Accels * WeekSec / 3600
			d.Point[w-1] += add
			d.Lower[w-1] += add
			d.Upper[w-1] += add
			d.Committed[w-1] += add
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key.Less(out[j].Key) })
	return out, nil
}
