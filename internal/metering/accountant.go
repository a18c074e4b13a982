package metering

import (
	"errors"
	"fmt"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// Holder is the part of the scheduling core that says what runs now.
type Holder interface {
	Holdings(fn func(sched.Usage) bool)
}

// Accountant is what a driver of the core keeps for accounting: the
// ledger, the enforcer of credits and budgets, and the committed-tier
// quotas. The driver feeds it every usage record the core returns
// (Closed), and when Due says so it meters what runs (Meter), applying to
// the core the events Meter returns. Every accelerator-second of a
// holding is metered once: a holding is fed open from the core's
// Holdings and closed from its Ready, under one ID (RecordID).
type Accountant struct {
	Ledger   *ledger.Ledger
	Enforcer *Enforcer
	Quotas   Quotas
	next     int64
	// open holds the holdings fed open and not closed since: a meter
	// feeds only those it has not (the others are a Duplicate), without
	// building their records.
	open map[holdKey]struct{}
	// Skipped counts records the ledger refused (their error was
	// returned): nothing else is dropped.
	Skipped int
}

// holdKey names a holding as RecordID does, without building the string.
type holdKey struct {
	job                    sched.JobID
	attempt, gang, replica int
	from                   int64
}

func keyOf(u *sched.Usage) holdKey {
	return holdKey{job: u.Job, attempt: u.Attempt, gang: u.Gang, replica: u.Replica, from: u.From}
}

// New makes an accountant over a ledger, metering every intervalMs (0:
// DefaultIntervalMs).
func New(l *ledger.Ledger, intervalMs int64) *Accountant {
	return &Accountant{Ledger: l, Enforcer: NewEnforcer(intervalMs), open: map[holdKey]struct{}{}}
}

// Closed feeds the records of holdings that ended. A record fed before
// (a replay) changes nothing. Records the ledger refuses are counted in
// Skipped and the first refusal is returned; the others are fed.
func (a *Accountant) Closed(us []sched.Usage) error {
	var first error
	for i := range us {
		r, ok := Record(&us[i])
		if !ok {
			continue
		}
		delete(a.open, keyOf(&us[i]))
		if _, err := a.Ledger.Add(r); err != nil && !errors.Is(err, ledger.ErrSealed) {
			a.Skipped++
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// Due reports whether the accountant wants to meter at nowMs.
func (a *Accountant) Due(nowMs int64) bool { return nowMs >= a.next }

// Overlay returns the queue tree the core should hold at nowMs: specs
// with the commitments' committed-tier quota, recorded as applied. A
// driver that replaces the core's tree (an administrator's change) gives
// it this.
func (a *Accountant) Overlay(specs []quota.Spec, nowMs int64) []quota.Spec {
	a.Quotas.Sync(a.Ledger, nowMs)
	return Overlay(specs, a.Ledger, nowMs)
}

// TenantsOf lists each tenant of a queue tree with its leaf queues, in the
// order specs gives them.
func TenantsOf(specs []quota.Spec) Tenants {
	parent := make(map[string]string, len(specs))
	inner := map[string]bool{}
	for _, sp := range specs {
		parent[sp.Name] = sp.Parent
		if sp.Parent != "" {
			inner[sp.Parent] = true
		}
	}
	out := Tenants{}
	for _, sp := range specs {
		t := sp.Name
		for depth := 0; parent[t] != "" && depth < len(specs); depth++ {
			t = parent[t]
		}
		if _, ok := out[t]; !ok {
			out[t] = nil
		}
		if !inner[sp.Name] && sp.Parent != "" {
			out[t] = append(out[t], sp.Name)
		}
	}
	return out
}

// Next returns when the accountant next wants to meter.
func (a *Accountant) Next() int64 { return a.next }

// Wake asks for a meter at the next Due (after credits were granted, a
// budget or a commitment changed).
func (a *Accountant) Wake() { a.next = 0 }

// Meter feeds the core's open holdings, meters them up to nowMs, and
// returns the events that enforcement (admission paused or resumed) and
// the commitments (committed-tier quota) call for now, for the driver to
// apply to the core in order. specs is the queue tree the driver keeps
// (without the commitments' quota, which Overlay adds); a change of
// committed quota comes as a QueuesChanged of Overlay's tree.
func (a *Accountant) Meter(core Holder, specs []quota.Spec, nowMs int64) ([]sched.Event, error) {
	var first error
	if core != nil {
		core.Holdings(func(u sched.Usage) bool {
			k := keyOf(&u)
			if _, fed := a.open[k]; fed {
				return true
			}
			u.End = sched.EndOpen
			r, ok := Record(&u)
			if !ok {
				return true
			}
			_, err := a.Ledger.Add(r)
			if err == nil {
				a.open[k] = struct{}{}
			}
			if err != nil && !errors.Is(err, ledger.ErrSealed) {
				a.Skipped++
				if first == nil {
					first = err
				}
			}
			return true
		})
	}
	if err := a.Ledger.Meter(nowMs); err != nil {
		return nil, fmt.Errorf("meter to %s: %w", ledger.FormatTime(nowMs), err)
	}
	var evs []sched.Event
	if a.Quotas.Step(a.Ledger, nowMs) {
		evs = append(evs, sched.QueuesChanged{Specs: Overlay(specs, a.Ledger, nowMs)})
	}
	pauses, next := a.Enforcer.Step(a.Ledger, TenantsOf(specs), nowMs)
	evs = append(evs, pauses...)
	if b := a.Ledger.CommitmentBoundaries(nowMs, next); len(b) > 0 {
		next = b[0]
	}
	a.next = next
	return evs, first
}
