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
(.csv). Queues come from --queues, else from the trace's queue lines (for
an openb trace, one queue "openb-tasks" owning the fleet), else the built-in tree.
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

	// The workload and the progress it reports.
	var src sim.Source
	var total int64
	var done func() int64
	if o.traceFile != "" {
		if cmd.Flags().Changed("jobs") {
			return fmt.Errorf("--jobs and --trace: --jobs sizes a generated workload; give one, not both")
		}
		r := cmd.InOrStdin()
		name := "standard input"
		if o.traceFile != "-" {
			fh, err := os.Open(o.traceFile)
			if err != nil {
				return err
			}
			defer fh.Close()
			if st, err := fh.Stat(); err == nil {
				total = st.Size()
			}
			r, name = fh, o.traceFile
		}
		cr := &simCountingReader{r: r}
		if simIsCSV(o.traceFile) {
			// An openb task list, replayed in time mode.
			tr, err := sim.ReadOpenbTasks(name, cr, "openb-tasks")
			if err != nil {
				return err
			}
			if qs == nil {
				qs = sim.OpenbQueues(f, "openb-tasks")
			}
			if tr.NeverRan > 0 && !o.quiet {
				fmt.Fprintf(stderr, "note: %d tasks of %s never ran (no scheduled_time) and are left out\n", tr.NeverRan, name)
			}
			src, total = tr, int64(len(tr.Jobs))
		} else {
			tr := sim.NewTraceReader(name, cr)
			_, traceQueues, err := tr.Preamble()
			if err != nil {
				return err
			}
			if qs == nil {
				qs = traceQueues
			}
			src, done = tr, func() int64 { return cr.n.Load() }
		}
	} else {
		if qs == nil {
			qs, _ = simLoadQueues("")
		}
		g, err := sim.NewGenerator(sim.GenConfig{Jobs: o.jobs, Seed: o.seed, Queues: qs, Fleet: f})
		if err != nil {
			return err
		}
		src, total = g, int64(o.jobs)
	}
	if qs == nil {
		qs, _ = simLoadQueues("")
	}

	cfg := sim.Config{
		Sched:              sched.Config{NoBackfill: o.noBackfill, NoPreemption: o.noPreemption, PreemptAfterSec: preemptAfterSec(o.preemptAfter), Seed: o.seed},
		Seed:               o.seed,
		FailuresPerNodeDay: o.failures,
		SampleSec:          o.sample,
		CycleSec:           o.cycle,
		PUE:                func(n *fleet.Node) float64 { return sites.For(n.Path).PUE },
	}
	if cfg.Accounting, err = o.acct.config(f, sites, qs, cfg.Sched.SiteLevel); err != nil {
		return err
	}
	if p := strings.TrimSpace(o.policy); p != "" && p != "default" {
		for _, s := range strings.Split(p, ",") {
			cfg.Sched.Placement = append(cfg.Sched.Placement, strings.TrimSpace(s))
		}
	}
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
	res, err := sim.Run(cfg, f, qs, src)
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
