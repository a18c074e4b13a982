package sim

import (
	"fmt"
	"sort"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/metering"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// Accounting runs the ledger beside the simulation, as the live server
// does: every usage record the core returns is metered (accelerator-time,
// energy, carbon, cost), commitments give their tenants committed-tier
// quota for their term, credits burn down and, unless NoEnforce, a tenant
// whose credits or monthly budget run out is paused and its running work
// stopped until a grant or the next month.
type Accounting struct {
	// Ledger holds the prices and sites (a prices file, or the
	// catalog's list prices).
	Ledger      ledger.Config
	Commitments []ledger.Commitment
	Grants      []ledger.Grant
	Budgets     []ledger.Budget
	// EpochSec is the Unix time of the virtual clock's 0, which the
	// commitments', grants' and carbon series' dates are on (default
	// DefaultEpochSec).
	EpochSec int64
	// MeterSec is how often running work is metered while credits or
	// budgets are in play (default DefaultMeterSec): credits burn, the
	// burn-down is sampled and enforcement acts at that cadence.
	// Without credits or budgets only the commitments' terms and the
	// records' ends meter.
	MeterSec int64
	// NoEnforce lets tenants run on when their credits or budget are
	// spent; what they use is billed.
	NoEnforce bool
}

// DefaultEpochSec is 2026-11-30T00:00:00Z, a Monday midnight: the
// generator's workloads start on one, so their weekdays fall on the
// calendar's.
const DefaultEpochSec = 1_795_996_800

// DefaultMeterSec is an hour of virtual time: the live server meters every
// minute, but a simulation of months with thousands of jobs running would
// spend most of its time metering; an hour keeps credits and the burn-down
// within an hour of the usage.
const DefaultMeterSec = 3600

// TenantAccount is a tenant's accounts over a run.
type TenantAccount struct {
	Tenant     string  `json:"tenant"`
	AccelHours float64 `json:"accelHours"`
	// EnergyKWh is facility energy; CO2Kg is counted on it.
	EnergyKWh   float64 `json:"energyKWh"`
	ITEnergyKWh float64 `json:"itEnergyKWh"`
	CO2Kg       float64 `json:"co2Kg"`
	// Cost is usage at the tiers' rates (committed-tier overage at the
	// on-demand rate); Commitments the commitments' fees over the run;
	// Credits what grants paid; Billed = Commitments + Cost - Credits.
	Cost        ledger.Money `json:"cost"`
	Overage     ledger.Money `json:"overage"`
	Commitments ledger.Money `json:"commitments"`
	Credits     ledger.Money `json:"credits"`
	Billed      ledger.Money `json:"billed"`
	// Prepaid tenants: what was granted and is left at the end, and when
	// the balance first reached zero (virtual seconds; -1 never).
	Prepaid     bool         `json:"prepaid"`
	Granted     ledger.Money `json:"granted"`
	CreditsLeft ledger.Money `json:"creditsLeft"`
	RanOutAt    int64        `json:"ranOutAt"`
	// Paused is how long, in virtual seconds, its admission was paused.
	PausedSec int64 `json:"pausedSec"`
}

// BurnPoint is a tenant's spendable credit at a time (virtual seconds).
type BurnPoint struct {
	T       int64        `json:"t"`
	Tenant  string       `json:"tenant"`
	Credits ledger.Money `json:"credits"`
}

// AccountResult is the accounting of a run.
type AccountResult struct {
	Currency    string          `json:"currency"`
	MinorDigits int             `json:"minorDigits"`
	EpochSec    int64           `json:"epochSec"`
	Tenants     []TenantAccount `json:"tenants"`
	// MeteredEnergyKWh is the facility energy of the usage records (the
	// allocated devices' draw); IdleEnergyKWh that of the devices nobody
	// held; the summary's energy is their sum.
	MeteredEnergyKWh float64 `json:"meteredEnergyKWh"`
	IdleEnergyKWh    float64 `json:"idleEnergyKWh"`
	// The same at the accelerators (IT energy, before PUE).
	MeteredITEnergyKWh float64 `json:"meteredITEnergyKWh"`
	IdleITEnergyKWh    float64 `json:"idleITEnergyKWh"`
	CO2Kg              float64 `json:"co2Kg"`
	// FleetCost is the fleet's asset cost over the run's days.
	FleetCost ledger.Money `json:"fleetCost"`
	Records   int          `json:"records"`
	Events    []string     `json:"events"`
	BurnDown  []BurnPoint  `json:"burnDown"`
}

// accountant is the engine's accounting.
type accountant struct {
	cfg      Accounting
	a        *metering.Accountant
	specs    []quota.Spec
	limited  bool // credits or budgets: meter running work periodically
	epochMs  int64
	records  int
	errs     int
	firstErr error
	events   []ledger.Event
	burn     []BurnPoint
	ranOut   map[string]int64
	paused   map[string]int64 // tenant -> when its current pause began
	pausedS  map[string]int64
	prepaid  map[string]bool
	meterAt  int64 // virtual time of the next evMeter, -1 none
	siteOf   []string

	// The closed records are metered on a goroutine of their own, a
	// batch at a time, so that metering overlaps the engine (a replay
	// has two cores: the engine's and the trace reader's, which leaves
	// room). The engine waits for it (sync) before it reads or meters
	// the ledger itself; between syncs only the worker touches it.
	batch  []sched.Usage
	work   chan []sched.Usage
	synced chan struct{}
}

// batchRecords is how many records go to the metering goroutine at once.
const batchRecords = 4096

// start starts the metering goroutine.
func (ac *accountant) start() {
	ac.work = make(chan []sched.Usage, 4)
	ac.synced = make(chan struct{})
	go func() {
		for b := range ac.work {
			if b == nil {
				ac.synced <- struct{}{}
				continue
			}
			ac.meterClosed(b)
		}
		close(ac.synced)
	}()
}

// sync waits until every record handed over is metered.
func (ac *accountant) sync() {
	if len(ac.batch) > 0 {
		ac.work <- ac.batch
		ac.batch = nil
	}
	ac.work <- nil
	<-ac.synced
}

// stop ends the metering goroutine (after its last batch).
func (ac *accountant) stop() {
	if ac.work == nil {
		return
	}
	if len(ac.batch) > 0 {
		ac.work <- ac.batch
		ac.batch = nil
	}
	close(ac.work)
	for range ac.synced {
	}
	ac.work = nil
}

func newAccountant(cfg Accounting, f *fleet.Fleet, specs []quota.Spec, siteLevel string) (*accountant, error) {
	if cfg.EpochSec == 0 {
		cfg.EpochSec = DefaultEpochSec
	}
	if cfg.MeterSec <= 0 {
		cfg.MeterSec = DefaultMeterSec
	}
	lc := cfg.Ledger
	if lc.Catalog == nil {
		lc.Catalog = f.Catalog
	}
	if lc.DefaultSite == nil {
		lc.DefaultSite = &ledger.Site{PUE: DefaultPUE}
	}
	l, err := ledger.New(lc)
	if err != nil {
		return nil, fmt.Errorf("accounting: %w", err)
	}
	for _, b := range cfg.Budgets {
		if err := l.SetBudget(b); err != nil {
			return nil, fmt.Errorf("accounting: %w", err)
		}
	}
	for _, c := range cfg.Commitments {
		if err := l.AddCommitment(c); err != nil {
			return nil, fmt.Errorf("accounting: %w", err)
		}
	}
	for _, g := range cfg.Grants {
		if err := l.AddGrant(g); err != nil {
			return nil, fmt.Errorf("accounting: %w", err)
		}
	}
	ac := &accountant{cfg: cfg, a: metering.New(l, cfg.MeterSec*1000), specs: specs, epochMs: cfg.EpochSec * 1000,
		limited: len(cfg.Grants) > 0 || len(cfg.Budgets) > 0, ranOut: map[string]int64{}, paused: map[string]int64{},
		pausedS: map[string]int64{}, prepaid: map[string]bool{}, meterAt: -1}
	for _, g := range cfg.Grants {
		ac.prepaid[g.Tenant] = true
	}
	return ac, nil
}

// SiteNames lists the site of each node of a fleet as the core names it
// (its domain at the site level, default zone), for a price table's or
// the fleet's site attributes.
func SiteNames(f *fleet.Fleet, siteLevel string) []string {
	lvl := 0
	if siteLevel == "" {
		siteLevel = "zone"
	}
	if i, err := f.LevelIndex(siteLevel); err == nil {
		lvl = i
	}
	out := make([]string, len(f.Nodes))
	for i := range f.Nodes {
		out[i] = f.DomainPath(f.Ancestor(i, lvl))
	}
	return out
}

// shift moves a record from the virtual clock to the calendar.
func (ac *accountant) shift(u *sched.Usage) {
	u.From += ac.cfg.EpochSec
	if u.End != sched.EndOpen {
		u.To += ac.cfg.EpochSec
	}
}

// closed hands the records of holdings that ended to the metering
// goroutine (the core makes every Ready's records anew: they are not
// changed after).
func (ac *accountant) closed(us []sched.Usage) {
	if len(us) == 0 {
		return
	}
	if ac.batch == nil {
		ac.batch = make([]sched.Usage, 0, batchRecords)
	}
	ac.batch = append(ac.batch, us...)
	if len(ac.batch) >= batchRecords {
		ac.work <- ac.batch
		ac.batch = nil
	}
}

// meterClosed meters a batch of closed records (on the metering
// goroutine).
func (ac *accountant) meterClosed(us []sched.Usage) {
	for i := range us {
		ac.shift(&us[i])
		if us[i].Type != "" {
			ac.records++
		}
	}
	ac.note(ac.a.Closed(us))
}

func (ac *accountant) note(err error) {
	if err != nil {
		ac.errs++
		if ac.firstErr == nil {
			ac.firstErr = err
		}
	}
}

// shiftedCore hands the accountant the core's holdings on the calendar.
type shiftedCore struct {
	h     metering.Holder
	epoch int64
}

func (s shiftedCore) Holdings(fn func(sched.Usage) bool) {
	s.h.Holdings(func(u sched.Usage) bool {
		u.From += s.epoch
		u.To += s.epoch
		return fn(u)
	})
}

// meter meters what runs up to virtual time t and returns the events for
// the core, and when to meter next (virtual seconds, -1: not needed).
func (ac *accountant) meter(core Scheduler, t int64) ([]sched.Event, int64) {
	ac.sync()
	var holder metering.Holder
	if h, ok := core.(metering.Holder); ok && ac.limited {
		holder = shiftedCore{h, ac.cfg.EpochSec}
	}
	nowMs := ac.epochMs + t*1000
	evs, err := ac.a.Meter(holder, ac.specs, nowMs)
	ac.note(err)
	ac.events = append(ac.events, ac.a.Ledger.Events()...)
	var out []sched.Event
	for _, ev := range evs {
		switch e := ev.(type) {
		case sched.AdmissionPaused:
			if ac.cfg.NoEnforce {
				continue
			}
			if _, ok := ac.paused[e.Tenant]; !ok && e.Queue == "" {
				ac.paused[e.Tenant] = t
			}
		case sched.AdmissionResumed:
			if ac.cfg.NoEnforce {
				continue
			}
			if since, ok := ac.paused[e.Tenant]; ok && e.Queue == "" {
				ac.pausedS[e.Tenant] += t - since
				delete(ac.paused, e.Tenant)
			}
		}
		out = append(out, ev)
	}
	if ac.limited {
		for _, tn := range sortedTenants(ac.prepaid) {
			st := ac.a.Ledger.Standing(tn, "", nowMs)
			ac.burn = append(ac.burn, BurnPoint{T: t, Tenant: tn, Credits: st.Credits})
			if _, ok := ac.ranOut[tn]; !ok && st.Credits <= 0 {
				ac.ranOut[tn] = t
			}
		}
	}
	next := int64(-1)
	if n := ac.a.Next(); n > nowMs && (ac.limited || len(ac.cfg.Commitments) > 0) {
		next = (n - ac.epochMs + 999) / 1000
		if !ac.limited {
			// Only a commitment's term can call: no periodic meter.
			if b := ac.a.Ledger.CommitmentBoundaries(nowMs, nowMs+10*365*86_400_000); len(b) > 0 {
				next = (b[0] - ac.epochMs + 999) / 1000
			} else {
				next = -1
			}
		}
	}
	return out, next
}

func sortedTenants(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// finish meters what still runs at the end of the run (virtual time t)
// and makes the result.
func (ac *accountant) finish(core Scheduler, t int64, e *engine) (*AccountResult, error) {
	ac.stop()
	if h, ok := core.(metering.Holder); ok {
		shiftedCore{h, ac.cfg.EpochSec}.Holdings(func(u sched.Usage) bool {
			u.End = sched.EndOpen
			if r, ok := metering.Record(&u); ok {
				_, err := ac.a.Ledger.Add(r)
				ac.note(err)
			}
			return true
		})
	}
	l := ac.a.Ledger
	nowMs := ac.epochMs + t*1000
	ac.note(l.Meter(nowMs))
	ac.events = append(ac.events, l.Events()...)
	for tn, since := range ac.paused {
		ac.pausedS[tn] += t - since
	}
	if ac.firstErr != nil {
		return nil, fmt.Errorf("accounting: %d records refused, the first: %w", ac.errs, ac.firstErr)
	}
	startMs := ac.epochMs + e.origin*1000
	day := int64(86_400_000)
	from, to := startMs-((startMs%day)+day)%day, nowMs-((nowMs%day)+day)%day+day
	cur := l.Currency()
	res := &AccountResult{Currency: cur.Code, MinorDigits: cur.MinorDigits, EpochSec: ac.cfg.EpochSec, Records: ac.records, BurnDown: ac.burn,
		Events: []string{}}
	caps, err := ac.capacity(e, from, to)
	if err != nil {
		return nil, err
	}
	rep, err := l.Report(ledger.Query{FromMs: from, ToMs: to, Period: ledger.Daily, By: []ledger.Dim{ledger.ByTenant}, Capacity: caps})
	if err != nil {
		return nil, fmt.Errorf("accounting: %w", err)
	}
	res.FleetCost = rep.FleetCost
	byTenant := map[string]*TenantAccount{}
	for _, tn := range e.tenants {
		byTenant[tn] = &TenantAccount{Tenant: tn, RanOutAt: -1}
	}
	for i := range rep.Rows {
		row := &rep.Rows[i]
		if row.Kind != ledger.Used || row.Tenant == "" {
			continue
		}
		ta := byTenant[row.Tenant]
		if ta == nil {
			ta = &TenantAccount{Tenant: row.Tenant, RanOutAt: -1}
			byTenant[row.Tenant] = ta
		}
		ta.AccelHours += row.AcceleratorHours()
		ta.EnergyKWh += row.FacilityKWh()
		ta.ITEnergyKWh += row.KWh()
		ta.CO2Kg += row.CarbonKg()
		ta.Cost += row.Charged()
		ta.Overage += row.OverageCharge
		res.MeteredEnergyKWh += row.FacilityKWh()
		res.MeteredITEnergyKWh += row.KWh()
		res.CO2Kg += row.CarbonKg()
	}
	for _, c := range l.Commitments() {
		if ta := byTenant[c.Tenant]; ta != nil {
			ta.Commitments += c.FeeBetween(startMs, nowMs)
		}
	}
	for _, ta := range byTenant {
		if ac.prepaid[ta.Tenant] {
			ta.Prepaid = true
			for _, g := range l.Grants(ta.Tenant) {
				ta.Granted += g.Amount
				ta.Credits += g.Burned
			}
			ta.CreditsLeft = l.Standing(ta.Tenant, "", nowMs).Credits
			if at, ok := ac.ranOut[ta.Tenant]; ok {
				ta.RanOutAt = at
			}
		}
		ta.Billed = ta.Commitments + ta.Cost - ta.Credits
		ta.PausedSec = ac.pausedS[ta.Tenant]
		ta.AccelHours, ta.EnergyKWh, ta.ITEnergyKWh, ta.CO2Kg = round6(ta.AccelHours), round6(ta.EnergyKWh), round6(ta.ITEnergyKWh), round6(ta.CO2Kg)
		res.Tenants = append(res.Tenants, *ta)
	}
	sort.Slice(res.Tenants, func(i, j int) bool { return res.Tenants[i].Tenant < res.Tenants[j].Tenant })
	for _, ev := range ac.events {
		res.Events = append(res.Events, ev.String())
	}
	// The devices nobody held drew their idle power (the engine's power
	// integral counts them); the metered records are the rest.
	for i := range e.classes {
		c := &e.classes[i]
		idle := c.idleW * (c.capInt - c.busyInt) / 1000 / 3.6e6
		res.IdleITEnergyKWh += idle
		res.IdleEnergyKWh += idle * c.pue
	}
	res.MeteredEnergyKWh, res.IdleEnergyKWh, res.CO2Kg = round6(res.MeteredEnergyKWh), round6(res.IdleEnergyKWh), round6(res.CO2Kg)
	res.MeteredITEnergyKWh, res.IdleITEnergyKWh = round6(res.MeteredITEnergyKWh), round6(res.IdleITEnergyKWh)
	return res, nil
}

// capacity is the fleet's accelerators over [from, to) for the asset cost.
func (ac *accountant) capacity(e *engine, from, to int64) ([]ledger.Capacity, error) {
	sum := map[[2]string]int{}
	for i, n := range e.nodes {
		if n.class < 0 {
			continue
		}
		sum[[2]string{e.classes[n.class].accel, ac.siteOf[i]}] += int(n.cap / 1000)
	}
	keys := make([][2]string, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
	out := make([]ledger.Capacity, 0, len(keys))
	for _, k := range keys {
		out = append(out, ledger.Capacity{Type: k[0], Site: k[1], Accelerators: sum[k], FromMs: from, ToMs: to})
	}
	return out, nil
}

// account adds the accounting to a run's result; the fleet's energy is
// then the metered records' and the idle devices'.
func (e *engine) account(r *Result) error {
	if e.acct == nil || !e.started {
		return nil
	}
	ar, err := e.acct.finish(e.core, e.now, e)
	if err != nil {
		return err
	}
	r.Summary.Accounting = ar
	r.Summary.EnergyKWh = round6(ar.MeteredEnergyKWh + ar.IdleEnergyKWh)
	r.Summary.ITEnergyKWh = round6(ar.MeteredITEnergyKWh + ar.IdleITEnergyKWh)
	return nil
}

// meterNow handles an evMeter: meters, applies what it calls for, and
// schedules the next.
func (e *engine) meterNow() error {
	evs, next := e.acct.meter(e.core, e.now)
	for _, ev := range evs {
		if err := e.apply(ev); err != nil {
			return fmt.Errorf("accounting: %T: %w", ev, err)
		}
		e.dirty = true
	}
	e.acct.meterAt = -1
	if next > e.now {
		e.scheduleMeter(next)
	}
	return nil
}

// scheduleMeter asks for a meter at t. A meter does not keep a run going:
// once nothing else can happen the run ends, and the work of a tenant
// paused then is pending at the end.
func (e *engine) scheduleMeter(t int64) {
	e.acct.meterAt = t
	e.q.push(event{t: t, kind: evMeter, job: -1})
}
