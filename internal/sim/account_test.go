package sim

import (
	"math"
	"testing"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// With accounting, the fleet's energy is the sum of the metered records
// and the idle devices' draw, and equals the engine's power integral; the
// tenants' metered accelerator-hours are those the engine measured; every
// record is metered.
func TestAccountingMetersTheRun(t *testing.T) {
	// The core takes the fleet (failures mark its nodes): a fresh one a run.
	fs := spec.DefaultFleetSpec()
	gen := func() *Generator {
		fs = spec.DefaultFleetSpec()
		g, err := NewGenerator(GenConfig{Jobs: 2000, Seed: 3, Fleet: fs.Fleet, Tenants: 4, Load: 1.2})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := gen()
	cfg := Config{Seed: 3, FailuresPerNodeDay: 0.1, Sched: sched.Config{Seed: 3}}
	plain, err := Run(cfg, fs.Fleet, g.Queues(), g)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Accounting = &Accounting{Ledger: ledger.Config{DefaultSite: &ledger.Site{PUE: DefaultPUE, CarbonGPerKWh: 300}}}
	g = gen()
	res, err := Run(cfg, fs.Fleet, g.Queues(), g)
	if err != nil {
		t.Fatal(err)
	}
	a := res.Summary.Accounting
	if a == nil || a.Records == 0 {
		t.Fatalf("accounting %+v", a)
	}
	close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-6*math.Max(1, math.Abs(y)) }
	if !close(res.Summary.EnergyKWh, plain.Summary.EnergyKWh) || !close(res.Summary.ITEnergyKWh, plain.Summary.ITEnergyKWh) {
		t.Errorf("energy: metered %.6f + idle %.6f = %.6f kWh (IT %.6f), the power integral %.6f (IT %.6f)",
			a.MeteredEnergyKWh, a.IdleEnergyKWh, res.Summary.EnergyKWh, res.Summary.ITEnergyKWh, plain.Summary.EnergyKWh, plain.Summary.ITEnergyKWh)
	}
	var hours float64
	for _, ta := range a.Tenants {
		hours += ta.AccelHours
		if ta.AccelHours > 0 && (ta.Cost <= 0 || ta.CO2Kg <= 0) {
			t.Errorf("tenant %+v: usage without cost or carbon", ta)
		}
		want := float64(res.metered[ta.Tenant]) / 3.6e6
		if !close(ta.AccelHours, want) {
			t.Errorf("tenant %s: %.6f accelerator-hours metered, %.6f in the usage stream", ta.Tenant, ta.AccelHours, want)
		}
	}
	if !close(hours, res.Summary.AccelHours) || !close(a.CO2Kg, a.MeteredEnergyKWh*0.3) {
		t.Errorf("%.6f accelerator-hours metered, %.6f measured; %.6f kg CO2e for %.6f kWh at 300 g", hours, res.Summary.AccelHours, a.CO2Kg, a.MeteredEnergyKWh)
	}
	if a.FleetCost <= 0 {
		t.Errorf("fleet cost %s", a.FleetCost)
	}
}

// A prepaid tenant's credits burn down in the simulator as they do live:
// when they run out its work stops and waits; without enforcement it runs
// on and the rest is billed.
func TestCreditsRunOutInTheSimulator(t *testing.T) {
	f := testFleet(t, "h100", 2)
	qs := []quota.Spec{
		{Name: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 8000}}}, {Name: "acme-q", Parent: "acme"},
		{Name: "globex", Quotas: map[string]quota.Limits{"h100": {Nominal: 8000}}}, {Name: "globex-q", Parent: "globex"},
	}
	var jobs []Job
	for i := range 6 {
		j := gpuJob("a"+string(rune('0'+i)), int64(i)*600, 4*3600, 1, 8)
		jobs = append(jobs, j)
		g := gpuJob("g"+string(rune('0'+i)), int64(i)*600, 4*3600, 1, 8)
		g.Queue = "globex-q"
		jobs = append(jobs, g)
	}
	prices := ledger.Prices{Types: map[string]ledger.Rate{"h100": {OnDemand: 2 * ledger.Micro, Spot: ledger.Micro, Committed: ledger.Micro, Asset: ledger.Micro}}}
	acct := func(enforce bool) *Accounting {
		return &Accounting{Ledger: ledger.Config{Prices: prices}, NoEnforce: !enforce, MeterSec: 600,
			Grants: []ledger.Grant{{ID: "acme-1", Tenant: "acme", Amount: 100 * ledger.Micro}}}
	}
	on := run(t, Config{Accounting: acct(true)}, f, qs, jobs...)
	off := run(t, Config{Accounting: acct(false)}, f, qs, jobs...)
	find := func(r *Result, tenant string) TenantAccount {
		for _, ta := range r.Summary.Accounting.Tenants {
			if ta.Tenant == tenant {
				return ta
			}
		}
		t.Fatalf("no tenant %s in %+v", tenant, r.Summary.Accounting.Tenants)
		return TenantAccount{}
	}
	a := find(on, "acme")
	// 8 h100 at 2.00: 16.00 an hour; 100.00 lasts 6.25 hours. Metered
	// every 10 minutes, the overshoot is at most 10 minutes' burn.
	if !a.Prepaid || a.RanOutAt < 0 || a.PausedSec == 0 || a.CreditsLeft != 0 {
		t.Errorf("acme with enforcement: %+v, want its credits spent, then paused", a)
	}
	if over := a.Cost - 100*ledger.Micro; over < 0 || over > 16*ledger.Micro/6 {
		t.Errorf("acme spent %s of 100: the overshoot must be within one meter's burn (%s)", a.Cost, ledger.Money(16*ledger.Micro/6))
	}
	if a.Billed != a.Cost-a.Credits || a.Credits != 100*ledger.Micro {
		t.Errorf("acme billed %s, cost %s, credits %s", a.Billed, a.Cost, a.Credits)
	}
	b := find(off, "acme")
	if b.PausedSec != 0 || b.Cost != 6*4*16*ledger.Micro || b.Billed != b.Cost-100*ledger.Micro {
		t.Errorf("acme without enforcement: %+v, want its 24 hours of 8 h100 run (384.00) and billed beyond its credits", b)
	}
	if g := find(on, "globex"); g.Prepaid || g.PausedSec != 0 || g.Cost != 384*ledger.Micro {
		t.Errorf("globex, postpaid: %+v", g)
	}
	if len(on.Summary.Accounting.BurnDown) == 0 || on.Summary.Accounting.BurnDown[0].Credits != 100*ledger.Micro {
		t.Errorf("burn-down %+v", on.Summary.Accounting.BurnDown)
	}
}

// A commitment gives committed-tier quota for its term in the simulator:
// committed work runs within it.
func TestCommitmentsInTheSimulator(t *testing.T) {
	f := testFleet(t, "h100", 2)
	qs := []quota.Spec{{Name: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 16000}}}, {Name: "acme-q", Parent: "acme"}}
	j := gpuJob("c", 0, 3600, 1, 8)
	j.Tier = sched.TierCommitted
	more := gpuJob("more", 0, 3600, 1, 8)
	more.Tier = sched.TierCommitted
	acct := &Accounting{Commitments: []ledger.Commitment{{ID: "c1", Tenant: "acme", Type: "h100", Count: 8,
		StartMs: DefaultEpochSec * 1000, EndMs: (DefaultEpochSec + 30*86400) * 1000, PricePerHour: ledger.Micro}}}
	res := run(t, Config{Accounting: acct}, f, qs, j, more)
	tl := timelines(res)
	if len(tl) != 2 || tl[0].Status != StatusFinished || tl[1].Status != StatusFinished || tl[1].Start < 3600 {
		t.Fatalf("jobs %+v: want the second committed job to wait for the first (8 committed h100)", tl)
	}
	a := res.Summary.Accounting.Tenants[0]
	if a.AccelHours != 16 || a.Overage != 0 || a.Commitments != 16*ledger.Micro {
		t.Errorf("acme %+v: want 16 accelerator-hours, covered, and two hours of the commitment's fee", a)
	}
}
