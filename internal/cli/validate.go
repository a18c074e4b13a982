package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func init() { addCommand(newValidateCmd) }

func newValidateCmd() *cobra.Command {
	var fleetFile, queuesFile string
	c := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check fleet, queue, job, catalog and accounting files",
		Long: `Validate reads each file, tells from its kind field or its keys whether
it declares a fleet, a queue tree, jobs, a capacity plan's catalog, prices,
commitments or credits, and prints "ok" or every problem with its
file:line:column and field path. The exit status is 1 when any file has a
problem.

Jobs are checked against a fleet's catalog and topology levels and against a
queue tree: those of --fleet and --queues, else the first fleet and queues
files among FILE, else the default catalog and levels and no queue check.
Queue and catalog files are checked against the same fleet's catalog; prices
and commitments against the catalog (a prices file's carbon series are read
too), credits against the queue tree.`,
		Example: `  gpufleet validate examples/*.yaml
  gpufleet validate --fleet fleet.yaml --queues queues.yaml jobs/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return validateFiles(cmd.OutOrStdout(), cmd.ErrOrStderr(), fleetFile, queuesFile, args)
		},
	}
	c.Flags().StringVar(&fleetFile, "fleet", "", "fleet `FILE` that jobs and queues are checked against")
	c.Flags().StringVar(&queuesFile, "queues", "", "queues `FILE` that jobs are checked against")
	return c
}

type specFile struct {
	name string
	data []byte
	kind spec.Kind
}

func validateFiles(stdout, stderr io.Writer, fleetFile, queuesFile string, args []string) error {
	failed := 0
	report := func(name string, err error, ok string) {
		if err != nil {
			failed++
			fmt.Fprintln(stderr, err)
			return
		}
		fmt.Fprintf(stdout, "%s: ok (%s)\n", name, ok)
	}
	var files []specFile
	for _, name := range args {
		data, err := readFile(name, spec.MaxFileBytes)
		if err == nil {
			var k spec.Kind
			k, err = spec.Detect(name, data)
			if err == nil {
				files = append(files, specFile{name, data, k})
				continue
			}
		}
		report(name, err, "")
	}

	// The fleet and queues that the other files are checked against: the
	// flags' files must be valid; a broken one among FILE is reported below
	// and the others are checked against the defaults instead.
	var opts []spec.Option
	var f *fleet.Fleet
	if fleetFile != "" {
		data, err := readFile(fleetFile, spec.MaxFileBytes)
		if err == nil {
			f, err = spec.ParseFleet(fleetFile, data)
		}
		if err != nil {
			return flagError("--fleet", err)
		}
	} else if name := firstOf(files, spec.KindFleet); name != "" {
		f, _ = spec.ParseFleet(name, dataOf(files, name))
	}
	if f != nil {
		opts = append(opts, spec.WithFleet(f))
	}
	fleetOpts := append([]spec.Option(nil), opts...)
	var qs []quota.Spec
	if queuesFile != "" {
		data, err := readFile(queuesFile, spec.MaxFileBytes)
		if err == nil {
			qs, err = spec.ParseQueues(queuesFile, data, fleetOpts...)
		}
		if err != nil {
			return flagError("--queues", err)
		}
	} else if name := firstOf(files, spec.KindQueues); name != "" {
		qs, _ = spec.ParseQueues(name, dataOf(files, name), fleetOpts...)
	}
	if qs != nil {
		opts = append(opts, spec.WithQueues(qs))
	}

	for _, sf := range files {
		switch sf.kind {
		case spec.KindFleet:
			fs, err := spec.ParseFleetSpec(sf.name, sf.data)
			ok := ""
			if err == nil {
				ok = fleetSummary(fs.Fleet)
			}
			report(sf.name, err, ok)
		case spec.KindQueues:
			qs, err := spec.ParseQueues(sf.name, sf.data, fleetOpts...)
			ok := ""
			if err == nil {
				ok = queuesSummary(qs)
			}
			report(sf.name, err, ok)
		case spec.KindJob:
			jobs, err := spec.ParseJobs(sf.name, sf.data, opts...)
			report(sf.name, err, fmt.Sprintf("%d job%s", len(jobs), plural(len(jobs))))
		case spec.KindPrices:
			lc, err := loadPrices(sf.name, fleetOpts...)
			report(sf.name, err, fmt.Sprintf("prices: %d types, %d sites", len(lc.Prices.Types), len(lc.Sites)))
		case spec.KindCommitments:
			cs, err := spec.ParseCommitments(sf.name, sf.data, opts...)
			report(sf.name, err, fmt.Sprintf("%d commitment%s", len(cs), plural(len(cs))))
		case spec.KindCredits:
			cf, err := spec.ParseCredits(sf.name, sf.data, opts...)
			report(sf.name, err, fmt.Sprintf("%d grant%s, %d budget%s", len(cf.Grants), plural(len(cf.Grants)), len(cf.Budgets), plural(len(cf.Budgets))))
		case spec.KindCatalog:
			c, err := spec.ParseCatalog(sf.name, sf.data, fleetOpts...)
			ok := ""
			if err == nil {
				ok = fmt.Sprintf("catalog: %d models, %d sites, %d commitments", len(c.Models), len(c.Sites), len(c.Commitments))
			}
			report(sf.name, err, ok)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d file%s failed validation", failed, len(args), plural(len(args)))
	}
	return nil
}

// flagError puts a file's problems, one per line, under the flag's name.
func flagError(flag string, err error) error {
	var problems spec.Errors
	if errors.As(err, &problems) {
		return fmt.Errorf("%s:\n%w", flag, err)
	}
	return fmt.Errorf("%s: %w", flag, err)
}

func dataOf(files []specFile, name string) []byte {
	for _, sf := range files {
		if sf.name == name {
			return sf.data
		}
	}
	return nil
}

func firstOf(files []specFile, k spec.Kind) string {
	for _, sf := range files {
		if sf.kind == k {
			return sf.name
		}
	}
	return ""
}

func fleetSummary(f *fleet.Fleet) string {
	accel := 0
	for _, n := range f.Totals() {
		accel += n
	}
	return fmt.Sprintf("fleet: %d nodes, %d accelerators of %d types, %d domains", len(f.Nodes), accel, len(f.SortedTypes()), len(f.Domains)-1)
}

func queuesSummary(specs []quota.Spec) string {
	tenants := 0
	for _, s := range specs {
		if s.Parent == "" {
			tenants++
		}
	}
	return fmt.Sprintf("queues: %d tenants, %d queues", tenants, len(specs))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
