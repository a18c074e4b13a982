package ledger_test

import (
	"fmt"
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

const (
	day  = int64(86_400_000)
	t0   = int64(1_796_083_200_000) // 2026-12-01T00:00:00Z
	hour = int64(3_600_000)
)

// propConfig is a small world: two types, two sites, one with a carbon
// series of random steps.
func propConfig(t *rapid.T) ledger.Config {
	var pts []ledger.Point
	at := t0 - day
	for range rapid.IntRange(1, 40).Draw(t, "steps") {
		pts = append(pts, ledger.Point{AtMs: at, GPerKWh: float64(rapid.IntRange(0, 900_000).Draw(t, "ci")) / 1000})
		at += int64(rapid.IntRange(1, 6*3600).Draw(t, "stepSec")) * 1000
	}
	series, err := ledger.NewSeries(pts)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Config{
		Sites: map[string]ledger.Site{
			"a": {PUE: 1.25, CarbonGPerKWh: 380, PriceMultiplier: 1.1},
			"b": {PUE: 1.1, Carbon: series},
		},
	}
}

var (
	propTenants = []string{"t0", "t1", "t2"}
	propTiers   = []string{"committed", "on-demand", "spot", ""}
	propTypes   = []string{"h100", "b200"}
	propSites   = []string{"a", "b"}
)

func genUsage(t *rapid.T, i int) ledger.Usage {
	from := t0 + rapid.Int64Range(0, 3*day).Draw(t, "from")
	dur := rapid.Int64Range(0, 2*day).Draw(t, "dur")
	tenant := rapid.SampledFrom(propTenants).Draw(t, "tenant")
	return ledger.Usage{
		ID: fmt.Sprintf("r%d", i), Job: fmt.Sprintf("j%d", rapid.IntRange(0, 5).Draw(t, "job")),
		Tenant: tenant, Queue: tenant + rapid.SampledFrom([]string{"-a", "-b"}).Draw(t, "queue"),
		Tier: rapid.SampledFrom(propTiers).Draw(t, "tier"), Type: rapid.SampledFrom(propTypes).Draw(t, "type"),
		Site: rapid.SampledFrom(propSites).Draw(t, "site"), Node: fmt.Sprintf("n%d", rapid.IntRange(0, 3).Draw(t, "node")),
		Replica: rapid.IntRange(0, 3).Draw(t, "replica"),
		Devices: rapid.IntRange(1, 8).Draw(t, "devices"),
		Milli:   int32(rapid.SampledFrom([]int{1000, 1000, 500, 250, 125, 1, 999}).Draw(t, "milli")),
		FromMs:  from, ToMs: from + dur, End: "finished",
	}
}

func mustLedger(t interface{ Fatal(...any) }, cfg ledger.Config) *ledger.Ledger {
	l, err := ledger.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// allRows is a report by every dimension, per day, over the whole window.
func allRows(t interface{ Fatal(...any) }, l *ledger.Ledger) []ledger.Row {
	rep, err := l.Report(ledger.Query{FromMs: t0 - day, ToMs: t0 + 7*day, By: []ledger.Dim{ledger.ByTenant, ledger.ByQueue, ledger.ByTier, ledger.ByType, ledger.BySite}})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Rows
}

// TestMeteringExactlyOnce: records fed in any interleaving of opening,
// metering to arbitrary times (past their ends too), closing and
// replaying, leave the same report, to the unit, as the records fed once
// each, closed; and the accelerator-time is exactly the sum of duration x
// devices x milli.
func TestMeteringExactlyOnce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := propConfig(t)
		recs := make([]ledger.Usage, rapid.IntRange(1, 12).Draw(t, "records"))
		var want int64
		for i := range recs {
			recs[i] = genUsage(t, i)
			want += (recs[i].ToMs - recs[i].FromMs) * int64(recs[i].Devices) * int64(recs[i].Milli)
		}
		ref := mustLedger(t, cfg)
		for _, u := range recs {
			if _, err := ref.Add(u); err != nil {
				t.Fatal(err)
			}
		}

		l := mustLedger(t, cfg)
		grant := ledger.Money(rapid.Int64Range(1, 500*ledger.Micro).Draw(t, "grant"))
		for _, l := range []*ledger.Ledger{l} {
			if err := l.AddGrant(ledger.Grant{ID: "g", Tenant: "t0", Amount: grant, StartMs: t0 + day, ExpiresMs: t0 + 3*day}); err != nil {
				t.Fatal(err)
			}
		}
		// state: 0 not fed, 1 open, 2 closed.
		state := make([]int, len(recs))
		asOpen := func(u ledger.Usage) ledger.Usage { u.ToMs, u.End = 0, ""; return u }
		for steps := 0; steps < 60; steps++ {
			i := rapid.IntRange(0, len(recs)-1).Draw(t, "rec")
			u := recs[i]
			switch op := rapid.IntRange(0, 4).Draw(t, "op"); {
			case op == 0 && state[i] == 0: // open
				mustAdd(t, l, asOpen(u), ledger.Opened)
				state[i] = 1
			case op == 1: // meter to any time
				if err := l.Meter(t0 + rapid.Int64Range(-day, 6*day).Draw(t, "now")); err != nil {
					t.Fatal(err)
				}
			case op == 2 && state[i] == 1: // close
				mustAdd(t, l, u, ledger.Closed)
				state[i] = 2
			case op == 2 && state[i] == 0: // closed at once
				mustAdd(t, l, u, ledger.Metered)
				state[i] = 2
			case op == 3 && state[i] > 0: // replay either form
				if rapid.Bool().Draw(t, "openForm") {
					mustAdd(t, l, asOpen(u), ledger.Duplicate)
				} else if state[i] == 2 {
					mustAdd(t, l, u, ledger.Duplicate)
				}
			}
		}
		for i, u := range recs {
			switch state[i] {
			case 0:
				mustAdd(t, l, u, ledger.Metered)
			case 1:
				mustAdd(t, l, u, ledger.Closed)
			}
		}
		if l.OpenRecords() != 0 {
			t.Fatalf("%d records still open", l.OpenRecords())
		}
		got, ref0 := allRows(t, l), allRows(t, ref)
		if diff := cmp.Diff(ref0, got); diff != "" {
			t.Fatalf("report after interleaving differs from the records fed once (-once +interleaved):\n%s", diff)
		}
		var sum int64
		for _, r := range got {
			if r.Kind == ledger.Used {
				sum += r.MilliMs
			}
		}
		if sum != want {
			t.Fatalf("accelerator-time %d, want sum of duration x devices x milli %d", sum, want)
		}
		for _, j := range []string{"j0", "j1", "j2", "j3", "j4", "j5"} {
			if diff := cmp.Diff(ref.Job(j), l.Job(j)); diff != "" {
				t.Fatalf("job %s (-once +interleaved):\n%s", j, diff)
			}
		}
		// The credit is never overdrawn and pays only t0's charges; what the
		// budget counts is what the invoice charges, cut-backs included.
		st := l.Standing("t0", "", t0+2*day)
		if st.Credits < 0 || st.Credits > grant {
			t.Fatalf("credits %s of a grant of %s", st.Credits, grant)
		}
		for _, tenant := range propTenants {
			inv, err := l.Invoice(tenant, ledger.MonthOf(t0))
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Invoice(tenant, ledger.MonthOf(t0))
			if err != nil {
				t.Fatal(err)
			}
			if inv.Usage != want.Usage || inv.Spent != inv.Usage {
				t.Fatalf("%s: invoice usage %s, fed once %s, budget spend %s", tenant, inv.Usage, want.Usage, inv.Spent)
			}
			if tenant != "t0" && inv.Credits != 0 {
				t.Fatalf("%s has no grant but was credited %s", tenant, inv.Credits)
			}
			if inv.Credits > grant {
				t.Fatalf("%s: credited %s of a grant of %s", tenant, inv.Credits, grant)
			}
		}
	})
}

func mustAdd(t *rapid.T, l *ledger.Ledger, u ledger.Usage, want ledger.Outcome) {
	got, err := l.Add(u)
	if err != nil {
		t.Fatalf("add %s: %v", u.ID, err)
	}
	if got != want {
		t.Fatalf("add %s (to %d): %s, want %s", u.ID, u.ToMs, got, want)
	}
}

// TestSamplesSplitInvariant: with utilization samples, metering a record
// whole or in steps gives the same energy and carbon.
func TestSamplesSplitInvariant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := propConfig(t)
		cfg.SampleTTLMs = int64(rapid.IntRange(1, 600).Draw(t, "ttlSec")) * 1000
		var samples []ledger.Sample
		for _, dev := range []int{-1, 0, 1, 2} {
			at := t0 - hour
			for range rapid.IntRange(0, 30).Draw(t, "samples") {
				at += int64(rapid.IntRange(1, 1200).Draw(t, "gapSec")) * 1000
				samples = append(samples, ledger.Sample{Node: "n", Device: dev, AtMs: at, Percent: rapid.IntRange(0, 100).Draw(t, "pct")})
			}
		}
		u := ledger.Usage{ID: "r", Job: "j", Tenant: "t", Queue: "q", Type: "h100", Site: rapid.SampledFrom(propSites).Draw(t, "site"), Node: "n",
			Devices: 3, Milli: int32(rapid.SampledFrom([]int{1000, 333}).Draw(t, "milli")), FromMs: t0, ToMs: t0 + rapid.Int64Range(1, 30*hour).Draw(t, "dur"), End: "failed"}
		if rapid.Bool().Draw(t, "mask") {
			u.DeviceMask = 0b111
		}
		feed := func() *ledger.Ledger {
			l := mustLedger(t, cfg)
			for _, s := range samples {
				if err := l.Sample(s); err != nil {
					t.Fatal(err)
				}
			}
			return l
		}
		whole := feed()
		mustAdd(t, whole, u, ledger.Metered)
		steps := feed()
		open := u
		open.ToMs, open.End = 0, ""
		mustAdd(t, steps, open, ledger.Opened)
		for range rapid.IntRange(0, 8).Draw(t, "meters") {
			if err := steps.Meter(t0 + rapid.Int64Range(0, 32*hour).Draw(t, "now")); err != nil {
				t.Fatal(err)
			}
		}
		mustAdd(t, steps, u, ledger.Closed)
		if diff := cmp.Diff(allRows(t, whole), allRows(t, steps)); diff != "" {
			t.Fatalf("whole vs in steps (-whole +steps):\n%s", diff)
		}
	})
}

// TestApportion: the shares add up to the total, are each within one unit
// of their exact quota, and follow the weights' order.
func TestApportion(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ws := rapid.SliceOfN(rapid.Int64Range(0, 1<<50), 1, 20).Draw(t, "weights")
		total := rapid.Int64Range(-1<<40, 1<<40).Draw(t, "total")
		shares, ok := ledger.Apportion(total, ws)
		var W int64
		for _, w := range ws {
			W += w
		}
		if W == 0 {
			if ok != (total == 0) {
				t.Fatalf("ok %v with no weight and total %d", ok, total)
			}
			return
		}
		var sum int64
		for i, s := range shares {
			sum += s
			// |s*W - total*w| < W, in exact arithmetic.
			d := new(big.Int).Sub(new(big.Int).Mul(big.NewInt(s), big.NewInt(W)), new(big.Int).Mul(big.NewInt(total), big.NewInt(ws[i])))
			if d.Abs(d).Cmp(big.NewInt(W)) >= 0 {
				t.Fatalf("share %d of weight %d is more than one unit from its quota (total %d, weights %v)", s, ws[i], total, ws)
			}
			for j := range ws {
				if ws[i] > ws[j] && (total >= 0 && shares[i] < shares[j] || total < 0 && shares[i] > shares[j]) {
					t.Fatalf("weight %d got %d, less than weight %d's %d", ws[i], shares[i], ws[j], shares[j])
				}
			}
		}
		if sum != total {
			t.Fatalf("shares add up to %d, want %d", sum, total)
		}
	})
}

// TestRoundTo: rounded lines add up to the rounded sum and each moves by
// less than one unit.
func TestRoundTo(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		raw := rapid.SliceOfN(rapid.Int64Range(-1e12, 1e12), 0, 30).Draw(t, "amounts")
		unit := ledger.Money(rapid.SampledFrom([]int64{1, 10, 10_000, 1_000_000}).Draw(t, "unit"))
		amounts := make([]ledger.Money, len(raw))
		var sum ledger.Money
		for i, r := range raw {
			amounts[i] = ledger.Money(r)
			sum += amounts[i]
		}
		out := ledger.RoundTo(amounts, unit)
		var got ledger.Money
		for i, o := range out {
			got += o
			if o%unit != 0 {
				t.Fatalf("%s is not a multiple of %s", o, unit)
			}
			if d := o - amounts[i]; d <= -unit || d >= unit {
				t.Fatalf("%s rounded to %s", amounts[i], o)
			}
		}
		want := sum + unit/2
		want -= ((want % unit) + unit) % unit
		if unit == 1 {
			want = sum
		}
		if got != want {
			t.Fatalf("rounded lines add up to %s, want %s (exact %s)", got, want, sum)
		}
	})
}

// TestAttributionAddsUp: with any usage, commitments and capacity, the
// report's asset shares add up to the fleet's cost exactly, per period
// and in total, grouped by any dimensions; and without warnings the
// accelerator-time of used, idle reserved and idle rows is the capacity.
func TestAttributionAddsUp(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := propConfig(t)
		l := mustLedger(t, cfg)
		for i := range rapid.IntRange(0, 10).Draw(t, "records") {
			if _, err := l.Add(genUsage(t, i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range rapid.IntRange(0, 3).Draw(t, "commitments") {
			start := t0 + rapid.Int64Range(-day, 3*day).Draw(t, "start")
			c := ledger.Commitment{ID: fmt.Sprintf("c%d", i), Tenant: rapid.SampledFrom(propTenants).Draw(t, "tenant"), Type: rapid.SampledFrom(propTypes).Draw(t, "type"),
				Site: rapid.SampledFrom([]string{"", "a", "b"}).Draw(t, "site"), Count: rapid.IntRange(1, 16).Draw(t, "count"),
				StartMs: start, EndMs: start + rapid.Int64Range(1, 5*day).Draw(t, "term"), PricePerHour: 1_500_000}
			if err := l.AddCommitment(c); err != nil {
				t.Fatal(err)
			}
		}
		var caps []ledger.Capacity
		for _, ty := range propTypes {
			for _, s := range propSites {
				if rapid.Bool().Draw(t, "hasCapacity") {
					from := t0 - day + rapid.Int64Range(0, 4*day).Draw(t, "capFrom")
					caps = append(caps, ledger.Capacity{Type: ty, Site: s, Accelerators: rapid.IntRange(0, 64).Draw(t, "accels"), FromMs: from, ToMs: from + rapid.Int64Range(0, 6*day).Draw(t, "capLen")})
				}
			}
		}
		period := rapid.SampledFrom([]ledger.Period{ledger.Daily, ledger.Monthly}).Draw(t, "period")
		q := ledger.Query{FromMs: t0 - day, ToMs: t0 + 7*day, Period: ledger.Daily, Capacity: caps}
		if period == ledger.Monthly {
			q.FromMs, q.ToMs, q.Period = ledger.MonthOf(t0-day).Start(), ledger.MonthOf(t0+7*day).End(), ledger.Monthly
		}
		dims := []ledger.Dim{ledger.ByTenant, ledger.ByQueue, ledger.ByTier, ledger.ByType, ledger.BySite}
		for _, d := range dims {
			if rapid.Bool().Draw(t, "by") {
				q.By = append(q.By, d)
			}
		}
		rep, err := l.Report(q)
		if err != nil {
			t.Fatal(err)
		}
		var asset ledger.Money
		var ms int64
		for _, r := range rep.Rows {
			asset += r.Asset
			ms += r.MilliMs
		}
		if asset != rep.FleetCost {
			t.Fatalf("asset shares add up to %s, fleet cost %s\n%v", asset, rep.FleetCost, rep.Rows)
		}
		var capMs int64
		var cost ledger.Money
		for _, c := range caps {
			lo, hi := max(c.FromMs, q.FromMs), min(c.ToMs, q.ToMs)
			if hi > lo {
				capMs += int64(c.Accelerators) * 1000 * (hi - lo)
			}
		}
		_ = cost
		if len(rep.Warnings) == 0 && len(caps) > 0 && ms != capMs {
			t.Fatalf("rows hold %d milli-ms, capacity is %d (no warnings)", ms, capMs)
		}
		// Covered and overage split the committed time; covered is within
		// what commitments offer.
		for _, r := range rep.Rows {
			if r.Kind == ledger.Used && r.Covered+r.Overage != 0 && r.Tier != "" && r.Tier != "committed" {
				t.Fatalf("a %s row has coverage: %+v", r.Tier, r)
			}
			if r.Kind == ledger.Used && (r.Tier == "committed") && r.Covered+r.Overage != r.MilliMs {
				t.Fatalf("committed row: covered %d + overage %d != %d", r.Covered, r.Overage, r.MilliMs)
			}
		}
	})
}
