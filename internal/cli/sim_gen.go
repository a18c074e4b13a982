package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/spec"
	"github.com/gpufleet/gpufleet/internal/trace/openb"
)

func init() {
	simSubcommands = append(simSubcommands, newSimGenCmd)
}

func newSimGenCmd() *cobra.Command {
	var (
		o                 simGenOpts
		fleetFile, qsFile string
		out               string
	)
	c := &cobra.Command{
		Use:   "gen",
		Short: "Write a synthetic AI-cloud workload as a native trace (JSON Lines)",
		Long: `gen draws a seeded workload for a fleet and writes it as a trace that
"gpufleet sim run --trace" replays: large training gangs bound to a rack or
block, elastic fine-tuning jobs, short fractional and single-accelerator batch
jobs and inference services, from several tenants, arriving with a daily
rhythm and bursts. docs/WORKLOADS.md gives every distribution; the trace
format is in docs/TRACE_FORMAT.md.

Jobs go to the queues of --queues (default: the built-in queue tree), or,
with --tenants K, to K tenants made up with quota shares of the fleet. The
queues are written into the trace, so it replays on its own. Without --days
the arrivals span as long as the fleet needs to run the work at --load.`,
		Example: `  gpufleet sim gen --jobs 100000 --seed 7 -o week.jsonl
  gpufleet sim gen --jobs 5000 --tenants 6 --days 3 --fleet fleet.yaml -o small.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, _, err := simLoadFleet(fleetFile)
			if err != nil {
				return err
			}
			var qs []quota.Spec
			if o.tenants == 0 {
				if qs, err = simLoadQueues(qsFile); err != nil {
					return err
				}
			} else if qsFile != "" {
				return fmt.Errorf("--tenants and --queues: give one, not both")
			}
			w := cmd.OutOrStdout()
			name := "standard output"
			if out != "" && out != "-" {
				fh, err := os.Create(out)
				if err != nil {
					return err
				}
				defer fh.Close()
				w, name = fh, out
			}
			g, n, err := simGenerate(w, f, qs, o, simCommandLine("gen", cmd))
			if err != nil {
				return err
			}
			if c, ok := w.(io.Closer); ok && out != "" && out != "-" {
				if err := c.Close(); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d jobs arriving over %.1f days to %s\n", n, g.Days(), name)
			return nil
		},
	}
	fl := c.Flags()
	fl.IntVar(&o.jobs, "jobs", simDefaultJobs, "number of jobs")
	fl.Uint64Var(&o.seed, "seed", 1, "seed of every random draw")
	fl.IntVar(&o.tenants, "tenants", 0, "make up this many tenants with quota shares (0: use the queues)")
	fl.Float64Var(&o.days, "days", 0, "span of arrivals in days (0: what --load asks)")
	fl.Float64Var(&o.load, "load", 0.85, "offered load that sets the span when --days is not given")
	fl.Float64Var(&o.deferrable, "deferrable", 0, "share of batch and fine-tuning jobs given a deadline (twice their estimate plus 2-24 h), interruptible when they checkpoint")
	fl.StringVar(&fleetFile, "fleet", "", "fleet `FILE` the jobs are sized for (default: the built-in fleet)")
	fl.StringVar(&qsFile, "queues", "", "queues `FILE` the jobs go to (default: the built-in queue tree)")
	fl.StringVarP(&out, "output", "o", "", "write the trace to `FILE` (default: standard output)")
	return c
}

// simDefaultJobs is the size of the default workload: big enough to show
// queueing, small enough to run in seconds.
const simDefaultJobs = 3000

type simGenOpts struct {
	jobs, tenants int
	seed          uint64
	days, load    float64
	deferrable    float64
}

// simGenerate writes a generated workload as a trace and returns the
// generator and the number of jobs written.
func simGenerate(w io.Writer, f *fleet.Fleet, qs []quota.Spec, o simGenOpts, source string) (*sim.Generator, int, error) {
	g, err := sim.NewGenerator(sim.GenConfig{Jobs: o.jobs, Seed: o.seed, Tenants: o.tenants, Queues: qs, Days: o.days, Load: o.load, Fleet: f, Deferrable: o.deferrable})
	if err != nil {
		return nil, 0, err
	}
	tw := sim.NewTraceWriter(w)
	if err := tw.Header(sim.Header{Source: source}); err != nil {
		return nil, 0, err
	}
	for _, q := range g.Queues() {
		if err := tw.Queue(q); err != nil {
			return nil, 0, err
		}
	}
	n := 0
	for {
		j, err := g.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, n, err
		}
		if err := tw.Job(&j); err != nil {
			return nil, n, err
		}
		n++
	}
	return g, n, tw.Flush()
}

// simCommandLine renders the command and the flags given, for a trace's
// header.
func simCommandLine(sub string, cmd *cobra.Command) string {
	parts := []string{"gpufleet sim " + sub}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name == "output" {
			return
		}
		parts = append(parts, "--"+f.Name+"="+f.Value.String())
	})
	return strings.Join(parts, " ")
}

// simLoadFleet reads a fleet file, an openb node list (.csv), or returns
// the built-in fleet for "".
func simLoadFleet(path string) (*fleet.Fleet, spec.Sites, error) {
	if path == "" {
		fs := spec.DefaultFleetSpec()
		return fs.Fleet, fs.Sites, nil
	}
	if simIsCSV(path) {
		nodes, err := openb.LoadNodes(path)
		if err != nil {
			return nil, nil, err
		}
		f, err := sim.OpenbFleet(nodes)
		return f, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	fs, err := spec.ParseFleetSpec(path, data)
	if err != nil {
		return nil, nil, err
	}
	return fs.Fleet, fs.Sites, nil
}

func simIsCSV(path string) bool { return strings.HasSuffix(strings.ToLower(path), ".csv") }

// simLoadQueues reads a queues file, or returns the built-in tree for "".
func simLoadQueues(path string) ([]quota.Spec, error) {
	if path == "" {
		return spec.DefaultQueues(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return spec.ParseQueues(path, data)
}
