package replay

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/plan"
	"github.com/gpufleet/gpufleet/internal/report"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// TestScenarios runs the plan scenarios under testdata/scenarios through
// the real simulator: a fleet file, a catalog file, demand given week by
// week, then a plan whose summary is the expected output. Regenerate with
// -rewrite and review the diff.
//
//	fleet            (a fleet file as the body)
//	catalog          (a catalog file as the body)
//	demand key=acme/batch/h100 accels=8 hours=1
//	1-2 4 4          (weeks 1 to 2: 4 accelerators busy at p50, 4 at p90)
//	plan horizon=8 pct=95 wait=4h scenario=p90 arrivals=even warmup=1
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := s.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type scenario struct {
	fleet  *fleet.Fleet
	caps   map[string]float64
	cat    *plan.Catalog
	demand []plan.Demand
	// weeks of demand given, per series: (p50, p90) per week.
	given [][][2]float64
}

func arg(d *datadriven.TestData, key, def string) string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return strings.Join(a.Vals, ",")
		}
	}
	return def
}

func (s *scenario) run(d *datadriven.TestData) (string, error) {
	switch d.Cmd {
	case "fleet":
		fs, err := spec.ParseFleetSpec("fleet.yaml", []byte(d.Input))
		if err != nil {
			return "", err
		}
		s.fleet, s.caps = fs.Fleet, map[string]float64{}
		for name, site := range fs.Sites {
			if site.PowerCapKW > 0 {
				s.caps[name] = site.PowerCapKW
			}
		}
		return fmt.Sprintf("%d nodes, %v\n", len(s.fleet.Nodes), s.fleet.Totals()), nil
	case "catalog":
		c, err := spec.ParseCatalog("catalog.yaml", []byte(d.Input), spec.WithFleet(s.fleet))
		if err != nil {
			return "", err
		}
		s.cat = c
		return fmt.Sprintf("%d models, %d sites\n", len(c.Models), len(c.Sites)), nil
	case "demand":
		key, err := plan.ParseKey(arg(d, "key", ""))
		if err != nil {
			return "", err
		}
		accels, err1 := strconv.ParseFloat(arg(d, "accels", "8"), 64)
		hours, err2 := strconv.ParseFloat(arg(d, "hours", "1"), 64)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("accels and hours: want numbers")
		}
		var weeks [][2]float64
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				return "", fmt.Errorf("%q: want FROM-TO P50 P90", line)
			}
			from, to, _ := strings.Cut(f[0], "-")
			a, _ := strconv.Atoi(from)
			b, _ := strconv.Atoi(to)
			p50, _ := strconv.ParseFloat(f[1], 64)
			p90, _ := strconv.ParseFloat(f[2], 64)
			for w := a; w <= b; w++ {
				for len(weeks) < w {
					weeks = append(weeks, [2]float64{})
				}
				weeks[w-1] = [2]float64{p50, p90}
			}
		}
		s.demand = append(s.demand, plan.Demand{Key: key, Shape: plan.Shape{Accels: accels, Hours: hours}, Profile: []float64{1},
			History: []float64{weeks[0][0] * 168, weeks[0][0] * 168}})
		s.given = append(s.given, weeks)
		return "", nil
	case "plan":
		horizon, _ := strconv.Atoi(arg(d, "horizon", "8"))
		pct, _ := strconv.ParseFloat(arg(d, "pct", "95"), 64)
		target, err := plan.ParseTarget(fmt.Sprintf("p%g=%s", pct, arg(d, "wait", "4h")))
		if err != nil {
			return "", err
		}
		sc, err := plan.ParseScenario(arg(d, "scenario", "p90"))
		if err != nil {
			return "", err
		}
		warmup, _ := strconv.Atoi(arg(d, "warmup", "1"))
		review, _ := strconv.Atoi(arg(d, "review", "13"))
		maxJobs, _ := strconv.Atoi(arg(d, "jobs", "500"))
		demand := make([]plan.Demand, len(s.demand))
		for i, dm := range s.demand {
			dm.Point, dm.Lower, dm.Upper, dm.Committed = make([]float64, horizon), make([]float64, horizon), make([]float64, horizon), make([]float64, horizon)
			for w := range horizon {
				g := s.given[i][min(w, len(s.given[i])-1)]
				dm.Point[w], dm.Lower[w], dm.Upper[w] = g[0]*168, g[0]*168, g[1]*168
			}
			demand[i] = dm
		}
		p := &plan.Problem{Fleet: s.fleet, Catalog: s.cat, PowerCaps: s.caps, Demand: demand, Horizon: horizon, Warmup: warmup,
			Target: target, Scenario: sc, ReviewWeeks: review,
			Jobs: plan.WorkloadOptions{Seed: 1, Even: arg(d, "arrivals", "random") == "even", MaxJobsPerWeek: maxJobs}}
		sim, err := New(p, Config{})
		if err != nil {
			return "", err
		}
		res, err := plan.Search(p, sim)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if err := report.WritePlanText(&b, &report.Plan{Source: "the scenario", HistoryWeeks: 2, Demand: demand, Result: res}); err != nil {
			return "", err
		}
		for _, c := range p.Classes() {
			fmt.Fprintf(&b, "%s weekly %s wait with the plan:", c, target)
			for _, st := range res.Final[c] {
				fmt.Fprintf(&b, " %s", formatHours(st.Wait))
			}
			b.WriteString("\n")
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

func formatHours(sec float64) string { return strconv.FormatFloat(sec/3600, 'f', 1, 64) + "h" }
