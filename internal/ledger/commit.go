package ledger

import (
	"fmt"
	"sort"
	"strings"
)

// Commitment is a capacity contract, take-or-pay: for its term the tenant
// pays for Count accelerators of Type (at Site, or at any site when Site
// is empty) whether it uses them or not, and its usage in the committed
// tier up to Count at a time is covered by it. Idle committed capacity is
// the tenant's in chargeback; others may borrow it through the scheduler
// and then pay their own tier's price.
type Commitment struct {
	ID     string
	Tenant string
	Type   string
	Site   string // empty: any site
	Count  int
	// The term is [StartMs, EndMs).
	StartMs, EndMs int64
	// PricePerHour is the contract's price per accelerator-hour.
	PricePerHour Money
}

type commitment struct {
	Commitment
	tenant int32
	typ    int
	site   int // -1: any
}

// capIn returns the commitment's capacity within [a, b), in
// milli-accelerator-milliseconds.
func (c *commitment) capIn(a, b int64) int64 {
	lo, hi := max(a, c.StartMs), min(b, c.EndMs)
	if hi <= lo {
		return 0
	}
	return int64(c.Count) * 1000 * (hi - lo)
}

// maxCount bounds a commitment's accelerators.
const maxCount = 10_000_000

// AddCommitment adds a commitment. Reports and invoices settle all
// committed-tier usage in its term against it, including usage metered
// before it was added.
func (l *Ledger) AddCommitment(c Commitment) error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("commitment %q: %s: %s", c.ID, field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == "" || len(c.ID) > maxField:
		return fail("id", "must be 1..%d bytes", maxField)
	case c.Tenant == "" || len(c.Tenant) > maxField:
		return fail("tenant", "must be 1..%d bytes", maxField)
	case c.Count < 1 || c.Count > maxCount:
		return fail("count", "%d: want 1..%d", c.Count, maxCount)
	case c.StartMs < 0 || c.StartMs > maxTimeMs:
		return fail("start", "%d: want a Unix time in milliseconds", c.StartMs)
	case c.EndMs <= c.StartMs || c.EndMs > maxTimeMs:
		return fail("end", "%s is not after the start %s", FormatTime(c.EndMs), FormatTime(c.StartMs))
	case c.PricePerHour < 0 || c.PricePerHour > maxRate:
		return fail("pricePerHour", "%s: want 0..%s", c.PricePerHour, maxRate)
	}
	typ, ok := l.typeIdx[c.Type]
	if !ok {
		return fail("type", "%q is not in the catalog (want one of %s)", c.Type, strings.Join(l.cfg.Catalog.Names(), ", "))
	}
	site := -1
	if c.Site != "" {
		if _, known := l.siteIdx[c.Site]; !known && l.defSite == nil {
			return fail("site", "%q is not a known site (want one of %s, or empty for any)", c.Site, strings.Join(l.siteNames(), ", "))
		}
		site = l.site(c.Site)
	}
	for _, o := range l.commits {
		if o.ID == c.ID {
			return fail("id", "is already a commitment's")
		}
	}
	cm := &commitment{Commitment: c, tenant: l.tenants.id(c.Tenant), typ: typ, site: site}
	l.commits = append(l.commits, cm)
	a := l.account(cm.tenant)
	if a.budget > 0 {
		for m := MonthOf(c.StartMs); m.Start() < c.EndMs; m = m.Next() {
			a.dirty[m.Index()] = true
		}
	}
	return nil
}

// ActiveCommitments returns the commitments in force at now, by ID: what a
// scheduler turns into nominal quota of the committed tier for the term.
func (l *Ledger) ActiveCommitments(now int64) []Commitment {
	var out []Commitment
	for _, c := range l.commits {
		if c.StartMs <= now && now < c.EndMs {
			out = append(out, c.Commitment)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Quota is committed capacity of a tenant for one type and site (empty:
// any site), in accelerators.
type Quota struct {
	Tenant, Type, Site string
	Accelerators       int
}

// CommittedQuota sums the active commitments at now per tenant, type and
// site, in that order.
func (l *Ledger) CommittedQuota(now int64) []Quota {
	sum := map[Quota]int{}
	for _, c := range l.ActiveCommitments(now) {
		sum[Quota{Tenant: c.Tenant, Type: c.Type, Site: c.Site}] += c.Count
	}
	out := make([]Quota, 0, len(sum))
	for k, n := range sum {
		k.Accelerators = n
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Site < b.Site
	})
	return out
}

// CommitmentBoundaries returns the times in (from, to] at which a
// commitment starts or ends, in order: when the committed quota changes.
// What happens to work running at a term's end is the integrator's
// choice.
func (l *Ledger) CommitmentBoundaries(from, to int64) []int64 {
	var out []int64
	for _, c := range l.commits {
		for _, t := range []int64{c.StartMs, c.EndMs} {
			if t > from && t <= to {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	j := 0
	for i, t := range out {
		if i == 0 || t != out[j-1] {
			out[j] = t
			j++
		}
	}
	return out[:j]
}

// Coverage. Committed-tier usage is settled against commitments per clock
// hour, as cloud reservations are: in each hour a tenant's committed-tier
// time of a type at a site is covered first by its commitments at that
// site, then by its any-site commitments, up to their capacity in the
// hour; the rest is overage, charged at the on-demand rate. Each split is
// proportional (largest remainder): among a site's lines by their time,
// among commitments by their capacity, so the result depends only on the
// hour's totals, never on the order records were metered in.

// coverGroup is one tenant's committed-tier lines of one type and the
// commitments that may cover them, with the lines and commitments of each
// site worked out once.
type coverGroup struct {
	tenant  int32
	typ     int
	lines   []int32
	commits []*commitment
	sites   []coverSite
	anyC    []int // commitments valid at any site
}

type coverSite struct {
	lines   []int // indexes into coverGroup.lines
	commits []int // indexes into coverGroup.commits
}

// coverGroups returns the groups of a tenant (all tenants when tenant is
// -1) in a stable order.
func (l *Ledger) coverGroups(tenant int32) []*coverGroup {
	idx := map[[2]int32]*coverGroup{}
	var out []*coverGroup
	get := func(t int32, typ int) *coverGroup {
		k := [2]int32{t, int32(typ)}
		g := idx[k]
		if g == nil {
			g = &coverGroup{tenant: t, typ: typ}
			idx[k] = g
			out = append(out, g)
		}
		return g
	}
	for i, ln := range l.lines {
		k := ln.key
		if k.tier != Committed || tenant >= 0 && k.tenant != tenant {
			continue
		}
		g := get(k.tenant, int(k.typ))
		g.lines = append(g.lines, int32(i))
	}
	for _, c := range l.commits {
		if tenant >= 0 && c.tenant != tenant {
			continue
		}
		g := get(c.tenant, c.typ)
		g.commits = append(g.commits, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].tenant != out[j].tenant {
			return out[i].tenant < out[j].tenant
		}
		return out[i].typ < out[j].typ
	})
	for _, g := range out {
		bySite := map[int]int{}
		for i, ln := range g.lines {
			s := int(l.lines[ln].key.site)
			k, ok := bySite[s]
			if !ok {
				k = len(g.sites)
				bySite[s] = k
				g.sites = append(g.sites, coverSite{})
			}
			g.sites[k].lines = append(g.sites[k].lines, i)
		}
		for j, c := range g.commits {
			if c.site < 0 {
				g.anyC = append(g.anyC, j)
			} else if k, ok := bySite[c.site]; ok {
				g.sites[k].commits = append(g.sites[k].commits, j)
			}
		}
	}
	return out
}

// cover is the settlement of one group over one day, and the scratch
// space of settling it.
type cover struct {
	covered, overage []int64 // per line of the group
	ovgCharge        []Money // per line: overage at the on-demand rate, rounded once for the day
	commitCovered    []int64 // per commitment of the group
	hasUsage         bool

	hours                  []*[24]int64
	u, caps, lineCov, rem  []int64
	commitCov, siteRem, ws []int64
	share                  []int64
	rems                   []uint64
}

func resize(s []int64, n int) []int64 {
	if cap(s) < n {
		return make([]int64, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// coverDay settles a group's day.
func (l *Ledger) coverDay(g *coverGroup, day int64, cv *cover) {
	nl, nc := len(g.lines), len(g.commits)
	cv.covered = resize(cv.covered, nl)
	cv.overage = resize(cv.overage, nl)
	cv.commitCovered = resize(cv.commitCovered, nc)
	if cap(cv.ovgCharge) < nl {
		cv.ovgCharge = make([]Money, nl)
	}
	cv.ovgCharge = cv.ovgCharge[:nl]
	clear(cv.ovgCharge)
	if cap(cv.hours) < nl {
		cv.hours = make([]*[24]int64, nl)
	}
	cv.hours = cv.hours[:nl]
	cv.hasUsage = false
	for i, ln := range g.lines {
		cv.hours[i] = nil
		if bi, ok := l.bucketOf(ln, day); ok {
			cv.hours[i] = l.hoursOf(l.buckets.at(bi))
			cv.hasUsage = true
		}
	}
	if !cv.hasUsage {
		return
	}
	ds, de := day*msPerDay, (day+1)*msPerDay
	active := false
	for _, c := range g.commits {
		if c.StartMs < de && c.EndMs > ds {
			active = true
			break
		}
	}
	if !active {
		// Nothing can cover it: all overage.
		for i, h := range cv.hours {
			if h != nil {
				for _, x := range h {
					cv.overage[i] += x
				}
			}
		}
	} else {
		cv.u = resize(cv.u, nl)
		cv.caps = resize(cv.caps, nc)
		for h := range 24 {
			hs := ds + int64(h)*msPerHour
			any := false
			for i := range cv.u {
				cv.u[i] = 0
				if cv.hours[i] != nil {
					cv.u[i] = cv.hours[i][h]
					any = any || cv.u[i] > 0
				}
			}
			if !any {
				continue
			}
			for j, c := range g.commits {
				cv.caps[j] = c.capIn(hs, hs+msPerHour)
			}
			cv.settleHour(g)
			for i := range cv.u {
				cv.covered[i] += cv.lineCov[i]
				cv.overage[i] += cv.u[i] - cv.lineCov[i]
			}
			for j := range cv.commitCov {
				cv.commitCovered[j] += cv.commitCov[j]
			}
		}
	}
	for i, ln := range g.lines {
		if cv.overage[i] == 0 {
			continue
		}
		k := l.lines[ln].key
		rate := l.sites[k.site].rates[k.typ][OnDemand]
		cv.ovgCharge[i] = Money(roundDiv(mul64(uint64(rate), uint64(cv.overage[i])), chargeDiv, 0))
	}
}

// settleHour covers an hour's usage cv.u (per line) by commitments of
// capacity cv.caps: each site's commitments first, then any-site ones. It
// leaves the covered time per line in cv.lineCov and per commitment in
// cv.commitCov.
func (cv *cover) settleHour(g *coverGroup) {
	cv.lineCov = resize(cv.lineCov, len(cv.u))
	cv.rem = resize(cv.rem, len(cv.u))
	cv.commitCov = resize(cv.commitCov, len(cv.caps))
	cv.siteRem = resize(cv.siteRem, len(g.sites))
	for k, site := range g.sites {
		var us, cs int64
		for _, i := range site.lines {
			us += cv.u[i]
		}
		for _, j := range site.commits {
			cs += cv.caps[j]
		}
		if cov := min(us, cs); cov > 0 {
			cv.split(cov, site.lines, cv.u, cv.lineCov)
			cv.split(cov, site.commits, cv.caps, cv.commitCov)
		}
		for _, i := range site.lines {
			cv.rem[i] = cv.u[i] - cv.lineCov[i]
			cv.siteRem[k] += cv.rem[i]
		}
	}
	var anyCap, remSum int64
	for _, j := range g.anyC {
		anyCap += cv.caps[j]
	}
	for _, r := range cv.siteRem {
		remSum += r
	}
	covA := min(anyCap, remSum)
	if covA == 0 {
		return
	}
	perSite := apportionInto(&cv.share, &cv.rems, covA, cv.siteRem)
	for k, site := range g.sites {
		if perSite[k] > 0 {
			cv.split(perSite[k], site.lines, cv.rem, cv.lineCov)
		}
	}
	cv.split(covA, g.anyC, cv.caps, cv.commitCov)
}

// split adds to dst[idx[n]] the shares of total in proportion to
// weights[idx[n]].
func (cv *cover) split(total int64, idx []int, weights, dst []int64) {
	cv.ws = cv.ws[:0]
	for _, i := range idx {
		cv.ws = append(cv.ws, weights[i])
	}
	shares := apportionInto(&cv.share, &cv.rems, total, cv.ws)
	for n, i := range idx {
		dst[i] += shares[n]
	}
}

// apportionInto is Apportion for a non-negative total and small weights
// that fit the quota in 128 bits, without allocating: the same shares,
// with the leftover units going to the largest remainders, ties to the
// earlier weight.
func apportionInto(out *[]int64, rems *[]uint64, total int64, weights []int64) []int64 {
	n := len(weights)
	*out = resize(*out, n)
	if cap(*rems) < n {
		*rems = make([]uint64, n)
	}
	*rems = (*rems)[:n]
	shares, rs := *out, *rems
	var sum uint64
	for _, w := range weights {
		if w > 0 {
			sum += uint64(w)
		}
	}
	if total <= 0 || sum == 0 {
		return shares
	}
	var given uint64
	for i, w := range weights {
		rs[i] = 0
		if w <= 0 {
			continue
		}
		q, r := mul64(uint64(total), uint64(w)).divmod(sum)
		shares[i] = q.int64()
		given += q.lo
		rs[i] = r + 1 // 0 marks a weight that takes no leftover
	}
	for left := uint64(total) - given; left > 0; left-- {
		best := -1
		for i, r := range rs {
			if r > 0 && (best < 0 || r > rs[best]) {
				best = i
			}
		}
		shares[best]++
		rs[best] = 0
	}
	return shares
}

// overageCharge returns a tenant's committed-tier overage charges for the
// days of [from, to).
func (l *Ledger) overageCharge(tenant int32, from, to int64) Money {
	var sum Money
	var cv cover
	for _, g := range l.coverGroups(tenant) {
		if len(g.lines) == 0 {
			continue
		}
		for d := dayOf(from); d*msPerDay < to; d++ {
			l.coverDay(g, d, &cv)
			if !cv.hasUsage {
				continue
			}
			for _, c := range cv.ovgCharge {
				sum += c
			}
		}
	}
	return sum
}

// overageRate estimates what open committed-tier usage beyond the active
// commitments accrues per hour, at on-demand rates.
func (l *Ledger) overageRate(a *account, at int64) Money {
	if len(a.openCommitted) == 0 {
		return 0
	}
	keys := make([][2]int, 0, len(a.openCommitted))
	for k := range a.openCommitted {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	var total int64 // micro-units an hour x 1000
	for i := 0; i < len(keys); {
		typ := keys[i][0]
		var excess []int64
		var ks [][2]int
		for ; i < len(keys) && keys[i][0] == typ; i++ {
			site := keys[i][1]
			var capSite int64
			for _, c := range l.commits {
				if c.tenant == a.tenant && c.typ == typ && c.site == site && c.StartMs <= at && at < c.EndMs {
					capSite += int64(c.Count) * 1000
				}
			}
			excess = append(excess, max(0, a.openCommitted[keys[i]]-capSite))
			ks = append(ks, keys[i])
		}
		var anyCap, sum int64
		for _, c := range l.commits {
			if c.tenant == a.tenant && c.typ == typ && c.site < 0 && c.StartMs <= at && at < c.EndMs {
				anyCap += int64(c.Count) * 1000
			}
		}
		for _, e := range excess {
			sum += e
		}
		covered, _ := Apportion(min(anyCap, sum), excess)
		for n, k := range ks {
			total += int64(l.sites[k[1]].rates[typ][OnDemand]) * (excess[n] - covered[n])
		}
	}
	return Money(total / 1000)
}
