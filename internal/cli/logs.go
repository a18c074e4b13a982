package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/store"
)

func init() { addCommand(newLogsCmd) }

func newLogsCmd() *cobra.Command {
	var follow bool
	var rank, attempt int
	var poll time.Duration
	var f *clientFlags
	c := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a replica's output",
		Long: `Logs prints the output (stdout and stderr) of one replica of a job, by
rank, from its latest attempt unless --attempt says otherwise. With -f it
keeps printing new output until the job ends.`,
		Example: `  gpufleet logs train-17
  gpufleet logs -f --replica 1 train-17`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			ctx, w := cmd.Context(), cmd.OutOrStdout()
			var offset int64
			quiet := 0
			for {
				p, err := cl.Logs(ctx, args[0], rank, attempt, offset)
				if err != nil {
					return err
				}
				if attempt == 0 && p.Attempt > 0 && follow {
					// Follow one attempt: a restart's output starts over.
					attempt = p.Attempt
				}
				if _, err := w.Write(p.Data); err != nil {
					return err
				}
				offset = p.Next
				if !follow {
					return nil
				}
				if len(p.Data) > 0 {
					quiet = 0
					continue
				}
				// Output may trail the job's end by a heartbeat: stop after
				// the job ended and a few reads brought nothing.
				if store.Terminal(p.JobState) {
					if quiet++; quiet >= 3 {
						return nil
					}
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(poll):
				}
			}
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing output until the job ends")
	c.Flags().IntVar(&rank, "replica", 0, "replica `RANK` (0 .. replicas-1, over all gangs)")
	c.Flags().IntVar(&attempt, "attempt", 0, "`N`th attempt (default: the latest)")
	c.Flags().DurationVar(&poll, "poll", 500*time.Millisecond, "how often -f asks for new output")
	_ = c.Flags().MarkHidden("poll") // the flag exists: no error
	f = addClientFlags(c)
	return c
}
