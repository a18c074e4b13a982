package ledger_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

// Grants reports what each grant burned, in burn order; Usage sums the
// day buckets of a tenant or of all.
func TestGrantsBudgetAndUsage(t *testing.T) {
	const day = 86_400_000
	d0 := int64(20_423) * day // 2025-12-01
	l, err := ledger.New(ledger.Config{Prices: ledger.Prices{Types: map[string]ledger.Rate{"h100": {OnDemand: 2 * ledger.Micro}}},
		DefaultSite: &ledger.Site{PUE: 1.5, CarbonGPerKWh: 100}})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []ledger.Grant{
		{ID: "paid", Tenant: "acme", Amount: 10 * ledger.Micro},
		{ID: "promo", Tenant: "acme", Kind: ledger.Promotional, Amount: 3 * ledger.Micro},
		{ID: "other", Tenant: "globex", Amount: 1 * ledger.Micro},
	} {
		if err := l.AddGrant(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SetBudget(ledger.Budget{Tenant: "acme", Monthly: 50 * ledger.Micro}); err != nil {
		t.Fatal(err)
	}
	// Two hours of one h100 for acme (4.00), one for globex (2.00).
	for _, u := range []ledger.Usage{
		{ID: "a", Job: "j", Tenant: "acme", Type: "h100", Devices: 1, Milli: 1000, FromMs: d0, ToMs: d0 + 2*3_600_000, End: "finished"},
		{ID: "b", Job: "k", Tenant: "globex", Type: "h100", Devices: 1, Milli: 1000, FromMs: d0, ToMs: d0 + 3_600_000, End: "finished"},
	} {
		if _, err := l.Add(u); err != nil {
			t.Fatal(err)
		}
	}
	got := l.Grants("acme")
	want := []ledger.GrantBalance{
		{Grant: ledger.Grant{ID: "promo", Tenant: "acme", Kind: ledger.Promotional, Amount: 3 * ledger.Micro}, Burned: 3 * ledger.Micro, Thresholds: 3},
		{Grant: ledger.Grant{ID: "paid", Tenant: "acme", Amount: 10 * ledger.Micro}, Burned: 1 * ledger.Micro},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("acme's grants (-want +got):\n%s", diff)
	}
	if n := len(l.Grants("")); n != 3 {
		t.Errorf("all grants: %d, want 3", n)
	}
	if got[1].Left() != 9*ledger.Micro {
		t.Errorf("left of paid: %s, want 9", got[1].Left())
	}
	if b := l.Budget("acme"); b != 50*ledger.Micro {
		t.Errorf("budget %s, want 50", b)
	}
	if b := l.Budget("nobody"); b != 0 {
		t.Errorf("budget of an unknown tenant %s, want 0", b)
	}
	acme := l.Usage("acme", d0, d0+day)
	if acme.MilliMs != 2*3_600_000_000 || acme.Charge != 4*ledger.Micro || acme.FacilityMJ != 2*acme.EnergyMJ*3/4 {
		t.Errorf("acme's usage %+v", acme)
	}
	if all := l.Usage("", d0, d0+day); all.MilliMs != 3*3_600_000_000 {
		t.Errorf("everyone's accelerator-time %d, want 3 hours", all.MilliMs)
	}
	if by := l.UsageByTenant(d0, d0+day); len(by) != 2 || by["acme"] != acme || by["globex"].MilliMs != 3_600_000_000 {
		t.Errorf("usage by tenant %+v", by)
	}
	if none := l.Usage("acme", d0+day, d0+2*day); none != (ledger.Totals{}) {
		t.Errorf("usage of the next day %+v, want none", none)
	}
}

func TestMoneyJSON(t *testing.T) {
	for _, tc := range []struct {
		m    ledger.Money
		text string
	}{{0, "0"}, {12_500_000, "12.5"}, {-3, "-0.000003"}, {7 * ledger.Micro, "7"}} {
		b, err := tc.m.MarshalJSON()
		if err != nil || string(b) != tc.text {
			t.Errorf("%d: %s, %v; want %s", tc.m, b, err, tc.text)
		}
		var back ledger.Money
		if err := back.UnmarshalJSON(b); err != nil || back != tc.m {
			t.Errorf("%s read back as %d, %v", b, back, err)
		}
	}
	var m ledger.Money
	if err := m.UnmarshalJSON([]byte("1e3")); err == nil {
		t.Errorf("1e3 read as %d: want an error", m)
	}
}
