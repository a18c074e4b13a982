package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/store"
)

// acctPrices: h100 at 2.00 an hour on demand, 0.80 spot; a site "eu/z1"
// with a PUE of 1.2 and 250 gCO2e/kWh.
func acctPrices(c *Config) {
	c.Accounting.Ledger = ledger.Config{
		Prices: ledger.Prices{Types: map[string]ledger.Rate{"h100": {OnDemand: 2 * ledger.Micro, Spot: 800_000, Committed: 1_500_000, Asset: 1_100_000}}},
		Sites:  map[string]ledger.Site{"eu/z1": {PUE: 1.2, CarbonGPerKWh: 250}},
	}
	c.Accounting.MeterInterval = time.Minute
	// The fake clock jumps by hours between heartbeats.
	c.HeartbeatTimeout = 10_000 * time.Hour
}

// euNode registers a node with 8 h100 at site eu/z1.
func (h *harness) euNode(name string) {
	h.t.Helper()
	err := h.admin.Register(h.ctx(), api.NodeInfo{Name: name, Address: name + ".local", Accel: "h100", Count: 8,
		CPUMilli: 64000, MemoryMiB: 512 << 10, Path: map[string]string{"region": "eu", "zone": "z1", "rack": "r1"}})
	if err != nil {
		h.t.Fatal(err)
	}
}

// restartOn stops the harness's server and starts another on the same
// data directory and clock.
func (h *harness) restartOn(opts ...option) *harness {
	h.t.Helper()
	h.stop()
	clk := h.clock
	h2 := start(h.t, h.dir, append(opts, func(c *Config) { c.Now = clk.Now })...)
	h2.clock = clk
	h2.admin = h2.newClient(h.admin.Token)
	return h2
}

const wholeNode = `name: train
queue: acme-train
kind: training
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sleep, "100000"]
`

// runJob submits a job and has its node start it.
func (h *harness) runJob(c *api.Client, doc, node string) (api.Job, api.ReplicaKey) {
	h.t.Helper()
	j := h.submit(c, doc)
	h.sync()
	resp := h.beat(node)
	if len(resp.Run) != 1 {
		h.t.Fatalf("node %s runs %+v, want the job's one replica", node, resp.Run)
	}
	k := resp.Run[0].ReplicaKey
	h.beat(node, running(k))
	return j, k
}

// heldMs is what a job's bound replicas held up to their ends (now for
// those still bound), from the job record alone: bound time x devices x
// milli, in milli-accelerator-milliseconds.
func heldMs(j api.Job, end time.Time) int64 {
	var ms int64
	for _, r := range j.Replicas {
		milli := int64(r.Milli)
		if milli == 0 {
			milli = 1000
		}
		ms += end.Sub(r.Bound).Milliseconds() * int64(len(r.Devices)) * milli
	}
	return ms
}

// The ledger meters a running job up to now, exactly its bound time x
// shape, and keeps doing so across restarts while it runs and after it
// ends: the open holding is metered afresh from its start after each
// restart, never twice, and its closed record once.
func TestMeteringIsExactlyTheBoundTimeAcrossRestarts(t *testing.T) {
	h := start(t, "", acctPrices)
	acme := h.client("acme")
	h.euNode("n1")
	j, k := h.runJob(acme, wholeNode, "n1")
	bound := h.job(j.ID)
	if len(bound.Replicas) != 1 || bound.Replicas[0].Bound.IsZero() {
		t.Fatalf("job after bind: %+v", bound.Replicas)
	}
	check := func(h *harness, what string, end time.Time, closed bool) {
		t.Helper()
		ju, err := h.admin.JobUsage(h.ctx(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := heldMs(bound, end)
		if ju.AcceleratorMilliMs != want || ju.HeldMilliMs != want {
			t.Errorf("%s: metered %d, held by the records %d, want %d (%.4f accelerator-hours from the bind)", what, ju.AcceleratorMilliMs, ju.HeldMilliMs, want, float64(want)/3.6e9)
		}
		if len(ju.Records) != 1 || (ju.Records[0].To != nil) != closed {
			t.Errorf("%s: records %+v, want one, closed %v", what, ju.Records, closed)
		}
	}
	h.clock.Advance(time.Hour)
	check(h, "after an hour", h.clock.Now(), false)

	h = h.restartOn(acctPrices)
	h.clock.Advance(30 * time.Minute)
	h.beat("n1", running(k))
	check(h, "restarted while it runs, half an hour later", h.clock.Now(), false)

	h = h.restartOn(acctPrices)
	h.clock.Advance(15 * time.Minute)
	h.beat("n1", exited(k, 0, ""))
	end := h.clock.Now()
	if got := h.job(j.ID); got.State != store.Succeeded {
		t.Fatalf("job after its replica exited: %q", got.State)
	}
	check(h, "ended", end, true)
	h.clock.Advance(time.Hour)
	check(h, "an hour after its end", end, true)

	h = h.restartOn(acctPrices)
	check(h, "restarted after its end", end, true)
	rep, err := h.admin.Usage(h.ctx(), api.UsageQuery{Tenant: "acme", From: end.Truncate(24 * time.Hour), To: end.Truncate(24 * time.Hour).Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// 1h45m of 8 h100 at 2.00: 28.00; 14 accelerator-hours at 0.7 kW x
	// 1.2: 11.76 kWh, at 250 g/kWh 2.94 kg.
	if rep.Total.AcceleratorHours != 14 || rep.Total.Cost != 28*api.Money(ledger.Micro) || rep.Total.EnergyKWh != 11.76 || rep.Total.CO2Kg != 2.94 {
		t.Errorf("acme's report total %+v, want 14 accelerator-hours, 28.00, 11.76 kWh, 2.94 kg", rep.Total)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Site != "eu/z1" || rep.Rows[0].Tier != "on-demand" || rep.Rows[0].Queue != "acme-train" {
		t.Errorf("rows %+v", rep.Rows)
	}
}

// When a prepaid tenant's balance reaches zero its admission is paused
// and its running job stopped, with a reason giving the balance; the
// overshoot past zero is within one metering interval's burn; credits
// granted again resume it.
func TestCreditsRunOutStopAndResume(t *testing.T) {
	h := start(t, "", acctPrices)
	acme := h.client("acme")
	h.euNode("n1")
	g, err := h.admin.Grant(h.ctx(), api.CreateGrant{Tenant: "acme", Amount: "10"})
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != "acme-1" || g.Amount != 10*api.Money(ledger.Micro) || g.State != "active" || !g.Start.Equal(h.clock.Now()) {
		t.Errorf("grant %+v", g)
	}
	j, k := h.runJob(acme, wholeNode, "n1")
	// 8 h100 at 2.00: 16.00 an hour; 10.00 lasts 37.5 minutes.
	const step = 10 * time.Second
	var stoppedAt time.Time
	for i := 0; i < 400 && stoppedAt.IsZero(); i++ {
		h.clock.Advance(step)
		h.sync()
		if got := h.job(j.ID); got.State != store.Running {
			stoppedAt = h.clock.Now()
		}
	}
	if stoppedAt.IsZero() {
		t.Fatal("the job was never stopped")
	}
	h.beat("n1", exited(k, -1, "SIGTERM"))
	cl, err := acme.Credits(h.ctx(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Balances) != 1 {
		t.Fatalf("balances %+v", cl.Balances)
	}
	b := cl.Balances[0]
	want := "credits of acme are spent (0.00 USD left of 10.00 USD granted); grant credits to resume"
	if b.Credits != 0 || b.Paused != want {
		t.Errorf("balance %+v, want 0 left and paused: %s", b, want)
	}
	burnPerInterval := api.Money(16 * ledger.Micro / 60)
	over := b.Spent - 10*api.Money(ledger.Micro)
	t.Logf("stopped %s after the bind; spent %s of 10 (overshoot %s; one interval's burn is %s)", stoppedAt.Sub(h.job(j.ID).Replicas[0].Bound), b.Spent.Decimal(), over.Decimal(), burnPerInterval.Decimal())
	if over < 0 || over > burnPerInterval {
		t.Errorf("overshoot %s: want 0..%s (one interval's burn)", over.Decimal(), burnPerInterval.Decimal())
	}
	var kinds []string
	for _, e := range cl.Events {
		kinds = append(kinds, fmt.Sprintf("%s %d", e.Kind, e.Percent))
	}
	if strings.Join(kinds, ", ") != "grant-threshold 50, grant-threshold 80, grant-threshold 100" {
		t.Errorf("events %v", kinds)
	}
	got := h.job(j.ID)
	if got.State != store.Pending || got.Explanation == nil || got.Explanation.Reason != want || got.Explanation.Code != "paused" {
		t.Errorf("the stopped job: %q %+v, want pending: %s", got.State, got.Explanation, want)
	}
	if body := string(h.scrape()); !strings.Contains(body, `gpufleet_admission_paused{cause="credits",queue="",tenant="acme"} 1`) ||
		!strings.Contains(body, `gpufleet_grant_burned_ratio{grant="acme-1",tenant="acme"} 1`) ||
		!strings.Contains(body, `gpufleet_credit_events_total{kind="grant-threshold",tenant="acme"} 3`) {
		t.Errorf("metrics lack the pause, the burn or the events:\n%s", grep(body, "gpufleet_(admission|grant|credit)"))
	}
	// A restart keeps the pause.
	h = h.restartOn(acctPrices)
	h.beat("n1")
	h.sync()
	if got := h.job(j.ID); got.State != store.Pending || got.Explanation == nil || got.Explanation.Reason != want {
		t.Errorf("after a restart: %q %+v, want still paused", got.State, got.Explanation)
	}
	if _, err := h.admin.Grant(h.ctx(), api.CreateGrant{Tenant: "acme", Amount: "5", Kind: "promotional"}); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if resp := h.beat("n1"); len(resp.Run) != 1 {
		t.Errorf("after a new grant the job should run again: %+v", resp.Run)
	}
}

// A monthly budget stops a postpaid tenant's work when its spend reaches
// it; raising the budget resumes it.
func TestBudgetStopsAPostpaidTenant(t *testing.T) {
	h := start(t, "", acctPrices)
	acme := h.client("acme")
	h.euNode("n1")
	if _, err := h.admin.SetBudget(h.ctx(), "acme", "4"); err != nil {
		t.Fatal(err)
	}
	j, _ := h.runJob(acme, wholeNode, "n1")
	for i := 0; i < 200 && h.job(j.ID).State == store.Running; i++ {
		h.clock.Advance(10 * time.Second)
		h.sync()
	}
	got := h.job(j.ID)
	if got.State == store.Running || got.Explanation == nil || !strings.HasPrefix(got.Explanation.Reason, "the monthly budget of acme is spent (4.00 USD of 4.00 USD in 2027-01)") {
		t.Fatalf("job: %q %+v, want stopped by the budget", got.State, got.Explanation)
	}
	bl, err := acme.Budgets(h.ctx())
	if err != nil || len(bl.Budgets) != 1 || bl.Budgets[0].Monthly != 4*api.Money(ledger.Micro) {
		t.Errorf("budgets %+v, %v", bl, err)
	}
	if _, err := h.admin.SetBudget(h.ctx(), "acme", "0"); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if got := h.job(j.ID); got.Explanation != nil && strings.Contains(got.Explanation.Reason, "budget") {
		t.Errorf("after the budget was removed the job still waits for it: %+v", got.Explanation)
	}
	for name, tc := range map[string]struct {
		tenant, amount string
		status         int
	}{
		"negative":       {"acme", "-1", 422},
		"an exponent":    {"acme", "1e3", 422},
		"unknown tenant": {"nosuch", "1", 404},
		"a queue":        {"acme-train", "1", 404},
	} {
		if _, err := h.admin.SetBudget(h.ctx(), tc.tenant, tc.amount); apiStatus(err) != tc.status {
			t.Errorf("%s: %v, want status %d", name, err, tc.status)
		}
	}
}

// A commitment gives its tenant committed-tier quota for its term: a
// committed job runs within it; at the term's end the running job keeps
// running, charged as overage at the on-demand rate, and new committed
// work waits.
func TestCommitmentQuotaForItsTerm(t *testing.T) {
	h := start(t, "", acctPrices)
	acme := h.client("acme")
	h.euNode("n1")
	h.euNode("n2")
	now := h.clock.Now()
	c, err := h.admin.CreateCommitment(h.ctx(), api.CreateCommitment{ID: "acme-2027", Tenant: "acme", Type: "h100", Count: 8,
		End: now.Add(2 * time.Hour), PricePerHour: "1.50"})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != "active" || c.Fee != 24*api.Money(ledger.Micro) {
		t.Errorf("commitment %+v, want active with a fee of 8 x 2 h x 1.50 = 24", c)
	}
	committed := strings.Replace(wholeNode, "kind: training", "kind: training\ntier: committed", 1)
	j, _ := h.runJob(acme, committed, "n1")
	more := h.submit(acme, strings.Replace(committed, "name: train", "name: more", 1))
	h.sync()
	if got := h.job(more.ID); got.State != store.Pending || got.Explanation == nil || !strings.Contains(got.Explanation.Reason, "h100:committed") {
		t.Errorf("a second committed job: %q %+v, want pending over the committed quota", got.State, got.Explanation)
	}
	h.clock.Advance(3 * time.Hour)
	h.sync()
	if got := h.job(j.ID); got.State != store.Running {
		t.Errorf("the committed job at the term's end: %q, want still running", got.State)
	}
	if got := h.job(more.ID); got.State != store.Pending {
		t.Errorf("the second committed job after the term: %q, want pending", got.State)
	}
	cl, err := acme.Commitments(h.ctx(), "")
	if err != nil || len(cl.Commitments) != 1 || cl.Commitments[0].State != "ended" {
		t.Errorf("commitments %+v, %v", cl, err)
	}
	rep, err := acme.Usage(h.ctx(), api.UsageQuery{By: []string{"tenant", "tier"}})
	if err != nil {
		t.Fatal(err)
	}
	// 3 hours of 8 committed h100: 2 covered (16 accelerator-hours), the
	// last hour overage at 2.00 (8 x 2.00 = 16.00).
	var used *api.UsageRow
	for i := range rep.Rows {
		if rep.Rows[i].Kind == "used" {
			used = &rep.Rows[i]
		}
	}
	if used == nil || used.AcceleratorHours != 24 || used.CommittedHours != 16 || used.Overage != 16*api.Money(ledger.Micro) {
		t.Errorf("committed usage %+v, want 24 accelerator-hours, 16 covered, 16.00 overage", used)
	}
	inv, err := acme.Invoice(h.ctx(), "", "2027-01")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Commitments != 24*api.Money(ledger.Micro) || inv.Usage != 16*api.Money(ledger.Micro) || inv.Billed != 40*api.Money(ledger.Micro) || inv.Final {
		t.Errorf("invoice %+v, want the fee 24.00, overage 16.00, 40.00 billed, not final", inv)
	}
	for name, tc := range map[string]struct {
		c      api.CreateCommitment
		status int
		field  string
	}{
		"taken id":     {api.CreateCommitment{ID: "acme-2027", Tenant: "acme", Type: "h100", Count: 1, End: now.Add(24 * time.Hour), PricePerHour: "1"}, 409, ""},
		"past end":     {api.CreateCommitment{ID: "old", Tenant: "acme", Type: "h100", Count: 1, End: now.Add(-time.Hour), PricePerHour: "1"}, 422, "end"},
		"unknown type": {api.CreateCommitment{ID: "x", Tenant: "acme", Type: "tpu9", Count: 1, End: now.Add(24 * time.Hour), PricePerHour: "1"}, 422, "type"},
		"no tenant":    {api.CreateCommitment{ID: "x", Tenant: "nosuch", Type: "h100", Count: 1, End: now.Add(24 * time.Hour), PricePerHour: "1"}, 422, "tenant"},
		"zero count":   {api.CreateCommitment{ID: "x", Tenant: "acme", Type: "h100", End: now.Add(24 * time.Hour), PricePerHour: "1"}, 422, "count"},
		"bad price":    {api.CreateCommitment{ID: "x", Tenant: "acme", Type: "h100", Count: 1, End: now.Add(24 * time.Hour), PricePerHour: "1.0000001"}, 422, "pricePerHour"},
	} {
		_, err := h.admin.CreateCommitment(h.ctx(), tc.c)
		var e *api.Error
		if !asErr(err, &e) || e.Status != tc.status || e.Field != tc.field {
			t.Errorf("%s: %v, want status %d naming field %q", name, err, tc.status, tc.field)
		}
	}
}

// Spot work is charged at the spot rate and taken back with the fleet's
// spot notice by work of another tier.
func TestSpotWorkIsTakenBackWithTheSpotNotice(t *testing.T) {
	h := start(t, "", acctPrices, func(c *Config) { c.Sched.SpotNoticeSec = 45; c.Sched.PreemptAfterSec = -1 })
	spotQuota := map[string]*api.Quota{"h100:spot": {Nominal: 8}}
	if _, err := h.admin.UpdateTenant(h.ctx(), "acme", api.UpdateTenant{Quotas: spotQuota}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.UpdateQueue(h.ctx(), "acme-train", api.UpdateQueue{Quotas: spotQuota}); err != nil {
		t.Fatal(err)
	}
	h.euNode("n1")
	spot := strings.Replace(wholeNode, "kind: training", "kind: batch\ntier: spot", 1)
	j, k := h.runJob(h.client("acme"), spot, "n1")
	h.clock.Advance(time.Hour)
	h.submit(h.client("globex"), strings.NewReplacer("name: train", "name: urgent", "acme-train", "globex-batch").Replace(wholeNode))
	h.sync()
	resp := h.beat("n1", running(k))
	if len(resp.Stop) != 1 || resp.Stop[0].DeadlineUnixMilli != h.clock.Now().Add(45*time.Second).UnixMilli() {
		t.Fatalf("stop orders %+v, want the spot job stopped with 45 s of notice", resp.Stop)
	}
	h.clock.Advance(45 * time.Second)
	h.sync()
	h.beat("n1", exited(k, -1, "SIGTERM"))
	h.sync()
	ju, err := h.admin.JobUsage(h.ctx(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	// An hour and 45 s of 8 h100 at 0.80.
	wantMs := int64(3645) * 1000 * 8 * 1000
	if ju.AcceleratorMilliMs != wantMs || ju.Cost != api.Money(8*800_000*3645/3600) || len(ju.Records) != 1 || ju.Records[0].Tier != "spot" || ju.Records[0].End != "preempted" {
		t.Errorf("spot job usage %+v, want %d milli-ms at 0.80, preempted", ju, wantMs)
	}
}

// Grants are checked field by field, and only admins may make them.
func TestGrantRequests(t *testing.T) {
	h := start(t, "", acctPrices)
	now := h.clock.Now()
	past := now.Add(-24 * time.Hour)
	g, err := h.admin.Grant(h.ctx(), api.CreateGrant{ID: "launch", Tenant: "acme", Queue: "acme-train", Kind: "promotional", Amount: "500.25", Start: &past})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Start.Equal(now) || g.Queue != "acme-train" || g.Kind != "promotional" || g.Amount.Decimal() != "500.25" {
		t.Errorf("grant %+v: want a start of now (not the past), for acme-train, 500.25", g)
	}
	for name, tc := range map[string]struct {
		g      api.CreateGrant
		status int
		field  string
	}{
		"taken id":       {api.CreateGrant{ID: "launch", Tenant: "acme", Amount: "1"}, 409, ""},
		"no amount":      {api.CreateGrant{Tenant: "acme"}, 422, "amount"},
		"zero":           {api.CreateGrant{Tenant: "acme", Amount: "0"}, 422, "amount"},
		"seven decimals": {api.CreateGrant{Tenant: "acme", Amount: "0.0000001"}, 422, "amount"},
		"negative":       {api.CreateGrant{Tenant: "acme", Amount: "-3"}, 422, "amount"},
		"kind":           {api.CreateGrant{Tenant: "acme", Amount: "1", Kind: "gift"}, 422, "kind"},
		"no tenant":      {api.CreateGrant{Tenant: "nosuch", Amount: "1"}, 422, "tenant"},
		"other's queue":  {api.CreateGrant{Tenant: "acme", Queue: "globex-batch", Amount: "1"}, 422, "queue"},
		"expired":        {api.CreateGrant{Tenant: "acme", Amount: "1", Expires: &past}, 422, "expires"},
	} {
		_, err := h.admin.Grant(h.ctx(), tc.g)
		var e *api.Error
		if !asErr(err, &e) || e.Status != tc.status || e.Field != tc.field {
			t.Errorf("%s: %v, want status %d naming field %q", name, err, tc.status, tc.field)
		}
	}
	cl, err := h.client("acme").Credits(h.ctx(), "")
	if err != nil || len(cl.Grants) != 1 || len(cl.Balances) != 2 {
		t.Fatalf("acme's credits %+v, %v: want its grant, its balance and its queue's", cl, err)
	}
	data, _ := json.Marshal(cl.Grants[0])
	if !strings.Contains(string(data), `"amount":500.25`) {
		t.Errorf("amounts travel as exact decimal numbers: %s", data)
	}
}

func grep(text, re string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, strings.Split(re, "_")[0]) && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// beatWith is a heartbeat carrying the devices' utilization readings.
func (h *harness) beatWith(node string, us []api.DeviceUtilization, reps ...api.ReplicaStatus) {
	h.t.Helper()
	if _, err := h.admin.Heartbeat(h.ctx(), api.HeartbeatRequest{Node: node, Replicas: reps, Utilization: us}); err != nil {
		h.t.Fatal(err)
	}
}

// The agents' utilization readings set the energy of the devices they
// name: idle + (board - idle) x utilization, from the reading on; a
// device with no reading, or whose reading has grown older than the
// sample TTL, counts at board power. Accelerator-time and cost do not
// change.
func TestUtilizationReadingsSetTheEnergy(t *testing.T) {
	h := start(t, "", acctPrices)
	acme := h.client("acme")
	h.euNode("n1")
	j, k := h.runJob(acme, wholeNode, "n1")
	// Devices 0-3 idle, 4-5 at half, 6 at full; 7 sends no reading.
	var us []api.DeviceUtilization
	for d, pct := range []int{0, 0, 0, 0, 50, 50, 100} {
		us = append(us, api.DeviceUtilization{Device: d, Percent: pct})
	}
	h.beatWith("n1", us, running(k))
	for range 15 { // an hour, a reading every 4 minutes (the TTL is 5)
		h.clock.Advance(4 * time.Minute)
		h.beatWith("n1", us, running(k))
	}
	ju, err := h.admin.JobUsage(h.ctx(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	// An h100 is 700 W at full use and 70 W idle: 4 x 70 + 2 x 385 +
	// 2 x 700 = 2,450 W for an hour, x 1.2 PUE: 2.94 kWh; at 250 g/kWh
	// 0.735 kg. At board power it would be 6.72 kWh.
	if ju.AcceleratorHours != 8 || ju.EnergyKWh != 2.94 || ju.CO2Kg != 0.735 || ju.Cost != 16*api.Money(ledger.Micro) {
		t.Errorf("an hour with readings: %.4f accelerator-hours, %.4f kWh, %.4f kg, cost %v; want 8, 2.94, 0.735, 16.00", ju.AcceleratorHours, ju.EnergyKWh, ju.CO2Kg, ju.Cost)
	}
	// The site's power draw now is the readings' too.
	power := func(what, want string) {
		t.Helper()
		if body := string(h.scrape()); !strings.Contains(body, want) {
			t.Errorf("%s: no %s in the metrics", what, want)
		}
	}
	power("with readings", `gpufleet_site_power_watts{meter="it",site="eu/z1"} 2450`)
	power("with readings", `gpufleet_site_power_watts{meter="facility",site="eu/z1"} 2940`)
	// The agent stops reading: after the TTL the devices count at board
	// power again. Another hour: 5 minutes at the readings' 2,450 W, 55
	// at 5,600 W, x 1.2: 0.245 + 6.16 = 6.405 kWh more.
	h.clock.Advance(time.Hour)
	h.beat("n1", running(k))
	if ju, err = h.admin.JobUsage(h.ctx(), j.ID); err != nil {
		t.Fatal(err)
	}
	if ju.AcceleratorHours != 16 || ju.EnergyKWh != 9.345 {
		t.Errorf("another hour without readings: %.4f accelerator-hours, %.4f kWh; want 16, 9.345", ju.AcceleratorHours, ju.EnergyKWh)
	}
	power("readings out of date", `gpufleet_site_power_watts{meter="it",site="eu/z1"} 5600`)
	// A reading for a device out of range is refused whole, naming it.
	_, err = h.admin.Heartbeat(h.ctx(), api.HeartbeatRequest{Node: "n1", Utilization: []api.DeviceUtilization{{Device: 0, Percent: 120}}})
	if err == nil || !strings.Contains(err.Error(), "utilization[0].percent") {
		t.Errorf("a reading of 120%%: %v, want a refusal naming utilization[0].percent", err)
	}
}

// A running job whose bindings the rebuilt core refuses at a restart (its
// node came back smaller while the server was away) is requeued, and the
// time it held up to the restart is metered: the core never held it again,
// so the server closes its record itself, once, across further restarts.
func TestJobRequeuedAtRestoreIsMetered(t *testing.T) {
	h := start(t, "", acctPrices)
	acme := h.client("acme")
	h.euNode("n1")
	j, _ := h.runJob(acme, wholeNode, "n1")
	h.euNode("n2") // where the job could run instead
	bound := h.job(j.ID)
	h.clock.Advance(2 * time.Hour)
	end := h.clock.Now()
	h.stop()
	db, err := store.Open(h.dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := db.Nodes()
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes %+v, %v", nodes, err)
	}
	for _, n := range nodes {
		if n.Info.Name == "n1" {
			n.Info.Count = 4 // the job holds devices 0-7
			if err := db.Commit(store.Change{Nodes: []*store.Node{&n}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	clk, token := h.clock, h.admin.Token
	for i := range 2 {
		h = start(t, h.dir, acctPrices, func(c *Config) { c.Now = clk.Now })
		h.clock, h.admin = clk, h.newClient(token)
		if got := h.job(j.ID); got.State != store.Pending {
			t.Fatalf("restart %d: job %q, want pending (requeued)", i, got.State)
		}
		ju, err := h.admin.JobUsage(h.ctx(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := heldMs(bound, end)
		if ju.AcceleratorMilliMs != want || len(ju.Records) != 1 || ju.Records[0].To == nil || ju.Records[0].End != "requeued" {
			t.Errorf("restart %d: metered %d in %+v, want %d (two hours of 8 h100) in one record ended requeued", i, ju.AcceleratorMilliMs, ju.Records, want)
		}
		h.clock.Advance(time.Hour)
		h.stop()
	}
}
