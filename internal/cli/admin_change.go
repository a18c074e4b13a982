package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// quotaChanges turns the quota flags of an update into per-flavor changes
// on top of the current limits: a flavor named by any flag keeps the
// limits the flags leave out, and --remove-quota drops a flavor.
func quotaChanges(q *quotaFlags, remove []string, current map[string]api.Quota) (map[string]*api.Quota, error) {
	nom, err := parseAmounts("quota", q.nominal)
	if err != nil {
		return nil, err
	}
	bor, err := parseAmounts("borrow", q.borrow)
	if err != nil {
		return nil, err
	}
	lend, err := parseAmounts("lend", q.lend)
	if err != nil {
		return nil, err
	}
	out := map[string]*api.Quota{}
	touch := func(f string) *api.Quota {
		if out[f] == nil {
			c := current[f]
			out[f] = &c
		}
		return out[f]
	}
	for f, v := range nom {
		touch(f).Nominal = v
	}
	for f, v := range bor {
		x := v
		touch(f).BorrowingLimit = &x
	}
	for f, v := range lend {
		x := v
		touch(f).LendingLimit = &x
	}
	for _, f := range remove {
		if _, set := out[f]; set {
			return nil, fmt.Errorf("--remove-quota %s: the flavor also has a quota flag", f)
		}
		out[f] = nil
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func newUpdateCmd(kind string) *cobra.Command {
	var f *clientFlags
	var q *quotaFlags
	var remove []string
	var strict bool
	c := &cobra.Command{
		Use:   kind + " NAME [--weight W] [--quota FLAVOR=N] [--borrow FLAVOR=N] [--lend FLAVOR=N] [--remove-quota FLAVOR]",
		Short: "Change a " + kind + "'s weight or quotas",
		Long: `Update changes what its flags name and keeps the rest: --quota sets a
flavor's nominal quota and keeps its borrowing and lending limits,
--borrow and --lend set those limits, --remove-quota drops a flavor's
quota. The running scheduler takes the change at once: running jobs keep
running, pending ones are admitted under the new quotas.`,
		Example: "  gpufleet admin update " + kind + " acme" + map[string]string{"tenant": "", "queue": "-train"}[kind] + " --quota h100=32 --borrow h100=8",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			name := args[0]
			var current map[string]api.Quota
			if kind == "tenant" {
				ts, err := cl.Tenants(cmd.Context())
				if err != nil {
					return err
				}
				i := slices.IndexFunc(ts, func(t api.Tenant) bool { return t.Name == name })
				if i < 0 {
					return fmt.Errorf("no tenant %q", name)
				}
				current = ts[i].Quotas
			} else {
				qs, err := cl.Queues(cmd.Context())
				if err != nil {
					return err
				}
				i := slices.IndexFunc(qs, func(x api.Queue) bool { return x.Name == name })
				if i < 0 {
					return fmt.Errorf("no queue %q", name)
				}
				current = qs[i].Quotas
			}
			changes, err := quotaChanges(q, remove, current)
			if err != nil {
				return err
			}
			var weight *float64
			if cmd.Flags().Changed("weight") {
				weight = &q.weight
			}
			if kind == "tenant" {
				if weight == nil && changes == nil {
					return errors.New("nothing to change: give --weight, --quota, --borrow, --lend or --remove-quota")
				}
				t, err := cl.UpdateTenant(cmd.Context(), name, api.UpdateTenant{Weight: weight, Quotas: changes})
				if err != nil {
					return err
				}
				return f.emit(cmd.OutOrStdout(), t, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "tenant %s updated (weight %g, nominal %s)\n", t.Name, t.Weight, nominals(t.Quotas))
				})
			}
			var st *bool
			if cmd.Flags().Changed("strict") {
				st = &strict
			}
			if weight == nil && st == nil && changes == nil {
				return errors.New("nothing to change: give --weight, --strict, --quota, --borrow, --lend or --remove-quota")
			}
			out, err := cl.UpdateQueue(cmd.Context(), name, api.UpdateQueue{Weight: weight, Strict: st, Quotas: changes})
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "queue %s updated (weight %g, strict %v, nominal %s)\n", out.Name, out.Weight, out.Strict, nominals(out.Quotas))
			})
		},
	}
	q = addQuotaFlags(c)
	c.Flags().StringSliceVar(&remove, "remove-quota", nil, "drop `FLAVOR`'s quota (repeat or separate with commas)")
	if kind == "queue" {
		c.Flags().BoolVar(&strict, "strict", false, "strict FIFO: a blocked head blocks the queue (--strict=false to end it)")
	}
	f = addClientFlags(c)
	return c
}

func newDeleteCmd(kind string) *cobra.Command {
	var f *clientFlags
	long := `Delete removes a team queue. It is refused, naming them, while the queue
has jobs that are not finished (pending, running or stopping): cancel them
first (gpufleet cancel ID...). Its finished jobs stay with its tenant.`
	if kind == "tenant" {
		long = `Delete removes a tenant with its team queues, revokes its tokens and
deletes its finished jobs and their logs, so that a tenant created later
under the same name starts with nothing. It is refused, naming them, while
any of the tenant's jobs is not finished (pending, running or stopping):
cancel them first (gpufleet cancel ID...).`
	}
	c := &cobra.Command{
		Use:   kind + " NAME",
		Short: "Delete a " + kind,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			if kind == "tenant" {
				err = cl.DeleteTenant(cmd.Context(), args[0])
			} else {
				err = cl.DeleteQueue(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s deleted\n", kind, args[0])
			return nil
		},
	}
	f = addClientFlags(c)
	return c
}

func newRevokeTokenCmd() *cobra.Command {
	var f *clientFlags
	c := &cobra.Command{
		Use:     "token ID",
		Short:   "Revoke a token by the ID gpufleet get tokens lists; the last admin token stays",
		Example: "  gpufleet get tokens\n  gpufleet admin revoke token 3f9a0c6d21b4e87a",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			if err := cl.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
	f = addClientFlags(c)
	return c
}

func newDrainCmd(drain bool) *cobra.Command {
	var f *clientFlags
	var evict bool
	c := &cobra.Command{
		Use:   "undrain NODE",
		Short: "Let a drained node take work again",
		Args:  cobra.ExactArgs(1),
	}
	if drain {
		c.Use, c.Short = "drain NODE [--evict]", "Keep new work off a node; with --evict, also stop and requeue what runs there"
		c.Long = `Drain keeps new work off a node until it is undrained, through restarts
of the server and spells down; running work finishes where it is. With
--evict the node's running jobs are also stopped (SIGTERM now, SIGKILL
after the server's stop grace) and requeued once their processes are gone,
to run elsewhere.`
		c.Example = "  gpufleet admin drain gpu-017            # for maintenance once its jobs end\n  gpufleet admin drain gpu-017 --evict    # now"
		c.Flags().BoolVar(&evict, "evict", false, "stop and requeue the node's running jobs now")
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cl, err := f.client()
		if err != nil {
			return err
		}
		var n api.Node
		if drain {
			n, err = cl.DrainNode(cmd.Context(), args[0], evict)
		} else {
			n, err = cl.UndrainNode(cmd.Context(), args[0])
		}
		if err != nil {
			return err
		}
		return f.emit(cmd.OutOrStdout(), n, func(tw *tabwriter.Writer) {
			verb := "undrained"
			if drain {
				verb = "drained"
				if evict {
					verb = "drained; its jobs are being evicted"
				}
			}
			fmt.Fprintf(tw, "node %s %s (%s)\n", n.Name, verb, n.State)
		})
	}
	f = addClientFlags(c)
	return c
}

func newBackupCmd() *cobra.Command {
	var f *clientFlags
	c := &cobra.Command{
		Use:   "backup FILE",
		Short: "Copy the server's store file while it runs, to FILE (a bbolt store; back etcd up with etcdctl snapshot save)",
		Long: `Backup asks the server for a consistent copy of its store file, taken in
one read transaction while it runs, and writes it to FILE (through a
temporary file, renamed once whole). To restore, stop the server and put the
copy at DATA/state.db.`,
		Example: "  gpufleet admin backup /backups/gpufleet-$(date +%F).db",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			tmp := args[0] + ".tmp"
			out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			n, err := cl.Backup(cmd.Context(), out)
			if err == nil {
				err = out.Sync()
			}
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp, args[0])
			}
			if err != nil {
				return errors.Join(err, os.Remove(tmp))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup of %s written to %s\n", spec.FormatBytes(n), args[0])
			return nil
		},
	}
	f = addClientFlags(c)
	return c
}
