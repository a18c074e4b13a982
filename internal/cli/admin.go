package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func init() { addCommand(newAdminCmd) }

func newAdminCmd() *cobra.Command {
	c := &cobra.Command{Use: "admin", Short: "Administer a gpufleet server: tenants, queues, tokens, nodes (admin token)",
		Long: `Admin creates, changes and deletes tenants and queues, creates and revokes
tokens, and drains and undrains nodes. Reading is gpufleet get: tenants,
queues, nodes, and tokens (their IDs, roles and nodes; never their secrets).`}
	create := &cobra.Command{Use: "create", Short: "Create a tenant, queue or token"}
	create.AddCommand(newCreateTenantCmd(), newCreateQueueCmd(), newCreateTokenCmd())
	update := &cobra.Command{Use: "update", Short: "Change a tenant's or queue's weight or quotas; the running scheduler takes the change at once"}
	update.AddCommand(newUpdateCmd("tenant"), newUpdateCmd("queue"))
	del := &cobra.Command{Use: "delete", Short: "Delete a tenant or queue that has no unfinished jobs"}
	del.AddCommand(newDeleteCmd("tenant"), newDeleteCmd("queue"))
	revoke := &cobra.Command{Use: "revoke", Short: "Revoke a token"}
	revoke.AddCommand(newRevokeTokenCmd())
	c.AddCommand(create, update, del, revoke, newDrainCmd(true), newDrainCmd(false), newBackupCmd(), newCapCmd())
	return c
}

// quotaFlags are the quota flags shared by tenants and queues.
type quotaFlags struct {
	nominal, borrow, lend []string
	weight                float64
}

func addQuotaFlags(c *cobra.Command) *quotaFlags {
	q := &quotaFlags{}
	c.Flags().StringSliceVar(&q.nominal, "quota", nil, "nominal quota `FLAVOR=N` in accelerators (h100=16, h100:spot=8, a100=0.5); repeat or separate with commas")
	c.Flags().StringSliceVar(&q.borrow, "borrow", nil, "borrowing limit `FLAVOR=N` (default unlimited)")
	c.Flags().StringSliceVar(&q.lend, "lend", nil, "lending limit `FLAVOR=N`, at most the nominal (default unlimited)")
	c.Flags().Float64Var(&q.weight, "weight", 1, "fair-share `WEIGHT`")
	return q
}

func parseAmounts(flag string, list []string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		x, err := strconv.ParseFloat(v, 64)
		if !ok || k == "" || err != nil || x < 0 {
			return nil, fmt.Errorf("--%s %q: want FLAVOR=N with N accelerators, 0 or more (e.g. h100=16)", flag, kv)
		}
		out[k] = x
	}
	return out, nil
}

func (q *quotaFlags) quotas() (map[string]api.Quota, error) {
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
	out := map[string]api.Quota{}
	for f, v := range nom {
		out[f] = api.Quota{Nominal: v}
	}
	for f, v := range bor {
		x := v
		q := out[f]
		q.BorrowingLimit = &x
		out[f] = q
	}
	for f, v := range lend {
		x := v
		q := out[f]
		q.LendingLimit = &x
		out[f] = q
	}
	return out, nil
}

func newCreateTenantCmd() *cobra.Command {
	var f *clientFlags
	var q *quotaFlags
	c := &cobra.Command{
		Use:     "tenant NAME",
		Short:   "Create a tenant (a top-level queue) with its quotas",
		Example: `  gpufleet admin create tenant acme --quota h100=16 --borrow h100=8`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			qs, err := q.quotas()
			if err != nil {
				return err
			}
			t, err := cl.CreateTenant(cmd.Context(), api.CreateTenant{Name: args[0], Weight: q.weight, Quotas: qs})
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), t, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "tenant %s created (nominal %s)\n", t.Name, nominals(t.Quotas))
			})
		},
	}
	q = addQuotaFlags(c)
	f = addClientFlags(c)
	return c
}

func newCreateQueueCmd() *cobra.Command {
	var f *clientFlags
	var q *quotaFlags
	var tenant string
	var strict bool
	c := &cobra.Command{
		Use:     "queue NAME --tenant TENANT",
		Short:   "Create a team queue under a tenant",
		Example: `  gpufleet admin create queue acme-train --tenant acme --quota h100=16`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tenant == "" {
				return fmt.Errorf("--tenant: required")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			qs, err := q.quotas()
			if err != nil {
				return err
			}
			out, err := cl.CreateQueue(cmd.Context(), api.CreateQueue{Name: args[0], Tenant: tenant, Weight: q.weight, Strict: strict, Quotas: qs})
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "queue %s created in tenant %s (nominal %s)\n", out.Name, out.Tenant, nominals(out.Quotas))
			})
		},
	}
	c.Flags().StringVar(&tenant, "tenant", "", "`TENANT` the queue belongs to")
	c.Flags().BoolVar(&strict, "strict", false, "strict FIFO: a blocked head blocks the queue")
	q = addQuotaFlags(c)
	f = addClientFlags(c)
	return c
}

// anyNode is --node given without a name: a node token bound to the first
// node it registers.
const anyNode = "*"

func newCreateTokenCmd() *cobra.Command {
	var f *clientFlags
	var tenant, node string
	var admin, metrics bool
	c := &cobra.Command{
		Use:   "token (--tenant TENANT | --node NAME | --node | --admin | --metrics)",
		Short: "Create an access token; it is printed once and stored only as a hash",
		Long: `Create token makes a token and prints its secret once; the server keeps
only its hash, and lists and revokes it by the ID it prints with -o json.

A node token speaks for one node: give the node's name with --node NAME.
Given --node without a name, the token is bound to the first node that
registers with it (and may not take over a node another token speaks for).`,
		Example: `  gpufleet admin create token --tenant acme
  gpufleet admin create token --node gpu-017
  gpufleet admin create token --metrics   # for a Prometheus scraper`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// "--node NAME" reaches here as --node without a value and
			// NAME as an argument (the flag's value is optional).
			if node == anyNode && len(args) == 1 {
				node, args = args[0], nil
			}
			if len(args) > 0 {
				return fmt.Errorf("unexpected argument %q", args[0])
			}
			req := api.CreateToken{Role: api.RoleTenant, Tenant: tenant}
			roles := 0
			for _, set := range []bool{node != "", admin, metrics, tenant != ""} {
				if set {
					roles++
				}
			}
			switch {
			case roles != 1:
				return fmt.Errorf("give one of --tenant TENANT, --node NAME, --node, --admin, --metrics")
			case node == anyNode:
				req = api.CreateToken{Role: api.RoleNode}
			case node != "":
				req = api.CreateToken{Role: api.RoleNode, Node: node}
			case admin:
				req = api.CreateToken{Role: api.RoleAdmin}
			case metrics:
				req = api.CreateToken{Role: api.RoleMetrics}
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			tok, err := cl.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), tok, func(tw *tabwriter.Writer) { fmt.Fprintln(tw, tok.Token) })
		},
	}
	c.Flags().StringVar(&tenant, "tenant", "", "a token for `TENANT`: it sees and touches only that tenant's jobs and queues")
	c.Flags().StringVar(&node, "node", "", "a token for the agent of node `NAME` only (without a name: bound to the first node it registers)")
	c.Flags().Lookup("node").NoOptDefVal = anyNode
	c.Flags().BoolVar(&admin, "admin", false, "another admin token")
	c.Flags().BoolVar(&metrics, "metrics", false, "a token that may only read /metrics (for a Prometheus scraper)")
	f = addClientFlags(c)
	return c
}
