package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func init() {
	addCommand(newCreditsCmd)
	addCommand(newCommitmentsCmd)
}

func newCreditsCmd() *cobra.Command {
	c := &cobra.Command{Use: "credits", Short: "Grant and list prepaid credits; set monthly budgets",
		Long: `Credits are prepaid (or promotional) money a tenant's usage burns as it is
metered, promotional grants first, then those that expire soonest. When a
tenant's spendable credit reaches zero its new work is not admitted (the
pending reason gives the balance) and its running work gets its notice and
stops; a new grant resumes it. Events at 50%, 80% and 100% of each grant
are listed. A tenant without grants is billed after the fact; a monthly
budget stops it likewise when its month's spend reaches the budget.`}
	c.AddCommand(newGrantCmd(), newCreditsListCmd(), newBudgetCmd())
	return c
}

func newGrantCmd() *cobra.Command {
	var queue, kind, start, expires, id string
	var f *clientFlags
	c := &cobra.Command{
		Use:   "grant TENANT AMOUNT",
		Short: "Grant credits to a tenant (admin)",
		Long: `Grant gives a tenant (or, with --queue, one of its queues) AMOUNT of credit in
the server's currency, from now (or --start, if later: credits never pay for
usage metered before they were granted) until --expires (default never).`,
		Example: `  gpufleet credits grant acme 500
  gpufleet credits grant acme 100 --kind promotional --expires 2027-03-01 --queue acme-research`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := api.ParseAmount(args[1], false); err != nil {
				return fmt.Errorf("AMOUNT %v", err)
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			g := api.CreateGrant{ID: id, Tenant: args[0], Queue: queue, Kind: kind, Amount: api.Amount(args[1])}
			if start != "" {
				t, err := parseWhen("start", start)
				if err != nil {
					return err
				}
				g.Start = &t
			}
			if expires != "" {
				t, err := parseWhen("expires", expires)
				if err != nil {
					return err
				}
				g.Expires = &t
			}
			out, err := cl.Grant(cmd.Context(), g)
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				scope := out.Tenant
				if out.Queue != "" {
					scope = "queue " + out.Queue + " of " + out.Tenant
				}
				until := "never expires"
				if out.Expires != nil {
					until = "expires " + out.Expires.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "granted %s to %s (grant %s, %s, from %s, %s)\n", out.Amount.Decimal(), scope, out.ID, out.Kind, out.Start.Format(time.RFC3339), until)
			})
		},
	}
	f = addClientFlags(c)
	c.Flags().StringVar(&queue, "queue", "", "pay for this `QUEUE` of the tenant only")
	c.Flags().StringVar(&kind, "kind", "", "prepaid (default) or promotional (burns first)")
	c.Flags().StringVar(&start, "start", "", "valid from `WHEN` (a date or RFC 3339 time; default now)")
	c.Flags().StringVar(&expires, "expires", "", "valid until `WHEN` (default never)")
	c.Flags().StringVar(&id, "id", "", "the grant's `ID` (default TENANT-N)")
	return c
}

func newCreditsListCmd() *cobra.Command {
	var tenant string
	var f *clientFlags
	c := &cobra.Command{
		Use:   "list",
		Short: "List grants, balances and threshold events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			list, err := cl.Credits(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) { creditsTable(tw, list) })
		},
	}
	f = addClientFlags(c)
	c.Flags().StringVar(&tenant, "tenant", "", "one tenant's (a tenant's token: its own)")
	return c
}

func creditsTable(tw *tabwriter.Writer, l api.CreditList) {
	d := l.MinorDigits
	fmt.Fprintf(tw, "GRANT\tTENANT\tQUEUE\tKIND\tAMOUNT\tBURNED\tLEFT\tSTATE\tEXPIRES\n")
	for _, g := range l.Grants {
		exp := "never"
		if g.Expires != nil {
			exp = g.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Tenant, dash(g.Queue), g.Kind, g.Amount.Format(d), g.Burned.Format(d), g.Left.Format(d), g.State, exp)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "TENANT\tQUEUE\tCREDITS (%s)\tBURN/H\tSPENT %s\tBUDGET\tPAUSED\n", l.Currency, monthOf(l))
	for _, b := range l.Balances {
		credits := b.Credits.Format(d)
		if b.Postpaid {
			credits = "postpaid"
		}
		budget := "-"
		if b.Budget != nil {
			budget = b.Budget.Format(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Tenant, dash(b.Queue), credits, b.BurnRate.Format(d), b.Spent.Format(d), budget, dash(b.Paused))
	}
	if len(l.Events) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "TIME\tEVENT")
		for _, e := range l.Events {
			fmt.Fprintf(tw, "%s\t%s\n", e.Time.Format(time.RFC3339), e.Message)
		}
	}
}

func monthOf(l api.CreditList) string {
	if len(l.Balances) > 0 {
		return l.Balances[0].Month
	}
	return ""
}

func newBudgetCmd() *cobra.Command {
	var f *clientFlags
	c := &cobra.Command{
		Use:   "budget TENANT AMOUNT",
		Short: "Set a tenant's monthly budget; 0 removes it (admin)",
		Long: `Budget sets a hard limit on a tenant's usage charges per calendar month
(UTC): when the month's spend reaches it, the tenant's new work is not
admitted and its running work stops, until the budget is raised or the
month ends.`,
		Example: `  gpufleet credits budget acme 2000`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := api.ParseAmount(args[1], false); err != nil {
				return fmt.Errorf("AMOUNT %v", err)
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			b, err := cl.SetBudget(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), b, func(tw *tabwriter.Writer) {
				if b.Monthly == 0 {
					fmt.Fprintf(tw, "tenant %s has no monthly budget\n", b.Tenant)
					return
				}
				fmt.Fprintf(tw, "monthly budget of %s: %s (spent in %s: %s)\n", b.Tenant, b.Monthly.Decimal(), b.Month, b.Spent.Decimal())
			})
		},
	}
	f = addClientFlags(c)
	return c
}

func newCommitmentsCmd() *cobra.Command {
	c := &cobra.Command{Use: "commitments", Short: "Record and list capacity commitments",
		Long: `A commitment is a take-or-pay contract: for its term the tenant has COUNT
accelerators of TYPE (at SITE, or any) as nominal quota in the committed
tier (jobs with tier: committed), and pays COUNT x hours x PRICE for them,
used or not; what it leaves idle others may use in their own tiers. At the
term's end the quota goes: committed work still running keeps running and
is charged at the on-demand rate, and new committed work waits.`}
	c.AddCommand(newCommitmentCreateCmd(), newCommitmentListCmd())
	return c
}

func newCommitmentCreateCmd() *cobra.Command {
	var tenant, typ, site, start, end, price string
	var count int
	var f *clientFlags
	c := &cobra.Command{
		Use:     "create ID",
		Short:   "Record a commitment (admin)",
		Example: `  gpufleet commitments create frontier-2027 --tenant frontier --type h100 --count 64 --end 2027-12-01 --price 1.60`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tenant == "" || typ == "" || end == "" || price == "" || count == 0 {
				return fmt.Errorf("give --tenant, --type, --count, --end and --price")
			}
			if _, err := api.ParseAmount(price, false); err != nil {
				return fmt.Errorf("--price %v", err)
			}
			cm := api.CreateCommitment{ID: args[0], Tenant: tenant, Type: typ, Site: site, Count: count, PricePerHour: api.Amount(price)}
			var err error
			if cm.End, err = parseWhen("end", end); err != nil {
				return err
			}
			if start != "" {
				t, err := parseWhen("start", start)
				if err != nil {
					return err
				}
				cm.Start = &t
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			out, err := cl.CreateCommitment(cmd.Context(), cm)
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "commitment %s: %d %s for %s at %s, %s to %s, %s an accelerator-hour (fee %s); %s\n", out.ID, out.Count, out.Type,
					out.Tenant, dash(out.Site), out.Start.Format(time.RFC3339), out.End.Format(time.RFC3339), out.PricePerHour.Decimal(), out.Fee.Decimal(), out.State)
			})
		},
	}
	f = addClientFlags(c)
	c.Flags().StringVar(&tenant, "tenant", "", "the committed `TENANT`")
	c.Flags().StringVar(&typ, "type", "", "accelerator `TYPE`")
	c.Flags().StringVar(&site, "site", "", "`SITE` (a domain path such as us-east/z1; default any)")
	c.Flags().IntVar(&count, "count", 0, "`N` accelerators")
	c.Flags().StringVar(&start, "start", "", "term start `WHEN` (a date or RFC 3339 time; default now)")
	c.Flags().StringVar(&end, "end", "", "term end `WHEN` (exclusive)")
	c.Flags().StringVar(&price, "price", "", "`PRICE` per accelerator-hour")
	return c
}

func newCommitmentListCmd() *cobra.Command {
	var tenant string
	var f *clientFlags
	c := &cobra.Command{
		Use:   "list",
		Short: "List commitments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			list, err := cl.Commitments(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) {
				d := list.MinorDigits
				fmt.Fprintf(tw, "ID\tTENANT\tTYPE\tSITE\tCOUNT\tSTART\tEND\tPRICE/H\tFEE (%s)\tSTATE\n", list.Currency)
				for _, c := range list.Commitments {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Tenant, c.Type, dash(c.Site), c.Count,
						c.Start.Format(time.RFC3339), c.End.Format(time.RFC3339), c.PricePerHour.Decimal(), c.Fee.Format(d), c.State)
				}
			})
		},
	}
	f = addClientFlags(c)
	c.Flags().StringVar(&tenant, "tenant", "", "one tenant's (a tenant's token: its own)")
	return c
}
