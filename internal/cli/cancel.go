package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func init() { addCommand(newCancelCmd) }

func newCancelCmd() *cobra.Command {
	var f *clientFlags
	c := &cobra.Command{
		Use:   "cancel ID...",
		Short: "Cancel jobs; their processes get SIGTERM, then SIGKILL after a grace period",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			var jobs []api.Job
			for _, id := range args {
				j, err := cl.Cancel(cmd.Context(), id)
				if err != nil {
					return err
				}
				jobs = append(jobs, j)
			}
			return f.emit(cmd.OutOrStdout(), jobs, func(tw *tabwriter.Writer) {
				for _, j := range jobs {
					fmt.Fprintf(tw, "job %s %s\n", j.ID, j.State)
				}
			})
		},
	}
	f = addClientFlags(c)
	return c
}
