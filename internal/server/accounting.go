package server

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/metering"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Live accounting. The loop owns one ledger (package ledger) and drives it
// with package metering, as the simulator does:
//
//   - every usage record the core returns (a replica's holding that ended)
//     goes to the ledger and, in the same store transaction as the job
//     state changes of that loop iteration, to the store;
//   - every metering interval (and sooner when a balance would run out
//     before then) the running replicas are metered up to now, so credits
//     burn in real time; the ledger's standing then pauses the admission
//     of a tenant whose credits or budget are spent (its running work gets
//     its notice and is requeued) and resumes it when they are topped up,
//     and the commitments in force set each tenant's committed-tier quota;
//   - at a restart the ledger is rebuilt from the store (budgets,
//     commitments, grants, then the closed records in commit order), the
//     running replicas are read back from the rebuilt core, metered from
//     their start, and the pauses applied again before the first cycle.
//
// A holding's records all carry one ID (metering.RecordID), so however
// many times the server is killed, each of its milliseconds is metered
// once: the closed record is durable exactly when the job state that ended
// it is, and an open holding metered before a crash is metered afresh from
// its start after it, the ledger having forgotten the first.

// Accounting configures the live accounting.
type Accounting struct {
	// Ledger holds the price table, the sites' PUE, carbon intensity and
	// price multipliers, the default tier and the event thresholds (a
	// prices file, spec.ParsePrices). Sites it does not list get its
	// DefaultSite, or when it has none a PUE of DefaultSitePUE and no
	// carbon intensity: every record is metered.
	Ledger ledger.Config
	// MeterInterval is how often running work is metered (default 60s).
	MeterInterval time.Duration
}

// DefaultSitePUE is the PUE of a site the price table does not describe:
// the simulator's default PUE (sim.DefaultPUE), a typical figure for a
// modern air-cooled data center.
const DefaultSitePUE = 1.2

// maxEvents bounds the threshold events kept for the API (the newest).
const maxEvents = 10_000

type accounts struct {
	acct    *metering.Accountant
	cur     ledger.Currency
	cat     *fleet.Catalog
	known   map[string]bool // sites the price table lists
	sites   map[string]ledger.Site
	defSite ledger.Site
	events  []ledger.Event
	grants  map[string]store.Grant
	commits map[string]store.Commitment
	m       *accountMetrics
	// usageSeq is the place in commit order of the last usage record
	// handed to the loop's commit (store.UsageKey).
	usageSeq uint64
	// siteLevel is the topology level that names a record's site.
	siteLevel int
	// metered is when the running work was last metered.
	metered time.Time
	// pruned is when utilization readings were last pruned.
	pruned time.Time
	// readings are each node's latest utilization reading per device, for
	// the site power gauge; they count for sampleTTL.
	readings  map[string]map[int]reading
	sampleTTL time.Duration
}

// reading is a device's utilization when it was read.
type reading struct {
	percent int
	at      time.Time
}

// openAccounts builds the ledger from the store: budgets, commitments and
// grants, then every closed usage record in the order it was committed.
// Grants are added before the records: a grant's start is never before it
// was made, so no record committed before it reaches into its validity.
func openAccounts(s *Server) (*accounts, error) {
	cfg := s.cfg.Accounting.Ledger
	if cfg.Catalog == nil {
		cfg.Catalog = fleet.DefaultCatalog()
	}
	if cfg.DefaultSite == nil {
		cfg.DefaultSite = &ledger.Site{PUE: DefaultSitePUE}
	}
	l, err := ledger.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("accounting: %w", err)
	}
	a := &accounts{acct: metering.New(l, s.cfg.Accounting.MeterInterval.Milliseconds()), cur: l.Currency(), cat: cfg.Catalog,
		known: map[string]bool{}, grants: map[string]store.Grant{}, commits: map[string]store.Commitment{},
		sites: cfg.Sites, defSite: *cfg.DefaultSite, readings: map[string]map[int]reading{},
		sampleTTL: time.Duration(cmp.Or(cfg.SampleTTLMs, ledger.DefaultSampleTTLMs)) * time.Millisecond}
	for name := range cfg.Sites {
		a.known[name] = true
	}
	a.siteLevel = siteLevelOf(s.cfg.Sched.SiteLevel)
	a.m = s.acctMetrics
	budgets, err := store.Budgets(s.db)
	if err != nil {
		return nil, fmt.Errorf("accounting: budgets: %w", err)
	}
	for _, b := range budgets {
		if err := l.SetBudget(ledger.Budget{Tenant: b.Tenant, Monthly: ledger.Money(b.Monthly)}); err != nil {
			s.log.Error("accounting: stored budget refused", "tenant", b.Tenant, "err", err)
		}
	}
	commits, err := store.Commitments(s.db)
	if err != nil {
		return nil, fmt.Errorf("accounting: commitments: %w", err)
	}
	for _, c := range commits {
		if err := l.AddCommitment(ledgerCommitment(c)); err != nil {
			s.log.Error("accounting: stored commitment refused", "commitment", c.ID, "err", err)
			continue
		}
		a.commits[c.ID] = c
	}
	grants, err := store.Grants(s.db)
	if err != nil {
		return nil, fmt.Errorf("accounting: grants: %w", err)
	}
	for _, g := range grants {
		lg, err := ledgerGrant(g)
		if err == nil {
			err = l.AddGrant(lg)
		}
		if err != nil {
			s.log.Error("accounting: stored grant refused", "grant", g.ID, "err", err)
			continue
		}
		a.grants[g.ID] = g
	}
	n, refused := 0, 0
	err = store.Usage(s.db, func(seq uint64, r *store.UsageRecord) bool {
		n++
		a.usageSeq = max(a.usageSeq, seq)
		u := coreUsage(r)
		if err := a.acct.Closed([]sched.Usage{u}); err != nil {
			refused++
			if refused <= 10 {
				s.log.Error("accounting: stored usage record refused", "id", r.ID, "err", err)
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("accounting: usage records: %w", err)
	}
	// What the replay raised happened before the restart: kept for the
	// API, not told again.
	a.keepEvents(l.Events())
	if n > 0 {
		s.log.Info("accounting: ledger rebuilt", "records", n, "refused", refused, "grants", len(a.grants), "commitments", len(a.commits))
	}
	return a, nil
}

func siteLevelOf(name string) int {
	if name == "" {
		name = "zone"
	}
	if i := slices.Index(fleet.DefaultLevels, name); i >= 0 {
		return i
	}
	return 0
}

func ledgerCommitment(c store.Commitment) ledger.Commitment {
	return ledger.Commitment{ID: c.ID, Tenant: c.Tenant, Type: c.Type, Site: c.Site, Count: c.Count, StartMs: c.StartMs, EndMs: c.EndMs,
		PricePerHour: ledger.Money(c.PricePerHour)}
}

func ledgerGrant(g store.Grant) (ledger.Grant, error) {
	k, err := ledger.ParseGrantKind(g.Kind)
	if err != nil {
		return ledger.Grant{}, err
	}
	return ledger.Grant{ID: g.ID, Tenant: g.Tenant, Queue: g.Queue, Kind: k, Amount: ledger.Money(g.Amount), StartMs: g.StartMs, ExpiresMs: g.ExpiresMs}, nil
}

var endOf = map[string]sched.EndReason{
	"finished": sched.EndFinished, "failed": sched.EndFailed, "cancelled": sched.EndCancelled,
	"preempted": sched.EndPreempted, "shrunk": sched.EndShrunk, "requeued": sched.EndRequeued,
}

// coreUsage reads a stored record back as the core reported it, so that
// metering.Record gives the ledger the very record it had before.
func coreUsage(r *store.UsageRecord) sched.Usage {
	core := r.Unit
	if core == "" {
		core = r.Job
	}
	kind, _ := sched.ParseKind(r.Kind)
	return sched.Usage{Job: sched.JobID(core), Attempt: r.Attempt, Tenant: r.Tenant, Queue: r.Queue, Kind: kind, Gang: r.Gang,
		Replica: r.Replica, Type: r.Type, Tier: r.Tier, Node: r.Node, Site: r.Site, Devices: r.Devices, Milli: r.Milli,
		From: r.FromMs / 1000, To: r.ToMs / 1000, End: endOf[r.End]}
}

// storeRecord is a core record as the store keeps it.
func storeRecord(u *sched.Usage) store.UsageRecord {
	job, _ := metering.JobOf(u.Job)
	r := store.UsageRecord{ID: metering.RecordID(u), Job: job, Tenant: u.Tenant, Queue: u.Queue, Kind: u.Kind.String(),
		Attempt: u.Attempt, Gang: u.Gang, Replica: u.Replica, Type: u.Type, Tier: u.Tier, Site: u.Site, Node: u.Node,
		Devices: u.Devices, Milli: u.Milli, FromMs: u.From * 1000, ToMs: u.To * 1000, End: u.End.String(), Intensity: u.Intensity}
	if job != string(u.Job) {
		r.Unit = string(u.Job)
	}
	return r
}

// closed takes the records of holdings that ended: to the ledger now, to
// the store with the loop's next commit, the one that carries the job
// state that ended them (exactly once: a crash before it loses both, and
// the restart meters the holdings again; once it is durable the records
// are replayed from the store).
func (a *accounts) closed(l *loop, us []sched.Usage) {
	if len(us) == 0 {
		return
	}
	for i := range us {
		u := &us[i]
		if _, ok := metering.Record(u); !ok {
			continue
		}
		a.usageSeq++
		rec, err := store.UsageChange(storeRecord(u), a.usageSeq)
		if err != nil {
			l.log.Error("accounting: a usage record could not be encoded", "id", metering.RecordID(u), "err", err)
			continue
		}
		l.Record(rec)
		a.m.records.Inc()
		if !a.known[u.Site] && len(a.known) > 0 {
			// Metered at the default site's attributes: say so once.
			a.known[u.Site] = true
			l.log.Warn("accounting: a site the price table does not list is metered with the default site's PUE and carbon intensity", "site", u.Site)
		}
	}
	if err := a.acct.Closed(us); err != nil {
		a.m.refused.Add(float64(a.acct.Skipped))
		a.acct.Skipped = 0
		l.log.Error("accounting: the ledger refused a usage record", "err", err)
	}
	a.tell(l, a.acct.Ledger.Events())
}

// requeuedAtRestore closes the records of unit u of job j, whose bindings
// the rebuilt core would not take back (its node changed while the server
// was away): the core never held them, so it reports no record, and the
// time they held up to now would go unmetered. The records are the core's
// own (same IDs), ended now as requeued, and are stored with the commit
// that makes the unit pending, so a crash before it repeats them, once.
// A replica whose node is no longer registered has no accelerator type to
// be metered at, and is skipped (the server logs it).
func (a *accounts) requeuedAtRestore(l *loop, j *store.Job, u int, now time.Time) {
	cjs := j.CoreJobs()
	if u >= len(cjs) {
		return
	}
	cj := cjs[u]
	var us []sched.Usage
	for _, b := range restoreBinds(j, u) {
		n := l.nodes[b.Node]
		if n == nil || n.rec.Info.Accel == "" || len(b.Devices) == 0 {
			l.log.Warn("accounting: a replica requeued at restore is not metered: its node is gone", "job", j.ID, "node", b.Node)
			continue
		}
		milli := b.Milli
		if milli <= 0 {
			milli = 1000
		}
		to := max(now.Unix(), b.Since)
		us = append(us, sched.Usage{Job: b.Job, Attempt: b.Attempt, Tenant: cj.Tenant, Queue: cj.Queue, Kind: cj.Kind,
			Gang: b.Gang, Replica: b.Replica, Type: n.rec.Info.Accel, Tier: cj.Tier, Node: b.Node, Site: a.siteOf(n.rec.Info.Path),
			Devices: b.Devices, Milli: milli, From: b.Since, To: to, End: sched.EndRequeued})
	}
	a.closed(l, us)
}

// overlay is the queue tree the core holds: the loop's, with the
// commitments' committed-tier quota.
func (a *accounts) overlay(specs []quota.Spec, now time.Time) []quota.Spec {
	return a.acct.Overlay(specs, now.UnixMilli())
}

// sample gives the ledger a node's utilization readings, which hold from
// now until the node's next (or for the ledger's sample TTL): energy of the
// devices they name is idle + (board - idle) x utilization instead of board
// power. A reading older than what was metered on the node (a clock set
// back) is dropped.
func (a *accounts) sample(l *loop, node string, us []api.DeviceUtilization, now time.Time) {
	for _, u := range us {
		err := a.acct.Ledger.Sample(ledger.Sample{Node: node, Device: u.Device, AtMs: now.UnixMilli(), Percent: u.Percent})
		if err != nil {
			a.m.samplesRefused.Inc()
			l.log.Debug("accounting: a utilization reading was refused", "node", node, "err", err)
			continue
		}
		a.m.samples.Inc()
		rs := a.readings[node]
		if rs == nil {
			rs = map[int]reading{}
			a.readings[node] = rs
		}
		rs[u.Device] = reading{percent: u.Percent, at: now}
	}
}

// samplePruneEvery is how often readings metering no longer needs are let go;
// they are kept for samplePruneEvery behind the last metering, and at least two
// metering intervals.
const samplePruneEvery = time.Hour

func (a *accounts) prune(now time.Time, interval time.Duration) {
	if now.Sub(a.pruned) < samplePruneEvery {
		return
	}
	a.pruned = now
	a.acct.Ledger.PruneSamples(now.Add(-max(samplePruneEvery, 2*interval)).UnixMilli())
}

// tick meters when it is due.
func (a *accounts) tick(l *loop, now time.Time) {
	if a.acct.Due(now.UnixMilli()) {
		a.meter(l, now)
	}
}

// freshFor is how old the metering a read shows may be: reads (a
// dashboard polling) meter at most once a second between them.
const freshFor = time.Second

// fresh meters for a read, unless the last metering is younger than
// freshFor.
func (a *accounts) fresh(l *loop, now time.Time) {
	if now.Sub(a.metered) >= freshFor || now.Before(a.metered) {
		a.meter(l, now)
	}
}

// meter meters the running replicas up to now and applies what the
// ledger's standing and the commitments call for.
func (a *accounts) meter(l *loop, now time.Time) {
	// The core's clock first: work the metering stops ends now, not at
	// the last cycle's time.
	if err := l.apply(sched.TimeAdvanced{Now: now.Unix()}, now); err != nil {
		l.log.Error("accounting: advance the core's clock", "err", err)
	}
	evs, err := a.acct.Meter(l.core, l.specs, now.UnixMilli())
	if err != nil {
		l.log.Error("accounting: metering", "err", err)
	}
	a.metered = now
	a.prune(now, time.Duration(a.acct.Enforcer.IntervalMs)*time.Millisecond)
	if a.acct.Skipped > 0 {
		a.m.refused.Add(float64(a.acct.Skipped))
		a.acct.Skipped = 0
	}
	a.tell(l, a.acct.Ledger.Events())
	for _, ev := range evs {
		switch e := ev.(type) {
		case sched.AdmissionPaused:
			l.log.Info("accounting: admission paused", "tenant", e.Tenant, "queue", e.Queue, "reason", e.Reason)
		case sched.AdmissionResumed:
			l.log.Info("accounting: admission resumed", "tenant", e.Tenant, "queue", e.Queue)
		case sched.QueuesChanged:
			l.log.Info("accounting: committed-tier quota changed with the commitments in force")
		}
		if err := l.apply(ev, now); err != nil {
			l.log.Error("accounting: the core refused an event", "event", fmt.Sprintf("%T", ev), "err", err)
		}
	}
	a.updateGauges(l, now)
}

// tell logs and counts the events metering raised, and keeps them.
func (a *accounts) tell(l *loop, evs []ledger.Event) {
	for _, e := range evs {
		l.log.Info("accounting: "+e.Kind.String(), "event", e.String())
		a.m.events.WithLabelValues(e.Tenant, e.Kind.String()).Inc()
	}
	a.keepEvents(evs)
}

func (a *accounts) keepEvents(evs []ledger.Event) {
	a.events = append(a.events, evs...)
	if n := len(a.events); n > maxEvents {
		a.events = append([]ledger.Event(nil), a.events[n-maxEvents:]...)
	}
}

// pauseOf returns why a tenant's (or queue's) admission is paused, "" when
// it is not.
func (a *accounts) pauseOf(tenant, queue string) string {
	p, ok := a.acct.Enforcer.PauseOf(metering.Scope{Tenant: tenant, Queue: queue})
	if !ok {
		return ""
	}
	return p.Reason
}

// addGrant gives a grant to the ledger and to the loop's next commit (a
// record created there: the answer, which waits for that commit, is given
// only once it is durable), then meters at once so that a paused tenant
// resumes. An ID taken is refused here, before anything changes: the
// grants the loop holds are every stored one, as only the loop writes them.
func (a *accounts) addGrant(l *loop, g store.Grant, now time.Time) error {
	lg, err := ledgerGrant(g)
	if err != nil {
		return err
	}
	if err := checkOn(a.cat, func(x *ledger.Ledger) error { return x.AddGrant(lg) }); err != nil {
		return err
	}
	if _, ok := a.grants[g.ID]; ok {
		return fmt.Errorf("grant %s: %w", g.ID, store.ErrExists)
	}
	rec, err := store.GrantChange(g)
	if err != nil {
		return err
	}
	if err := a.acct.Ledger.AddGrant(lg); err != nil {
		return err
	}
	l.Record(rec)
	a.grants[g.ID] = g
	a.acct.Wake()
	a.meter(l, now)
	return nil
}

// setBudget applies a tenant's monthly budget (0: none) and stores it with
// the loop's next commit.
func (a *accounts) setBudget(l *loop, b store.Budget, now time.Time) error {
	lb := ledger.Budget{Tenant: b.Tenant, Monthly: ledger.Money(b.Monthly)}
	if err := checkOn(a.cat, func(x *ledger.Ledger) error { return x.SetBudget(lb) }); err != nil {
		return err
	}
	rec, err := store.BudgetChange(b)
	if err != nil {
		return err
	}
	if err := a.acct.Ledger.SetBudget(lb); err != nil {
		return err
	}
	l.Record(rec)
	a.acct.Wake()
	a.meter(l, now)
	return nil
}

// addCommitment applies a commitment's quota and stores it with the loop's
// next commit; an ID taken is refused as addGrant's is.
func (a *accounts) addCommitment(l *loop, c store.Commitment, now time.Time) error {
	lc := ledgerCommitment(c)
	if err := checkOn(a.cat, func(x *ledger.Ledger) error { return x.AddCommitment(lc) }); err != nil {
		return err
	}
	if _, ok := a.commits[c.ID]; ok {
		return fmt.Errorf("commitment %s: %w", c.ID, store.ErrExists)
	}
	rec, err := store.CommitmentChange(c)
	if err != nil {
		return err
	}
	if err := a.acct.Ledger.AddCommitment(lc); err != nil {
		return err
	}
	l.Record(rec)
	a.commits[c.ID] = c
	a.acct.Wake()
	a.meter(l, now)
	return nil
}

// checkOn runs a change on a scratch ledger first, so that what the live
// ledger would refuse is refused before anything is stored.
func checkOn(cat *fleet.Catalog, change func(*ledger.Ledger) error) error {
	x, err := ledger.New(ledger.Config{Catalog: cat, DefaultSite: &ledger.Site{}})
	if err != nil {
		return err
	}
	return change(x)
}

// errExists reports whether err says an ID is taken.
func errExists(err error) bool { return errors.Is(err, store.ErrExists) }
