package ledger

import (
	"fmt"
	"sort"
)

// InvoiceLineKind says what an invoice line charges.
type InvoiceLineKind uint8

// The kinds of invoice line, in the order an invoice lists them.
const (
	// CommitmentFee: a commitment's take-or-pay fee for the month.
	CommitmentFee InvoiceLineKind = iota
	// CommittedCovered: committed-tier usage its commitments covered
	// (shown, not charged: the fee pays for it).
	CommittedCovered
	// CommittedOverage: committed-tier usage beyond the commitments, at
	// the on-demand rate.
	CommittedOverage
	// OnDemandUsage and SpotUsage: usage at the tier's rate.
	OnDemandUsage
	SpotUsage
	// CreditApplied: a grant's credit burned by the month's usage (a
	// negative amount).
	CreditApplied
)

var invoiceLineNames = [...]string{"commitment", "committed-covered", "committed-overage", "on-demand", "spot", "credit"}

func (k InvoiceLineKind) String() string {
	if int(k) < len(invoiceLineNames) {
		return invoiceLineNames[k]
	}
	return fmt.Sprintf("InvoiceLineKind(%d)", k)
}

// InvoiceLine is one line of an invoice.
type InvoiceLine struct {
	Kind       InvoiceLineKind
	Type, Site string
	// Ref names the commitment or the grant.
	Ref string
	// MilliMs is the accelerator-time charged (for a fee: the term's
	// capacity in the month).
	MilliMs int64
	// Rate is per accelerator-hour.
	Rate Money
	// Amount is exact, in micro-units; Billed is rounded to the
	// currency's coin so that the lines' Billed add up to the invoice's.
	Amount, Billed Money
}

// Invoice is what a tenant owes for a calendar month.
type Invoice struct {
	Tenant   string
	Month    Month
	Currency Currency
	// Postpaid: the tenant has no credit grants.
	Postpaid bool
	Lines    []InvoiceLine
	// Commitments is the sum of the fees, Usage of the usage charges
	// (overage, on-demand, spot), Credits what grants paid of them;
	// Total = Commitments + Usage - Credits, exact, and Billed is Total
	// rounded half up to the currency's coin.
	Commitments, Usage, Credits, Total Money
	Billed                             Money
	// CreditsLeft is the spendable balance at the end of the month, from
	// what was metered so far; CreditsExpired the unburned part of grants
	// that expired in the month.
	CreditsLeft, CreditsExpired Money
	// Budget is the monthly budget (0: none) and Spent the month's usage
	// charges counted against it.
	Budget, Spent Money
}

// Invoice makes a tenant's invoice for a month. Make it once the month is
// metered (a Meter call at or after its end): usage not yet fed is not on
// it.
func (l *Ledger) Invoice(tenant string, m Month) (*Invoice, error) {
	if tenant == "" {
		return nil, fmt.Errorf("invoice: tenant: must not be empty")
	}
	inv := &Invoice{Tenant: tenant, Month: m, Currency: l.cur, Postpaid: true}
	start, end := m.Start(), m.End()
	tid, ok := l.tenants.lookup(tenant)
	if !ok {
		return inv, nil
	}
	// Commitment fees: the price per accelerator-hour over the term's
	// part in the month, rounded on the running total from the term's
	// start so that a term's monthly fees add up to its whole fee.
	for _, c := range l.commits {
		if c.tenant != tid {
			continue
		}
		lo, hi := max(start, c.StartMs), min(end, c.EndMs)
		if hi <= lo {
			continue
		}
		fee := commitFee(c, hi) - commitFee(c, lo)
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: CommitmentFee, Type: c.Type, Site: c.Site, Ref: c.ID,
			MilliMs: int64(c.Count) * 1000 * (hi - lo), Rate: c.PricePerHour, Amount: fee})
		inv.Commitments += fee
	}
	// Usage, per tier, type and site.
	type useKey struct {
		kind      InvoiceLineKind
		typ, site int
	}
	use := map[useKey]*InvoiceLine{}
	line := func(kind InvoiceLineKind, typ, site int) *InvoiceLine {
		k := useKey{kind, typ, site}
		il := use[k]
		if il == nil {
			tier := OnDemand
			if kind == SpotUsage {
				tier = Spot
			}
			il = &InvoiceLine{Kind: kind, Type: l.types[typ].name, Site: l.sites[site].name, Rate: l.sites[site].rates[typ][tier]}
			use[k] = il
		}
		return il
	}
	fromDay, toDay := dayOf(start), dayOf(end)
	for i := range l.buckets.len() {
		b := l.buckets.at(i)
		lk := l.lines[b.line].key
		if lk.tenant != tid || int64(b.day) < fromDay || int64(b.day) >= toDay || lk.tier == Committed {
			continue
		}
		kind := OnDemandUsage
		if lk.tier == Spot {
			kind = SpotUsage
		}
		il := line(kind, int(lk.typ), int(lk.site))
		il.MilliMs += b.MilliMs
		il.Amount += b.Charge
	}
	var cv cover
	for _, g := range l.coverGroups(tid) {
		for d := fromDay; d < toDay && len(g.lines) > 0; d++ {
			l.coverDay(g, d, &cv)
			if !cv.hasUsage {
				continue
			}
			for i, ln := range g.lines {
				lk := l.lines[ln].key
				if cv.covered[i] > 0 {
					il := line(CommittedCovered, int(lk.typ), int(lk.site))
					il.MilliMs += cv.covered[i]
					il.Rate = 0
				}
				if cv.overage[i] > 0 {
					il := line(CommittedOverage, int(lk.typ), int(lk.site))
					il.MilliMs += cv.overage[i]
					il.Amount += cv.ovgCharge[i]
				}
			}
		}
	}
	keys := make([]useKey, 0, len(use))
	for k := range use {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.typ != b.typ {
			return l.types[a.typ].name < l.types[b.typ].name
		}
		return l.sites[a.site].name < l.sites[b.site].name
	})
	for _, k := range keys {
		il := use[k]
		inv.Lines = append(inv.Lines, *il)
		inv.Usage += il.Amount
	}
	// Credits.
	mi := m.Index()
	if a := l.acct[tid]; a != nil {
		inv.Postpaid = len(a.grants) == 0
		for _, g := range a.grants {
			if used := g.byMonth[mi]; used != 0 {
				inv.Lines = append(inv.Lines, InvoiceLine{Kind: CreditApplied, Ref: g.ID, Amount: -used})
				inv.Credits += used
			}
			if g.validAt(end - 1) {
				inv.CreditsLeft += g.Amount - g.burned
			}
			if g.ExpiresMs > start && g.ExpiresMs <= end {
				inv.CreditsExpired += g.Amount - g.burned
			}
		}
		inv.Budget = a.budget
		inv.Spent = a.spent[mi] + l.overageCharge(tid, start, end)
	}
	inv.Total = inv.Commitments + inv.Usage - inv.Credits
	amounts := make([]Money, len(inv.Lines))
	for i, il := range inv.Lines {
		amounts[i] = il.Amount
	}
	for i, b := range RoundTo(amounts, l.cur.MinorUnit()) {
		inv.Lines[i].Billed = b
		inv.Billed += b
	}
	return inv, nil
}

// commitFee returns a commitment's fee from its start to t, rounded half
// up.
func commitFee(c *commitment, t int64) Money {
	return Money(roundDiv(mul64(uint64(c.PricePerHour), uint64(c.Count)).mul(uint64(t-c.StartMs)), msPerHour, 0))
}
