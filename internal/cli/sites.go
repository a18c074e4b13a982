package cli

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func newCapCmd() *cobra.Command {
	var reset bool
	var f *clientFlags
	c := &cobra.Command{
		Use:   "cap SITE KW | cap SITE --reset",
		Short: "Set a site's power cap in kW at run time (0 lifts it)",
		Long: `Cap sets the power cap of SITE (a region or a zone, by its path: us-east or
us-east/z1) to KW kilowatts, as a utility asks a data center to cut its
draw; 0 lifts the cap. The cap is of facility power (IT power x PUE) unless
the fleet file's site says itCap. When the site draws more than its new cap,
the scheduler stops work there, the lowest priority and newest first, each
with its notice (interruptible jobs are suspended at a checkpoint), until it
is within it; the stopped jobs wait, power-capped, until power frees. The
cap is stored and holds across restarts, over the fleet file's; --reset
forgets it, and the fleet file's cap holds again.`,
		Example: `  gpufleet admin cap us-east/z1 400
  gpufleet admin cap us-east/z1 0         # lift the cap
  gpufleet admin cap us-east/z1 --reset   # back to the fleet file's cap`,
		Args: func(cmd *cobra.Command, args []string) error {
			if reset {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			site := args[0]
			if e := api.CheckSitePath("SITE", site); e != nil {
				return fmt.Errorf("SITE %s", e.Message)
			}
			if !reset {
				if _, e := api.ParseSiteCap("KW", args[1]); e != nil {
					return fmt.Errorf("KW %s", e.Message)
				}
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var out api.Site
			if reset {
				out, err = cl.ResetSiteCap(cmd.Context(), site)
			} else {
				out, err = cl.SetSiteCap(cmd.Context(), site, args[1])
			}
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				cp := "no cap"
				if out.CapKW != nil {
					cp = fmt.Sprintf("cap %s kW (%s)", kw(*out.CapKW), out.CapSource)
				}
				draw := ""
				if out.DrawKW != nil {
					draw = fmt.Sprintf(", drawing %s kW", kw(*out.DrawKW))
				}
				fmt.Fprintf(tw, "site %s: %s%s\n", out.Site, cp, draw)
			})
		},
	}
	c.Flags().BoolVar(&reset, "reset", false, "forget the cap set here: the fleet file's holds again")
	f = addClientFlags(c)
	return c
}

func getSites(f *clientFlags, cl *api.Client, cmd *cobra.Command) error {
	l, err := cl.Sites(cmd.Context())
	if err != nil {
		return err
	}
	return f.emit(cmd.OutOrStdout(), l, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "SITE\tNODES\tCAP (kW)\tDRAW (kW)\tPUE\tgCO2/kWh NOW")
		for _, s := range l.Sites {
			cp := "-"
			if s.CapKW != nil {
				cp = kw(*s.CapKW)
				if s.ITCap {
					cp += " IT"
				}
				if s.CapSource == "admin" {
					cp += " (admin)"
				}
			}
			draw, pue, ci := "-", "-", "-"
			if s.DrawKW != nil {
				draw = kw(*s.DrawKW)
			}
			if s.PUE > 0 {
				pue = strconv.FormatFloat(s.PUE, 'f', -1, 64)
			}
			if s.IntensityGPerKWh != nil {
				ci = strconv.FormatFloat(*s.IntensityGPerKWh, 'f', 1, 64)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.Site, s.Nodes, cp, draw, pue, ci)
		}
	})
}

// kw renders kilowatts to a tenth.
func kw(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
