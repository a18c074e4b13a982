package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/energy"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// simEnergy is what a fleet file's sites give sim run: power caps for the
// core, and, for a carbon-aware run, a forecast per site and the ledger's
// sites for metering.
type simEnergy struct {
	caps     []sched.Site
	forecast *energy.Forecast
	ledger   ledger.Config
	// origin is the virtual clock's zero on the series' clock.
	origin int64
	series bool
}

// simSiteLevel is the level whose domains are the core's sites: zone when
// the fleet has one, else its first level (as the core's default).
func simSiteLevel(f *fleet.Fleet) int {
	if lvl, err := f.LevelIndex("zone"); err == nil {
		return lvl
	}
	return 0
}

// simCarbonSites reads the carbon intensity of every site (the domains at
// the core's site level) from the fleet file's sites (energy.ReadCarbon).
// A forecast error adds seeded Gaussian noise of that share of each
// series' mean to what the core plans on; the meter reads the series
// itself.
func simCarbonSites(fleetFile string, f *fleet.Fleet, sites spec.Sites, forecastErr float64, seed uint64, start string) (*simEnergy, error) {
	lvl := simSiteLevel(f)
	var paths []string
	domainOf := map[string]int{}
	for d := 1; d < len(f.Domains); d++ {
		if f.Domains[d].Level == lvl {
			p := f.DomainPath(d)
			paths = append(paths, p)
			domainOf[p] = d
		}
	}
	o := energy.Options{Dir: filepath.Dir(fleetFile), Read: func(p string) ([]byte, error) { return readFile(p, maxSeriesBytes) }}
	if forecastErr > 0 {
		o.Noise = func(site string, s carbon.Series) carbon.Series {
			return s.WithNoise(forecastErr*s.Mean(0, 0), seed*131+uint64(domainOf[site]))
		}
	}
	c, err := energy.ReadCarbon(sites, paths, o)
	if err != nil {
		return nil, err
	}
	if !c.Known {
		return nil, fmt.Errorf("--carbon-aware: the fleet's sites give no carbon intensity (give carbon or carbonSeries in its sites)")
	}
	e := &simEnergy{caps: energy.PowerSites(sites), forecast: c.Forecast, series: c.Series,
		ledger: ledger.Config{Catalog: f.Catalog, Sites: c.Ledger, DefaultSite: &ledger.Site{PUE: sim.DefaultPUE}}}
	switch {
	case start != "":
		t, err := time.Parse(time.DateOnly, start)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, start); err != nil {
				return nil, fmt.Errorf("--start %q: want a date (2020-01-01, UTC) or an RFC 3339 time", start)
			}
		}
		e.origin = t.Unix()
	case e.series:
		// The first midnight every series covers.
		e.origin = (c.Latest + 86399) / 86400 * 86400
	}
	return e, nil
}

// offsetSource moves a workload's times by the clock's origin.
type offsetSource struct {
	src sim.Source
	by  int64
}

func (o *offsetSource) Next() (sim.Job, error) {
	j, err := o.src.Next()
	if err != nil || o.by == 0 {
		return j, err
	}
	j.Arrival += o.by
	if j.Deadline > 0 {
		j.Deadline += o.by
	}
	if j.NotBefore > 0 {
		j.NotBefore += o.by
	}
	return j, nil
}

// simFleetAgain reads the fleet once more for a second run (a run changes
// its nodes' states).
func simFleetAgain(path string) (*fleet.Fleet, error) {
	if path == "" {
		return spec.DefaultFleetSpec().Fleet, nil
	}
	f, _, err := simLoadFleet(path)
	return f, err
}

// simRunCarbonAware runs the workload with the carbon rules on, metered,
// then again with them off (again opens the workload and the fleet anew),
// and sets the saving.
func simRunCarbonAware(cfg sim.Config, o simRunOpts, f *fleet.Fleet, sites spec.Sites, qs []quota.Spec, src sim.Source,
	again func() (sim.Source, *fleet.Fleet, func(), error)) (*sim.Result, error) {
	e, err := simCarbonSites(o.fleetFile, f, sites, o.forecastErr, o.seed, o.start)
	if err != nil {
		return nil, err
	}
	unaware := cfg
	aware := cfg
	aware.Sched.Forecast = e.forecast
	aware.Sched.Admission = []string{"carbon"}
	aware.Sched.Placement = energy.CarbonFirst(cfg.Sched.Placement)
	res, err := sim.RunMetered(aware, e.ledger, f, qs, &offsetSource{src: src, by: e.origin})
	if err != nil {
		return nil, err
	}
	src2, f2, closeFn, err := again()
	if err != nil {
		return nil, err
	}
	defer closeFn()
	unaware.Progress = nil
	base, err := sim.RunMetered(unaware, e.ledger, f2, qs, &offsetSource{src: src2, by: e.origin})
	if err != nil {
		return nil, err
	}
	c := res.Summary.Carbon
	u := base.Summary.Carbon.CarbonTotals
	c.Unaware = &u
	if u.CarbonKg > 0 {
		c.SavingPct = round3(100 * (1 - c.CarbonKg/u.CarbonKg))
	}
	return res, nil
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5*sign(x))) / 1000 }

func sign(x float64) float64 {
	if x < 0 {
		return -1
	}
	return 1
}
