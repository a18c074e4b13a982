package metering

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// Scope is what a pause covers: all of a tenant's work (Queue empty), or
// one of its queues'.
type Scope struct{ Tenant, Queue string }

func (s Scope) String() string {
	if s.Queue == "" {
		return s.Tenant
	}
	return s.Tenant + "/" + s.Queue
}

// Cause says why a scope is paused.
type Cause uint8

// The causes of a pause.
const (
	// CreditsSpent: a prepaid tenant (or queue) has no spendable credit.
	CreditsSpent Cause = iota + 1
	// BudgetSpent: the tenant's spend this month reached its budget.
	BudgetSpent
)

func (c Cause) String() string {
	switch c {
	case CreditsSpent:
		return "credits"
	case BudgetSpent:
		return "budget"
	}
	return fmt.Sprintf("Cause(%d)", c)
}

// Pause is a pause in force.
type Pause struct {
	Scope
	Cause Cause
	// Reason is what the tenant's pending jobs show: the balance and what
	// to do about it.
	Reason string
	// AtMs is when it was applied.
	AtMs int64
}

// Tenants lists each tenant's queues that take jobs (the leaves of its
// part of the queue tree).
type Tenants map[string][]string

// Enforcer applies the ledger's standing to the core: it pauses the
// admission of a tenant's (or a queue's) work, stopping what runs, when
// its spendable credit reaches zero or its monthly budget is spent, and
// resumes it once credit is granted again, the budget raised or the month
// over. A new Enforcer has no pause in force: its first Step applies every
// pause the ledger calls for, which is how a restarted driver puts them
// back.
type Enforcer struct {
	// IntervalMs is the metering interval: Step never asks to be called
	// later than this.
	IntervalMs int64
	applied    map[Scope]Pause
}

// DefaultIntervalMs is a minute: public clouds bill by the second but act
// on budgets hours late; metering open work once a minute keeps the
// overshoot past a zero balance to a minute's burn at most, for a cost of
// about 15 ms a minute on a fleet of 80,000 accelerators
// (docs/BENCHMARKS.md, MeterOpen).
const DefaultIntervalMs = 60_000

// NewEnforcer makes an enforcer for a metering interval (0: the default).
func NewEnforcer(intervalMs int64) *Enforcer {
	if intervalMs <= 0 {
		intervalMs = DefaultIntervalMs
	}
	return &Enforcer{IntervalMs: intervalMs, applied: map[Scope]Pause{}}
}

// Paused returns the pauses in force, by scope.
func (e *Enforcer) Paused() []Pause {
	out := make([]Pause, 0, len(e.applied))
	for _, p := range e.applied {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return cmpScope(out[i].Scope, out[j].Scope) < 0 })
	return out
}

// PauseOf returns the pause in force on a scope.
func (e *Enforcer) PauseOf(s Scope) (Pause, bool) {
	p, ok := e.applied[s]
	return p, ok
}

// Step reads the ledger's standings at now (the caller has metered up to
// now) and returns the core events that bring the pauses in force to what
// the standings call for, and when to meter and step again: an interval
// later, or sooner when a balance or budget would run out before then at
// the current rate of spend (so that the overshoot is a fraction of an
// interval while nothing new starts), or a grant starts or expires, or a
// month with a budget ends.
func (e *Enforcer) Step(l *ledger.Ledger, tenants Tenants, now int64) (evs []sched.Event, next int64) {
	next = now + e.IntervalMs
	soon := func(t int64) {
		if t > now && t < next {
			next = t
		}
	}
	want := map[Scope]Pause{}
	cur := l.Currency()
	names := make([]string, 0, len(tenants))
	for t := range tenants {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		grants := l.Grants(t)
		st := l.Standing(t, "", now)
		if st.Postpaid && st.Budget == 0 {
			continue
		}
		for _, g := range grants {
			soon(g.StartMs)
			if g.ExpiresMs != 0 {
				soon(g.ExpiresMs)
			}
		}
		if st.Budget > 0 {
			soon(ledger.MonthOf(now).End())
		}
		scope := Scope{Tenant: t}
		switch {
		case st.Budget > 0 && st.Spent >= st.Budget:
			want[scope] = Pause{Scope: scope, Cause: BudgetSpent, Reason: budgetReason(st, cur, now)}
			continue
		case !st.Postpaid && st.Credits <= 0:
			want[scope] = Pause{Scope: scope, Cause: CreditsSpent, Reason: creditReason(scope, grants, st, cur, now)}
			continue
		}
		if st.Budget > 0 {
			soon(runsOut(now, st.Budget-st.Spent, st.BurnRate+st.OverageRate))
		}
		if st.Postpaid {
			continue
		}
		if !queueGrants(grants) {
			soon(runsOut(now, st.Credits, st.BurnRate))
			continue
		}
		// Some grants pay for one queue only: each queue has its own
		// balance (its grants and the tenant-wide ones).
		for _, q := range tenants[t] {
			qs := l.Standing(t, q, now)
			s := Scope{Tenant: t, Queue: q}
			if qs.Credits <= 0 {
				want[s] = Pause{Scope: s, Cause: CreditsSpent, Reason: creditReason(s, grants, qs, cur, now)}
				continue
			}
			soon(runsOut(now, qs.Credits, qs.BurnRate))
		}
	}
	// Lift what no longer holds, then apply what is new; a pause whose
	// cause is unchanged keeps its reason and time.
	var lift []Scope
	for s := range e.applied {
		if _, ok := want[s]; !ok {
			lift = append(lift, s)
		}
	}
	slices.SortFunc(lift, func(a, b Scope) int { return cmpScope(a, b) })
	for _, s := range lift {
		delete(e.applied, s)
		evs = append(evs, sched.AdmissionResumed{Tenant: s.Tenant, Queue: s.Queue})
	}
	add := make([]Scope, 0, len(want))
	for s, p := range want {
		if old, ok := e.applied[s]; ok && old.Cause == p.Cause {
			continue
		}
		add = append(add, s)
	}
	slices.SortFunc(add, func(a, b Scope) int { return cmpScope(a, b) })
	for _, s := range add {
		p := want[s]
		p.AtMs = now
		e.applied[s] = p
		evs = append(evs, sched.AdmissionPaused{Tenant: s.Tenant, Queue: s.Queue, Reason: p.Reason, Stop: true})
	}
	return evs, next
}

func cmpScope(a, b Scope) int {
	if a.Tenant != b.Tenant {
		if a.Tenant < b.Tenant {
			return -1
		}
		return 1
	}
	switch {
	case a.Queue < b.Queue:
		return -1
	case a.Queue > b.Queue:
		return 1
	}
	return 0
}

func queueGrants(gs []ledger.GrantBalance) bool {
	for _, g := range gs {
		if g.Queue != "" {
			return true
		}
	}
	return false
}

// runsOut returns when left runs out at rate (per hour), rounded up to
// the millisecond; 0 when nothing is spent.
func runsOut(now int64, left, rate ledger.Money) int64 {
	if rate <= 0 {
		return 0
	}
	if left <= 0 {
		return now
	}
	ms := math.Ceil(float64(left) / float64(rate) * 3_600_000)
	if ms > 1e15 {
		return 0
	}
	return now + int64(ms)
}

func money(m ledger.Money, c ledger.Currency) string { return m.Format(c) + " " + c.Code }

// creditReason says that a scope's credits are spent, with the balance
// and what to do.
func creditReason(s Scope, grants []ledger.GrantBalance, st ledger.Standing, cur ledger.Currency, now int64) string {
	who := "credits of " + s.Tenant
	if s.Queue != "" {
		who = "credits of queue " + s.Queue + " of " + s.Tenant
	}
	var granted ledger.Money
	nextStart, inScope := int64(0), 0
	for _, g := range grants {
		if s.Queue != "" && g.Queue != "" && g.Queue != s.Queue {
			continue
		}
		inScope++
		valid := g.StartMs <= now && (g.ExpiresMs == 0 || now < g.ExpiresMs)
		if valid {
			granted += g.Amount
		} else if g.StartMs > now && (nextStart == 0 || g.StartMs < nextStart) {
			nextStart = g.StartMs
		}
	}
	switch {
	case inScope == 0:
		return fmt.Sprintf("queue %s of %s has no credits (%s's grants pay for its other queues only); grant credits to resume", s.Queue, s.Tenant, s.Tenant)
	case granted == 0 && nextStart > 0:
		return fmt.Sprintf("no %s are valid yet (the next grant starts at %s); grant credits to resume now", who, ledger.FormatTime(nextStart))
	case granted == 0:
		return fmt.Sprintf("%s have expired; grant credits to resume", who)
	}
	return fmt.Sprintf("%s are spent (%s left of %s granted); grant credits to resume", who, money(st.Credits, cur), money(granted, cur))
}

// budgetReason says that the tenant's monthly budget is spent.
func budgetReason(st ledger.Standing, cur ledger.Currency, now int64) string {
	m := ledger.MonthOf(now)
	return fmt.Sprintf("the monthly budget of %s is spent (%s of %s in %s); raise the budget to resume, or wait for %s",
		st.Tenant, money(st.Spent, cur), money(st.Budget, cur), m, m.Next())
}
