package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
)

func readAccounting(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "accounting", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func ms(s string) int64 {
	for _, l := range []string{"2006-01-02", time.RFC3339} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMilli()
		}
	}
	panic(s)
}

func TestParsePricesGood(t *testing.T) {
	got, err := ParsePrices("prices.yaml", readAccounting(t, "prices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat := fleet.DefaultCatalog()
	wantTypes := map[string]ledger.Rate{}
	for _, ty := range cat.Types {
		// Derived: on-demand at the list price, spot at the file's 0.5,
		// committed and asset at the ledger's defaults.
		r := ledger.DefaultRate(ty)
		r.Spot = ledger.Money(ty.PricePerHour*ledger.Micro*0.5 + 0.5)
		wantTypes[ty.Name] = r
	}
	wantTypes["h100"] = ledger.Rate{OnDemand: 2_100_000, Spot: 1_245_000, Committed: 1_470_000, Asset: 950_000}
	wantTypes["b200"] = ledger.Rate{OnDemand: 4_990_000, Spot: 2_000_000, Committed: 3_500_000, Asset: 2_400_000}
	want := PricesFile{
		Config: ledger.Config{
			Catalog: cat,
			Prices:  ledger.Prices{Currency: ledger.Currency{Code: "EUR", MinorDigits: 2}, Types: wantTypes},
			Sites: map[string]ledger.Site{
				"us-east":    {PUE: 1.2, CarbonGPerKWh: 380, PriceMultiplier: 1.1},
				"eu-west/z1": {PUE: 1.1},
			},
			DefaultSite: &ledger.Site{PUE: 1.3, CarbonGPerKWh: 400},
			DefaultTier: "on-demand",
			Thresholds:  []int{50, 90, 100},
			SampleTTLMs: 120_000,
		},
		CarbonFiles: map[string]string{"eu-west/z1": "gb_ci.csv"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(fleet.Catalog{}, ledger.Series{})); diff != "" {
		t.Errorf("ParsePrices (-want +got):\n%s", diff)
	}
	// The file's configuration builds a ledger once the series is set.
	s, err := ledger.ConstantSeries(200)
	if err != nil {
		t.Fatal(err)
	}
	got.SetCarbon("eu-west/z1", s)
	if _, err := ledger.New(got.Config); err != nil {
		t.Fatal(err)
	}
}

func TestParseCommitmentsGood(t *testing.T) {
	got, err := ParseCommitments("commitments.yaml", readAccounting(t, "commitments.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Commitment{
		{ID: "acme-h100-2027", Tenant: "acme", Type: "h100", Site: "us-east", Count: 64, StartMs: ms("2026-12-01"), EndMs: ms("2027-12-01"), PricePerHour: 1_600_000},
		{ID: "beta-any", Tenant: "beta", Type: "h200", Count: 8, StartMs: ms("2026-12-01T08:00:00Z"), EndMs: ms("2027-06-01"), PricePerHour: 2_250_000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseCommitments (-want +got):\n%s", diff)
	}
}

func TestParseCreditsGood(t *testing.T) {
	specs, err := ParseQueues("queues.yaml", []byte(queues+"  - name: beta\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCredits("credits.yaml", readAccounting(t, "credits.yaml"), WithQueues(specs))
	if err != nil {
		t.Fatal(err)
	}
	want := CreditsFile{
		Grants: []ledger.Grant{
			{ID: "launch-promo", Tenant: "acme", Kind: ledger.Promotional, Amount: 500_000_000, ExpiresMs: ms("2027-03-01")},
			{ID: "research-2027", Tenant: "acme", Queue: "acme-a", Amount: 12_000_500_000, StartMs: ms("2027-01-01")},
		},
		Budgets: []ledger.Budget{{Tenant: "acme", Monthly: 20_000_000_000}, {Tenant: "beta", Monthly: 1_500_750_000}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseCredits (-want +got):\n%s", diff)
	}
}

func TestParseAccountingErrors(t *testing.T) {
	prices := string(readAccounting(t, "prices.yaml"))
	commits := string(readAccounting(t, "commitments.yaml"))
	credits := string(readAccounting(t, "credits.yaml"))
	type parse func(name string, data []byte) error
	pricesP := func(n string, d []byte) error { _, err := ParsePrices(n, d); return err }
	commitsP := func(n string, d []byte) error { _, err := ParseCommitments(n, d); return err }
	creditsP := func(n string, d []byte) error {
		specs, err := ParseQueues("queues.yaml", []byte(queues+"  - name: beta\n"))
		if err != nil {
			return err
		}
		_, err = ParseCredits(n, d, WithQueues(specs))
		return err
	}
	tests := map[string]struct {
		parse parse
		src   string
		want  string
	}{
		"price unknown type": {pricesP, strings.Replace(prices, "  b200:", "  b300:", 1),
			`f.yaml:6:3: types.b300: type "b300" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`},
		"price unknown field": {pricesP, strings.Replace(prices, "onDemand: 2.10", "ondemand: 2.10", 1),
			`f.yaml:5:10: types.h100.ondemand: unknown field (want one of onDemand, spot, committed, asset)`},
		"price seven decimals": {pricesP, strings.Replace(prices, "2.10", "2.1000001", 1),
			`f.yaml:5:20: types.h100.onDemand: 2.1000001 has more than 6 decimals`},
		"price negative": {pricesP, strings.Replace(prices, "2.10", "-2.10", 1),
			`f.yaml:5:20: types.h100.onDemand: -2.10 must not be negative`},
		"price quoted": {pricesP, strings.Replace(prices, "2.10", `"2.10"`, 1),
			`f.yaml:5:20: types.h100.onDemand: want an amount (a number such as 2.49), got a string`},
		"currency": {pricesP, strings.Replace(prices, "EUR", "euro", 1),
			`f.yaml:2:11: currency: "euro": want an ISO 4217 code of three capital letters such as USD`},
		"pue": {pricesP, strings.Replace(prices, "pue: 1.2", "pue: 0.9", 1),
			`f.yaml:8:18: sites.us-east.pue: 0.9, want 1..5`},
		"carbon twice": {pricesP, strings.Replace(prices, "carbonSeries: gb_ci.csv", "carbon: 3, carbonSeries: gb_ci.csv", 1),
			`f.yaml:9:51: sites.eu-west/z1.carbonSeries: give carbon (a constant) or carbonSeries (a file), not both`},
		"tier": {pricesP, strings.Replace(prices, "defaultTier: on-demand", "defaultTier: ondemand", 1),
			`f.yaml:11:14: defaultTier: tier "ondemand": want one of committed, on-demand, spot`},
		"thresholds": {pricesP, strings.Replace(prices, "[50, 90, 100]", "[50, 40]", 1),
			`f.yaml:12:18: thresholds[1]: 40 is not above the percentage before it; want increasing percentages`},
		"ttl": {pricesP, strings.Replace(prices, "2m", "2 minutes", 1),
			`f.yaml:13:12: sampleTTL: "2 minutes": want a duration such as 30s, 5m, 4h, 2d or 1h30m`},
		"site name": {pricesP, strings.Replace(prices, "us-east:", "us east:", 1),
			`f.yaml:8:3: sites.us east: site "us east": want a domain path such as us-east or us-east/z1 ("us east": want letters, digits, '-', '_' or '.', starting with a letter or digit)`},
		"kind": {pricesP, strings.Replace(prices, "kind: prices", "kind: credits", 1),
			`f.yaml:1:7: kind: "credits": a prices file has kind prices`},
		"commit end before start": {commitsP, strings.Replace(commits, "end: 2027-12-01", "end: 2026-11-01", 1),
			`f.yaml:9:10: commitments[0].end: 2026-11-01T00:00:00Z is not after start 2026-12-01T00:00:00Z`},
		"commit bad date": {commitsP, strings.Replace(commits, "start: 2026-12-01\n", "start: 12/01/2026\n", 1),
			`f.yaml:8:12: commitments[0].start: "12/01/2026": want a date (2026-12-01, midnight UTC) or an RFC 3339 time (2026-12-01T08:00:00Z)`},
		"commit count": {commitsP, strings.Replace(commits, "count: 64", "count: 0", 1),
			`f.yaml:7:12: commitments[0].count: 0, want 1..10000000`},
		"commit no price": {commitsP, strings.Replace(commits, "    pricePerHour: 1.60\n", "", 1),
			`f.yaml:3:5: commitments[0].pricePerHour: is required`},
		"commit duplicate id": {commitsP, strings.Replace(commits, "beta-any", "acme-h100-2027", 1),
			`f.yaml:11:9: commitments[1].id: "acme-h100-2027" is already the id of commitments[0].id`},
		"commit type": {commitsP, strings.Replace(commits, "type: h200", "type: h300", 1),
			`f.yaml:13:11: commitments[1].type: type "h300" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`},
		"credit unknown tenant": {creditsP, strings.Replace(credits, "tenant: acme\n    kind", "tenant: acne\n    kind", 1),
			`f.yaml:4:13: grants[0].tenant: "acne" is not a tenant of the queue tree (want one of acme, beta)`},
		"credit foreign queue": {creditsP, strings.Replace(credits, "queue: acme-a", "queue: beta", 1),
			`f.yaml:10:12: grants[1].queue: "beta" is not a queue of tenant "acme"`},
		"credit kind": {creditsP, strings.Replace(credits, "kind: promotional", "kind: promo", 1),
			`f.yaml:5:11: grants[0].kind: grant kind "promo": want one of prepaid, promotional`},
		"credit zero": {creditsP, strings.Replace(credits, "amount: 500", "amount: 0", 1),
			`f.yaml:6:13: grants[0].amount: want an amount above 0`},
		"credit expires before start": {creditsP, strings.Replace(credits, "start: 2027-01-01", "start: 2027-01-01\n    expires: 2026-01-01", 1),
			`f.yaml:13:14: grants[1].expires: 2026-01-01T00:00:00Z is not after start 2027-01-01T00:00:00Z`},
		"budget zero": {creditsP, strings.Replace(credits, "acme: 20000", "acme: 0", 1),
			`f.yaml:14:9: budgets.acme: want a monthly amount above 0 (leave the tenant out for none)`},
		"credits empty": {creditsP, "kind: credits\n", `f.yaml:1:1: a credits file needs grants, budgets or both`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.parse("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if got := strings.Split(err.Error(), "\n")[0]; got != tc.want {
				t.Errorf("error:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func FuzzParsePrices(f *testing.F) {
	f.Add(readAccounting(f, "prices.yaml"))
	for _, s := range decoderSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePrices("fuzz.yaml", data)
		if err != nil {
			return
		}
		// What parses builds a ledger (constant carbon where a file is
		// named).
		for site := range p.CarbonFiles {
			s, _ := ledger.ConstantSeries(100)
			p.SetCarbon(site, s)
		}
		if _, err := ledger.New(p.Config); err != nil {
			t.Fatalf("parsed prices fail ledger.New: %v", err)
		}
	})
}

func FuzzParseCommitments(f *testing.F) {
	f.Add(readAccounting(f, "commitments.yaml"))
	for _, s := range decoderSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := ParseCommitments("fuzz.yaml", data)
		if err != nil {
			return
		}
		l, err := ledger.New(ledger.Config{DefaultSite: &ledger.Site{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if err := l.AddCommitment(c); err != nil {
				t.Fatalf("parsed commitment fails AddCommitment: %v", err)
			}
		}
	})
}

func FuzzParseCredits(f *testing.F) {
	f.Add(readAccounting(f, "credits.yaml"))
	for _, s := range decoderSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := ParseCredits("fuzz.yaml", data)
		if err != nil {
			return
		}
		l, err := ledger.New(ledger.Config{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range cf.Grants {
			if err := l.AddGrant(g); err != nil {
				t.Fatalf("parsed grant fails AddGrant: %v", err)
			}
		}
	})
}
