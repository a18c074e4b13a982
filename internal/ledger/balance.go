package ledger

import "sort"

// GrantBalance is a credit grant with what metering has burned of it so
// far.
type GrantBalance struct {
	Grant
	// Burned is what usage has taken of the grant; Amount - Burned is
	// left.
	Burned Money
	// Thresholds is how many of the configured thresholds it has
	// reached.
	Thresholds int
}

// Left returns the unburned part of the grant.
func (g GrantBalance) Left() Money { return g.Amount - g.Burned }

// Grants returns the grants of a tenant (every tenant's when tenant is
// empty) with what they have burned, by tenant and then in burn order.
func (l *Ledger) Grants(tenant string) []GrantBalance {
	var ts []int32
	if tenant == "" {
		ts = l.sortedAccounts()
		sort.Slice(ts, func(i, j int) bool { return l.tenants.s[ts[i]] < l.tenants.s[ts[j]] })
	} else if t, ok := l.tenants.lookup(tenant); ok {
		ts = []int32{t}
	}
	var out []GrantBalance
	for _, t := range ts {
		a := l.acct[t]
		if a == nil {
			continue
		}
		for _, g := range a.grants {
			out = append(out, GrantBalance{Grant: g.Grant, Burned: g.burned, Thresholds: g.fired})
		}
	}
	return out
}

// Commitments returns every commitment, active or not, by ID.
func (l *Ledger) Commitments() []Commitment {
	out := make([]Commitment, 0, len(l.commits))
	for _, c := range l.commits {
		out = append(out, c.Commitment)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Budget returns a tenant's monthly budget (0: none).
func (l *Ledger) Budget(tenant string) Money {
	t, ok := l.tenants.lookup(tenant)
	if !ok || l.acct[t] == nil {
		return 0
	}
	return l.acct[t].budget
}

// Usage returns the totals metered for one tenant (every tenant's when
// tenant is empty) over [fromMs, toMs), which must be UTC day boundaries:
// what a dashboard or a metric shows without building a report.
func (l *Ledger) Usage(tenant string, fromMs, toMs int64) Totals {
	var tot Totals
	tid := int32(-1)
	if tenant != "" {
		t, ok := l.tenants.lookup(tenant)
		if !ok {
			return tot
		}
		tid = t
	}
	d0, d1 := dayOf(fromMs), dayOf(toMs)
	for i := range l.lines {
		li := &l.lines[i]
		if tid >= 0 && li.key.tenant != tid {
			continue
		}
		for d := max(d0, li.base); d < d1 && d-li.base < int64(len(li.days)); d++ {
			if b := li.days[d-li.base]; b != 0 {
				tot.add(l.buckets.at(b - 1).Totals)
			}
		}
	}
	return tot
}

// UsageByTenant returns the totals metered per tenant over [fromMs, toMs)
// (UTC day boundaries), in one pass over the accounts.
func (l *Ledger) UsageByTenant(fromMs, toMs int64) map[string]Totals {
	out := map[string]Totals{}
	d0, d1 := dayOf(fromMs), dayOf(toMs)
	for i := range l.lines {
		li := &l.lines[i]
		var tot Totals
		for d := max(d0, li.base); d < d1 && d-li.base < int64(len(li.days)); d++ {
			if b := li.days[d-li.base]; b != 0 {
				tot.add(l.buckets.at(b - 1).Totals)
			}
		}
		if tot != (Totals{}) {
			name := l.tenants.s[li.key.tenant]
			t := out[name]
			t.add(tot)
			out[name] = t
		}
	}
	return out
}

// Fee returns the commitment's fee for its whole term: count x hours x
// price, rounded half up once (its invoices' monthly fees add up to it).
func (c Commitment) Fee() Money { return commitFee(&commitment{Commitment: c}, c.EndMs) }

// FeeBetween returns the commitment's fee for the part of its term in
// [fromMs, toMs), rounded as its invoices round it (on the running total
// from the term's start).
func (c Commitment) FeeBetween(fromMs, toMs int64) Money {
	lo, hi := max(fromMs, c.StartMs), min(toMs, c.EndMs)
	if hi <= lo {
		return 0
	}
	cm := &commitment{Commitment: c}
	return commitFee(cm, hi) - commitFee(cm, lo)
}
