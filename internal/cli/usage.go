package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/ledger"
)

func init() {
	addCommand(newUsageCmd)
	addCommand(newInvoiceCmd)
}

// parseDay reads a date (YYYY-MM-DD, UTC) for a flag.
func parseDay(flag, s string) (time.Time, error) {
	t, err := time.Parse(api.DateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want a date YYYY-MM-DD (UTC)", flag, s)
	}
	return t, nil
}

// parseWhen reads a date (midnight UTC) or an RFC 3339 time for a flag.
func parseWhen(flag, s string) (time.Time, error) {
	if t, err := time.Parse(api.DateLayout, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want a date (2026-12-01, midnight UTC) or an RFC 3339 time (2026-12-01T08:00:00Z)", flag, s)
}

func newUsageCmd() *cobra.Command {
	var tenant, by, from, to, period, job string
	var records bool
	var f *clientFlags
	c := &cobra.Command{
		Use:   "usage",
		Short: "Show metered usage: accelerator-hours, energy, carbon and cost",
		Long: `Usage reports what the fleet metered, grouped by tenant, queue, tier,
accelerator type and site (--by names the groups; the others are summed),
from --from to --to (both dates, UTC, inclusive; default this month so
far), as one set of rows or --period day or month. Running work is metered
up to now.

Energy is at the facility meter (the accelerators' draw x the site's PUE)
and carbon is that energy at the site's grid intensity; cost is usage at
the tier's rate (committed-tier time beyond the commitments at the
on-demand rate; commitment fees are on the invoice). A tenant's token sees
its own usage; an admin's also sees the fleet's asset cost attributed to
every row, idle committed capacity to its committer and the rest to
"idle" rows (-o json: assetCost and fleetCost).

--job ID shows what was metered for one job and the holdings (replicas'
devices from when they were bound until they ended) it was metered from.

--records lists the holdings themselves, every tenant's for an admin (its
job, tenant, queue, kind, accelerator type, devices, from and to; --from
and --to also take RFC 3339 times); -o jsonl writes them as the file that
"gpufleet plan --history usage:FILE" reads.

-o json prints an object with rows (each with tenant, queue, tier, type,
site, acceleratorHours, energyKWh, co2Kg and cost) and total; -o csv the
rows and the total as CSV.`,
		Example: `  gpufleet usage
  gpufleet usage --by tenant,tier --from 2026-12-01 --to 2026-12-31
  gpufleet usage --tenant acme --period day -o csv > acme-december.csv
  gpufleet usage --records --from 2026-09-01 -o jsonl > usage.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output == "jsonl" && !records {
				return fmt.Errorf("--output jsonl: goes with --records")
			}
			if records {
				if job != "" || period != "" || cmd.Flags().Changed("by") {
					return fmt.Errorf("--records: lists every holding; it takes --tenant, --from and --to, not --job, --by or --period")
				}
				return usageRecords(cmd, f, tenant, from, to)
			}
			if job != "" {
				cl, err := f.client()
				if err != nil {
					return err
				}
				ju, err := cl.JobUsage(cmd.Context(), job)
				if err != nil {
					return err
				}
				return f.emit(cmd.OutOrStdout(), ju, func(tw *tabwriter.Writer) { jobUsageTable(tw, ju) })
			}
			var err error
			q := api.UsageQuery{Tenant: tenant, Period: period}
			if by != "" {
				dims, err := ledger.ParseDims(by)
				if err != nil {
					return fmt.Errorf("--by: %w", err)
				}
				for _, d := range dims {
					q.By = append(q.By, d.String())
				}
			}
			if from != "" {
				if q.From, err = parseDay("from", from); err != nil {
					return err
				}
			}
			if to != "" {
				last, err := parseDay("to", to)
				if err != nil {
					return err
				}
				q.To = last.AddDate(0, 0, 1)
			}
			switch period {
			case "", "day", "month":
			default:
				return fmt.Errorf("--period %q: want day or month", period)
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			rep, err := cl.Usage(cmd.Context(), q)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.output == "csv" {
				return usageCSV(w, rep)
			}
			return f.emit(w, rep, func(tw *tabwriter.Writer) { usageTable(tw, rep) })
		},
	}
	f = addClientFlags(c)
	f.formats = []string{"csv", "jsonl"}
	c.Flags().Lookup("output").Usage = "output `FORMAT`: table, json, csv, yaml or (with --records) jsonl"
	c.Flags().StringVar(&tenant, "tenant", "", "one tenant's usage (a tenant's token: its own)")
	c.Flags().StringVar(&by, "by", "tenant,queue,tier,type,site", "group rows by these `DIMS`, comma-separated: tenant, queue, tier, type, site")
	c.Flags().StringVar(&from, "from", "", "first `DATE` reported, YYYY-MM-DD UTC (default: the first of this month)")
	c.Flags().StringVar(&to, "to", "", "last `DATE` reported, YYYY-MM-DD UTC, inclusive (default: today)")
	c.Flags().StringVar(&period, "period", "", "rows per day or month (default: one set of rows for the range)")
	c.Flags().StringVar(&job, "job", "", "one job's usage, with its holdings")
	c.Flags().BoolVar(&records, "records", false, "list the metered holdings themselves (-o jsonl: the file plan --history usage:FILE reads)")
	return c
}

// usageColumns are the grouping columns of a report, in order.
func usageColumns(rep api.UsageReport) (cols []string, kind bool) {
	if rep.Period != "" {
		cols = append(cols, "period")
	}
	for _, r := range rep.Rows {
		if r.Kind != "used" {
			kind = true
		}
	}
	if kind {
		cols = append(cols, "kind")
	}
	return append(cols, rep.By...), kind
}

func usageField(r api.UsageRow, col string) string {
	switch col {
	case "period":
		return r.Period
	case "kind":
		if r.Commitment != "" {
			return r.Kind + " " + r.Commitment
		}
		return r.Kind
	case "tenant":
		return r.Tenant
	case "queue":
		return r.Queue
	case "tier":
		return r.Tier
	case "type":
		return r.Type
	case "site":
		return r.Site
	}
	return ""
}

func usageTable(tw *tabwriter.Writer, rep api.UsageReport) {
	cols, _ := usageColumns(rep)
	head := make([]string, 0, len(cols)+4)
	for _, c := range cols {
		head = append(head, strings.ToUpper(c))
	}
	head = append(head, "ACC-HOURS", "KWH", "KG CO2E", "COST ("+rep.Currency+")")
	asset := rep.FleetCost != nil
	if asset {
		head = append(head, "ASSET COST")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	line := func(r api.UsageRow, label string) {
		cells := make([]string, 0, len(head))
		for i, c := range cols {
			switch {
			case label == "":
				cells = append(cells, dash(usageField(r, c)))
			case i == 0:
				cells = append(cells, label)
			default:
				cells = append(cells, "")
			}
		}
		cells = append(cells, strconv.FormatFloat(r.AcceleratorHours, 'f', 2, 64), strconv.FormatFloat(r.EnergyKWh, 'f', 2, 64),
			strconv.FormatFloat(r.CO2Kg, 'f', 2, 64), r.Cost.Format(rep.MinorDigits))
		if asset {
			cells = append(cells, r.AssetCost.Format(rep.MinorDigits))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	for _, r := range rep.Rows {
		line(r, "")
	}
	line(rep.Total, "TOTAL")
	if rep.FleetCost != nil {
		fmt.Fprintf(tw, "fleet cost %s %s (capacity x asset cost), attributed to the rows above\n", rep.FleetCost.Format(rep.MinorDigits), rep.Currency)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(tw, "warning: %s\n", w)
	}
}

func usageCSV(w io.Writer, rep api.UsageReport) error {
	cw := csv.NewWriter(w)
	cols := []string{"period", "kind", "tenant", "queue", "tier", "type", "site", "commitment"}
	head := append(append([]string{}, cols...), "acceleratorHours", "energyKWh", "itEnergyKWh", "co2Kg", "cost", "overage", "assetCost", "currency")
	if err := cw.Write(head); err != nil {
		return err
	}
	row := func(r api.UsageRow) error {
		rec := []string{r.Period, r.Kind, r.Tenant, r.Queue, r.Tier, r.Type, r.Site, r.Commitment,
			strconv.FormatFloat(r.AcceleratorHours, 'f', -1, 64), strconv.FormatFloat(r.EnergyKWh, 'f', -1, 64),
			strconv.FormatFloat(r.ITEnergyKWh, 'f', -1, 64), strconv.FormatFloat(r.CO2Kg, 'f', -1, 64),
			r.Cost.Decimal(), r.Overage.Decimal(), r.AssetCost.Decimal(), rep.Currency}
		return cw.Write(rec)
	}
	for _, r := range rep.Rows {
		if err := row(r); err != nil {
			return err
		}
	}
	if err := row(rep.Total); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

func jobUsageTable(tw *tabwriter.Writer, ju api.JobUsage) {
	fmt.Fprintf(tw, "job %s (%s): %.4f accelerator-hours, %.3f kWh, %.3f kg CO2e, %s %s\n", ju.Job, ju.Tenant, ju.AcceleratorHours, ju.EnergyKWh, ju.CO2Kg, ju.Cost.Decimal(), ju.Currency)
	fmt.Fprintln(tw, "ATTEMPT\tGANG\tREPLICA\tNODE\tDEVICES\tTIER\tFROM\tTO\tEND\tACC-HOURS")
	for _, r := range ju.Records {
		to, end := "running", "-"
		if r.To != nil {
			to, end = r.To.Format(time.RFC3339), r.End
		}
		devs := fmt.Sprint(r.Devices)
		if r.Milli < 1000 {
			devs += fmt.Sprintf(" x %d milli", r.Milli)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.4f\n", r.Attempt, r.Gang, r.Replica, r.Node, devs, r.Tier, r.From.Format(time.RFC3339), to, end, float64(r.AcceleratorMilliMs)/3.6e9)
	}
}

func newInvoiceCmd() *cobra.Command {
	var month string
	var f *clientFlags
	c := &cobra.Command{
		Use:   "invoice TENANT",
		Short: "Show a tenant's invoice for a month",
		Long: `Invoice shows what a tenant owes for a calendar month (UTC): its
commitments' fees, committed-tier usage covered by them (shown, not
charged) and beyond them, on-demand and spot usage at their rates, and the
credits its grants paid; amounts are rounded to the currency's coin so that
the lines add up to the total. Before the month is over it is the month so
far.`,
		Example: `  gpufleet invoice acme --month 2026-12
  gpufleet invoice acme -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			if month != "" {
				if _, err := ledger.ParseMonth(month); err != nil {
					return fmt.Errorf("--month: %w", err)
				}
			}
			inv, err := cl.Invoice(cmd.Context(), args[0], month)
			if err != nil {
				return err
			}
			return f.emit(cmd.OutOrStdout(), inv, func(tw *tabwriter.Writer) { invoiceTable(tw, inv) })
		},
	}
	f = addClientFlags(c)
	c.Flags().StringVar(&month, "month", "", "the `YYYY-MM` month, UTC (default: this month so far)")
	return c
}

func invoiceTable(tw *tabwriter.Writer, inv api.Invoice) {
	state := "final"
	if !inv.Final {
		state = "so far"
	}
	fmt.Fprintf(tw, "invoice %s %s (%s), %s\n", inv.Tenant, inv.Month, state, inv.Currency)
	fmt.Fprintln(tw, "LINE\tTYPE\tSITE\tREF\tACC-HOURS\tRATE\tAMOUNT")
	d := inv.MinorDigits
	for _, l := range inv.Lines {
		hours, rate := strconv.FormatFloat(l.AcceleratorHours, 'f', 2, 64), l.Rate.Format(d)
		if l.Kind == "credit" {
			hours, rate = "", ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Kind, dash(l.Type), dash(l.Site), dash(l.Ref), dash(hours), dash(rate), l.Billed.Format(d))
	}
	fmt.Fprintf(tw, "total\t\t\t\t\t\t%s\n", inv.Billed.Format(d))
	fmt.Fprintf(tw, "commitments %s, usage %s, credits applied %s; credits left %s", inv.Commitments.Format(d), inv.Usage.Format(d), inv.Credits.Format(d), inv.CreditsLeft.Format(d))
	if inv.CreditsExpired > 0 {
		fmt.Fprintf(tw, ", expired %s", inv.CreditsExpired.Format(d))
	}
	if inv.Budget != nil {
		fmt.Fprintf(tw, "; budget %s, spent %s", inv.Budget.Format(d), inv.Spent.Format(d))
	}
	fmt.Fprintln(tw)
}
