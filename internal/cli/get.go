package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func init() { addCommand(newGetCmd) }

func newGetCmd() *cobra.Command {
	var state, queue, after string
	var limit int
	var f *clientFlags
	c := &cobra.Command{
		Use:   "get jobs|services|nodes|sites|queues|tenants|tokens",
		Short: "List jobs, services, nodes, sites, queues, tenants or tokens",
		Long: `Get lists objects the token may see: a tenant's token sees its own jobs,
queues and tenant, and the nodes without what other tenants hold on them;
an admin's sees all, and the tokens (their IDs, never their secrets).`,
		Example: `  gpufleet get jobs
  gpufleet get jobs --state pending -o json
  gpufleet get jobs --limit 50            # the first 50; the last line says how to go on
  gpufleet get nodes
  gpufleet get sites                      # power caps, draw and carbon intensity`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"jobs", "services", "nodes", "sites", "queues", "tenants", "tokens"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			ctx, w, now := cmd.Context(), cmd.OutOrStdout(), time.Now()
			switch strings.TrimSuffix(args[0], "s") {
			case "job":
				filter := api.JobFilter{State: state, Queue: queue}
				var list api.JobList
				if limit > 0 || after != "" {
					list, err = cl.JobsPage(ctx, filter, after, limit)
				} else {
					list.Jobs, err = cl.Jobs(ctx, filter)
				}
				if err != nil {
					return err
				}
				jobs := list.Jobs
				defer func() {
					if list.Next != "" && f.output == "table" {
						fmt.Fprintf(cmd.ErrOrStderr(), "more jobs: add --after %s\n", list.Next)
					}
				}()
				return f.emit(w, list, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "ID\tQUEUE\tSTATE\tREPLICAS\tATTEMPT\tAGE\tREASON")
					for _, j := range jobs {
						n := 0
						for _, g := range j.Gangs {
							n += g.Replicas
						}
						if j.Kind == "service" {
							// A service's gang is one replica's; count its
							// replicas' processes that are not over.
							n = 0
							for _, r := range j.Replicas {
								if r.State == "starting" || r.State == "running" {
									n++
								}
							}
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", j.ID, j.Queue, jobState(j), n, j.Attempt, age(j.Submitted, now), dash(humanTimes(jobReason(j), now)))
					}
				})
			case "service":
				return getServices(f, cl, cmd, now)
			case "node":
				nodes, err := cl.Nodes(ctx)
				if err != nil {
					return err
				}
				return f.emit(w, api.NodeList{Nodes: nodes}, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "NAME\tSTATE\tACCEL\tALLOCATED\tADDRESS\tLAST HEARTBEAT")
					for _, n := range nodes {
						// Allocation is every tenant's usage: admins see it.
						alloc := "-"
						if n.AllocatedMilli != nil {
							alloc = fmt.Sprintf("%g", float64(*n.AllocatedMilli)/1000)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%d\t%s\t%s\n", n.Name, n.State, dash(n.Accel), alloc, n.Count, n.Address, age(n.LastHeartbeat, now))
					}
				})
			case "site":
				return getSites(f, cl, cmd)
			case "queue":
				qs, err := cl.Queues(ctx)
				if err != nil {
					return err
				}
				return f.emit(w, api.QueueList{Queues: qs}, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "NAME\tTENANT\tNOMINAL\tUSAGE\tPENDING\tRUNNING")
					for _, q := range qs {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", q.Name, q.Tenant, nominals(q.Quotas), amounts(q.Usage), q.Pending, q.Running)
					}
				})
			case "tenant":
				ts, err := cl.Tenants(ctx)
				if err != nil {
					return err
				}
				return f.emit(w, api.TenantList{Tenants: ts}, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "NAME\tWEIGHT\tNOMINAL\tUSAGE\tQUEUES")
					for _, t := range ts {
						fmt.Fprintf(tw, "%s\t%g\t%s\t%s\t%s\n", t.Name, t.Weight, nominals(t.Quotas), amounts(t.Usage), dash(strings.Join(t.Queues, ",")))
					}
				})
			case "token":
				toks, err := cl.Tokens(ctx)
				if err != nil {
					return err
				}
				return f.emit(w, api.TokenList{Tokens: toks}, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "ID\tROLE\tTENANT\tNODE\tAGE")
					for _, t := range toks {
						node := t.Node
						if t.Role == api.RoleNode && node == "" {
							node = "(first to register)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, dash(t.Tenant), dash(node), age(t.Created, now))
					}
				})
			}
			return fmt.Errorf("get %q: want jobs, services, nodes, sites, queues, tenants or tokens", args[0])
		},
	}
	c.Flags().StringVar(&state, "state", "", "only jobs in `STATE` (pending, running, preempting, cancelling, succeeded, failed, cancelled)")
	c.Flags().StringVar(&queue, "queue", "", "only jobs of `QUEUE`")
	c.Flags().IntVar(&limit, "limit", 0, "list at most `N` jobs, one page (0: all)")
	c.Flags().StringVar(&after, "after", "", "start after the page ending at `CURSOR` (printed when there are more)")
	f = addClientFlags(c)
	return c
}

// jobState is the job's state, or unschedulable for a pending job the fleet
// as it is could never hold (it waits for the fleet to grow).
func jobState(j api.Job) string {
	if j.State == "pending" && j.Explanation != nil {
		switch {
		case j.Explanation.State == "unschedulable":
			return "unschedulable"
		case j.Explanation.Code == "deferred":
			// Waiting for a cleaner window (or suspended between runs) on
			// capacity held for it: not waiting for room.
			return "deferred"
		}
	}
	return j.State
}

// jobReason is why a job is where it is: for a pending job, the
// scheduler's reason for waiting (a requeued job's own reason when the
// scheduler gives none), else the job's.
func jobReason(j api.Job) string {
	if j.State == "pending" && j.Explanation != nil && j.Explanation.Reason != "" {
		return j.Explanation.Reason
	}
	return j.Reason
}
