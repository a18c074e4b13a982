package ledger_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

// workedExample is the example of docs/ACCOUNTING.md: one day (2026-12-01)
// of a fleet of two nodes of 8 h100 at one site, three tenants, one
// commitment, one credit grant, a spot job and a fractional job.
func workedExample(t testing.TB) string {
	day := int64(1_796_083_200_000) // 2026-12-01T00:00:00Z
	h := func(x float64) int64 { return day + int64(x*3_600_000) }
	l, err := ledger.New(ledger.Config{
		Prices: ledger.Prices{Currency: ledger.DefaultCurrency, Types: map[string]ledger.Rate{
			"h100": {OnDemand: 2_000_000, Spot: 800_000, Committed: 1_400_000, Asset: 1_100_000},
		}},
		Sites: map[string]ledger.Site{"eu-north": {PUE: 1.2, CarbonGPerKWh: 250}},
	})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.AddCommitment(ledger.Commitment{ID: "acme-2027", Tenant: "acme", Type: "h100", Site: "eu-north", Count: 8,
		StartMs: day, EndMs: h(365 * 24), PricePerHour: 1_500_000}))
	must(l.AddGrant(ledger.Grant{ID: "beta-launch", Tenant: "beta", Kind: ledger.Promotional, Amount: 100_000_000, StartMs: day, ExpiresMs: h(31 * 24)}))
	use := func(id, tenant, queue, tier string, devices int, milli int32, from, to float64) {
		_, err := l.Add(ledger.Usage{ID: id, Job: id, Tenant: tenant, Queue: queue, Type: "h100", Tier: tier, Site: "eu-north", Node: "n1",
			Devices: devices, Milli: milli, FromMs: h(from), ToMs: h(to), End: "finished"})
		must(err)
	}
	// acme trains on its commitment, and bursts past it for two hours.
	use("acme-train", "acme", "acme-train", "committed", 8, 1000, 0, 18)
	use("acme-burst", "acme", "acme-eval", "committed", 4, 1000, 12, 14)
	// beta runs on-demand on its credit, then a spot job.
	use("beta-ft", "beta", "beta-ft", "on-demand", 4, 1000, 6, 16)
	use("beta-spot", "beta", "beta-ft", "spot", 2, 1000, 16, 24)
	// gamma holds a quarter of one device all day.
	use("gamma-nb", "gamma", "gamma-nb", "on-demand", 1, 250, 0, 24)
	must(l.Meter(h(24)))

	var b strings.Builder
	for _, e := range l.Events() {
		fmt.Fprintf(&b, "event: %s\n", e)
	}
	rep, err := l.Report(ledger.Query{FromMs: day, ToMs: h(24), By: []ledger.Dim{ledger.ByTenant, ledger.ByTier},
		Capacity: []ledger.Capacity{{Type: "h100", Site: "eu-north", Accelerators: 16, FromMs: day, ToMs: h(24)}}})
	must(err)
	fmt.Fprintf(&b, "\n%-14s %-16s %-10s %7s %7s %7s %8s %8s %7s\n", "kind", "tenant", "tier", "acc-h", "kWh", "kgCO2e", "charged", "overage", "asset")
	for _, r := range rep.Rows {
		who := r.Tenant
		if r.Commitment != "" {
			who += " " + r.Commitment
		}
		fmt.Fprintf(&b, "%-14s %-16s %-10s %7.2f %7.2f %7.2f %8s %8s %7s\n", r.Kind, who, r.Tier, r.AcceleratorHours(), r.FacilityKWh(), r.CarbonKg(),
			r.Charged().Format(rep.Currency), r.OverageCharge.Format(rep.Currency), r.Asset.Format(rep.Currency))
	}
	tot := rep.Totals()
	fmt.Fprintf(&b, "%-14s %-16s %-10s %7.2f %7.2f %7.2f %8s %8s %7s\n", "total", "", "", tot.AcceleratorHours(), tot.FacilityKWh(), tot.CarbonKg(),
		tot.Charged().Format(rep.Currency), tot.OverageCharge.Format(rep.Currency), tot.Asset.Format(rep.Currency))
	fmt.Fprintf(&b, "fleet cost %s\n", rep.FleetCost.Format(rep.Currency))
	for _, tenant := range []string{"acme", "beta", "gamma"} {
		inv, err := l.Invoice(tenant, ledger.Month{Year: 2026, Month: 12})
		must(err)
		fmt.Fprintf(&b, "\ninvoice %s %s\n", inv.Tenant, inv.Month)
		for _, il := range inv.Lines {
			what := strings.Join(strings.Fields(il.Type+" "+il.Ref), " ")
			fmt.Fprintf(&b, "  %-18s %-16s %8.2f acc-h x %5s = %9s\n", il.Kind, what, float64(il.MilliMs)/3.6e9, il.Rate.Format(inv.Currency), il.Billed.Format(inv.Currency))
		}
		fmt.Fprintf(&b, "  total %s (commitments %s, usage %s, credits %s); credits left %s\n", inv.Billed.Format(inv.Currency),
			inv.Commitments.Format(inv.Currency), inv.Usage.Format(inv.Currency), (-inv.Credits).Format(inv.Currency), inv.CreditsLeft.Format(inv.Currency))
	}
	return b.String()
}

// TestWorkedExample checks the numbers of docs/ACCOUNTING.md's worked
// example: the block between its markers is exactly this output.
func TestWorkedExample(t *testing.T) {
	got := workedExample(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "ACCOUNTING.md"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- worked-example:begin -->\n```\n", "```\n<!-- worked-example:end -->"
	doc := string(data)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/ACCOUNTING.md has no worked-example block; the example gives:\n%s", got)
	}
	if want := doc[i+len(begin) : j]; want != got {
		t.Errorf("docs/ACCOUNTING.md's worked example is out of date.\ndoc:\n%s\ncode:\n%s", want, got)
	}
}
