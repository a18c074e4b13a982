package cli

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func init() { addCommand(newExportCmd) }

func newExportCmd() *cobra.Command {
	var f clientFlags
	var from, to, out string
	c := &cobra.Command{
		Use:   "export [--from DATE] [--to DATE] [-o trace.jsonl]",
		Short: "Write the live fleet's recorded history as a native trace (admin): the digital twin's input",
		Long: `export writes what the live fleet recorded between --from and --to in the
native trace format (docs/TRACE_FORMAT.md): the scheduler's configuration,
the queue tree and quotas, the nodes (those registered by --from are the
fleet at the start, later ones node events at their registration), and
every job submitted in the window as it was submitted, with its arrival,
its actual runtime as its duration and, under observed, its start, end and
outcome. Virtual second 0 is --from. Jobs that never started and give no
runtime estimate are left out.

"gpufleet sim run --trace trace.jsonl" replays it with the same policy and
fleet; with another --policy, --queues or --fleet it says what would have
happened. DATE is RFC 3339 (2026-12-01T09:00:00Z) or a day (2026-12-01,
midnight UTC); --from defaults to the beginning of the record, --to to now.
An admin token is needed: the history names every tenant's jobs.`,
		Example: `  gpufleet export --from 2026-11-01 --to 2026-12-01 -o november.jsonl
  gpufleet sim run --trace november.jsonl --report twin/
  gpufleet sim run --trace november.jsonl --policy spread --report what-if/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start, err := exportDate("--from", from)
			if err != nil {
				return err
			}
			end, err := exportDate("--to", to)
			if err != nil {
				return err
			}
			if !start.IsZero() && !end.IsZero() && !end.After(start) {
				return fmt.Errorf("--to %s: want a time after --from %s", to, from)
			}
			f.output = "table"
			cl, err := f.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var fh *os.File
			if out != "-" {
				if fh, err = os.Create(out); err != nil {
					return err
				}
				defer fh.Close()
				w = fh
			}
			bw := bufio.NewWriterSize(w, 1<<16)
			if err := cl.Export(cmd.Context(), start, end, bw); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if fh != nil {
				if err := fh.Close(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", out)
			}
			return nil
		},
	}
	c.Flags().StringVar(&f.server, "server", "", "server `URL` (default $GPUFLEET_SERVER, the config file, or "+DefaultServer+")")
	c.Flags().StringVar(&f.token, "token", "", "admin bearer `TOKEN` (default $GPUFLEET_TOKEN or the config file)")
	c.Flags().StringVar(&from, "from", "", "start of the window, `DATE` (default the beginning of the record)")
	c.Flags().StringVar(&to, "to", "", "end of the window, `DATE` (default now)")
	c.Flags().StringVarP(&out, "output", "o", "-", "write the trace to `FILE` (- for standard output)")
	return c
}

// exportDate reads RFC 3339 or a day; "" is the zero time.
func exportDate(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2026-12-01T09:00:00Z) or a day (2026-12-01)", flag, s)
}
