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
		t.add(x.Totals)
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
	period int32
	kind   RowKind
	line   int32
	commit int32 // index into l.commits
	typ    int32
	site   int32 // -1: any (an any-site commitment with no capacity given)
	Totals
	covered, overage int64
	ovgCharge, asset Money
}

// Report makes a chargeback report. It reads the day buckets metering
// filled (it meters nothing again), settles committed-tier usage per hour
// against commitments, and attributes the fleet's cost when the capacity
// is given:
//
//  1. usage: the buckets of the range, per period and line;
//  2. coverage: committed-tier time per hour against the commitments,
//     and what they left idle;
//  3. attribution of the fleet's asset cost (or idle reserved rows alone);
//  4. grouping by the asked dimensions.
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
	// Periods are days or months; a day's period, found once per day.
	dayPeriod := make([]int32, toDay-fromDay)
	for p, pr := range periods {
		for d := dayOf(pr[0]); d < dayOf(pr[1]); d++ {
			dayPeriod[d-fromDay] = int32(p)
		}
	}

	// 1. Usage.
	rows := make([]fine, 0, int(min(int64(l.buckets.len()), int64(len(periods))*int64(len(l.lines))))+len(l.commits)*len(periods))
	nl := int64(len(l.lines))
	dense := int64(len(periods))*nl <= 1<<24
	var usedDense []int32 // [period x lines + line] = 1 + row
	usedMap := map[int64]int32{}
	if dense {
		usedDense = make([]int32, int64(len(periods))*nl)
	}
	usedRow := func(p int32, line int32) *fine {
		k := int64(p)*nl + int64(line)
		var i int32
		if dense {
			i = usedDense[k]
		} else {
			i = usedMap[k]
		}
		if i == 0 {
			lk := l.lines[line].key
			rows = append(rows, fine{period: p, kind: Used, line: line, commit: -1, typ: lk.typ, site: lk.site})
			i = int32(len(rows))
			if dense {
				usedDense[k] = i
			} else {
				usedMap[k] = i
			}
		}
		return &rows[i-1]
	}
	// Committed-tier lines with no commitment to cover them are all
	// overage, settled here bucket by bucket; the others in step 2.
	groups := l.coverGroups(-1)
	uncovered := make([]bool, len(l.lines))
	for _, g := range groups {
		if len(g.commits) == 0 {
			for _, ln := range g.lines {
				uncovered[ln] = true
			}
		}
	}
	spans := make([][2]int64, len(l.sites)) // first and last day with usage, +1
	for i := range l.buckets.len() {
		b := l.buckets.at(i)
		d := int64(b.day)
		if d < fromDay || d >= toDay {
			continue
		}
		f := usedRow(dayPeriod[d-fromDay], b.line)
		f.add(b.Totals)
		if uncovered[b.line] && b.MilliMs != 0 {
			k := l.lines[b.line].key
			f.overage += b.MilliMs
			f.ovgCharge += Money(roundDiv(mul64(uint64(l.sites[k.site].rates[k.typ][OnDemand]), uint64(b.MilliMs)), chargeDiv, 0))
		}
		sp := &spans[l.lines[b.line].key.site]
		if sp[1] == 0 {
			*sp = [2]int64{d + 1, d + 1}
		}
		sp[0], sp[1] = min(sp[0], d+1), max(sp[1], d+1)
	}
	l.carbonWarnings(rep, spans)

	// 2. Coverage.
	commitCov := map[[2]int]int64{} // (period, commitment) -> covered
	commitIdx := map[*commitment]int{}
	for i, c := range l.commits {
		commitIdx[c] = i
	}
	var cv cover
	for _, g := range groups {
		if len(g.lines) == 0 || len(g.commits) == 0 {
			continue
		}
		for d := fromDay; d < toDay; d++ {
			l.coverDay(g, d, &cv)
			if !cv.hasUsage {
				continue
			}
			p := dayPeriod[d-fromDay]
			for i, ln := range g.lines {
				if cv.covered[i] == 0 && cv.overage[i] == 0 {
					continue
				}
				f := usedRow(p, ln)
				f.covered += cv.covered[i]
				f.overage += cv.overage[i]
				f.ovgCharge += cv.ovgCharge[i]
			}
			for j, c := range g.commits {
				if cv.commitCovered[j] != 0 {
					commitCov[[2]int{int(p), commitIdx[c]}] += cv.commitCovered[j]
				}
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

	// 3. Attribution, or reserved rows alone.
	if len(q.Capacity) > 0 {
		rows = l.attribute(rep, periods, caps, rows, reserved)
	} else {
		for _, k := range sortedKeys(reserved) {
			c := l.commits[k[1]]
			if reserved[k] > 0 {
				rows = append(rows, fine{period: int32(k[0]), kind: IdleReserved, line: -1, commit: int32(k[1]), typ: int32(c.typ), site: int32(c.site), Totals: Totals{MilliMs: reserved[k]}})
			}
		}
	}

	// 4. Grouping.
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
func (l *Ledger) attribute(rep *Report, periods [][2]int64, caps map[[3]int]int64, rows []fine, reserved map[[2]int]int64) []fine {
	type cell struct {
		used     []int // indexes into rows
		reserved []int
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
	for i := range rows {
		f := &rows[i]
		c := get(int(f.period), int(f.typ), int(f.site))
		c.used = append(c.used, i)
		c.usedMs += f.MilliMs
	}
	for k, ms := range caps {
		get(k[0], k[1], k[2]).capMs = ms
	}
	addReserved := func(cl *cell, f fine) {
		rows = append(rows, f)
		cl.reserved = append(cl.reserved, len(rows)-1)
		cl.resMs += f.MilliMs
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
		addReserved(get(k[0], c.typ, c.site), fine{period: int32(k[0]), kind: IdleReserved, line: -1, commit: int32(k[1]), typ: int32(c.typ), site: int32(c.site), Totals: Totals{MilliMs: ms}})
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
				if split[i] != 0 {
					addReserved(cl, fine{period: int32(pt[0]), kind: IdleReserved, line: -1, commit: int32(ci), typ: int32(pt[1]), site: int32(s), Totals: Totals{MilliMs: split[i]}})
				}
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
			for i, r := range c.reserved {
				ws[i] = rows[r].MilliMs
			}
			fit, _ := Apportion(room, ws)
			c.resMs = room
			for i, r := range c.reserved {
				rows[r].MilliMs = fit[i]
			}
		}
		idle := max(0, c.capMs-c.usedMs-c.resMs)
		weights := make([]int64, 0, len(c.used)+len(c.reserved)+1)
		for _, r := range c.used {
			weights = append(weights, rows[r].MilliMs)
		}
		for _, r := range c.reserved {
			weights = append(weights, rows[r].MilliMs)
		}
		weights = append(weights, idle)
		shares, _ := Apportion(int64(cost), weights)
		for i, r := range c.used {
			rows[r].asset = Money(shares[i])
		}
		for i, r := range c.reserved {
			rows[r].asset = Money(shares[len(c.used)+i])
		}
		if idle > 0 || shares[len(shares)-1] != 0 {
			rows = append(rows, fine{period: int32(p), kind: Idle, line: -1, commit: -1, typ: int32(typ), site: int32(site), Totals: Totals{MilliMs: idle}, asset: Money(shares[len(shares)-1])})
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

// group projects the fine rows onto the query's dimensions and sorts them
// by period, kind and names.
func (l *Ledger) group(q Query, periods [][2]int64, rows []fine) []Row {
	var by [numDims]bool
	for _, d := range q.By {
		by[d] = true
	}
	type key struct {
		period                           int32
		kind                             RowKind
		tier                             int8
		tenant, queue, typ, site, commit int32
	}
	idx := make(map[key]int, len(rows))
	keys := make([]key, 0, len(rows))
	out := make([]Row, 0, len(rows))
	for i := range rows {
		f := &rows[i]
		if f.Totals == (Totals{}) && f.covered == 0 && f.overage == 0 && f.asset == 0 {
			continue // a day cut back to nothing
		}
		k := key{period: f.period, kind: f.kind, tier: -1, tenant: -1, queue: -1, typ: -1, site: -1, commit: -1}
		switch f.kind {
		case Used:
			lk := l.lines[f.line].key
			if by[ByTenant] {
				k.tenant = lk.tenant
			}
			if by[ByQueue] {
				k.queue = lk.queue
			}
			if by[ByTier] {
				k.tier = int8(lk.tier)
			}
		case IdleReserved:
			c := l.commits[f.commit]
			if by[ByTenant] {
				k.tenant = c.tenant
				k.commit = f.commit
			}
			if by[ByTier] {
				k.tier = int8(Committed)
			}
		}
		if by[ByType] {
			k.typ = f.typ
		}
		if by[BySite] {
			k.site = f.site
		}
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			keys = append(keys, k)
			r := Row{Start: periods[k.period][0], End: periods[k.period][1], Kind: k.kind}
			if k.tenant >= 0 {
				r.Tenant = l.tenants.s[k.tenant]
			}
			if k.queue >= 0 {
				r.Queue = l.queues.s[k.queue]
			}
			if k.tier >= 0 {
				r.Tier = Tier(k.tier).String()
			}
			if k.typ >= 0 {
				r.Type = l.types[k.typ].name
			}
			if k.site >= 0 {
				r.Site = l.sites[k.site].name
			}
			if k.commit >= 0 {
				r.Commitment = l.commits[k.commit].ID
			}
			out = append(out, r)
		}
		r := &out[j]
		r.add(f.Totals)
		r.Covered += f.covered
		r.Overage += f.overage
		r.OverageCharge += f.ovgCharge
		r.Asset += f.asset
	}
	// Sort by names through their ranks, so that comparing rows compares
	// integers.
	rank := func(ss []string) []int32 {
		order := make([]int, len(ss))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return ss[order[a]] < ss[order[b]] })
		r := make([]int32, len(ss))
		for n, i := range order {
			r[i] = int32(n)
		}
		return r
	}
	typeNames := make([]string, len(l.types))
	for i, t := range l.types {
		typeNames[i] = t.name
	}
	commitIDs := make([]string, len(l.commits))
	for i, c := range l.commits {
		commitIDs[i] = c.ID
	}
	tr, qr, yr, sr, cr := rank(l.tenants.s), rank(l.queues.s), rank(typeNames), rank(l.siteNames()), rank(commitIDs)
	at := func(r []int32, i int32) int32 {
		if i < 0 {
			return -1
		}
		return r[i]
	}
	type sortKey [8]int32
	sk := make([]sortKey, len(keys))
	for i, k := range keys {
		// Tier names sort as committed < on-demand < spot, their order.
		sk[i] = sortKey{k.period, int32(k.kind), at(tr, k.tenant), at(qr, k.queue), int32(k.tier), at(yr, k.typ), at(sr, k.site), at(cr, k.commit)}
	}
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		x, y := &sk[order[a]], &sk[order[b]]
		for n := range x {
			if x[n] != y[n] {
				return x[n] < y[n]
			}
		}
		return false
	})
	sorted := make([]Row, len(out))
	for n, i := range order {
		sorted[n] = out[i]
	}
	return sorted
}

// carbonWarnings notes sites whose usage falls outside their carbon
// series, where the nearest value was used.
func (l *Ledger) carbonWarnings(rep *Report, spans [][2]int64) {
	for s, sp := range spans {
		if sp[1] == 0 {
			continue
		}
		span := [2]int64{sp[0] - 1, sp[1] - 1}
		ser := l.sites[s].carbon
		if ser.Len() < 2 {
			continue
		}
		first, last := ser.Span()
		// The last step is taken to be as long as the one before it.
		end := last + (last - ser.times[len(ser.times)-2])
		if span[0]*msPerDay < first || (span[1]+1)*msPerDay > end {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("site %s: usage between %s and %s reaches outside its carbon series (%s to %s); the nearest value was used",
				l.sites[s].name, FormatTime(span[0]*msPerDay), FormatTime((span[1]+1)*msPerDay), FormatTime(first), FormatTime(end)))
		}
	}
}
