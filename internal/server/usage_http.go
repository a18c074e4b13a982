package server

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/metering"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// The accounting API: usage reports, per-job usage, credits, budgets,
// commitments and invoices. A tenant's token sees its own; another
// tenant's reads as if it did not exist. Every read meters the running
// work up to now first, so that what it shows is current.

func (s *Server) accountingRoutes() []route {
	return []route{
		{"GET", "/v1/usage", users, s.usageReport},
		{"GET", "/v1/usage/jobs/{id}", users, s.jobUsage},
		{"GET", "/v1/usage/records", users, s.usageRecords},
		{"GET", "/v1/credits", users, s.listCredits},
		{"POST", "/v1/credits", admin, s.grantCredits},
		{"GET", "/v1/budgets", users, s.listBudgets},
		{"PUT", "/v1/budgets/{name}", admin, s.setBudget},
		{"GET", "/v1/commitments", users, s.listCommitments},
		{"POST", "/v1/commitments", admin, s.createCommitment},
		{"GET", "/v1/invoices", users, s.invoice},
	}
}

// tenantParam reads the tenant a read is about: a tenant token's own
// (another tenant's is "not found", as one that does not exist), any for
// an admin ("" for all, unless required).
func (s *Server) tenantParam(r *http.Request, p principal, required bool) (string, *api.Error) {
	t := r.URL.Query().Get("tenant")
	if !p.admin() {
		if t != "" && t != p.tenant {
			return "", api.NotFound("no tenant %q", t)
		}
		return p.tenant, nil
	}
	if t == "" {
		if required {
			return "", api.Invalid("tenant", "missing: name the tenant")
		}
		return "", nil
	}
	if e := api.CheckName("tenant", t); e != nil {
		return "", e
	}
	return t, nil
}

// isTenant reports whether name is a tenant of the queue tree.
func (s *Server) isTenant(name string) bool {
	qi := s.queues.Load()
	i, ok := qi.byName[name]
	return ok && qi.specs[i].Parent == ""
}

// usageQuery is a parsed GET /v1/usage.
type usageQuery struct {
	tenant   string
	by       []ledger.Dim
	from, to int64
	period   string // "", day or month
	admin    bool
}

// maxReportDays bounds a report's range.
const maxReportDays = 400

func parseDate(field, v string) (int64, *api.Error) {
	t, err := time.Parse(api.DateLayout, v)
	if err != nil {
		return 0, api.Invalid(field, "%q: want a date YYYY-MM-DD (UTC)", v)
	}
	return t.UnixMilli(), nil
}

func (s *Server) parseUsageQuery(r *http.Request, p principal, now time.Time) (usageQuery, *api.Error) {
	q := r.URL.Query()
	uq := usageQuery{admin: p.admin()}
	var e *api.Error
	if uq.tenant, e = s.tenantParam(r, p, false); e != nil {
		return uq, e
	}
	by := q.Get("by")
	if by == "" {
		by = "tenant,queue,tier,type,site"
	}
	dims, err := ledger.ParseDims(by)
	if err != nil {
		return uq, api.Invalid("by", "%v", err)
	}
	uq.by = dims
	switch uq.period = q.Get("period"); uq.period {
	case "", "day", "month":
	default:
		return uq, api.Invalid("period", "%q: want day or month (or none: one set of rows for the range)", uq.period)
	}
	today := now.UTC().Truncate(24 * time.Hour)
	month := ledger.MonthOf(now.UnixMilli())
	uq.from, uq.to = month.Start(), today.Add(24*time.Hour).UnixMilli()
	if uq.period == "month" {
		uq.to = month.End()
	}
	if v := q.Get("from"); v != "" {
		if uq.from, e = parseDate("from", v); e != nil {
			return uq, e
		}
	}
	if v := q.Get("to"); v != "" {
		if uq.to, e = parseDate("to", v); e != nil {
			return uq, e
		}
	}
	switch {
	case uq.to <= uq.from:
		return uq, api.Invalid("to", "%s is not after from %s (to is the first day not reported)", ledger.FormatTime(uq.to)[:10], ledger.FormatTime(uq.from)[:10])
	case (uq.to-uq.from)/86_400_000 > maxReportDays:
		return uq, api.Invalid("to", "the range is longer than %d days", maxReportDays)
	case uq.period == "month" && (ledger.MonthOf(uq.from).Start() != uq.from || ledger.MonthOf(uq.to).Start() != uq.to):
		return uq, api.Invalid("from", "a monthly report runs from the first of a month to the first of another")
	}
	return uq, nil
}

func (s *Server) usageReport(w http.ResponseWriter, r *http.Request, p principal) {
	uq, e := s.parseUsageQuery(r, p, s.cfg.Now())
	if e != nil {
		writeErr(w, e)
		return
	}
	type answer struct {
		rep api.UsageReport
		err *api.Error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		now := l.now()
		l.acct.fresh(l, now)
		rep, e := l.acct.report(l, uq, now)
		reply(answer{rep, e})
	})
	if err == nil && a.err != nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.rep)
}

// capacity is the fleet's capacity over [from, to) for attribution: each
// registered node's accelerators from its registration to now (a node
// that is down still costs what it costs).
func (a *accounts) capacity(l *loop, from, to, now int64) []ledger.Capacity {
	var out []ledger.Capacity
	for _, name := range slices.Sorted(maps.Keys(l.nodes)) {
		n := l.nodes[name]
		info := n.rec.Info
		if info.Count == 0 || a.cat.Index(info.Accel) < 0 {
			continue
		}
		lo, hi := max(from, n.rec.Registered*1000), min(to, now)
		if hi <= lo {
			continue
		}
		out = append(out, ledger.Capacity{Type: info.Accel, Site: a.siteOf(info.Path), Accelerators: info.Count, FromMs: lo, ToMs: hi})
	}
	return out
}

type rowKey struct {
	period                         int64
	kind                           ledger.RowKind
	tenant, queue, tier, typ, site string
	commitment                     string
}

// report makes a usage report: the ledger's at the finest grain, the
// tenant's rows kept (a tenant sees its own), summed to the dimensions
// and periods asked for. An admin's report attributes the fleet's cost.
func (a *accounts) report(l *loop, q usageQuery, now time.Time) (api.UsageReport, *api.Error) {
	lq := ledger.Query{FromMs: q.from, ToMs: q.to, Period: ledger.Daily,
		By: []ledger.Dim{ledger.ByTenant, ledger.ByQueue, ledger.ByTier, ledger.ByType, ledger.BySite}}
	if q.period == "month" {
		lq.Period = ledger.Monthly
	}
	if q.admin {
		lq.Capacity = a.capacity(l, q.from, q.to, now.UnixMilli())
	}
	rep, err := a.acct.Ledger.Report(lq)
	if err != nil {
		return api.UsageReport{}, api.Invalid("", "%v", err)
	}
	has := map[ledger.Dim]bool{}
	var by []string
	for _, d := range q.by {
		has[d] = true
		by = append(by, d.String())
	}
	sums := map[rowKey]*ledger.Row{}
	var keys []rowKey
	for i := range rep.Rows {
		row := &rep.Rows[i]
		if q.tenant != "" && row.Tenant != q.tenant {
			continue
		}
		if !q.admin && row.Kind == ledger.Idle {
			continue
		}
		k := rowKey{kind: row.Kind}
		if q.period != "" {
			k.period = row.Start
		}
		if has[ledger.ByTenant] {
			k.tenant = row.Tenant
			if row.Kind == ledger.IdleReserved {
				k.commitment = row.Commitment
			}
		}
		if has[ledger.ByQueue] {
			k.queue = row.Queue
		}
		if has[ledger.ByTier] {
			k.tier = row.Tier
		}
		if has[ledger.ByType] {
			k.typ = row.Type
		}
		if has[ledger.BySite] {
			k.site = row.Site
		}
		sum := sums[k]
		if sum == nil {
			sum = &ledger.Row{}
			sums[k] = sum
			keys = append(keys, k)
		}
		addRow(sum, row)
	}
	slices.SortFunc(keys, func(x, y rowKey) int {
		return cmp.Or(cmp.Compare(x.period, y.period), cmp.Compare(x.kind, y.kind), cmp.Compare(x.tenant, y.tenant),
			cmp.Compare(x.queue, y.queue), cmp.Compare(x.tier, y.tier), cmp.Compare(x.typ, y.typ), cmp.Compare(x.site, y.site),
			cmp.Compare(x.commitment, y.commitment))
	})
	out := api.UsageReport{Currency: a.cur.Code, MinorDigits: a.cur.MinorDigits, From: time.UnixMilli(q.from).UTC(), To: time.UnixMilli(q.to).UTC(), By: by,
		Period: q.period, Rows: []api.UsageRow{}, Warnings: rep.Warnings}
	var total ledger.Row
	for _, k := range keys {
		row := sums[k]
		addRow(&total, row)
		v := usageRow(row, k.kind)
		v.Tenant, v.Queue, v.Tier, v.Type, v.Site, v.Commitment = k.tenant, k.queue, k.tier, k.typ, k.site, k.commitment
		switch q.period {
		case "day":
			v.Period = ledger.FormatTime(k.period)[:10]
		case "month":
			v.Period = ledger.MonthOf(k.period).String()
		}
		out.Rows = append(out.Rows, v)
	}
	out.Total = usageRow(&total, ledger.Used)
	out.Total.Kind = "total"
	if q.admin && q.tenant == "" {
		fc := api.Money(rep.FleetCost)
		out.FleetCost = &fc
	}
	return out, nil
}

func addRow(sum, r *ledger.Row) {
	sum.MilliMs += r.MilliMs
	sum.EnergyMJ += r.EnergyMJ
	sum.FacilityMJ += r.FacilityMJ
	sum.CarbonMg += r.CarbonMg
	sum.Charge += r.Charge
	sum.Covered += r.Covered
	sum.Overage += r.Overage
	sum.OverageCharge += r.OverageCharge
	sum.Asset += r.Asset
}

func usageRow(r *ledger.Row, kind ledger.RowKind) api.UsageRow {
	return api.UsageRow{Kind: kind.String(), AcceleratorHours: round6(r.AcceleratorHours()), AcceleratorMilliMs: r.MilliMs,
		EnergyKWh: round6(r.FacilityKWh()), ITEnergyKWh: round6(r.KWh()), CO2Kg: round6(r.CarbonKg()),
		Cost: api.Money(r.Charged()), Overage: api.Money(r.OverageCharge), CommittedHours: round6(float64(r.Covered) / 3.6e9),
		AssetCost: api.Money(r.Asset)}
}

func round6(v float64) float64 {
	const k = 1e6
	if v < 0 {
		return -float64(int64(-v*k+0.5)) / k
	}
	return float64(int64(v*k+0.5)) / k
}

func (s *Server) jobUsage(w http.ResponseWriter, r *http.Request, p principal) {
	j, e := s.lookup(r.PathValue("id"), p)
	if e != nil {
		writeErr(w, e)
		return
	}
	ju, err := exec(r.Context(), s, func(l *loop, reply func(api.JobUsage)) {
		now := l.now()
		l.acct.fresh(l, now)
		reply(l.acct.jobUsage(l, j.ID, j.Tenant, now))
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	// The answer came once everything decided before it was durable: the
	// store now holds every record closed before the loop looked, and
	// those closed since (which the loop saw open) read as they ended.
	stored, err := store.JobUsage(s.db, j.ID)
	if err != nil {
		writeErr(w, api.Internal("read usage of %s: %v", j.ID, err))
		return
	}
	withStored(&ju, stored)
	writeJSON(w, http.StatusOK, ju)
}

// jobUsage lists a job's open holdings (from the core) and what the ledger
// metered for it; withStored adds the closed ones, as stored.
func (a *accounts) jobUsage(l *loop, job, tenant string, now time.Time) api.JobUsage {
	out := api.JobUsage{Job: job, Tenant: tenant, Currency: a.cur.Code, Records: []api.UsageRecord{}}
	horizon := a.acct.Ledger.Horizon()
	l.core.Holdings(func(u sched.Usage) bool {
		if j, _ := metering.JobOf(u.Job); j == job && u.Type != "" && len(u.Devices) > 0 {
			out.Records = append(out.Records, usageView(storeRecord(&u), true, max(horizon, u.From*1000)))
		}
		return true
	})
	for _, ju := range a.acct.Ledger.Job(job) {
		out.AcceleratorMilliMs += ju.MilliMs
		out.EnergyKWh += ju.FacilityKWh()
		out.CO2Kg += ju.CarbonKg()
		out.Cost += api.Money(ju.Charge)
	}
	out.AcceleratorHours = round6(float64(out.AcceleratorMilliMs) / 3.6e9)
	out.EnergyKWh, out.CO2Kg = round6(out.EnergyKWh), round6(out.CO2Kg)
	return out
}

// withStored puts a job's stored (closed) records before its open ones: a
// holding that closed after the loop listed it open reads as it ended.
func withStored(ju *api.JobUsage, stored []store.UsageRecord) {
	recs := make([]api.UsageRecord, 0, len(stored)+len(ju.Records))
	seen := map[string]bool{}
	for _, rec := range stored {
		if !seen[rec.ID] {
			seen[rec.ID] = true
			recs = append(recs, usageView(rec, false, rec.ToMs))
		}
	}
	for _, v := range ju.Records {
		if !seen[v.ID] {
			seen[v.ID] = true
			recs = append(recs, v)
		}
	}
	ju.Records, ju.HeldMilliMs = recs, 0
	for _, v := range recs {
		ju.HeldMilliMs += v.AcceleratorMilliMs
	}
}

// usageView is a record as the API shows it, held up to toMs.
func usageView(rec store.UsageRecord, open bool, toMs int64) api.UsageRecord {
	v := api.UsageRecord{ID: rec.ID, Attempt: rec.Attempt, Gang: rec.Gang, Replica: rec.Replica, Node: rec.Node, Type: rec.Type,
		Tier: tierName(rec.Tier), Site: rec.Site, Devices: rec.Devices, Milli: rec.Milli, From: time.UnixMilli(rec.FromMs).UTC(),
		IntensityGPerKWh: rec.Intensity}
	if !open {
		t := time.UnixMilli(rec.ToMs).UTC()
		v.To, v.End = &t, rec.End
	}
	v.AcceleratorMilliMs = (toMs - rec.FromMs) * int64(len(rec.Devices)) * int64(rec.Milli)
	return v
}

func tierName(t string) string {
	if t == "" {
		return "on-demand"
	}
	return t
}

func (s *Server) listCredits(w http.ResponseWriter, r *http.Request, p principal) {
	tenant, e := s.tenantParam(r, p, false)
	if e != nil {
		writeErr(w, e)
		return
	}
	out, err := exec(r.Context(), s, func(l *loop, reply func(api.CreditList)) {
		now := l.now()
		l.acct.fresh(l, now)
		reply(l.acct.credits(l, tenant, now))
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// credits lists the grants, balances and events of a tenant (all when
// tenant is "").
func (a *accounts) credits(l *loop, tenant string, now time.Time) api.CreditList {
	at := now.UnixMilli()
	led := a.acct.Ledger
	out := api.CreditList{Currency: a.cur.Code, MinorDigits: a.cur.MinorDigits, Grants: []api.Grant{}, Balances: []api.Balance{}, Events: []api.CreditEvent{}}
	queueGrants := map[string]map[string]bool{}
	for _, g := range led.Grants(tenant) {
		out.Grants = append(out.Grants, a.grantView(g, at))
		if g.Queue != "" {
			if queueGrants[g.Tenant] == nil {
				queueGrants[g.Tenant] = map[string]bool{}
			}
			queueGrants[g.Tenant][g.Queue] = true
		}
	}
	tenants := metering.TenantsOf(l.specs)
	for _, t := range slices.Sorted(maps.Keys(tenants)) {
		if tenant != "" && t != tenant {
			continue
		}
		out.Balances = append(out.Balances, a.balance(t, "", at))
		for _, q := range tenants[t] {
			if queueGrants[t][q] || a.pauseOf(t, q) != "" {
				out.Balances = append(out.Balances, a.balance(t, q, at))
			}
		}
	}
	for _, e := range a.events {
		if tenant != "" && e.Tenant != tenant {
			continue
		}
		v := api.CreditEvent{Time: time.UnixMilli(e.AtMs).UTC(), Kind: e.Kind.String(), Tenant: e.Tenant, Queue: e.Queue, Grant: e.Grant,
			Percent: e.Percent, Limit: api.Money(e.Limit), Used: api.Money(e.Used), Message: eventMessage(e, a.cur)}
		if e.Kind == ledger.BudgetThreshold {
			v.Month = e.Month.String()
		}
		out.Events = append(out.Events, v)
	}
	return out
}

// eventMessage is an event in words, without its time, amounts in the
// currency.
func eventMessage(e ledger.Event, c ledger.Currency) string {
	m := func(v ledger.Money) string { return v.Format(c) + " " + c.Code }
	switch e.Kind {
	case ledger.GrantThreshold:
		return fmt.Sprintf("grant %s of %s reached %d%% (%s of %s)", e.Grant, e.Tenant, e.Percent, m(e.Used), m(e.Limit))
	case ledger.GrantExpired:
		return fmt.Sprintf("grant %s of %s expired with %s of %s unused", e.Grant, e.Tenant, m(e.Limit-e.Used), m(e.Limit))
	}
	return fmt.Sprintf("the budget of %s for %s reached %d%% (%s of %s)", e.Tenant, e.Month, e.Percent, m(e.Used), m(e.Limit))
}

func (a *accounts) grantView(g ledger.GrantBalance, at int64) api.Grant {
	v := api.Grant{ID: g.ID, Tenant: g.Tenant, Queue: g.Queue, Kind: g.Kind.String(), Amount: api.Money(g.Amount), Burned: api.Money(g.Burned),
		Left: api.Money(g.Left()), Start: time.UnixMilli(g.StartMs).UTC(), State: "active"}
	if g.ExpiresMs != 0 {
		t := time.UnixMilli(g.ExpiresMs).UTC()
		v.Expires = &t
	}
	if sg, ok := a.grants[g.ID]; ok {
		v.Created = time.UnixMilli(sg.CreatedMs).UTC()
	}
	switch {
	case g.ExpiresMs != 0 && g.ExpiresMs <= at:
		v.State = "expired"
	case g.Left() <= 0:
		v.State = "spent"
	case g.StartMs > at:
		v.State = "pending"
	}
	return v
}

func (a *accounts) balance(tenant, queue string, at int64) api.Balance {
	st := a.acct.Ledger.Standing(tenant, queue, at)
	b := api.Balance{Tenant: tenant, Queue: queue, Postpaid: st.Postpaid, Credits: api.Money(st.Credits), BurnRate: api.Money(st.BurnRate),
		Spent: api.Money(st.Spent), Month: ledger.MonthOf(at).String(), Paused: a.pauseOf(tenant, queue)}
	if st.Budget > 0 {
		m := api.Money(st.Budget)
		b.Budget = &m
	}
	return b
}

func (s *Server) grantCredits(w http.ResponseWriter, r *http.Request, _ principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	g, amount, e := api.DecodeCreateGrant(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	if !s.isTenant(g.Tenant) {
		writeErr(w, api.Invalid("tenant", "no tenant %q", g.Tenant))
		return
	}
	if g.Queue != "" {
		qi := s.queues.Load()
		if qi.tenantOf[g.Queue] != g.Tenant || len(qi.children[g.Queue]) > 0 || g.Queue == g.Tenant {
			writeErr(w, api.Invalid("queue", "%q is not a queue of tenant %s that takes jobs (its queues: %s)", g.Queue, g.Tenant, strings.Join(qi.leavesOf(g.Tenant), ", ")))
			return
		}
	}
	type answer struct {
		g   api.Grant
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		now := l.now()
		nowMs := now.UnixMilli()
		sg := store.Grant{ID: g.ID, Tenant: g.Tenant, Queue: g.Queue, Kind: cmp.Or(g.Kind, "prepaid"), Amount: int64(amount), StartMs: nowMs, CreatedMs: nowMs}
		if g.Start != nil {
			sg.StartMs = max(nowMs, g.Start.UnixMilli())
		}
		if g.Expires != nil {
			sg.ExpiresMs = g.Expires.UnixMilli()
			if sg.ExpiresMs <= sg.StartMs {
				reply(answer{err: api.Invalid("expires", "%s is not after the grant's start %s (credits start when granted, at the earliest)",
					ledger.FormatTime(sg.ExpiresMs), ledger.FormatTime(sg.StartMs))})
				return
			}
		}
		if sg.ID == "" {
			sg.ID = l.acct.nextGrantID(g.Tenant)
		}
		if err := l.acct.addGrant(l, sg, now); err != nil {
			if errExists(err) {
				reply(answer{err: api.Conflict("a grant %s exists", sg.ID)})
			} else {
				reply(answer{err: api.Invalid("", "%v", err)})
			}
			return
		}
		for _, gb := range l.acct.Ledger().Grants(sg.Tenant) {
			if gb.ID == sg.ID {
				reply(answer{g: l.acct.grantView(gb, nowMs)})
				return
			}
		}
		reply(answer{err: api.Internal("grant %s was not kept", sg.ID)})
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.g)
}

// nextGrantID names a grant given without an ID: TENANT-N, N one more
// than the tenant's grants.
func (a *accounts) nextGrantID(tenant string) string {
	n := len(a.acct.Ledger.Grants(tenant)) + 1
	for {
		id := fmt.Sprintf("%s-%d", tenant, n)
		if _, taken := a.grants[id]; !taken {
			return id
		}
		n++
	}
}

// Ledger returns the ledger (read on the loop).
func (a *accounts) Ledger() *ledger.Ledger { return a.acct.Ledger }

func (s *Server) listBudgets(w http.ResponseWriter, r *http.Request, p principal) {
	tenant, e := s.tenantParam(r, p, false)
	if e != nil {
		writeErr(w, e)
		return
	}
	out, err := exec(r.Context(), s, func(l *loop, reply func(api.BudgetList)) {
		now := l.now()
		l.acct.fresh(l, now)
		at := now.UnixMilli()
		bl := api.BudgetList{Currency: l.acct.cur.Code, MinorDigits: l.acct.cur.MinorDigits, Budgets: []api.Budget{}}
		for _, t := range slices.Sorted(maps.Keys(metering.TenantsOf(l.specs))) {
			if tenant != "" && t != tenant {
				continue
			}
			st := l.acct.Ledger().Standing(t, "", at)
			if st.Budget > 0 {
				bl.Budgets = append(bl.Budgets, api.Budget{Tenant: t, Monthly: api.Money(st.Budget), Spent: api.Money(st.Spent), Month: ledger.MonthOf(at).String()})
			}
		}
		reply(bl)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) setBudget(w http.ResponseWriter, r *http.Request, _ principal) {
	name := r.PathValue("name")
	if e := s.tenantOrNotFound(name); e != nil {
		writeErr(w, e)
		return
	}
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	monthly, e := api.DecodeSetBudget(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	type answer struct {
		b   api.Budget
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		now := l.now()
		if err := l.acct.setBudget(l, store.Budget{Tenant: name, Monthly: int64(monthly), SetMs: now.UnixMilli()}, now); err != nil {
			reply(answer{err: api.Invalid("monthly", "%v", err)})
			return
		}
		st := l.acct.Ledger().Standing(name, "", now.UnixMilli())
		reply(answer{b: api.Budget{Tenant: name, Monthly: api.Money(st.Budget), Spent: api.Money(st.Spent), Month: ledger.MonthOf(now.UnixMilli()).String()}})
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.b)
}

func (s *Server) listCommitments(w http.ResponseWriter, r *http.Request, p principal) {
	tenant, e := s.tenantParam(r, p, false)
	if e != nil {
		writeErr(w, e)
		return
	}
	out, err := exec(r.Context(), s, func(l *loop, reply func(api.CommitmentList)) {
		at := l.now().UnixMilli()
		cl := api.CommitmentList{Currency: l.acct.cur.Code, MinorDigits: l.acct.cur.MinorDigits, Commitments: []api.Commitment{}}
		for _, c := range l.acct.Ledger().Commitments() {
			if tenant == "" || c.Tenant == tenant {
				cl.Commitments = append(cl.Commitments, l.acct.commitmentView(c, at))
			}
		}
		reply(cl)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *accounts) commitmentView(c ledger.Commitment, at int64) api.Commitment {
	v := api.Commitment{ID: c.ID, Tenant: c.Tenant, Type: c.Type, Site: c.Site, Count: c.Count, Start: time.UnixMilli(c.StartMs).UTC(),
		End: time.UnixMilli(c.EndMs).UTC(), PricePerHour: api.Money(c.PricePerHour), State: "active"}
	v.Fee = api.Money(c.Fee())
	switch {
	case at < c.StartMs:
		v.State = "upcoming"
	case at >= c.EndMs:
		v.State = "ended"
	}
	if sc, ok := a.commits[c.ID]; ok {
		v.Created = time.UnixMilli(sc.CreatedMs).UTC()
	}
	return v
}

func (s *Server) createCommitment(w http.ResponseWriter, r *http.Request, _ principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	c, price, e := api.DecodeCreateCommitment(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	if !s.isTenant(c.Tenant) {
		writeErr(w, api.Invalid("tenant", "no tenant %q", c.Tenant))
		return
	}
	type answer struct {
		c   api.Commitment
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		now := l.now()
		nowMs := now.UnixMilli()
		sc := store.Commitment{ID: c.ID, Tenant: c.Tenant, Type: c.Type, Site: c.Site, Count: c.Count, StartMs: nowMs, EndMs: c.End.UnixMilli(),
			PricePerHour: int64(price), CreatedMs: nowMs}
		if c.Start != nil {
			sc.StartMs = c.Start.UnixMilli()
		}
		if sc.EndMs <= nowMs {
			reply(answer{err: api.Invalid("end", "%s is past: a commitment's term must end in the future", ledger.FormatTime(sc.EndMs))})
			return
		}
		if sc.EndMs <= sc.StartMs {
			reply(answer{err: api.Invalid("end", "%s is not after the start %s", ledger.FormatTime(sc.EndMs), ledger.FormatTime(sc.StartMs))})
			return
		}
		if err := l.acct.addCommitment(l, sc, now); err != nil {
			if errExists(err) {
				reply(answer{err: api.Conflict("a commitment %s exists", sc.ID)})
			} else {
				reply(answer{err: api.Invalid("", "%v", err)})
			}
			return
		}
		reply(answer{c: l.acct.commitmentView(ledgerCommitment(sc), nowMs)})
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.c)
}

func (s *Server) invoice(w http.ResponseWriter, r *http.Request, p principal) {
	tenant, e := s.tenantParam(r, p, true)
	if e != nil {
		writeErr(w, e)
		return
	}
	now := s.cfg.Now()
	m := ledger.MonthOf(now.UnixMilli())
	if v := r.URL.Query().Get("month"); v != "" {
		var err error
		if m, err = ledger.ParseMonth(v); err != nil {
			writeErr(w, api.Invalid("month", "%v", err))
			return
		}
	}
	type answer struct {
		inv api.Invoice
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		now := l.now()
		l.acct.fresh(l, now)
		inv, err := l.acct.Ledger().Invoice(tenant, m)
		if err != nil {
			reply(answer{err: api.Invalid("tenant", "%v", err)})
			return
		}
		reply(answer{inv: invoiceView(inv, now.UnixMilli() >= m.End() && l.acct.Ledger().Horizon() >= m.End())})
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.inv)
}

func invoiceView(inv *ledger.Invoice, final bool) api.Invoice {
	v := api.Invoice{Tenant: inv.Tenant, Month: inv.Month.String(), Currency: inv.Currency.Code, MinorDigits: inv.Currency.MinorDigits,
		Postpaid: inv.Postpaid, Final: final, Lines: []api.InvoiceLine{},
		Commitments: api.Money(inv.Commitments), Usage: api.Money(inv.Usage), Credits: api.Money(inv.Credits), Total: api.Money(inv.Total),
		Billed: api.Money(inv.Billed), CreditsLeft: api.Money(inv.CreditsLeft), CreditsExpired: api.Money(inv.CreditsExpired), Spent: api.Money(inv.Spent)}
	if inv.Budget > 0 {
		b := api.Money(inv.Budget)
		v.Budget = &b
	}
	for _, il := range inv.Lines {
		v.Lines = append(v.Lines, api.InvoiceLine{Kind: il.Kind.String(), Type: il.Type, Site: il.Site, Ref: il.Ref,
			AcceleratorHours: round6(float64(il.MilliMs) / 3.6e9), Rate: api.Money(il.Rate), Amount: api.Money(il.Amount), Billed: api.Money(il.Billed)})
	}
	return v
}
