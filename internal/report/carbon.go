package report

import (
	"maps"
	"slices"

	"github.com/gpufleet/gpufleet/internal/sim"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

// carbonSiteChart draws a metered run's kg CO2 per site, day by day; nil
// when the run was not metered.
func carbonSiteChart(res *sim.Result) (*plot.Plot, error) {
	return carbonChart(res, "Carbon by site, day by day", func(d *sim.CarbonDay) map[string]float64 { return d.BySite })
}

// carbonTenantChart draws the same per tenant.
func carbonTenantChart(res *sim.Result) (*plot.Plot, error) {
	return carbonChart(res, "Carbon by tenant, day by day", func(d *sim.CarbonDay) map[string]float64 { return d.ByTenant })
}

func carbonChart(res *sim.Result, title string, part func(*sim.CarbonDay) map[string]float64) (*plot.Plot, error) {
	c := res.Summary.Carbon
	if c == nil || len(c.Daily) == 0 {
		return nil, nil
	}
	names := map[string]bool{}
	for i := range c.Daily {
		for n := range part(&c.Daily[i]) {
			names[n] = true
		}
	}
	p := newPlot(title, "day of the run", "kg CO2")
	p.Y.Min = 0
	for i, n := range slices.Sorted(maps.Keys(names)) {
		xys := make(plotter.XYs, len(c.Daily))
		for k := range c.Daily {
			// A day without the name's work is a zero, not a gap.
			xys[k] = plotter.XY{X: float64(k + 1), Y: part(&c.Daily[k])[n]}
		}
		if err := addLine(p, n, xys, i); err != nil {
			return nil, err
		}
	}
	return p, nil
}
