package ledger

import (
	"fmt"
	"sort"
	"strings"
)

// Dim is a dimension a report groups by.
type Dim uint8

// The dimensions of a report.
const (
	ByTenant Dim = iota
	ByQueue
	ByTier
	ByType
	BySite
	numDims
)

var dimNames = [numDims]string{"tenant", "queue", "tier", "type", "site"}

func (d Dim) String() string {
	if d < numDims {
		return dimNames[d]
	}
	return fmt.Sprintf("Dim(%d)", d)
}

// ParseDims reads a comma-separated list of dimensions ("tenant,tier");
// "all" is every dimension and "" none.
func ParseDims(s string) ([]Dim, error) {
	if s == "" {
		return nil, nil
	}
	if s == "all" {
		return []Dim{ByTenant, ByQueue, ByTier, ByType, BySite}, nil
	}
	var out []Dim
	seen := map[Dim]bool{}
	for _, p := range strings.Split(s, ",") {
		found := false
		for i, n := range dimNames {
			if p == n {
				if seen[Dim(i)] {
					return nil, fmt.Errorf("dimension %q is given twice", p)
				}
				seen[Dim(i)] = true
				out = append(out, Dim(i))
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("dimension %q: want one of %s, or all", p, strings.Join(dimNames[:], ", "))
		}
	}
	return out, nil
}

// RowKind says what capacity a report row accounts for.
type RowKind uint8

// The kinds of row. Used, IdleReserved and Idle together are the whole
// fleet: with capacity given, their Asset shares add up to the fleet's cost.
const (
	// Used: usage of a tenant's queue.
	Used RowKind = iota
	// IdleReserved: committed capacity its committer did not use.
	IdleReserved
	// Idle: capacity nobody used or reserved.
	Idle
)

var rowKindNames = [...]string{"used", "idle-reserved", "idle"}

func (k RowKind) String() string {
	if int(k) < len(rowKindNames) {
		return rowKindNames[k]
	}
	return fmt.Sprintf("RowKind(%d)", k)
}

// Query asks for a chargeback report.
type Query struct {
	// [FromMs, ToMs) must start and end on Period boundaries (UTC).
	FromMs, ToMs int64
	Period       Period
	// By lists the dimensions rows are grouped by; the others are summed
	// over (and left empty in the rows).
	By []Dim
	// Capacity is the fleet's capacity over the range; when given, the
	// fleet's asset cost is attributed to the rows and idle rows appear.
	Capacity []Capacity
}

// Row is one line of a report.
type Row struct {
	Start, End int64 // the period
	Kind       RowKind
	Tenant     string
	Queue      string
	Tier       string
	Type       string
	Site       string
	// Commitment names the commitment of an IdleReserved row when rows
	// are grouped by tenant.
	Commitment string
	// Totals: metered usage; for IdleReserved and Idle rows only MilliMs,
	// the capacity left idle.
	Totals
	// Covered and Overage split committed-tier time (milli-ms): covered
	// by the tenant's commitments, or beyond them. OverageCharge is the
	// overage at on-demand rates.
	Covered, Overage int64
	OverageCharge    Money
	// Asset is the row's share of the fleet's asset cost.
	Asset Money
}

// Charged returns what the row's usage is charged: on-demand and spot at
// their rates, and committed-tier overage (commitment fees are on
// invoices).
func (r *Row) Charged() Money { return r.Charge + r.OverageCharge }

// Report is a chargeback report.
type Report struct {
	Query    Query
	Currency Currency
	Rows     []Row
	// FleetCost is the fleet's asset cost over the range: capacity times
	// the types' asset rates. The rows' Asset shares add up to it exactly.
	FleetCost Money
	// Warnings note input that does not add up: usage beyond the declared
	// capacity, reservations that do not fit, usage outside a carbon
	// series.
	Warnings []string
}

// Totals returns the sum of the rows.
func (r *Report) Totals() Row {
	var t Row
	for i := range r.Rows {
		x := &r.Rows[i]
		t.Totals.add(x.Totals)
		t.Covered += x.Covered
		t.Overage += x.Overage
		t.OverageCharge += x.OverageCharge
		t.Asset += x.Asset
	}
	return t
}

// fine is a row at the finest grain: a line (Used), a commitment at a site
// (IdleReserved) or a type at a site (Idle), in one period.
type fine struct {
	period int
	kind   RowKind
	line   int32
	commit int // index into l.commits
	typ    int
	site   int // -1: any (an any-site commitment with no capacity given)
	Row
}

// Report makes a chargeback report.
func (l *Ledger) Report(q Query) (*Report, error) {
	periods, err := l.periods(q)
	if err != nil {
		return nil, err
	}
	caps, err := l.capacities(q, periods)
	if err != nil {
		return nil, err
	}
	rep := &Report{Query: q, Currency: l.cur}
	fromDay, toDay := dayOf(q.FromMs), dayOf(q.ToMs)
	periodOfDay := func(d int64) int {
		t := d * msPerDay
		return sort.Search(len(periods), func(i int) bool { return periods[i][1] > t })
	}

	// 1. Usage: the day buckets of the range, per period and line.
	var rows []*fine
	used := map[[2]int64]*fine{} // (period, line)
	usedRow := func(p int, line int32) *fine {
		k := [2]int64{int64(p), int64(line)}
		f := used[k]
		if f == nil {
			lk := l.lines[line].key
			f = &fine{period: p, kind: Used, line: line, typ: int(lk.typ), site: int(lk.site)}
			used[k] = f
			rows = append(rows, f)
		}
		return f
	}
	sites := map[int][2]int64{} // site -> first and last day with usage
	for i := range l.buckets.len() {
		b := l.buckets.at(i)
		d := int64(b.day)
		if d < fromDay || d >= toDay {
			continue
		}
		f := usedRow(periodOfDay(d), b.line)
		f.Totals.add(b.Totals)
		s := int(l.lines[b.line].key.site)
		span, ok := sites[s]
		if !ok {
			span = [2]int64{d, d}
		}
		sites[s] = [2]int64{min(span[0], d), max(span[1], d)}
	}
	l.carbonWarnings(rep, sites)

	// 2. Coverage of committed-tier usage, and what commitments left idle.
	commitCov := map[[2]int]int64{} // (period, commitment) -> covered
	commitIdx := map[*commitment]int{}
	for i, c := range l.commits {
		commitIdx[c] = i
	}
	var cv cover
	for _, g := range l.coverGroups(-1) {
		if len(g.lines) == 0 {
			continue
		}
		for d := fromDay; d < toDay; d++ {
			l.coverDay(g, d, &cv)
			if !cv.hasUsage {
				continue
			}
			p := periodOfDay(d)
			for i, ln := range g.lines {
				if cv.covered[i] == 0 && cv.overage[i] == 0 {
					continue
				}
				f := usedRow(p, ln)
				f.Covered += cv.covered[i]
				f.Overage += cv.overage[i]
				f.OverageCharge += cv.ovgCharge[i]
			}
			for j, c := range g.commits {
				commitCov[[2]int{p, commitIdx[c]}] += cv.commitCovered[j]
			}
		}
	}
	reserved := map[[2]int]int64{} // (period, commitment) -> idle reserved time
	for ci, c := range l.commits {
		for p, pr := range periods {
			capP := c.capIn(pr[0], pr[1])
			if capP == 0 {
				continue
			}
			reserved[[2]int{p, ci}] = max(0, capP-commitCov[[2]int{p, ci}])
		}
	}

	// 3. Attribution of the fleet's cost, or reserved rows alone.
	if len(q.Capacity) > 0 {
		rows = l.attribute(rep, periods, caps, rows, reserved)
	} else {
		for _, k := range sortedKeys(reserved) {
			c := l.commits[k[1]]
			if reserved[k] > 0 {
				rows = append(rows, &fine{period: k[0], kind: IdleReserved, commit: k[1], typ: c.typ, site: c.site, Row: Row{Totals: Totals{MilliMs: reserved[k]}}})
			}
		}
	}

	// 4. Group by the asked dimensions.
	rep.Rows = l.group(q, periods, rows)
	return rep, nil
}

func sortedKeys(m map[[2]int]int64) [][2]int {
	out := make([][2]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

// periods checks the query's range and cuts it into periods.
func (l *Ledger) periods(q Query) ([][2]int64, error) {
	if q.Period != Daily && q.Period != Monthly {
		return nil, fmt.Errorf("report: period %d: want day or month", q.Period)
	}
	if q.FromMs >= q.ToMs || q.FromMs < 0 || q.ToMs > maxTimeMs {
		return nil, fmt.Errorf("report: the range %s..%s is empty or out of bounds", FormatTime(q.FromMs), FormatTime(q.ToMs))
	}
	if q.Period.start(q.FromMs) != q.FromMs || q.Period.start(q.ToMs) != q.ToMs {
		return nil, fmt.Errorf("report: the range %s..%s must start and end on %s boundaries (UTC)", FormatTime(q.FromMs), FormatTime(q.ToMs), q.Period)
	}
	if n := (q.ToMs - q.FromMs) / msPerDay; n > 100*366 {
		return nil, fmt.Errorf("report: the range is longer than 100 years")
	}
	seen := map[Dim]bool{}
	for _, d := range q.By {
		if d >= numDims {
			return nil, fmt.Errorf("report: dimension %d: want one of %s", d, strings.Join(dimNames[:], ", "))
		}
		if seen[d] {
			return nil, fmt.Errorf("report: dimension %s is given twice", d)
		}
		seen[d] = true
	}
	var out [][2]int64
	for s := q.FromMs; s < q.ToMs; s = q.Period.next(s) {
		out = append(out, [2]int64{s, q.Period.next(s)})
	}
	return out, nil
}

// capacities sums the query's capacity per period, type and site.
func (l *Ledger) capacities(q Query, periods [][2]int64) (map[[3]int]int64, error) {
	out := map[[3]int]int64{}
	for i, c := range q.Capacity {
		typ, ok := l.typeIdx[c.Type]
		if !ok {
			return nil, fmt.Errorf("report: capacity[%d]: type %q is not in the catalog (want one of %s)", i, c.Type, strings.Join(l.cfg.Catalog.Names(), ", "))
		}
		if _, known := l.siteIdx[c.Site]; !known && (l.defSite == nil || c.Site == "") {
			return nil, fmt.Errorf("report: capacity[%d]: site %q is not a known site (want one of %s)", i, c.Site, strings.Join(l.siteNames(), ", "))
		}
		if c.Accelerators < 0 || c.Accelerators > maxCount {
			return nil, fmt.Errorf("report: capacity[%d]: accelerators %d: want 0..%d", i, c.Accelerators, maxCount)
		}
		if c.ToMs < c.FromMs {
			return nil, fmt.Errorf("report: capacity[%d]: toMs %d is before fromMs %d", i, c.ToMs, c.FromMs)
		}
		site := l.site(c.Site)
		for p, pr := range periods {
			lo, hi := max(pr[0], c.FromMs), min(pr[1], c.ToMs)
			if hi > lo {
				out[[3]int{p, typ, site}] += int64(c.Accelerators) * 1000 * (hi - lo)
			}
		}
	}
	return out, nil
}

// attribute splits the fleet's cost of each period, type and site among
// the usage there, the idle reserved capacity there and the rest (idle),
// by their accelerator-time, with the largest remainder method: the shares
// add up to the cost exactly. An any-site commitment's idle capacity is
// placed at the type's sites in proportion to their unreserved idle time.
func (l *Ledger) attribute(rep *Report, periods [][2]int64, caps map[[3]int]int64, rows []*fine, reserved map[[2]int]int64) []*fine {
	type cell struct {
		used     []*fine
		reserved []*fine
		usedMs   int64
		resMs    int64
		capMs    int64
	}
	cells := map[[3]int]*cell{}
	get := func(p, typ, site int) *cell {
		k := [3]int{p, typ, site}
		c := cells[k]
		if c == nil {
			c = &cell{}
			cells[k] = c
		}
		return c
	}
	for _, f := range rows {
		c := get(f.period, f.typ, f.site)
		c.used = append(c.used, f)
		c.usedMs += f.MilliMs
	}
	for k, ms := range caps {
		get(k[0], k[1], k[2]).capMs = ms
	}
	anyRes := map[[2]int][]int{} // (period, type) -> any-site commitments
	for _, k := range sortedKeys(reserved) {
		ms := reserved[k]
		if ms == 0 {
			continue
		}
		c := l.commits[k[1]]
		if c.site < 0 {
			anyRes[[2]int{k[0], c.typ}] = append(anyRes[[2]int{k[0], c.typ}], k[1])
			continue
		}
		cl := get(k[0], c.typ, c.site)
		f := &fine{period: k[0], kind: IdleReserved, commit: k[1], typ: c.typ, site: c.site, Row: Row{Totals: Totals{MilliMs: ms}}}
		cl.reserved = append(cl.reserved, f)
		cl.resMs += ms
		rows = append(rows, f)
	}
	// Place any-site reservations where capacity is free.
	for _, pt := range sortedKeys2(anyRes) {
		commits := anyRes[pt]
		var want int64
		wants := make([]int64, len(commits))
		for i, ci := range commits {
			wants[i] = reserved[[2]int{pt[0], ci}]
			want += wants[i]
		}
		var siteIdx []int
		var free []int64
		var freeSum int64
		for s := range l.sites {
			c := cells[[3]int{pt[0], pt[1], s}]
			if c == nil {
				continue
			}
			fr := max(0, c.capMs-c.usedMs-c.resMs)
			siteIdx = append(siteIdx, s)
			free = append(free, fr)
			freeSum += fr
		}
		place := min(want, freeSum)
		if want > place {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s %s: any-site commitments leave %.3f accelerator-hours idle beyond the idle capacity of the fleet; their cost share is left out",
				FormatTime(periods[pt[0]][0]), l.types[pt[1]].name, float64(want-place)/(1000*msPerHour)))
		}
		perSite, _ := Apportion(place, free)
		for n, s := range siteIdx {
			if perSite[n] == 0 {
				continue
			}
			split, _ := Apportion(perSite[n], wants)
			cl := cells[[3]int{pt[0], pt[1], s}]
			for i, ci := range commits {
				if split[i] == 0 {
					continue
				}
				f := &fine{period: pt[0], kind: IdleReserved, commit: ci, typ: pt[1], site: s, Row: Row{Totals: Totals{MilliMs: split[i]}}}
				cl.reserved = append(cl.reserved, f)
				cl.resMs += split[i]
				rows = append(rows, f)
			}
		}
	}
	keys := make([][3]int, 0, len(cells))
	for k := range cells {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		if a[1] != b[1] {
			return a[1] < b[1]
		}
		return a[2] < b[2]
	})
	for _, k := range keys {
		c := cells[k]
		p, typ, site := k[0], k[1], k[2]
		when := FormatTime(periods[p][0])
		cost := Money(roundDiv(mul64(uint64(l.types[typ].rate.Asset), uint64(c.capMs)), chargeDiv, 0))
		rep.FleetCost += cost
		if c.capMs == 0 {
			if c.usedMs > 0 || c.resMs > 0 {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s %s at %s: usage or reservations but no capacity declared", when, l.types[typ].name, l.siteName(site)))
			}
			continue
		}
		if c.usedMs > c.capMs {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s %s at %s: usage of %.3f accelerator-hours is above the capacity of %.3f; the cost is split over the usage",
				when, l.types[typ].name, l.siteName(site), float64(c.usedMs)/(1000*msPerHour), float64(c.capMs)/(1000*msPerHour)))
		}
		// Reserved idle capacity takes what usage left, no more.
		room := max(0, c.capMs-c.usedMs)
		if c.resMs > room {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s %s at %s: idle reserved capacity of %.3f accelerator-hours is above the %.3f left by usage; it is cut to fit",
				when, l.types[typ].name, l.siteName(site), float64(c.resMs)/(1000*msPerHour), float64(room)/(1000*msPerHour)))
			ws := make([]int64, len(c.reserved))
			for i, f := range c.reserved {
				ws[i] = f.MilliMs
			}
			fit, _ := Apportion(room, ws)
			c.resMs = room
			for i, f := range c.reserved {
				f.MilliMs = fit[i]
			}
		}
		idle := max(0, c.capMs-c.usedMs-c.resMs)
		weights := make([]int64, 0, len(c.used)+len(c.reserved)+1)
		for _, f := range c.used {
			weights = append(weights, f.MilliMs)
		}
		for _, f := range c.reserved {
			weights = append(weights, f.MilliMs)
		}
		weights = append(weights, idle)
		shares, _ := Apportion(int64(cost), weights)
		for i, f := range c.used {
			f.Asset = Money(shares[i])
		}
		for i, f := range c.reserved {
			f.Asset = Money(shares[len(c.used)+i])
		}
		if idle > 0 || shares[len(shares)-1] != 0 {
			rows = append(rows, &fine{period: p, kind: Idle, typ: typ, site: site, Row: Row{Totals: Totals{MilliMs: idle}, Asset: Money(shares[len(shares)-1])}})
		}
	}
	return rows
}

func sortedKeys2(m map[[2]int][]int) [][2]int {
	out := make([][2]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

func (l *Ledger) siteName(s int) string {
	if s < 0 {
		return ""
	}
	return l.sites[s].name
}

// group projects the fine rows onto the query's dimensions and sorts them.
func (l *Ledger) group(q Query, periods [][2]int64, rows []*fine) []Row {
	var by [numDims]bool
	for _, d := range q.By {
		by[d] = true
	}
	type key struct {
		period                   int
		kind                     RowKind
		tenant, queue, tier, typ string
		site, commit             string
	}
	idx := map[key]int{}
	var out []Row
	for _, f := range rows {
		if f.Totals == (Totals{}) && f.Covered == 0 && f.Overage == 0 && f.Asset == 0 {
			continue // a day cut back to nothing
		}
		k := key{period: f.period, kind: f.kind}
		switch f.kind {
		case Used:
			lk := l.lines[f.line].key
			if by[ByTenant] {
				k.tenant = l.tenants.s[lk.tenant]
			}
			if by[ByQueue] {
				k.queue = l.queues.s[lk.queue]
			}
			if by[ByTier] {
				k.tier = lk.tier.String()
			}
		case IdleReserved:
			c := l.commits[f.commit]
			if by[ByTenant] {
				k.tenant = c.Tenant
				k.commit = c.ID
			}
			if by[ByTier] {
				k.tier = Committed.String()
			}
		}
		if by[ByType] {
			k.typ = l.types[f.typ].name
		}
		if by[BySite] {
			k.site = l.siteName(f.site)
		}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Row{Start: periods[k.period][0], End: periods[k.period][1], Kind: k.kind, Tenant: k.tenant, Queue: k.queue,
				Tier: k.tier, Type: k.typ, Site: k.site, Commitment: k.commit})
		}
		r := &out[i]
		r.Totals.add(f.Totals)
		r.Covered += f.Covered
		r.Overage += f.Overage
		r.OverageCharge += f.OverageCharge
		r.Asset += f.Asset
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		for _, p := range [][2]string{{a.Tenant, b.Tenant}, {a.Queue, b.Queue}, {a.Tier, b.Tier}, {a.Type, b.Type}, {a.Site, b.Site}, {a.Commitment, b.Commitment}} {
			if p[0] != p[1] {
				return p[0] < p[1]
			}
		}
		return false
	})
	return out
}

// carbonWarnings notes sites whose usage falls outside their carbon
// series, where the nearest value was used.
func (l *Ledger) carbonWarnings(rep *Report, sites map[int][2]int64) {
	ids := make([]int, 0, len(sites))
	for s := range sites {
		ids = append(ids, s)
	}
	sort.Ints(ids)
	for _, s := range ids {
		ser := l.sites[s].carbon
		if ser.Len() < 2 {
			continue
		}
		first, last := ser.Span()
		// The last step is taken to be as long as the one before it.
		end := last + (last - ser.times[len(ser.times)-2])
		span := sites[s]
		if span[0]*msPerDay < first || (span[1]+1)*msPerDay > end {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("site %s: usage between %s and %s reaches outside its carbon series (%s to %s); the nearest value was used",
				l.sites[s].name, FormatTime(span[0]*msPerDay), FormatTime((span[1]+1)*msPerDay), FormatTime(first), FormatTime(end)))
		}
	}
}
