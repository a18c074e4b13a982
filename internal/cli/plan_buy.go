package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/forecast"
	"github.com/gpufleet/gpufleet/internal/plan"
	"github.com/gpufleet/gpufleet/internal/plan/replay"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/report"
	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/spec"
)

type planOpts struct {
	history, fleetFile, catalogFile string
	horizon, review                 string
	target, scenario, method        string
	arrivals                        string
	step                            time.Duration
	warmup, maxJobs                 int
	seed                            uint64
	cycle                           int64
	reportDir                       string
	asJSON, quiet                   bool
	usage                           usageSourceOpts
}

const planLong = `plan forecasts demand for accelerators and makes a buy plan: when each
accelerator type runs out, and what to order, by when, for which site, so
that the fleet keeps a target wait at least cost within the sites' power
and space. docs/PLANNING.md describes the rules and a worked example.

--history is the demand history: the jobs.csv of "sim run --report" (the
jobs' work counts in the step it arrived in), a native trace (.jsonl; its
jobs' durations times their accelerators), or a series file: one series a
line, its id tenant/kind/accelerator (* for any type) and then its
accelerator-hours per step, whose step --step gives. --history server
reads the live server's metered usage (GET /v1/usage/records, --from to
--to, 12 weeks to now by default; --server and --token as for the other
commands), and --history usage:FILE the same records saved by "gpufleet
usage --records -o jsonl": each replica's holding counts in the steps
(--step, 1h by default) it held its accelerators. The history is
summed into weeks; each series is forecast --horizon weeks ahead by
--method with its 80% interval, whose upper bound is demand's 90th
percentile (p90); the catalog's commitments add to both.

--fleet is the fleet today (default: the built-in fleet), --catalog what
can be bought (kind: catalog: models with price, power and lead time;
sites with power and space; commitments; nodes on order; retirements).

Each week's forecast becomes representative jobs of each series' typical
shape, replayed through the scheduling core's simulator on the fleet as it
would grow, after --warmup weeks of the history itself. --target-wait is
the wait to keep: pNN=WAIT, the NN-th percentile of the waits of each
week's jobs of each accelerator type. The run-out week of a type is the
first week its target breaks without purchases, at p50 and at p90 demand.
The buy plan, for --scenario demand, is greedy in time: at the first week
a type breaks its target it orders the cheapest capacity per effective
accelerator that can arrive by then (or else the soonest), in the first
site with room, as few nodes as keep the target for --review weeks after
its delivery (found by replays, doubling then narrowing).

It prints a summary, or with --json the whole plan; --report DIR also
writes plan.json, plan.txt and index.html with charts of the forecasts,
of capacity against demand and of the orders.`

func newPlanCmd() *cobra.Command {
	var o planOpts
	c := &cobra.Command{
		Use:   "plan --history SOURCE --catalog CATALOG.yaml [--fleet FLEET.yaml] [--horizon 52w] [--target-wait p95=4h] [--report DIR]",
		Short: "Plan capacity: forecast demand, find when each accelerator type runs out and what to buy",
		Long:  planLong,
		Example: `  gpufleet sim run --report out/ && gpufleet plan --history out/jobs.csv --catalog examples/plan/catalog.yaml
  gpufleet plan --history demand.csv --step 24h --fleet fleet.yaml --catalog catalog.yaml --horizon 26w --target-wait p90=2h --report plan/
  gpufleet plan forecast --series demand.csv --season 7 --horizon 28`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return planCapacity(cmd, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.history, "history", "", "demand history `SOURCE`: a jobs.csv of sim run --report, a native trace (.jsonl), a series file, server (the live server's metered usage) or usage:FILE (usage --records -o jsonl)")
	f.StringVar(&o.fleetFile, "fleet", "", "the fleet today, a fleet `FILE` (default: the built-in fleet)")
	f.StringVar(&o.catalogFile, "catalog", "", "what can be bought and where, a catalog `FILE`")
	f.StringVar(&o.horizon, "horizon", "52w", "weeks to plan, such as 52w")
	f.StringVar(&o.target, "target-wait", "p95=4h", "the wait to keep: pNN=WAIT for each week's jobs of each accelerator type")
	f.StringVar(&o.scenario, "scenario", "p90", "the demand the buy plan is for: p50 (the forecast) or p90 (its 90th percentile)")
	f.StringVar(&o.review, "review", "13w", "how long each order keeps the target after its delivery")
	f.DurationVar(&o.step, "step", 0, "for a series file: the time one value covers, such as 1h or 24h")
	f.StringVar(&o.method, "method", forecast.NameDefault, "forecasting method (see plan forecast)")
	f.IntVar(&o.warmup, "warmup", 2, "weeks of history replayed before the horizon, so that it starts with a busy fleet")
	f.IntVar(&o.maxJobs, "max-jobs", plan.DefaultMaxJobsPerWeek, "representative jobs a week, all series together; past a series' share, its jobs run longer")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the jobs' arrival times")
	f.StringVar(&o.arrivals, "arrivals", "random", "how a week's jobs arrive by its profile: random (seeded) or even (evenly spread: no job waits while capacity exceeds demand, an optimistic bound)")
	f.Int64Var(&o.cycle, "cycle", 0, "run the replays' scheduling cycles every `SEC` seconds (0: at every event, as the live loop does)")
	f.StringVar(&o.reportDir, "report", "", "write plan.json, plan.txt and index.html into `DIR`")
	f.BoolVar(&o.asJSON, "json", false, "print the whole plan as JSON")
	f.BoolVar(&o.quiet, "quiet", false, "print no notes on standard error")
	addUsageSourceFlags(c, &o.usage)
	return c
}

// parseWeeks reads a number of weeks: 52w, or 52.
func parseWeeks(flag, s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "w"))
	if err != nil || n < 1 || n > 520 {
		return 0, fmt.Errorf("%s %q: want whole weeks from 1 to 520, such as 52w", flag, s)
	}
	return n, nil
}

func planCapacity(cmd *cobra.Command, o planOpts) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	switch {
	case o.history == "":
		return fmt.Errorf("--history: give the demand history (a jobs.csv of sim run --report, a native trace, a series file, server or usage:FILE)")
	case o.catalogFile == "":
		return fmt.Errorf("--catalog: give the catalog of what can be bought (see examples/plan/catalog.yaml)")
	case o.warmup < 0:
		return fmt.Errorf("--warmup %d: must not be negative", o.warmup)
	case o.maxJobs < 1:
		return fmt.Errorf("--max-jobs %d: want at least 1", o.maxJobs)
	case o.cycle < 0:
		return fmt.Errorf("--cycle %d: must not be negative", o.cycle)
	case o.arrivals != "random" && o.arrivals != "even":
		return fmt.Errorf("--arrivals %q: want random or even", o.arrivals)
	}
	horizon, err := parseWeeks("--horizon", o.horizon)
	if err != nil {
		return err
	}
	review, err := parseWeeks("--review", o.review)
	if err != nil {
		return err
	}
	target, err := plan.ParseTarget(o.target)
	if err != nil {
		return fmt.Errorf("--target-wait: %w", err)
	}
	scenario, err := plan.ParseScenario(o.scenario)
	if err != nil {
		return fmt.Errorf("--scenario: %w", err)
	}
	method, err := forecast.ByName(o.method)
	if err != nil {
		return fmt.Errorf("--method: %w", err)
	}
	f, caps, err := planFleet(o.fleetFile)
	if err != nil {
		return err
	}
	data, err := readFile(o.catalogFile, spec.MaxFileBytes)
	if err != nil {
		return err
	}
	cat, err := spec.ParseCatalog(o.catalogFile, data, spec.WithFleet(f))
	if err != nil {
		return err
	}
	if err := cat.Check(f); err != nil {
		return fmt.Errorf("%s: %w", o.catalogFile, err)
	}
	if err := checkUsageFlags(cmd, o.history); err != nil {
		return err
	}
	var hist plan.History
	var source string
	if isUsageSource(o.history) {
		hist, source, err = usageHistory(cmd.Context(), o.history, o.usage, o.step, time.Now())
	} else {
		hist, source, err = planHistory(o.history, o.step, stderr, o.quiet)
	}
	if err != nil {
		return err
	}
	hist = hist.Retype(planTypes(f, cat))
	weekly, dropped, err := hist.Weekly()
	if err != nil {
		return fmt.Errorf("%s: %w", o.history, err)
	}
	demand, err := plan.Forecast(weekly, cat.Commitments, plan.ForecastOptions{Horizon: horizon, Method: method})
	if err != nil {
		return err
	}
	p := &plan.Problem{Fleet: f, Catalog: cat, PowerCaps: caps, Demand: demand, Horizon: horizon,
		Warmup: min(o.warmup, len(weekly[0].Weeks)), Target: target, Scenario: scenario, ReviewWeeks: review,
		Jobs: plan.WorkloadOptions{Seed: o.seed, MaxJobsPerWeek: o.maxJobs, Even: o.arrivals == "even"}}
	s, err := replay.New(p, replay.Config{CycleSec: o.cycle})
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := plan.Search(p, s)
	if err != nil {
		return err
	}
	out := &report.Plan{Source: source, HistoryWeeks: len(weekly[0].Weeks), DroppedSteps: dropped, StepSec: hist.StepSec, Demand: demand, Result: res}
	if o.asJSON {
		err = report.WritePlanJSON(stdout, out)
	} else {
		err = report.WritePlanText(stdout, out)
	}
	if err != nil {
		return err
	}
	if o.reportDir != "" {
		if err := report.WritePlanDir(o.reportDir, out); err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(stderr, "report written to %s\n", filepath.Join(o.reportDir, report.IndexFile))
		}
	}
	if !o.quiet {
		fmt.Fprintf(stderr, "planned %d weeks with %d replays in %s\n", horizon, res.Replays, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// planFleet reads the fleet today and its power caps by domain.
func planFleet(path string) (*fleet.Fleet, map[string]float64, error) {
	f, sites, err := simLoadFleet(path)
	if err != nil {
		return nil, nil, err
	}
	caps := map[string]float64{}
	for name, s := range sites {
		if s.PowerCapKW > 0 {
			caps[name] = s.PowerCapKW
		}
	}
	return f, caps, nil
}

// planTypes lists the accelerator types of the fleet and of the catalog's
// models.
func planTypes(f *fleet.Fleet, c *plan.Catalog) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range f.SortedTypes() {
		seen[t] = true
		out = append(out, t)
	}
	for _, m := range c.Models {
		if !seen[m.Accel] {
			seen[m.Accel] = true
			out = append(out, m.Accel)
		}
	}
	return out
}

// planHistory reads a demand history from a jobs.csv, a native trace or
// a series file, and says what it read.
func planHistory(path string, step time.Duration, stderr io.Writer, quiet bool) (plan.History, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return plan.History{}, "", err
	}
	first, _, _ := bytes.Cut(bytes.TrimPrefix(data, []byte("\ufeff")), []byte("\n"))
	isJobs := bytes.Contains(first, []byte("accel_hours")) && bytes.Contains(first, []byte("tenant"))
	trace := strings.HasSuffix(path, ".jsonl") || strings.HasSuffix(path, ".json") || bytes.HasPrefix(bytes.TrimSpace(first), []byte("{"))
	if (isJobs || trace) && step != 0 {
		return plan.History{}, "", fmt.Errorf("--step: a jobs file and a trace give times of their own; --step goes with a series file")
	}
	note := func(format string, args ...any) {
		if !quiet {
			fmt.Fprintf(stderr, "note: "+format+"\n", args...)
		}
	}
	switch {
	case isJobs:
		js, err := plan.ParseJobsCSV(data, path)
		if err != nil {
			return plan.History{}, "", err
		}
		if js.NeverRan > 0 {
			note("%d jobs of %s never ran: their work is unknown and not counted", js.NeverRan, path)
		}
		a := plan.NewAggregator(3600, js.Origin)
		for _, j := range js.Jobs {
			a.Add(j)
		}
		return a.History(), fmt.Sprintf("%s (%d jobs)", filepath.Base(path), len(js.Jobs)), nil
	case trace:
		h, n, skipped, err := traceHistory(path, data)
		if err != nil {
			return plan.History{}, "", err
		}
		if skipped > 0 {
			note("%d services of %s run until the end and bring no duration: they are not counted", skipped, path)
		}
		return h, fmt.Sprintf("%s (%d jobs)", filepath.Base(path), n), nil
	}
	if step <= 0 {
		return plan.History{}, "", fmt.Errorf("--step: a series file does not say how long one value covers; give --step 1h or --step 24h")
	}
	if step%time.Second != 0 || plan.WeekSec%int64(step/time.Second) != 0 {
		return plan.History{}, "", fmt.Errorf("--step %s: want a whole number of seconds that divides a week (1h, 24h, 168h)", step)
	}
	series, err := forecast.ParseSeries(data, path)
	if err != nil {
		return plan.History{}, "", err
	}
	h, err := plan.FromSeries(series, int64(step/time.Second))
	if err != nil {
		return plan.History{}, "", fmt.Errorf("%s: %w", path, err)
	}
	return h, fmt.Sprintf("%s (%d series)", filepath.Base(path), len(series)), nil
}

// traceHistory sums a native trace's jobs: each job's work (accelerators
// times its duration at relative speed 1.0) in the hour it arrived in, for
// its queue's tenant, its kind and the first accelerator type it asks for.
func traceHistory(path string, data []byte) (plan.History, int, int, error) {
	r := sim.NewTraceReader(path, bytes.NewReader(data))
	_, qs, err := r.Preamble()
	if err != nil {
		return plan.History{}, 0, 0, err
	}
	tree, err := quota.New(qs)
	if err != nil {
		return plan.History{}, 0, 0, fmt.Errorf("%s: queues: %w", path, err)
	}
	var jobs []sim.Job
	for {
		j, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return plan.History{}, 0, 0, err
		}
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return plan.History{}, 0, 0, fmt.Errorf("%s: no jobs", path)
	}
	a := plan.NewAggregator(3600, jobs[0].Arrival)
	n, skipped := 0, 0
	for i := range jobs {
		j := &jobs[i]
		if j.Duration == sim.NoDuration {
			skipped++
			continue
		}
		tenant := j.Tenant
		if q := tree.Queue(j.Queue); q >= 0 {
			tenant = tree.Tenant(q)
		}
		if tenant == "" {
			tenant = j.Queue
		}
		accel, accels := plan.AnyAccel, 0.0
		for _, g := range j.Gangs {
			if accel == plan.AnyAccel && len(g.Shape.Accel) > 0 {
				accel = g.Shape.Accel[0]
			}
			accels += float64(g.Replicas) * float64(g.Shape.GPUMilli()) / 1000
		}
		if a.Add(plan.JobDemand{Key: plan.Key{Tenant: tenant, Kind: j.Kind.String(), Accel: accel}, Arrival: j.Arrival,
			Accels: accels, Hours: float64(j.Duration) / 3600}) {
			n++
		}
	}
	return a.History(), n, skipped, nil
}
