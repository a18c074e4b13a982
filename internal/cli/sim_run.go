package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gpufleet/gpufleet/internal/energy"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/report"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/sim"
)

func init() {
	simSubcommands = append(simSubcommands, newSimRunCmd)
}

type simRunOpts struct {
	fleetFile, queuesFile, traceFile string
	policy                           string
	seed                             uint64
	jobs                             int
	failures                         float64
	cycle, sample                    int64
	noBackfill, noPreemption         bool
	preemptAfter                     time.Duration
	reportDir                        string
	asJSON, quiet                    bool
	cpuProfile                       string
	carbonAware                      bool
	forecastErr                      float64
	start                            string
	acct                             *simAccountFlags
}

func newSimRunCmd() *cobra.Command {
	var o simRunOpts
	c := &cobra.Command{
		Use:   "run",
		Short: "Replay a workload through the scheduling core on a virtual clock",
		Long: `run replays a workload through the same scheduling core the live plane
uses, on a virtual clock: jobs arrive, the core decides, jobs start when all
their replicas are bound, run for their duration at the speed of the
accelerators they got, and end; preempted jobs lose the work since their last
checkpoint and wait again. With no flags it runs a generated workload of a
few thousand jobs on the built-in fleet and queue tree.

The workload is --trace (the native JSON Lines format of docs/TRACE_FORMAT.md,
"-" for standard input; or, for a .csv file, an openb task list of the
Alibaba GPU trace replayed by its creation, scheduled and deletion times) or
else a generated one (--jobs, --seed). --fleet may also be an openb node list
(.csv). A native trace with node lines brings its own fleet (its nodes at
the start, then nodes added and retired over time), used unless --fleet
names another. Queues come from --queues, else from the trace's queue lines (for
an openb trace, one queue "openb-tasks" owning the fleet), else the built-in tree.
A trace recorded on a live fleet (gpufleet export) names the scheduler
configuration it ran under; the replay uses it unless --policy,
--no-backfill, --no-preemption, --preempt-after or --seed say otherwise.
--policy names the placement stages after the filters, comma-separated:
"default", or for example "spread", "fgd", "bestfit,fragmentation". The same
inputs and seed give the same results, byte for byte.

It prints a summary, or with --json the summary as JSON; --report DIR also
writes summary.json, jobs.csv, timeseries.csv and index.html with charts.

With --account (or --prices, --credits, --commitments) the run is metered
by the same ledger the live server runs: per tenant cost, energy, carbon,
commitment fees and credits in the summary, and a chart of each prepaid
tenant's credit burn-down. Commitments give their tenants committed-tier
quota for their term; a tenant whose credits or monthly budget run out is
paused and its running work stopped, as live (--no-enforce lets it run on).
The virtual clock's 0 is --epoch on the calendar.`,
		Example: `  gpufleet sim run
  gpufleet sim run --policy fgd --report out/
  gpufleet sim gen --jobs 100000 -o w.jsonl && gpufleet sim run --trace w.jsonl --failures 0.01 --json
  gpufleet sim run --credits credits.yaml --commitments commitments.yaml --report out/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simRun(cmd, o)
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.fleetFile, "fleet", "", "fleet `FILE` (default: the built-in fleet)")
	fl.StringVar(&o.queuesFile, "queues", "", "queues `FILE` (default: the trace's queues, else the built-in tree)")
	fl.StringVar(&o.traceFile, "trace", "", "workload trace `FILE` in the native format, - for standard input (default: a generated workload)")
	fl.IntVar(&o.jobs, "jobs", simDefaultJobs, "jobs of the generated workload (without --trace)")
	fl.StringVar(&o.policy, "policy", "default", "placement stages, comma-separated, or default; filters are always on (stages: "+strings.Join(sched.Stages(), ", ")+")")
	fl.Uint64Var(&o.seed, "seed", 1, "seed of the generated workload, of node failures and of the core's random choices")
	fl.Float64Var(&o.failures, "failures", 0, "node failures per node per day (0: none); repairs take 4 hours on average")
	fl.Int64Var(&o.cycle, "cycle", 0, "run scheduling cycles every `SEC` seconds of virtual time (0: at every event)")
	fl.Int64Var(&o.sample, "sample", 600, "interval of the time series in `SEC` seconds")
	fl.BoolVar(&o.noBackfill, "no-backfill", false, "turn off backfill reservations")
	fl.BoolVar(&o.noPreemption, "no-preemption", false, "turn off preemption")
	fl.DurationVar(&o.preemptAfter, "preempt-after", time.Minute, "how long a job waits for room before it may preempt (0: at once)")
	fl.StringVar(&o.reportDir, "report", "", "write summary.json, jobs.csv, timeseries.csv and index.html into `DIR`")
	fl.BoolVar(&o.asJSON, "json", false, "print the summary as JSON")
	fl.BoolVar(&o.quiet, "quiet", false, "print no progress bar or notes on standard error")
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (read it with go tool pprof)")
	fl.BoolVar(&o.carbonAware, "carbon-aware", false, "shift deferrable jobs to clean windows and sites (the carbon admission rule and placement stage), meter energy and carbon through the accounting ledger, and compare with the same run without")
	fl.Float64Var(&o.forecastErr, "forecast-error", 0, "with --carbon-aware: noise on the carbon forecast, a share of each series' mean (0: the series itself)")
	fl.StringVar(&o.start, "start", "", "with --carbon-aware: the time the virtual clock's 0 stands for (a date, UTC, or RFC 3339; default: the first midnight the fleet's carbon series cover)")
	o.acct = addSimAccountFlags(c)
	return c
}

func simRun(cmd *cobra.Command, o simRunOpts) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if o.failures < 0 {
		return fmt.Errorf("--failures %v: must not be negative", o.failures)
	}
	if o.sample <= 0 {
		return fmt.Errorf("--sample %d: want a positive number of seconds", o.sample)
	}
	if o.cycle < 0 {
		return fmt.Errorf("--cycle %d: must not be negative", o.cycle)
	}
	f, sites, err := simLoadFleet(o.fleetFile)
	if err != nil {
		return err
	}
	var qs []quota.Spec
	if o.queuesFile != "" {
		if qs, err = simLoadQueues(o.queuesFile); err != nil {
			return err
		}
	}

	// The workload and the progress it reports; open gives it afresh,
	// for a second run of the same workload.
	if o.traceFile != "" && cmd.Flags().Changed("jobs") {
		return fmt.Errorf("--jobs and --trace: --jobs sizes a generated workload; give one, not both")
	}
	if o.carbonAware && o.traceFile == "-" {
		return fmt.Errorf("--carbon-aware compares two runs of the workload: read the trace from a file, not standard input")
	}
	type workload struct {
		src   sim.Source
		total int64
		done  func() int64
		close func()
		// nodes and events are a native trace's fleet and node events;
		// recorded the scheduler configuration it was recorded under.
		nodes    []fleet.Node
		events   []sim.NodeEvent
		recorded *sched.Config
	}
	userQueues := qs
	open := func() (workload, []quota.Spec, error) {
		qs := userQueues
		w := workload{close: func() {}}
		if o.traceFile != "" {
			r := cmd.InOrStdin()
			name := "standard input"
			if o.traceFile != "-" {
				fh, err := os.Open(o.traceFile)
				if err != nil {
					return w, nil, err
				}
				w.close = func() { fh.Close() }
				if st, err := fh.Stat(); err == nil {
					w.total = st.Size()
				}
				r, name = fh, o.traceFile
			}
			cr := &simCountingReader{r: r}
			if simIsCSV(o.traceFile) {
				// An openb task list, replayed in time mode.
				tr, err := sim.ReadOpenbTasks(name, cr, "openb-tasks")
				if err != nil {
					return w, nil, err
				}
				if qs == nil {
					qs = sim.OpenbQueues(f, "openb-tasks")
				}
				if tr.NeverRan > 0 && !o.quiet {
					fmt.Fprintf(stderr, "note: %d tasks of %s never ran (no scheduled_time) and are left out\n", tr.NeverRan, name)
				}
				w.src, w.total = tr, int64(len(tr.Jobs))
			} else {
				tr := sim.NewTraceReader(name, cr)
				h, traceQueues, err := tr.Preamble()
				if err != nil {
					return w, nil, err
				}
				if qs == nil {
					qs = traceQueues
				}
				w.src, w.done = tr, func() int64 { return cr.n.Load() }
				w.nodes, w.events, w.recorded = tr.Fleet(), tr.NodeEvents(), h.Sched
			}
		} else {
			if qs == nil {
				qs, _ = simLoadQueues("")
			}
			g, err := sim.NewGenerator(sim.GenConfig{Jobs: o.jobs, Seed: o.seed, Queues: qs, Fleet: f})
			if err != nil {
				return w, nil, err
			}
			w.src, w.total = g, int64(o.jobs)
		}
		if qs == nil {
			qs, _ = simLoadQueues("")
		}
		return w, qs, nil
	}
	wl, qs, err := open()
	if err != nil {
		return err
	}
	defer func() { wl.close() }()
	src, total, done := wl.src, wl.total, wl.done
	// A trace with node lines describes its fleet: it replaces the
	// built-in one, as its queue lines replace the built-in tree, unless
	// --fleet names another.
	traceFleet := o.fleetFile == "" && (len(wl.nodes) > 0 || len(wl.events) > 0)
	if traceFleet {
		if f, err = fleet.New(nil, nil, wl.nodes); err != nil {
			return fmt.Errorf("%s: the fleet's nodes: %w", o.traceFile, err)
		}
		sites = nil
	}

	cfg := sim.Config{
		Sched:              sched.Config{NoBackfill: o.noBackfill, NoPreemption: o.noPreemption, PreemptAfterSec: preemptAfterSec(o.preemptAfter), Seed: o.seed},
		Seed:               o.seed,
		FailuresPerNodeDay: o.failures,
		SampleSec:          o.sample,
		CycleSec:           o.cycle,
		PUE:                func(n *fleet.Node) float64 { return sites.For(n.Path).PUE },
		NodeEvents:         wl.events,
	}
	if cfg.Accounting, err = o.acct.config(f, sites, qs, cfg.Sched.SiteLevel); err != nil {
		return err
	}
	if cfg.Accounting != nil && o.carbonAware {
		// The carbon-aware run moves the virtual clock onto its series'
		// calendar (--start) and meters energy and carbon itself; the
		// accounting's calendar is --epoch. One run has one calendar.
		return fmt.Errorf("--carbon-aware meters energy and carbon on its own calendar (--start): give it without --account, --prices, --credits and --commitments, or run those without --carbon-aware")
	}
	if p := strings.TrimSpace(o.policy); p != "" && p != "default" {
		for _, s := range strings.Split(p, ",") {
			cfg.Sched.Placement = append(cfg.Sched.Placement, strings.TrimSpace(s))
		}
	}
	if wl.recorded != nil {
		cfg.Sched = recordedSched(cmd, *wl.recorded, cfg.Sched)
	}
	// A power cap in the fleet file is a constraint of every run.
	cfg.Sched.Sites = energy.PowerSites(sites)
	var bar *progressbar.ProgressBar
	if !o.quiet && simIsTerminal(stderr) && total > 0 {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("simulating"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
		cfg.Progress = func(arrived int) {
			if done != nil {
				_ = bar.Set64(done())
			} else {
				_ = bar.Set64(int64(arrived))
			}
		}
	}

	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	start := time.Now()
	var res *sim.Result
	if o.carbonAware {
		res, err = simRunCarbonAware(cfg, o, f, sites, qs, src, func() (sim.Source, *fleet.Fleet, func(), error) {
			w, _, err := open()
			if err != nil {
				return nil, nil, nil, err
			}
			if traceFleet {
				f2, err := fleet.New(nil, nil, w.nodes)
				return w.src, f2, w.close, err
			}
			f2, err := simFleetAgain(o.fleetFile)
			return w.src, f2, w.close, err
		})
	} else {
		res, err = sim.Run(cfg, f, qs, src)
	}
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)

	if o.asJSON {
		err = report.WriteJSON(stdout, res)
	} else {
		err = report.WriteText(stdout, res)
	}
	if err != nil {
		return err
	}
	if o.reportDir != "" {
		if err := report.WriteDir(o.reportDir, res); err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(stderr, "report written to %s\n", filepath.Join(o.reportDir, report.IndexFile))
		}
	}
	if !o.quiet {
		fmt.Fprintf(stderr, "simulated %s of virtual time in %s\n", report.Duration(float64(res.Summary.End-res.Summary.Start)), elapsed.Round(time.Millisecond))
	}
	return nil
}

// simIsTerminal reports whether w is a terminal, where a progress bar
// belongs.
func simIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// simCountingReader counts the bytes read, for progress through a trace.
type simCountingReader struct {
	r io.Reader
	n atomic.Int64 // read by the progress bar while the trace is read ahead
}

func (c *simCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// recordedSched is the scheduler configuration a trace was recorded
// under, with what the command line says otherwise in its place: a replay
// of a live fleet's history runs its policy unless asked for another.
func recordedSched(cmd *cobra.Command, rec, flags sched.Config) sched.Config {
	fl := cmd.Flags()
	if fl.Changed("policy") {
		rec.Placement = flags.Placement
	}
	if fl.Changed("no-backfill") {
		rec.NoBackfill = flags.NoBackfill
	}
	if fl.Changed("no-preemption") {
		rec.NoPreemption = flags.NoPreemption
	}
	if fl.Changed("preempt-after") {
		rec.PreemptAfterSec = flags.PreemptAfterSec
	}
	if fl.Changed("seed") {
		rec.Seed = flags.Seed
	}
	return rec
}
