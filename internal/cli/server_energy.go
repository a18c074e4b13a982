package cli

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/energy"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// energyFlags are the live server's sites: the fleet file whose sites
// give power caps, PUE and carbon intensity, and whether the core shifts
// deferrable work on the carbon forecast.
type energyFlags struct {
	fleetFile   string
	carbonAware bool
}

func addEnergyFlags(c *cobra.Command) *energyFlags {
	f := &energyFlags{}
	c.Flags().BoolVar(&f.carbonAware, "carbon-aware", false, "turn on the core's carbon rule (deferrable jobs wait for the cleanest window before their deadline) and its carbon placement stage, on the forecast of the --fleet file's sites")
	return f
}

// apply gives the server's configuration the fleet file's sites: the
// core's caps, PUE and forecast, the carbon rule and stage when asked,
// and the meter's PUE and carbon, which the fleet file owns (a prices
// file that gives a site's PUE or carbon the fleet file gives too is an
// error). Call it after the accounting flags.
func (f *energyFlags) apply(cfg *server.Config, pricesFile string) error {
	if f.fleetFile == "" {
		if f.carbonAware {
			return fmt.Errorf("--carbon-aware: give the fleet file whose sites carry the carbon intensity (--fleet FILE)")
		}
		return nil
	}
	data, err := readFile(f.fleetFile, spec.MaxFileBytes)
	if err != nil {
		return err
	}
	fs, err := spec.ParseFleetSpec(f.fleetFile, data)
	if err != nil {
		return err
	}
	if !slices.Equal(fs.Fleet.Levels, fleet.DefaultLevels) {
		return fmt.Errorf("--fleet %s: levels %v: the live plane takes the default levels %v", f.fleetFile, fs.Fleet.Levels, fleet.DefaultLevels)
	}
	paths := livePaths(fs)
	w := &seriesWatch{seen: map[string]fileStamp{}}
	opts := energy.Options{Dir: filepath.Dir(f.fleetFile), Read: w.read}
	c, err := energy.ReadCarbon(fs.Sites, paths, opts)
	if err != nil {
		return fmt.Errorf("--fleet %s: %w", f.fleetFile, err)
	}
	cfg.Sched.Sites = energy.PowerSites(fs.Sites)
	if c.Known {
		cfg.Sched.Forecast = c.Forecast
	}
	if c.Series {
		cfg.ForecastReload = func() (bool, error) {
			if !w.changed() {
				return false, nil
			}
			again := &seriesWatch{seen: map[string]fileStamp{}}
			fresh, err := energy.ReadCarbon(fs.Sites, paths, energy.Options{Dir: opts.Dir, Read: again.read})
			if err != nil {
				// Look again once the file changes once more.
				w.seen = again.seen
				return false, err
			}
			c.Forecast.Replace(fresh.Forecast)
			w.seen = again.seen
			return true, nil
		}
	}
	if f.carbonAware {
		if !c.Known {
			return fmt.Errorf("--carbon-aware: the sites of %s give no carbon intensity (give carbon or carbonSeries in its sites)", f.fleetFile)
		}
		if !slices.Contains(cfg.Sched.Admission, "carbon") {
			cfg.Sched.Admission = append(slices.Clone(cfg.Sched.Admission), "carbon")
		}
		cfg.Sched.Placement = energy.CarbonFirst(cfg.Sched.Placement)
	}
	return mergeMeterSites(&cfg.Accounting.Ledger, fs.Sites, c.Ledger, f.fleetFile, pricesFile)
}

// livePaths are the sites the meter should know by name: the domains at
// the core's site level (zones) of the fleet file's nodes, and every
// domain its sites name. Zones of nodes the file does not list get the
// meter's default site and, for the forecast, their region's.
func livePaths(fs spec.FleetSpec) []string {
	set := map[string]bool{}
	f := fs.Fleet
	lvl := simSiteLevel(f)
	for d := 1; d < len(f.Domains); d++ {
		if f.Domains[d].Level == lvl {
			set[f.DomainPath(d)] = true
		}
	}
	for p := range fs.Sites {
		set[p] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// mergeMeterSites makes the fleet file's PUE and carbon the meter's. The
// fleet file is their one source: a prices file may still give a site its
// price multiplier, and PUE or carbon for a site the fleet file says
// nothing of (the meter's default there), but a PUE or carbon both give
// for one site is refused.
func mergeMeterSites(lc *ledger.Config, sites spec.Sites, fromFleet map[string]ledger.Site, fleetFile, pricesFile string) error {
	given := func(path string) (pue, carbon bool) {
		s := sites.For(strings.Split(path, "/"))
		return s.PUE > 0, s.CarbonGPerKWh > 0 || s.CarbonSeries != ""
	}
	for _, name := range slices.Sorted(maps.Keys(lc.Sites)) {
		ps := lc.Sites[name]
		pue, carbon := given(name)
		switch {
		case pue && ps.PUE > 0:
			return conflict(name, "pue", fleetFile, pricesFile)
		case carbon && (ps.Carbon != nil || ps.CarbonGPerKWh > 0):
			return conflict(name, "carbon", fleetFile, pricesFile)
		}
	}
	if lc.Sites == nil {
		lc.Sites = map[string]ledger.Site{}
	}
	for _, name := range slices.Sorted(maps.Keys(fromFleet)) {
		pue, carbon := given(name)
		if !pue && !carbon {
			continue
		}
		fs := fromFleet[name]
		ps, ok := lc.Sites[name]
		if !ok && lc.DefaultSite != nil {
			ps = *lc.DefaultSite
		}
		if pue {
			ps.PUE = fs.PUE
		}
		if carbon {
			ps.Carbon, ps.CarbonGPerKWh = fs.Carbon, fs.CarbonGPerKWh
		}
		if ps.PUE == 0 {
			ps.PUE = server.DefaultSitePUE
		}
		lc.Sites[name] = ps
	}
	return nil
}

func conflict(site, field, fleetFile, pricesFile string) error {
	return fmt.Errorf("site %s: %s is given by both the fleet file %s and the prices file %s; the fleet file's sites are the one source of a site's PUE and carbon intensity: remove it from the prices file", site, field, fleetFile, pricesFile)
}

// seriesWatch reads series files and remembers their size and time of
// change, to tell when the forecast feed has refreshed one.
type seriesWatch struct {
	seen map[string]fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{size: -1}
	}
	return fileStamp{fi.Size(), fi.ModTime()}
}

func (w *seriesWatch) read(path string) ([]byte, error) {
	w.seen[path] = stamp(path)
	return readFile(path, maxSeriesBytes)
}

// changed reports whether a file read has changed since.
func (w *seriesWatch) changed() bool {
	for p, st := range w.seen {
		if stamp(p) != st {
			return true
		}
	}
	return false
}
