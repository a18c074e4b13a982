package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func init() { addCommand(newDescribeCmd) }

func newDescribeCmd() *cobra.Command {
	var f *clientFlags
	c := &cobra.Command{
		Use:   "describe job ID | service NAME",
		Short: "Show a job in detail, with the scheduler's pending reason and earliest start, or a service with its replicas and scaling",
		Example: `  gpufleet describe job train-17
  gpufleet describe service chat`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "job" && args[0] != "service" {
				return fmt.Errorf("describe %q: want job ID or service NAME", args[0])
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			if args[0] == "service" {
				return describeService(f, cl, cmd, args[1], time.Now())
			}
			j, err := cl.Job(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			// What the meter says of it, when the token may read it (an
			// older server, or none, leaves it out).
			ju, uerr := cl.JobUsage(cmd.Context(), args[1])
			return f.emit(cmd.OutOrStdout(), j, func(tw *tabwriter.Writer) {
				describeJob(tw, j, time.Now())
				if uerr == nil {
					describeEnergy(tw, ju)
				}
			})
		},
	}
	f = addClientFlags(c)
	return c
}

func describeJob(tw *tabwriter.Writer, j api.Job, now time.Time) {
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), age(t, now))
	}
	fmt.Fprintf(tw, "ID:\t%s\n", j.ID)
	fmt.Fprintf(tw, "Tenant:\t%s\n", j.Tenant)
	fmt.Fprintf(tw, "Queue:\t%s\n", j.Queue)
	fmt.Fprintf(tw, "Kind:\t%s\n", j.Kind)
	fmt.Fprintf(tw, "Priority:\t%d\n", j.Priority)
	fmt.Fprintf(tw, "Preemptible:\t%v\n", j.Preemptible)
	fmt.Fprintf(tw, "State:\t%s\n", jobState(j))
	if j.Reason != "" {
		fmt.Fprintf(tw, "Reason:\t%s\n", humanTimes(j.Reason, now))
	}
	fmt.Fprintf(tw, "Submitted:\t%s\n", stamp(j.Submitted))
	fmt.Fprintf(tw, "Started:\t%s\n", stamp(j.Started))
	fmt.Fprintf(tw, "Finished:\t%s\n", stamp(j.Finished))
	fmt.Fprintf(tw, "Attempt:\t%d (restarts %d)\n", j.Attempt, j.Restarts)
	fmt.Fprintf(tw, "Command:\t%s\n", strings.Join(j.Command, " "))
	total := 0
	for i, g := range j.Gangs {
		total += g.Replicas
		fmt.Fprintf(tw, "Gang %d:\t%s, %s\n", i, dash(g.Name), gangText(g))
	}
	if ex := j.Explanation; ex != nil {
		fmt.Fprintf(tw, "Scheduler:\t%s\n", ex.State)
		if ex.Reason != "" {
			fmt.Fprintf(tw, "  Pending reason:\t%s\n", humanTimes(ex.Reason, now))
		}
		if ex.EarliestStart != nil {
			fmt.Fprintf(tw, "  Earliest start:\t%s\n", humanTime(*ex.EarliestStart, now))
		} else if ex.State == "pending" {
			fmt.Fprintf(tw, "  Earliest start:\tunknown\n")
		}
		if len(ex.Nodes) > 0 {
			fmt.Fprintf(tw, "  Nodes:\t%s\n", strings.Join(ex.Nodes, ", "))
		}
	}
	fmt.Fprintf(tw, "Replicas:\t%s\n", replicaCounts(j.Replicas, total))
	if len(j.Replicas) > 0 {
		fmt.Fprintf(tw, "  RANK\tGANG/REPLICA\tNODE\tACCEL\tDEVICES\tSTATE\tEXIT\n")
		for _, r := range j.Replicas {
			devs := make([]string, len(r.Devices))
			for i, d := range r.Devices {
				devs[i] = fmt.Sprint(d)
			}
			dev := dash(strings.Join(devs, ","))
			if r.Milli > 0 && r.Milli < 1000 {
				dev += fmt.Sprintf(" (%d milli)", r.Milli)
			}
			exit := "-"
			if r.ExitCode != nil {
				exit = fmt.Sprint(*r.ExitCode)
			}
			if r.Signal != "" {
				exit = r.Signal
			}
			fmt.Fprintf(tw, "  %d\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", r.Rank, r.Gang, r.Replica, r.Node, dash(r.Accel), dev, r.State, exit)
		}
	}
}

// count renders "1 replica", "2 replicas".
func count(n int, noun string) string { return fmt.Sprintf("%d %s%s", n, noun, plural(n)) }

// gangText renders a gang's size and shape: "2 replicas of 8 x h100",
// "32 replicas (at least 1) of 0.25 of one h100".
func gangText(g api.Gang) string {
	types := strings.Join(g.Accel, " or ")
	if types == "" {
		types = "any type"
	}
	shape := fmt.Sprintf("%d x %s", g.Devices, types)
	switch {
	case g.Devices == 0 && g.Milli > 0:
		shape = fmt.Sprintf("%g of one %s", float64(g.Milli)/1000, types)
	case g.Devices == 0:
		shape = "no accelerators"
	}
	n := count(g.Replicas, "replica")
	if g.MinReplicas > 0 && g.MinReplicas < g.Replicas {
		n += fmt.Sprintf(" (at least %d)", g.MinReplicas)
	}
	return n + " of " + shape
}

// replicaCounts says how many of the job's replicas run, and what the
// others of its current attempt are doing: "4 of 32 running, 2 starting".
func replicaCounts(reps []api.Replica, total int) string {
	by := map[string]int{}
	for _, r := range reps {
		by[r.State]++
	}
	out := fmt.Sprintf("%d of %s running", by["running"], count(total, "replica"))
	for _, st := range []string{"starting", "exited", "lost", "skipped"} {
		if by[st] > 0 {
			out += fmt.Sprintf(", %d %s", by[st], st)
		}
	}
	return out
}

// describeEnergy shows a job's metered energy and CO2 and, for each
// holding the scheduler planned on a carbon forecast, the intensity its
// decision used.
func describeEnergy(tw *tabwriter.Writer, ju api.JobUsage) {
	if len(ju.Records) == 0 {
		return
	}
	fmt.Fprintf(tw, "Energy:\t%.3f kWh at the meter, %.3f kg CO2 (metered so far)\n", ju.EnergyKWh, ju.CO2Kg)
	planned := false
	for _, r := range ju.Records {
		planned = planned || r.IntensityGPerKWh > 0
	}
	if !planned {
		return
	}
	fmt.Fprintf(tw, "  ATTEMPT\tGANG/REPLICA\tSITE\tFROM\tTO\tPLANNED gCO2/kWh\n")
	for _, r := range ju.Records {
		to := "running"
		if r.To != nil {
			to = r.To.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %d\t%d/%d\t%s\t%s\t%s\t%.1f\n", r.Attempt, r.Gang, r.Replica, dash(r.Site), r.From.UTC().Format(time.RFC3339), to, r.IntensityGPerKWh)
	}
}
