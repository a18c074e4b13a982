package ledger

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// GrantKind is what a credit grant is: bought in advance, or given.
type GrantKind uint8

// The kinds of grant.
const (
	// Prepaid credits were bought.
	Prepaid GrantKind = iota
	// Promotional credits were given (a trial, a launch offer, a
	// refund); they burn first.
	Promotional
)

var grantKindNames = [...]string{"prepaid", "promotional"}

func (k GrantKind) String() string {
	if int(k) < len(grantKindNames) {
		return grantKindNames[k]
	}
	return fmt.Sprintf("GrantKind(%d)", k)
}

// ParseGrantKind reads prepaid or promotional.
func ParseGrantKind(s string) (GrantKind, error) {
	for i, n := range grantKindNames {
		if n == s {
			return GrantKind(i), nil
		}
	}
	return 0, fmt.Errorf("grant kind %q: want one of %s", s, strings.Join(grantKindNames[:], ", "))
}

// Grant is a credit given to a tenant, or to one of its queues.
type Grant struct {
	ID     string
	Tenant string
	// Queue limits the grant to one queue; empty: all of the tenant's.
	Queue  string
	Kind   GrantKind
	Amount Money
	// The grant pays for usage in [StartMs, ExpiresMs); ExpiresMs 0
	// means it never expires.
	StartMs, ExpiresMs int64
}

func (g *Grant) validAt(t int64) bool {
	return t >= g.StartMs && (g.ExpiresMs == 0 || t < g.ExpiresMs)
}

type grant struct {
	Grant
	idx     int32
	queue   int32 // -1: the whole tenant
	burned  Money
	byMonth map[int64]Money
	fired   int // thresholds already raised
	expired bool
}

// account is a tenant's money: its grants in burn order, budget, spend and
// the rate at which its open records accrue charges.
type account struct {
	tenant int32
	grants []*grant
	bounds []int64 // grant start and expiry times, sorted
	budget Money   // per month; 0: none
	spent  map[int64]Money
	billed map[int64]Money // charges credits did not pay, per month
	// overage is the committed-tier overage of the month as last computed
	// by Meter, for the budget; dirty the months whose committed-tier
	// usage changed since.
	overage     map[int64]Money
	dirty       map[int64]bool
	budgetFired map[int64]int
	// openRate is, per queue, the sum over open on-demand and spot
	// records of rate x milli-devices (micro-units an hour x 1000).
	openRate map[int32]int64
	// openCommitted is, per (type, site), the milli-devices of open
	// committed-tier records.
	openCommitted map[[2]int]int64
}

func (l *Ledger) account(tenant int32) *account {
	a := l.acct[tenant]
	if a == nil {
		a = &account{tenant: tenant, spent: map[int64]Money{}, billed: map[int64]Money{}, overage: map[int64]Money{},
			budgetFired: map[int64]int{}, dirty: map[int64]bool{}, openRate: map[int32]int64{}, openCommitted: map[[2]int]int64{}}
		l.acct[tenant] = a
	}
	return a
}

// nextBound returns the first grant boundary after x.
func (a *account) nextBound(x int64) (int64, bool) {
	i := sort.Search(len(a.bounds), func(i int) bool { return a.bounds[i] > x })
	if i == len(a.bounds) {
		return 0, false
	}
	return a.bounds[i], true
}

// burnBefore orders grants: promotional before prepaid, then the earliest
// expiry (never-expiring last), then grants for one queue before grants
// for the whole tenant, then the earliest start, then the ID. Money that
// will lapse soonest or can be spent on least is spent first.
func burnBefore(a, b *grant) bool {
	if a.Kind != b.Kind {
		return a.Kind == Promotional
	}
	ea, eb := a.ExpiresMs, b.ExpiresMs
	if ea != eb {
		switch {
		case ea == 0:
			return false
		case eb == 0:
			return true
		}
		return ea < eb
	}
	if (a.queue >= 0) != (b.queue >= 0) {
		return a.queue >= 0
	}
	if a.StartMs != b.StartMs {
		return a.StartMs < b.StartMs
	}
	return a.ID < b.ID
}

// AddGrant adds a credit grant. It pays for charges metered after it is
// added, for usage within its validity.
func (l *Ledger) AddGrant(g Grant) error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("grant %q: %s: %s", g.ID, field, fmt.Sprintf(format, args...))
	}
	switch {
	case g.ID == "" || len(g.ID) > maxField:
		return fail("id", "must be 1..%d bytes", maxField)
	case g.Tenant == "" || len(g.Tenant) > maxField:
		return fail("tenant", "must be 1..%d bytes", maxField)
	case len(g.Queue) > maxField:
		return fail("queue", "is longer than %d bytes", maxField)
	case g.Kind != Prepaid && g.Kind != Promotional:
		return fail("kind", "%d: want prepaid or promotional", g.Kind)
	case g.Amount <= 0 || g.Amount > maxGrant:
		return fail("amount", "%s: want above 0 and at most %s", g.Amount, maxGrant)
	case g.StartMs < 0 || g.StartMs > maxTimeMs:
		return fail("start", "%d: want a Unix time in milliseconds", g.StartMs)
	case g.ExpiresMs != 0 && (g.ExpiresMs <= g.StartMs || g.ExpiresMs > maxTimeMs):
		return fail("expires", "%s is not after the start %s", FormatTime(g.ExpiresMs), FormatTime(g.StartMs))
	}
	for _, o := range l.grants {
		if o.ID == g.ID {
			return fail("id", "is already a grant's")
		}
	}
	gr := &grant{Grant: g, idx: int32(len(l.grants)), queue: -1, byMonth: map[int64]Money{}}
	if g.Queue != "" {
		gr.queue = l.queues.id(g.Queue)
	}
	l.grants = append(l.grants, gr)
	a := l.account(l.tenants.id(g.Tenant))
	a.grants = append(a.grants, gr)
	sort.SliceStable(a.grants, func(i, j int) bool { return burnBefore(a.grants[i], a.grants[j]) })
	a.bounds = addBound(a.bounds, g.StartMs)
	if g.ExpiresMs != 0 {
		a.bounds = addBound(a.bounds, g.ExpiresMs)
	}
	return nil
}

// maxGrant bounds a grant at a billion units.
const maxGrant = Money(1_000_000_000 * Micro)

func addBound(b []int64, t int64) []int64 {
	i := sort.Search(len(b), func(i int) bool { return b[i] >= t })
	if i < len(b) && b[i] == t {
		return b
	}
	b = append(b, 0)
	copy(b[i+1:], b[i:])
	b[i] = t
	return b
}

// Budget is a hard limit on what a tenant spends on usage in a calendar
// month (on-demand, spot and committed-tier overage, whether credits pay
// it or not; commitment fees are fixed and are not counted).
type Budget struct {
	Tenant  string
	Monthly Money
}

// SetBudget sets or (Monthly 0) removes a tenant's monthly budget.
func (l *Ledger) SetBudget(b Budget) error {
	if b.Tenant == "" || len(b.Tenant) > maxField {
		return fmt.Errorf("budget: tenant: must be 1..%d bytes", maxField)
	}
	if b.Monthly < 0 || b.Monthly > maxGrant {
		return fmt.Errorf("budget for %q: monthly: %s: want 0..%s", b.Tenant, b.Monthly, maxGrant)
	}
	a := l.account(l.tenants.id(b.Tenant))
	a.budget = b.Monthly
	// The next Meter brings the month's overage up to date for it.
	a.dirty[MonthOf(l.horizon).Index()] = true
	return nil
}

// burn is one posting of a charge: to a grant (or, grant -1, billed), in
// a month. Open records keep theirs, so that a close earlier than the
// metering can return what it took.
type burn struct {
	grant  int32
	month  int64
	amount Money
}

// post burns a charge accrued over [x, y) from the tenant's grants in
// burn order, bills the rest, and counts it against the month's budget.
func (l *Ledger) post(st *meterState, x, y int64, amount Money) {
	a := st.acct
	month := st.month
	left := amount
	for _, g := range a.grants {
		if left == 0 {
			break
		}
		if (g.queue >= 0 && g.queue != st.queue) || !g.validAt(x) || g.burned >= g.Amount {
			continue
		}
		take := min(left, g.Amount-g.burned)
		before := g.burned
		g.burned += take
		g.byMonth[month] += take
		l.logBurn(st, g.idx, month, take)
		l.grantThresholds(g, before, x, y, amount-left, amount)
		left -= take
	}
	if left > 0 {
		a.billed[month] += left
		l.logBurn(st, -1, month, left)
	}
	before := a.spent[month]
	a.spent[month] += amount
	if a.budget > 0 {
		l.budgetThresholds(a, month, before+a.overage[month], x, y, amount)
	}
}

func (l *Ledger) logBurn(st *meterState, g int32, month int64, amount Money) {
	if !st.keepLog {
		return
	}
	if n := len(st.log); n > 0 && st.log[n-1].grant == g && st.log[n-1].month == month {
		st.log[n-1].amount += amount
		return
	}
	st.log = append(st.log, burn{g, month, amount})
}

// refund returns the latest postings of a record, up to amount.
func (l *Ledger) refund(st *meterState, amount Money) {
	a := l.account(st.tenant)
	for amount > 0 && len(st.log) > 0 {
		e := &st.log[len(st.log)-1]
		take := min(amount, e.amount)
		if e.grant >= 0 {
			g := l.grants[e.grant]
			g.burned -= take
			g.byMonth[e.month] -= take
		} else {
			a.billed[e.month] -= take
		}
		a.spent[e.month] -= take
		e.amount -= take
		amount -= take
		if e.amount == 0 {
			st.log = st.log[:len(st.log)-1]
		}
	}
}

// crossAt returns when, in [x, y), a charge of total accruing evenly has
// reached k.
func crossAt(x, y int64, k, total Money) int64 {
	if total <= 0 {
		return y
	}
	num := mul64(uint64(y-x), uint64(k))
	q, r := num.divmod(uint64(total))
	at := x + q.int64()
	if r != 0 {
		at++
	}
	return min(at, y)
}

// grantThresholds raises the events of g's thresholds crossed by a burn
// from before to g.burned; done is what the piece had posted before it.
func (l *Ledger) grantThresholds(g *grant, before Money, x, y int64, done, total Money) {
	for g.fired < len(l.cfg.Thresholds) {
		pct := l.cfg.Thresholds[g.fired]
		level := thresholdLevel(g.Amount, pct)
		if g.burned < level {
			return
		}
		g.fired++
		if before >= level {
			continue
		}
		at := crossAt(x, y, done+level-before, total)
		l.events = append(l.events, Event{Kind: GrantThreshold, AtMs: at, Tenant: g.Tenant, Queue: g.Queue, Grant: g.ID,
			Percent: pct, Limit: g.Amount, Used: level})
	}
}

func thresholdLevel(amount Money, pct int) Money {
	// Rounded up: 50% of 0.000003 is reached at 0.000002.
	return Money((mul64(uint64(amount), uint64(pct)).add(u128of(99))).div(100).int64())
}

func (l *Ledger) budgetThresholds(a *account, month int64, before Money, x, y int64, added Money) {
	spent := before + added
	for a.budgetFired[month] < len(l.cfg.Thresholds) {
		pct := l.cfg.Thresholds[a.budgetFired[month]]
		level := thresholdLevel(a.budget, pct)
		if spent < level {
			return
		}
		a.budgetFired[month]++
		at := y
		if before < level && added > 0 {
			at = crossAt(x, y, level-before, added)
		}
		m := monthFromIndex(month)
		l.events = append(l.events, Event{Kind: BudgetThreshold, AtMs: at, Tenant: l.tenants.s[a.tenant], Month: m,
			Percent: pct, Limit: a.budget, Used: level})
	}
}

func monthFromIndex(i int64) Month {
	return Month{Year: int(i / 12), Month: time.Month(i%12 + 1)}
}

// expireGrants raises an event for each grant that expired by now, with
// what was left of it.
func (l *Ledger) expireGrants(now int64) {
	for _, g := range l.grants {
		if g.expired || g.ExpiresMs == 0 || g.ExpiresMs > now {
			continue
		}
		g.expired = true
		l.events = append(l.events, Event{Kind: GrantExpired, AtMs: g.ExpiresMs, Tenant: g.Tenant, Queue: g.Queue, Grant: g.ID,
			Limit: g.Amount, Used: g.burned})
	}
}

// checkBudgets brings each budget's overage up to date (committed-tier
// usage beyond commitments is settled per hour, so it is known only from
// the hours' totals) and raises the thresholds it crosses.
func (l *Ledger) checkBudgets(now int64) {
	for _, t := range l.sortedAccounts() {
		a := l.acct[t]
		if a.budget == 0 || len(a.dirty) == 0 {
			continue
		}
		months := make([]int64, 0, len(a.dirty))
		for m := range a.dirty {
			months = append(months, m)
		}
		sort.Slice(months, func(i, j int) bool { return months[i] < months[j] })
		clear(a.dirty)
		for _, idx := range months {
			m := monthFromIndex(idx)
			ov := l.overageCharge(a.tenant, m.Start(), m.End())
			old := a.overage[idx]
			if ov == old {
				continue
			}
			a.overage[idx] = ov
			if ov > old {
				at := min(now, m.End())
				l.budgetThresholds(a, idx, a.spent[idx]+old, at, at, ov-old)
			}
		}
	}
}

func (l *Ledger) sortedAccounts() []int32 {
	out := make([]int32, 0, len(l.acct))
	for t := range l.acct {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// opened and closed keep the account's open rates.
func (l *Ledger) opened(st *meterState) {
	a := l.account(st.tenant)
	if st.tier == Committed {
		a.openCommitted[[2]int{st.typ, st.site}] += st.dm
	} else {
		a.openRate[st.queue] += int64(st.rate) * st.dm
	}
	l.jobOpen(st.job, 1, 0)
}

func (l *Ledger) closed(st *meterState, end int64) {
	a := l.account(st.tenant)
	if st.tier == Committed {
		k := [2]int{st.typ, st.site}
		if a.openCommitted[k] -= st.dm; a.openCommitted[k] == 0 {
			delete(a.openCommitted, k)
		}
	} else {
		if a.openRate[st.queue] -= int64(st.rate) * st.dm; a.openRate[st.queue] == 0 {
			delete(a.openRate, st.queue)
		}
	}
	l.jobOpen(st.job, -1, end)
	st.log = nil
}

// EventKind says what an Event reports.
type EventKind uint8

// The kinds of event.
const (
	// GrantThreshold: a grant's burned amount reached Percent of it.
	GrantThreshold EventKind = iota
	// GrantExpired: a grant expired; Used of Limit was burned.
	GrantExpired
	// BudgetThreshold: a tenant's spend in Month reached Percent of its
	// budget.
	BudgetThreshold
)

var eventKindNames = [...]string{"grant-threshold", "grant-expired", "budget-threshold"}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// Event is something a driver may want to tell a tenant or act on. Each
// threshold of a grant, and of a budget in a month, is raised once.
type Event struct {
	Kind          EventKind
	AtMs          int64 // when it happened (interpolated within a metered piece)
	Tenant, Queue string
	Grant         string
	Month         Month // of a budget
	Percent       int
	Limit, Used   Money // the grant or budget, and what was burned or spent
}

func (e Event) String() string {
	switch e.Kind {
	case GrantThreshold:
		return fmt.Sprintf("%s grant %s of %s reached %d%% (%s of %s)", FormatTime(e.AtMs), e.Grant, e.Tenant, e.Percent, e.Used, e.Limit)
	case GrantExpired:
		return fmt.Sprintf("%s grant %s of %s expired with %s of %s unused", FormatTime(e.AtMs), e.Grant, e.Tenant, e.Limit-e.Used, e.Limit)
	}
	return fmt.Sprintf("%s budget of %s for %s reached %d%% (%s of %s)", FormatTime(e.AtMs), e.Tenant, e.Month, e.Percent, e.Used, e.Limit)
}

// Standing is what enforcement needs of a tenant (or one of its queues)
// at a time: what it may still spend and how fast it is spending.
type Standing struct {
	Tenant, Queue string
	AtMs          int64
	// Postpaid: the tenant has no credit grants; its usage is billed after
	// the fact and only a budget limits it.
	Postpaid bool
	// Credits is the spendable balance at AtMs: the unburned part of the
	// grants valid then that the queue may use (all of the tenant's when
	// Queue is empty).
	Credits Money
	// BurnRate is what the open on-demand and spot records accrue per
	// hour; OverageRate what open committed-tier usage beyond the active
	// commitments accrues per hour at on-demand rates.
	BurnRate, OverageRate Money
	// Budget is the monthly budget (0: none) and Spent the spend of
	// AtMs's month so far, overage included.
	Budget, Spent Money
}

// Exhausted reports whether new work should not be admitted: a prepaid
// tenant with no spendable credit, or a budget spent.
func (s Standing) Exhausted() bool {
	return !s.Postpaid && s.Credits <= 0 || s.Budget > 0 && s.Spent >= s.Budget
}

// Lasts reports whether the credits and budget cover the current burn for
// another interval: a driver that meters every interval and stops
// admitting when this is false overshoots by at most one interval's burn.
func (s Standing) Lasts(intervalMs int64) bool {
	burn := Money(roundDiv(mul64(uint64(s.BurnRate+s.OverageRate), uint64(intervalMs)), msPerHour, 0))
	if !s.Postpaid && s.Credits < burn {
		return false
	}
	return s.Budget == 0 || s.Spent+burn < s.Budget
}

// Standing returns a tenant's (or queue's) standing at a time, from what
// has been metered so far.
func (l *Ledger) Standing(tenant, queue string, at int64) Standing {
	s := Standing{Tenant: tenant, Queue: queue, AtMs: at, Postpaid: true}
	tid, ok := l.tenants.lookup(tenant)
	if !ok {
		return s
	}
	a := l.acct[tid]
	if a == nil {
		return s
	}
	qid, hasQueue := int32(-1), false
	if queue != "" {
		qid, hasQueue = l.queues.lookup(queue)
		if !hasQueue {
			qid = -2 // a queue with no record and no grant yet
		}
	}
	s.Postpaid = len(a.grants) == 0
	for _, g := range a.grants {
		if !g.validAt(at) || queue != "" && g.queue >= 0 && g.queue != qid {
			continue
		}
		s.Credits += g.Amount - g.burned
	}
	var rate int64
	for q, r := range a.openRate {
		if queue == "" || q == qid {
			rate += r
		}
	}
	s.BurnRate = Money(rate / 1000)
	s.OverageRate = l.overageRate(a, at)
	m := MonthOf(at)
	s.Budget = a.budget
	s.Spent = a.spent[m.Index()] + l.overageCharge(tid, m.Start(), min(max(at, m.Start()), m.End()))
	return s
}
