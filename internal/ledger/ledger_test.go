package ledger_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
)

func testLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	l, err := ledger.New(ledger.Config{Sites: map[string]ledger.Site{"s1": {CarbonGPerKWh: 100}, "s2": {}}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func goodUsage() ledger.Usage {
	return ledger.Usage{ID: "r", Job: "j", Tenant: "t", Queue: "q", Type: "h100", Tier: "spot", Site: "s1", Node: "n",
		Devices: 2, Milli: 1000, FromMs: t0, ToMs: t0 + hour, End: "finished"}
}

func TestAddRefusesBadRecords(t *testing.T) {
	tests := map[string]struct {
		edit func(*ledger.Usage)
		want string
	}{
		"no id":          {func(u *ledger.Usage) { u.ID = "" }, `usage record: id: must not be empty`},
		"no job":         {func(u *ledger.Usage) { u.Job = "" }, `usage "r": job: must not be empty`},
		"no tenant":      {func(u *ledger.Usage) { u.Tenant = "" }, `usage "r": tenant: must not be empty`},
		"type":           {func(u *ledger.Usage) { u.Type = "h1000" }, `usage "r": type: "h1000" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`},
		"tier":           {func(u *ledger.Usage) { u.Tier = "reserved" }, `usage "r": tier: "reserved": want one of committed, on-demand, spot, or empty for on-demand`},
		"site":           {func(u *ledger.Usage) { u.Site = "s3" }, `usage "r": site: "s3" is not a known site (want one of s1, s2)`},
		"devices":        {func(u *ledger.Usage) { u.Devices = 0 }, `usage "r": devices: 0, want 1..1024`},
		"milli":          {func(u *ledger.Usage) { u.Milli = 1001 }, `usage "r": milli: 1001, want 1..1000 (1000 is a whole device)`},
		"mask":           {func(u *ledger.Usage) { u.DeviceMask = 0b111 }, `usage "r": deviceMask: names 3 devices, but devices is 2`},
		"negative from":  {func(u *ledger.Usage) { u.FromMs = -1 }, `usage "r": fromMs: -1: want a Unix time in milliseconds, 0..7258118400000`},
		"to before from": {func(u *ledger.Usage) { u.ToMs = u.FromMs - 1 }, `usage "r": toMs: 1796083199999 is before fromMs 1796083200000`},
		"end reason":     {func(u *ledger.Usage) { u.End = "done" }, `usage "r": end: "done": want one of finished, preempted, shrunk, failed, cancelled, requeued`},
		"end while open": {func(u *ledger.Usage) { u.ToMs = 0 }, `usage "r": end: "finished" given for an open record (toMs 0)`},
		"ten years":      {func(u *ledger.Usage) { u.ToMs = u.FromMs + 11*365*day }, `usage "r": toMs: the record is longer than ten years`},
		"negative gang":  {func(u *ledger.Usage) { u.Gang = -1 }, `usage "r": gang: gang -1, replica 0: want 0..1048576`},
		"long tenant":    {func(u *ledger.Usage) { u.Tenant = strings.Repeat("t", 300) }, `usage "r": tenant: is longer than 256 bytes`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := testLedger(t)
			u := goodUsage()
			tc.edit(&u)
			_, err := l.Add(u)
			if err == nil {
				t.Fatalf("accepted, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			if !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			// Nothing was metered.
			rep, _ := l.Report(ledger.Query{FromMs: t0, ToMs: t0 + day})
			if len(rep.Rows) != 0 {
				t.Errorf("a refused record left rows: %v", rep.Rows)
			}
		})
	}
	if _, err := testLedger(t).Add(goodUsage()); err != nil {
		t.Errorf("the good record: %v", err)
	}
}

func TestSealRefusesOldRecords(t *testing.T) {
	l := testLedger(t)
	u := goodUsage()
	mustAddT(t, l, u, ledger.Metered)
	open := goodUsage()
	open.ID, open.ToMs, open.End = "o", 0, ""
	mustAddT(t, l, open, ledger.Opened)
	if err := l.Seal(t0 + day/2); err == nil {
		t.Fatal("a seal off a day boundary was accepted")
	}
	if err := l.Seal(t0 + day); err != nil {
		t.Fatal(err)
	}
	// The replay of a sealed record is refused as sealed: the driver
	// treats that as already counted.
	if _, err := l.Add(u); !errors.Is(err, ledger.ErrSealed) {
		t.Errorf("replay after the seal: %v, want ErrSealed", err)
	}
	late := goodUsage()
	late.ID = "late"
	if _, err := l.Add(late); !errors.Is(err, ledger.ErrSealed) {
		t.Errorf("a new record before the seal: %v, want ErrSealed", err)
	}
	// The open record was metered to the seal and may close after it,
	// not before.
	closing := open
	closing.ToMs, closing.End = t0+day/2, "finished"
	if _, err := l.Add(closing); !errors.Is(err, ledger.ErrSealed) {
		t.Errorf("a close before the seal: %v, want ErrSealed", err)
	}
	closing.ToMs = t0 + day + hour
	mustAddT(t, l, closing, ledger.Closed)
	rep, err := l.Report(ledger.Query{FromMs: t0, ToMs: t0 + 2*day, By: []ledger.Dim{ledger.ByTenant}})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int64, len(rep.Rows))
	for i, r := range rep.Rows {
		got[i] = r.MilliMs
	}
	// Day 1: the record's hour (2 devices) and the open record's whole
	// day; day 2: its first hour.
	want := []int64{2*hour*1000 + 2*day*1000, 2 * hour * 1000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("milli-ms per day (-want +got):\n%s", diff)
	}
	if err := l.Seal(t0); err == nil {
		t.Error("a seal before the seal was accepted")
	}
	if err := l.Sample(ledger.Sample{Node: "n", Device: 0, AtMs: t0, Percent: 10}); !errors.Is(err, ledger.ErrSealed) {
		t.Errorf("a sample before the seal: %v, want ErrSealed", err)
	}
	if l.Job("j") == nil {
		t.Error("the job of an open record was forgotten at the seal")
	}
}

func mustAddT(t *testing.T, l *ledger.Ledger, u ledger.Usage, want ledger.Outcome) {
	t.Helper()
	got, err := l.Add(u)
	if err != nil {
		t.Fatalf("add %s: %v", u.ID, err)
	}
	if got != want {
		t.Fatalf("add %s: %s, want %s", u.ID, got, want)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	cat, err := fleet.NewCatalog([]fleet.AccelType{{Name: "hot", BoardPowerW: 30000}})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		cfg  ledger.Config
		want string
	}{
		"currency":   {ledger.Config{Prices: ledger.Prices{Currency: ledger.Currency{Code: "usd", MinorDigits: 2}}}, `currency: code "usd": want three capital letters such as USD`},
		"digits":     {ledger.Config{Prices: ledger.Prices{Currency: ledger.Currency{Code: "USD", MinorDigits: 7}}}, `currency: minor digits 7: want 0..6`},
		"price type": {ledger.Config{Prices: ledger.Prices{Types: map[string]ledger.Rate{"h1000": {}}}}, `prices: type "h1000" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`},
		"negative":   {ledger.Config{Prices: ledger.Prices{Types: map[string]ledger.Rate{"h100": {Spot: -1}}}}, `prices: type "h100": rates must not be negative`},
		"pue":        {ledger.Config{Sites: map[string]ledger.Site{"s": {PUE: 0.5}}}, `site "s": pue 0.5: want 1..5`},
		"carbon":     {ledger.Config{Sites: map[string]ledger.Site{"s": {CarbonGPerKWh: 6000}}}, `site "s": carbon series: point 0 (1970-01-01T00:00:00Z): carbon intensity 6000 g/kWh: want 0..5000`},
		"tier":       {ledger.Config{DefaultTier: "gold"}, `default tier: tier "gold": want one of committed, on-demand, spot`},
		"thresholds": {ledger.Config{Thresholds: []int{80, 50}}, `thresholds: want increasing percentages, got [80 50]`},
		"power":      {ledger.Config{Catalog: cat}, `catalog: type "hot": board power 30000W and idle power 0W: want 0 <= idle <= board <= 20000`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ledger.New(tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestMoney(t *testing.T) {
	tests := []struct {
		in     string
		want   ledger.Money
		err    string
		usd    string
		jpy    string
		micros string
	}{
		{in: "2.49", want: 2_490_000, usd: "2.49", jpy: "2", micros: "2.490000"},
		{in: "0.005", want: 5_000, usd: "0.01", jpy: "0", micros: "0.005000"},
		{in: "0.004999", want: 4_999, usd: "0.00", jpy: "0", micros: "0.004999"},
		{in: "1000", want: 1_000_000_000, usd: "1000.00", jpy: "1000", micros: "1000.000000"},
		{in: "0.000001", want: 1, usd: "0.00", jpy: "0", micros: "0.000001"},
		{in: "1.5000000", want: 1_500_000, usd: "1.50", jpy: "2", micros: "1.500000"},
		{in: "1.0000001", err: "1.0000001 has more than 6 decimals"},
		{in: "-1", err: "-1 must not be negative"},
		{in: "1e3", err: `"1e3" is not a decimal number`},
		{in: ".5", err: `".5" is not a decimal number`},
		{in: "1000000000000", err: "1000000000000 is too large (want below 1000000000000)"},
	}
	jpy := ledger.Currency{Code: "JPY"}
	for _, tc := range tests {
		got, err := ledger.ParseMoney(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseMoney(%q): %v, want error %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMoney(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			continue
		}
		if s := got.Format(ledger.DefaultCurrency); s != tc.usd {
			t.Errorf("%d in USD: %s, want %s", got, s, tc.usd)
		}
		if s := got.Format(jpy); s != tc.jpy {
			t.Errorf("%d in JPY: %s, want %s", got, s, tc.jpy)
		}
		if s := got.String(); s != tc.micros {
			t.Errorf("%d: %s, want %s", got, s, tc.micros)
		}
	}
	if s := ledger.Money(-2_495_000).Format(ledger.DefaultCurrency); s != "-2.50" {
		t.Errorf("-2.495 in USD: %s, want -2.50 (half away from zero)", s)
	}
}

func TestCommitmentAndGrantErrors(t *testing.T) {
	l := testLedger(t)
	c := ledger.Commitment{ID: "c", Tenant: "t", Type: "h100", Site: "s1", Count: 8, StartMs: t0, EndMs: t0 + day, PricePerHour: 1}
	if err := l.AddCommitment(c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*ledger.Commitment)
		want string
	}{
		{func(c *ledger.Commitment) {}, `commitment "c": id: is already a commitment's`},
		{func(c *ledger.Commitment) { c.ID, c.Type = "c2", "x" }, `commitment "c2": type: "x" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`},
		{func(c *ledger.Commitment) { c.ID, c.Site = "c2", "s9" }, `commitment "c2": site: "s9" is not a known site (want one of s1, s2, or empty for any)`},
		{func(c *ledger.Commitment) { c.ID, c.Count = "c2", 0 }, `commitment "c2": count: 0: want 1..10000000`},
		{func(c *ledger.Commitment) { c.ID, c.EndMs = "c2", c.StartMs }, `commitment "c2": end: 2026-12-01T00:00:00Z is not after the start 2026-12-01T00:00:00Z`},
	} {
		x := c
		tc.edit(&x)
		if err := l.AddCommitment(x); err == nil || err.Error() != tc.want {
			t.Errorf("AddCommitment: %v, want %s", err, tc.want)
		}
	}
	g := ledger.Grant{ID: "g", Tenant: "t", Amount: 10}
	if err := l.AddGrant(g); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*ledger.Grant)
		want string
	}{
		{func(g *ledger.Grant) {}, `grant "g": id: is already a grant's`},
		{func(g *ledger.Grant) { g.ID, g.Amount = "g2", 0 }, `grant "g2": amount: 0.000000: want above 0 and at most 1000000000.000000`},
		{func(g *ledger.Grant) { g.ID, g.StartMs, g.ExpiresMs = "g2", t0, t0 }, `grant "g2": expires: 2026-12-01T00:00:00Z is not after the start 2026-12-01T00:00:00Z`},
		{func(g *ledger.Grant) { g.ID, g.Kind = "g2", 7 }, `grant "g2": kind: 7: want prepaid or promotional`},
	} {
		x := g
		tc.edit(&x)
		if err := l.AddGrant(x); err == nil || err.Error() != tc.want {
			t.Errorf("AddGrant: %v, want %s", err, tc.want)
		}
	}
}

func TestFleetCapacity(t *testing.T) {
	f, err := fleet.New(nil, nil, []fleet.Node{
		{Name: "a", Path: []string{"us", "z1", "b1", "r1"}, Accel: "h100", Count: 8},
		{Name: "b", Path: []string{"us", "z2", "b1", "r1"}, Accel: "h100", Count: 8},
		{Name: "c", Path: []string{"eu", "z1", "b1", "r1"}, Accel: "b200", Count: 4},
		{Name: "d", Path: []string{"eu", "z1", "b1", "r1"}, Accel: "b200", Count: 4, State: fleet.Down},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ledger.FleetCapacity(f, 0, t0, t0+day)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Capacity{
		{Type: "b200", Site: "eu", Accelerators: 4, FromMs: t0, ToMs: t0 + day},
		{Type: "h100", Site: "us", Accelerators: 16, FromMs: t0, ToMs: t0 + day},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FleetCapacity by region (-want +got):\n%s", diff)
	}
	got, _ = ledger.FleetCapacity(f, 1, t0, t0+day)
	if len(got) != 3 || got[1].Site != "us/z1" {
		t.Errorf("FleetCapacity by zone: %+v", got)
	}
}
