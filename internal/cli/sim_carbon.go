package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/sim"
)

func init() {
	simSubcommands = append(simSubcommands, newSimCarbonCmd)
}

// maxSeriesBytes bounds a carbon-intensity file (a year of 15-minute
// readings is under 2 MiB).
const maxSeriesBytes = 64 << 20

type simCarbonOpts struct {
	ci            []string
	interruptible bool
	errShare      float64
	seed          uint64
	capacity      int
	jobs, reps    int
	from, to      string
	asJSON, quiet bool
}

func newSimCarbonCmd() *cobra.Command {
	var o simCarbonOpts
	c := &cobra.Command{
		Use:   "carbon --ci FILE [--ci FILE ...]",
		Short: "Run the carbon-aware shifting experiment of \"Let's Wait Awhile\" through the scheduling core",
		Long: `carbon runs the "ML jobs" experiment of Wiesner et al., "Let's Wait Awhile"
(Middleware '21) through the scheduling core: jobs arrive on workdays between
09:00 and 16:30 and run 4 to 89.5 hours on one accelerator each; the
baseline runs them at arrival, the shifted run gives each the "next workday"
deadline and lets the core's carbon rule delay it to the cleanest window of a
forecast (the series plus Gaussian noise of --error times its mean), or run
it in the cleanest half hours with --interruptible. Emissions are the true
intensity times the jobs' power over the half hours of the period: by
default the first calendar year every series covers whole, 3,387 jobs, 10
repetitions (each with its own jobs and noise), as in the paper.

--ci FILE is a carbon-intensity series (Time,Carbon Intensity CSV, as the
paper's datasets); the site takes the file's name (gb_ci.csv: gb), or give
NAME=FILE. NAME=FILE@12h moves the series twelve hours later: a grid with
its day elsewhere, for what-if studies with one public series. With several,
the shifted run moves jobs between sites too and is compared with the best
single site; every site's own figures follow.
--capacity N gives each site N accelerators instead of one per job, and jobs
then wait for room: the waits and missed deadlines say what shifting costs.`,
		Example: `  gpufleet sim carbon --ci ../shared/traces/carbon-intensity-gb-2020/gb_ci.csv
  gpufleet sim carbon --ci gb_ci.csv --interruptible --json
  gpufleet sim carbon --ci gb_ci.csv --capacity 200
  gpufleet sim carbon --ci gb=gb_ci.csv --ci fr=fr_ci.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return simCarbon(cmd, o) },
	}
	f := c.Flags()
	f.StringArrayVar(&o.ci, "ci", nil, "carbon-intensity series `[NAME=]FILE[@SHIFT]`, one per site (repeat for several sites)")
	f.BoolVar(&o.interruptible, "interruptible", false, "jobs may be suspended and resumed: they run in the cleanest half hours before their deadline")
	f.Float64Var(&o.errShare, "error", sim.CarbonError, "forecast error: the noise's standard deviation as a share of the series' mean")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the jobs and the forecast noise")
	f.IntVar(&o.capacity, "capacity", 0, "accelerators per site (0: unlimited, one per job)")
	f.IntVar(&o.jobs, "jobs", sim.CarbonJobs, "jobs per repetition")
	f.IntVar(&o.reps, "repetitions", sim.CarbonRepetitions, "repetitions, each with its own jobs and noise")
	f.StringVar(&o.from, "from", "", "first `DATE` of the period (YYYY-MM-DD, UTC; default: the first whole year the series cover)")
	f.StringVar(&o.to, "to", "", "`DATE` the period ends, exclusive (with --from)")
	f.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&o.quiet, "quiet", false, "print nothing on standard error")
	return c
}

func simCarbon(cmd *cobra.Command, o simCarbonOpts) error {
	if len(o.ci) == 0 {
		return fmt.Errorf("--ci: give at least one carbon-intensity series (Time,Carbon Intensity CSV)")
	}
	switch {
	case o.errShare < 0 || o.errShare > 10:
		return fmt.Errorf("--error %v: want a share of the series' mean, 0..10 (0.05 is 5%%)", o.errShare)
	case o.capacity < 0:
		return fmt.Errorf("--capacity %d: want 0 (unlimited) or a number of accelerators", o.capacity)
	case o.jobs < 1 || o.jobs > 1_000_000:
		return fmt.Errorf("--jobs %d: want 1..1000000", o.jobs)
	case o.reps < 1 || o.reps > 1000:
		return fmt.Errorf("--repetitions %d: want 1..1000", o.reps)
	case (o.from == "") != (o.to == ""):
		return fmt.Errorf("--from and --to: give both or neither")
	}
	cfg := sim.CarbonConfig{Interruptible: o.interruptible, Error: o.errShare, Seed: o.seed, Capacity: o.capacity, Jobs: o.jobs, Repetitions: o.reps}
	if o.from != "" {
		from, err := time.Parse(time.DateOnly, o.from)
		if err != nil {
			return fmt.Errorf("--from %q: want a date such as 2020-01-01", o.from)
		}
		to, err := time.Parse(time.DateOnly, o.to)
		if err != nil {
			return fmt.Errorf("--to %q: want a date such as 2021-01-01", o.to)
		}
		if !to.After(from) {
			return fmt.Errorf("--to %s: want a date after --from %s", o.to, o.from)
		}
		cfg.From, cfg.To = from.Unix(), to.Unix()
	}
	seen := map[string]string{}
	for _, arg := range o.ci {
		spec, shiftText, shifted := strings.Cut(arg, "@")
		var shift time.Duration
		if shifted {
			var err error
			if shift, err = time.ParseDuration(shiftText); err != nil || shift%(30*time.Minute) != 0 {
				return fmt.Errorf("--ci %s: shift %q: want a whole number of half hours, such as @12h or @-90m", arg, shiftText)
			}
		}
		name, path, named := strings.Cut(spec, "=")
		if !named {
			path = spec
			name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), "_ci")
		}
		if name == "" || strings.ContainsAny(name, "/ ") {
			return fmt.Errorf("--ci %s: site name %q: want a word (give NAME=FILE)", arg, name)
		}
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("--ci %s: site %q is also %s: give each its own NAME=FILE", arg, name, prev)
		}
		seen[name] = path
		data, err := readFile(path, maxSeriesBytes)
		if err != nil {
			return fmt.Errorf("--ci: %w", err)
		}
		s, err := carbon.ReadSeries(data, path, 1800)
		if err != nil {
			return err
		}
		s.Start += int64(shift / time.Second)
		cfg.Sites = append(cfg.Sites, sim.CarbonSite{Name: name, Series: s})
	}
	start := time.Now()
	res, err := sim.RunCarbon(cfg)
	if err != nil {
		return err
	}
	if !o.quiet {
		fmt.Fprintf(cmd.ErrOrStderr(), "ran %d repetitions in %s\n", res.Repetitions, time.Since(start).Round(time.Millisecond))
	}
	if o.asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	writeCarbonText(cmd.OutOrStdout(), res)
	return nil
}

func writeCarbonText(w io.Writer, r *sim.CarbonResult) {
	kind := "non-interruptible"
	if r.Interruptible {
		kind = "interruptible"
	}
	capacity := "unlimited capacity"
	if r.Capacity > 0 {
		capacity = fmt.Sprintf("%d accelerators a site", r.Capacity)
	}
	fmt.Fprintf(w, "sites %s, %s to %s: %d %s jobs a repetition, %d repetitions, forecast error %g%%, %s\n",
		strings.Join(r.Sites, ", "), r.From[:10], r.To[:10], r.Jobs, kind, r.Repetitions, 100*r.Error, capacity)
	base := "baseline (run at arrival)"
	shifted := "shifted in time"
	if len(r.Sites) > 1 {
		base = "baseline (best single site, " + r.BestSite + ", run at arrival)"
		shifted = "shifted in space and time"
	}
	fmt.Fprintf(w, "%-48s %12.1f kg CO2\n", base+":", r.BaselineKg)
	fmt.Fprintf(w, "%-48s %12.1f kg CO2  saving %.2f%%\n", shifted+":", r.ShiftedKg, r.SavingPct)
	if r.Spatial != nil {
		fmt.Fprintf(w, "%-48s %12.1f kg CO2  saving %.2f%%\n", "cleanest site at arrival:", r.Spatial.Kg, r.SpatialSavingPct)
	}
	fmt.Fprintf(w, "deadlines missed: %d shifted, %d baseline (over all repetitions)\n", r.DeadlinesMissed, r.BaselineDeadlinesMissed)
	fmt.Fprintf(w, "wait to first start (h): baseline mean %.2f p95 %.2f max %.2f; shifted mean %.2f p95 %.2f max %.2f\n",
		r.BaselineWait.MeanH, r.BaselineWait.P95H, r.BaselineWait.MaxH, r.ShiftedWait.MeanH, r.ShiftedWait.P95H, r.ShiftedWait.MaxH)
	if r.Interruptible {
		fmt.Fprintf(w, "suspensions: %.1f a repetition\n", r.Suspensions)
	}
	if len(r.PerSite) > 0 {
		fmt.Fprintln(w, "site            baseline kg     shifted kg   saving %")
		for _, s := range r.PerSite {
			fmt.Fprintf(w, "%-12s %14.1f %14.1f %10.2f\n", s.Site, s.Baseline.Kg, s.Shifted.Kg, s.SavingPct)
		}
	}
}
