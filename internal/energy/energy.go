// Package energy turns a fleet file's sites into what the drivers of the
// scheduling core give it and the accounting ledger: power caps and PUE
// (sched.Site), a carbon-intensity forecast per site (a carbon.Forecast
// the core plans on) and the ledger's sites (what the meter reads). The
// simulator and the live server build them here, so both plan and meter on
// the same reading of the same file. It is pure: series files are read
// through the function the caller passes.
package energy

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// StepSec is the forecast's step: the half hour of the grid operators'
// series (finer readings are sampled on it, coarser ones repeated).
const StepSec = 1800

// DefaultPUE is the PUE of a site that gives none, the simulator's and
// the live accounting's default (sim.DefaultPUE, server.DefaultSitePUE).
const DefaultPUE = 1.2

// PowerSites lists the fleet file's sites for the core, by domain path:
// their power caps, and PUE (which weighs carbon-aware site choices). A
// site that gives neither is left out.
func PowerSites(sites spec.Sites) []sched.Site {
	var out []sched.Site
	for _, path := range slices.Sorted(maps.Keys(sites)) {
		s := sites.For(strings.Split(path, "/"))
		if s.PowerCapKW > 0 || s.PUE > 0 {
			out = append(out, sched.Site{Domain: path, PowerCapKW: s.PowerCapKW, ITCap: s.ITCap, PUE: s.PUE})
		}
	}
	return out
}

// Options say how to read the sites' carbon intensity.
type Options struct {
	// Dir is where relative carbonSeries paths start (the fleet file's
	// directory).
	Dir string
	// Read returns a series file's bytes.
	Read func(path string) ([]byte, error)
	// Noise, when set, turns a site's series into what the core plans on
	// (a forecast error); the meter reads the series itself.
	Noise func(site string, s carbon.Series) carbon.Series
}

// Carbon is the carbon intensity of a set of sites.
type Carbon struct {
	// Forecast is what the core plans on: a series per site (constants
	// as flat series). It answers for a site it does not list with the
	// forecast of the nearest domain above it that it lists, as the
	// fleet file's attributes apply to every domain below.
	Forecast *Forecast
	// Ledger is each site's PUE and intensity for the meter.
	Ledger map[string]ledger.Site
	// Series is set when some site's intensity is a series (not only
	// constants); Latest is the latest start among the series.
	Series bool
	Latest int64
	// Known is set when some site gives an intensity.
	Known bool
}

// ReadCarbon reads the carbon intensity of every site in paths (domain
// paths at the core's site level, and any other domain the fleet file's
// sites name) from the fleet file's sites: a series file or a constant;
// each comes from the most specific domain that gives one. A file named
// by several sites is read once.
func ReadCarbon(sites spec.Sites, paths []string, o Options) (*Carbon, error) {
	fc, err := carbon.NewForecast(StepSec)
	if err != nil {
		return nil, err
	}
	c := &Carbon{Forecast: &Forecast{fc: fc}, Ledger: map[string]ledger.Site{}}
	type loaded struct {
		fc *carbon.Series
		lg *ledger.Series
	}
	files := map[string]loaded{}
	for _, path := range paths {
		s := sites.For(strings.Split(path, "/"))
		pue := s.PUE
		if pue == 0 {
			pue = DefaultPUE
		}
		ls := ledger.Site{PUE: pue, CarbonGPerKWh: s.CarbonGPerKWh}
		switch {
		case s.CarbonSeries != "":
			file := s.CarbonSeries
			if !filepath.IsAbs(file) && o.Dir != "" {
				file = filepath.Join(o.Dir, file)
			}
			ld, ok := files[file]
			if !ok {
				data, err := o.Read(file)
				if err != nil {
					return nil, fmt.Errorf("site %s: carbonSeries: %w", path, err)
				}
				rd, err := carbon.ParseCSV(data, file)
				if err != nil {
					return nil, err
				}
				fs, err := rd.Regular(StepSec)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				lg, err := ledger.CarbonSeriesOf(rd)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				ld = loaded{&fs, lg}
				files[file] = ld
				c.Latest = max(c.Latest, fs.Start)
			}
			ls.Carbon = ld.lg
			plan := *ld.fc
			if o.Noise != nil {
				plan = o.Noise(path, plan)
			}
			if err := fc.Set(path, plan); err != nil {
				return nil, err
			}
			c.Series, c.Known = true, true
		case s.CarbonGPerKWh > 0:
			if err := fc.Set(path, carbon.Constant(s.CarbonGPerKWh, StepSec)); err != nil {
				return nil, err
			}
			c.Known = true
		}
		c.Ledger[path] = ls
	}
	return c, nil
}

// Forecast is a carbon.Forecast that answers for a domain it does not list
// with the nearest listed domain above it: a region's series holds for its
// zones. It implements sched.Forecast.
type Forecast struct {
	fc *carbon.Forecast
}

// StepSec is the length of one step.
func (f *Forecast) StepSec() int64 { return f.fc.StepSec() }

// Replace makes g's series f's, for a forecast read again from refreshed
// files; the core, which holds f, plans on them from its next question.
func (f *Forecast) Replace(g *Forecast) { f.fc = g.fc }

// Series returns the series that holds for site, and the domain that
// gives it.
func (f *Forecast) Series(site string) (carbon.Series, string, bool) {
	for p := site; p != ""; {
		if s, ok := f.fc.Series(p); ok {
			return s, p, true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return carbon.Series{}, "", false
}

// Intensity is the forecast for site over [from, to), one value per step.
func (f *Forecast) Intensity(site string, from, to int64) []float64 {
	s, _, ok := f.Series(site)
	if !ok {
		return nil
	}
	return s.Steps(from, to)
}

// Now is the intensity forecast for site at time t (Unix seconds on the
// series' clock); false when nothing is known there.
func (f *Forecast) Now(site string, t int64) (float64, bool) {
	s, _, ok := f.Series(site)
	if !ok {
		return 0, false
	}
	return s.At(t)
}

// CarbonFirst puts the carbon stage first among a chain's scorers (after
// the filters and the candidate order), so that the cleanest site wins
// and the other scorers break its ties.
func CarbonFirst(chain []string) []string {
	if len(chain) == 0 {
		chain = sched.DefaultPlacement
	}
	if slices.Contains(chain, "carbon") {
		return chain
	}
	var out []string
	put := false
	for _, s := range chain {
		isFilterOrOrder := slices.Contains([]string{"ready", "accelerator", "resources", "reservation", "bestfit", "spread"}, s)
		if !put && !isFilterOrOrder {
			out, put = append(out, "carbon"), true
		}
		out = append(out, s)
	}
	if !put {
		out = append(out, "carbon")
	}
	return out
}
