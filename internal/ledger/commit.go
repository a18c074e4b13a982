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
// commitments that may cover them.
type coverGroup struct {
	tenant  int32
	typ     int
	lines   []int32
	commits []*commitment
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
	return out
}

// cover is the settlement of one group over one day.
type cover struct {
	covered, overage []int64 // per line of the group
	ovgCharge        []Money // per line: overage at the on-demand rate, rounded once for the day
	commitCovered    []int64 // per commitment of the group
	hasUsage         bool
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
	hours := make([]*[24]int64, nl)
	cv.hasUsage = false
	for i, ln := range g.lines {
		if bi, ok := l.bucketOf(ln, day); ok {
			hours[i] = l.hoursOf(l.buckets.at(bi))
			cv.hasUsage = true
		}
	}
	if !cv.hasUsage {
		return
	}
	sites := make([]int, nl)
	for i, ln := range g.lines {
		sites[i] = int(l.lines[ln].key.site)
	}
	u := make([]int64, nl)
	caps := make([]int64, nc)
	for h := range 24 {
		hs := day*msPerDay + int64(h)*msPerHour
		any := false
		for i := range u {
			u[i] = 0
			if hours[i] != nil {
				u[i] = hours[i][h]
				any = any || u[i] > 0
			}
		}
		if !any {
			continue
		}
		for j, c := range g.commits {
			caps[j] = c.capIn(hs, hs+msPerHour)
		}
		lineCov, commitCov := settleHour(u, sites, caps, g.commits)
		for i := range u {
			cv.covered[i] += lineCov[i]
			cv.overage[i] += u[i] - lineCov[i]
		}
		for j := range commitCov {
			cv.commitCovered[j] += commitCov[j]
		}
	}
	for i, ln := range g.lines {
		k := l.lines[ln].key
		rate := l.sites[k.site].rates[k.typ][OnDemand]
		cv.ovgCharge[i] = Money(roundDiv(mul64(uint64(rate), uint64(cv.overage[i])), chargeDiv, 0))
	}
}

func resize(s []int64, n int) []int64 {
	if cap(s) < n {
		return make([]int64, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// settleHour covers an hour's usage u (per line, at sites) by commitments
// of capacity caps: site commitments first, then any-site ones.
func settleHour(u []int64, sites []int, caps []int64, commits []*commitment) (lineCov, commitCov []int64) {
	lineCov = make([]int64, len(u))
	commitCov = make([]int64, len(caps))
	rem := make([]int64, len(u)) // per line, after site commitments
	var siteOrder []int
	seen := map[int]bool{}
	for _, s := range sites {
		if !seen[s] {
			seen[s] = true
			siteOrder = append(siteOrder, s)
		}
	}
	siteRem := make([]int64, len(siteOrder))
	for k, s := range siteOrder {
		var us, cs int64
		var lw, cw []int64
		var li, ci []int
		for i := range u {
			if sites[i] == s {
				us += u[i]
				lw = append(lw, u[i])
				li = append(li, i)
			}
		}
		for j, c := range commits {
			if c.site == s {
				cs += caps[j]
				cw = append(cw, caps[j])
				ci = append(ci, j)
			}
		}
		cov := min(us, cs)
		if cov > 0 {
			ls, _ := Apportion(cov, lw)
			for n, i := range li {
				lineCov[i] = ls[n]
			}
			cs2, _ := Apportion(cov, cw)
			for n, j := range ci {
				commitCov[j] += cs2[n]
			}
		}
		for _, i := range li {
			rem[i] = u[i] - lineCov[i]
			siteRem[k] += rem[i]
		}
	}
	var anyCap, remSum int64
	var aw []int64
	var ai []int
	for j, c := range commits {
		if c.site < 0 {
			anyCap += caps[j]
			aw = append(aw, caps[j])
			ai = append(ai, j)
		}
	}
	for _, r := range siteRem {
		remSum += r
	}
	covA := min(anyCap, remSum)
	if covA == 0 {
		return lineCov, commitCov
	}
	perSite, _ := Apportion(covA, siteRem)
	for k, s := range siteOrder {
		var lw []int64
		var li []int
		for i := range u {
			if sites[i] == s {
				lw = append(lw, rem[i])
				li = append(li, i)
			}
		}
		ls, _ := Apportion(perSite[k], lw)
		for n, i := range li {
			lineCov[i] += ls[n]
		}
	}
	cs, _ := Apportion(covA, aw)
	for n, j := range ai {
		commitCov[j] += cs[n]
	}
	return lineCov, commitCov
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
