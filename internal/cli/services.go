package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func init() { addCommand(newServiceCmd) }

// getServices lists the services (get services).
func getServices(f *clientFlags, cl *api.Client, cmd *cobra.Command, now time.Time) error {
	list, err := cl.Services(cmd.Context())
	if err != nil {
		return err
	}
	return f.emit(cmd.OutOrStdout(), api.ServiceList{Services: list}, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "NAME\tID\tSTATE\tDESIRED\tREADY\tSTARTING\tIN FLIGHT\tQUEUED\tREQ/S\tENDPOINT\tAGE")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t%s\t%s\n", s.Name, s.ID, s.State, s.Desired, s.Ready,
				s.Starting+s.Waiting, s.InFlight, s.Queued, s.RequestRate, cl.Base+s.Endpoint, age(s.Submitted, now))
		}
	})
}

// describeService shows one service (describe service NAME).
func describeService(f *clientFlags, cl *api.Client, cmd *cobra.Command, ref string, now time.Time) error {
	s, err := cl.Service(cmd.Context(), ref)
	if err != nil {
		return err
	}
	return f.emit(cmd.OutOrStdout(), s, func(tw *tabwriter.Writer) { writeService(tw, cl.Base, s, now) })
}

func writeService(tw *tabwriter.Writer, base string, s api.Service, now time.Time) {
	fmt.Fprintf(tw, "Name:\t%s\n", s.Name)
	fmt.Fprintf(tw, "ID:\t%s\n", s.ID)
	fmt.Fprintf(tw, "Tenant:\t%s\n", s.Tenant)
	fmt.Fprintf(tw, "Queue:\t%s\n", s.Queue)
	fmt.Fprintf(tw, "State:\t%s\n", s.State)
	if s.Reason != "" {
		fmt.Fprintf(tw, "Reason:\t%s\n", s.Reason)
	}
	fmt.Fprintf(tw, "Endpoint:\t%s\n", base+s.Endpoint)
	fmt.Fprintf(tw, "Submitted:\t%s (%s ago)\n", s.Submitted.Local().Format(time.DateTime), age(s.Submitted, now))
	mode := ""
	if s.Mode != "" {
		mode = " (" + s.Mode + ")"
	}
	fmt.Fprintf(tw, "Replicas:\t%d desired%s, %d ready, %d starting, %d waiting for a place, %d draining, %d stopping (min %d, max %d)\n",
		s.Desired, mode, s.Ready, s.Starting, s.Waiting, s.Draining, s.Stopping, s.MinReplicas, s.MaxReplicas)
	scaledOn := "requests in flight"
	if s.Tokens {
		scaledOn = "prompt tokens a second"
	}
	fmt.Fprintf(tw, "Autoscaling:\t%s, on %s\n", s.Policy, scaledOn)
	fmt.Fprintf(tw, "Load:\t%d in flight, %d held, %.2f requests a second (last minute)\n", s.InFlight, s.Queued, s.RequestRate)
	if len(s.ColdStarts) > 0 || s.ColdStartSeconds > 0 {
		var cs []string
		for _, c := range s.ColdStarts[max(len(s.ColdStarts)-8, 0):] {
			cs = append(cs, fmtSeconds(c))
		}
		last := ""
		if len(cs) > 0 {
			last = "; last measured: " + strings.Join(cs, ", ")
		}
		fmt.Fprintf(tw, "Cold start:\t%s reckoned%s\n", fmtSeconds(s.ColdStartSeconds), last)
	}
	if len(s.Keys) > 0 {
		ids := make([]string, len(s.Keys))
		for i, k := range s.Keys {
			ids[i] = k.ID
		}
		fmt.Fprintf(tw, "API keys:\t%s\n", strings.Join(ids, ", "))
	}
	if len(s.Replicas) > 0 {
		fmt.Fprintf(tw, "  REPLICA\tATTEMPT\tPHASE\tNODE\tPORT\tIN FLIGHT\tPLACED\tREADY\n")
		for _, r := range s.Replicas {
			placed, ready := "-", "-"
			if !r.Placed.IsZero() {
				placed = age(r.Placed, now) + " ago"
			}
			if !r.ReadyAt.IsZero() {
				ready = fmt.Sprintf("after %s", fmtSeconds(r.ReadyAt.Sub(r.Placed).Seconds()))
			}
			port := "-"
			if r.Port > 0 {
				port = fmt.Sprint(r.Port)
			}
			fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Replica, r.Attempt, r.Phase, dash(r.Node), port, r.InFlight, placed, ready)
		}
	}
	if len(s.Events) > 0 {
		fmt.Fprintf(tw, "Events:\n")
		for _, e := range s.Events {
			fmt.Fprintf(tw, "  %s ago\t%s\t%s\n", age(e.Time, now), e.Kind, e.Detail)
		}
	}
}

func fmtSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func newServiceCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "service",
		Short: "Work with inference services: their endpoint and API keys",
		Long: `A service is submitted like any job (gpufleet submit service.yaml, kind:
service with a service: section) and listed with gpufleet get services and
gpufleet describe service NAME; cancel it with gpufleet cancel ID. Its
requests go to the server's gateway at its endpoint, with a tenant token
or one of the service's own API keys as the bearer token. See
docs/SERVICES.md.`,
	}
	var f *clientFlags
	url := &cobra.Command{
		Use:     "url NAME",
		Short:   "Print a service's endpoint",
		Example: `  curl -H "Authorization: Bearer $GPUFLEET_TOKEN" "$(gpufleet service url chat)v1/models"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			s, err := cl.Service(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), cl.Base+s.Endpoint)
			return nil
		},
	}
	f = addClientFlags(url)
	c.AddCommand(url, newServiceKeyCmd(), newServiceScaleCmd())
	return c
}

func newServiceScaleCmd() *cobra.Command {
	var f *clientFlags
	var minR, maxR int
	c := &cobra.Command{
		Use:   "scale NAME [--min N] [--max N]",
		Short: "Change a live service's replica bounds",
		Long: `Sets the floor and the ceiling the service's autoscaler decides within,
while it runs: a floor above its replica count opens replicas at once
(warm them before a launch), a ceiling below it drains the extra ones
(no request dropped). A bound not given keeps its value; the autoscaler
keeps what it has learned of the load.`,
		Example: `  gpufleet service scale chat --min 2          # two warm replicas from now on
  gpufleet service scale chat --min 0 --max 16   # back to zero when idle, up to 16`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u api.ScaleService
			if cmd.Flags().Changed("min") {
				u.MinReplicas = &minR
			}
			if cmd.Flags().Changed("max") {
				u.MaxReplicas = &maxR
			}
			if u.MinReplicas == nil && u.MaxReplicas == nil {
				return fmt.Errorf("give --min, --max or both")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			s, err := cl.ScaleService(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), s, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "service %s: replicas %d..%d, %d desired, %d ready, %d starting\n", s.Name, s.MinReplicas, s.MaxReplicas,
					s.Desired, s.Ready, s.Starting+s.Waiting)
			})
		},
	}
	c.Flags().IntVar(&minR, "min", 0, "the fewest replicas (0: scale to zero when idle)")
	c.Flags().IntVar(&maxR, "max", 0, "the most replicas")
	f = addClientFlags(c)
	return c
}

func newServiceKeyCmd() *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Create and revoke a service's API keys"}
	var fc, fr *clientFlags
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API key that reaches this service's endpoint and nothing else",
		Long: `The key is printed once (the server keeps its hash). Give it to the
service's clients as their bearer token; it ends with the service.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := fc.client()
			if err != nil {
				return err
			}
			k, err := cl.CreateServiceKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return fc.emit(cmd.OutOrStdout(), k, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Key:\t%s\n", k.Key)
				fmt.Fprintf(tw, "ID:\t%s\n", k.ID)
				fmt.Fprintf(tw, "Service:\t%s\n", k.Service)
				fmt.Fprintf(tw, "(shown once; the server keeps only its hash)\n")
			})
		},
	}
	fc = addClientFlags(create)
	revoke := &cobra.Command{
		Use:   "revoke NAME KEY-ID",
		Short: "Revoke one of a service's API keys",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := fr.client()
			if err != nil {
				return err
			}
			if err := cl.RevokeServiceKey(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s of service %s revoked\n", args[1], args[0])
			return nil
		},
	}
	fr = addClientFlags(revoke)
	c.AddCommand(create, revoke)
	return c
}
