package ledger

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
)

// meterState is a record being metered: what it holds, how far it is
// metered, and the exact totals of its part of the current UTC day.
//
// Rounding happens on those day totals: after each piece the record's
// rounded day totals are recomputed from the exact ones and the
// difference is added to the accounts. Exact sums do not depend on where
// a day is cut, so a record metered in one call or in a thousand (or
// metered too far and cut back) leaves the same integers in every bucket.
type meterState struct {
	line          int32
	tenant, queue int32
	typ, site     int
	tier          Tier
	node          int32
	milli, n, dm  int64 // milli per device, devices, and their product
	mask          uint64
	rate          Money // per accelerator-hour; 0 in the committed tier
	acct          *account
	job           idKey // the job's name, hashed
	je            int32 // entry of the job's usage
	from          int64

	pos   int64 // metered up to
	day   int64
	month int64 // Month.Index of day
	bi    int32 // bucket of day
	cumT  int64
	cumE  u128
	cumC  u128
	q     Totals // the rounded day totals so far
	jd    Totals // change not yet added to the job's usage (flushJob)

	keepLog bool
	log     []burn
}

// openRec is an open record.
type openRec struct {
	meterState
	id string
}

const noDay = math.MinInt64

// queueLines finds the lines of one queue by tier, type and site in a
// slice, so that most records find their line with one lookup in a small
// map (their queue's) instead of hashing five strings.
type queueLines struct {
	tenant string
	lines  []int32 // [(site x types + type) x tiers + tier] = 1 + line
}

// lineOf returns a record's line, checking its type, tier and site the
// first time the line is seen.
func (l *Ledger) lineOf(u *Usage) (int32, error) {
	c := &l.last
	if c.ok && u.Tenant == c.tenant && u.Queue == c.queue && u.Tier == c.tier && u.Type == c.typ && u.Site == c.site {
		return c.line, nil
	}
	line, err := l.lookupLine(u)
	if err == nil {
		*c = lastLine{ok: true, tenant: u.Tenant, queue: u.Queue, tier: u.Tier, typ: u.Type, site: u.Site, line: line}
	}
	return line, err
}

// nodeID interns a node's name, remembering the last one.
func (l *Ledger) nodeID(name string) int32 {
	if l.lastNode.ok && name == l.lastNode.name {
		return l.lastNode.id
	}
	k := idHash(name)
	id, ok := l.nodes[k]
	if !ok {
		id = int32(len(l.nodes))
		l.nodes[k] = id
	}
	l.lastNode = lastNode{ok: true, name: name, id: id}
	return id
}

type lastNode struct {
	ok   bool
	name string
	id   int32
}

// lastLine remembers the line of the record fed last: the core emits a
// gang's records together, and they share it (comparing strings that
// share their bytes is cheaper than hashing them).
type lastLine struct {
	ok                             bool
	tenant, queue, tier, typ, site string
	line                           int32
}

func (l *Ledger) lookupLine(u *Usage) (int32, error) {
	q := l.queueIdx[u.Queue]
	if q != nil && q.tenant == u.Tenant {
		tier, tierOK := l.defTier, true
		switch u.Tier {
		case "":
		case "committed":
			tier = Committed
		case "on-demand":
			tier = OnDemand
		case "spot":
			tier = Spot
		default:
			tierOK = false
		}
		typ, typeOK := l.typeIdx[u.Type]
		site, siteOK := l.siteIdx[u.Site]
		if tierOK && typeOK && siteOK {
			if i := (site*len(l.types)+typ)*int(numTiers) + int(tier); i < len(q.lines) && q.lines[i] != 0 {
				return q.lines[i] - 1, nil
			}
		}
	}
	if err := l.checkLine(u); err != nil {
		return 0, err
	}
	tier := l.defTier
	if u.Tier != "" {
		tier, _ = ParseTier(u.Tier)
	}
	typ, site := l.typeIdx[u.Type], l.site(u.Site)
	line := l.line(lineKey{tenant: l.tenants.id(u.Tenant), queue: l.queues.id(u.Queue), tier: tier, typ: int32(typ), site: int32(site)})
	if q == nil {
		q = &queueLines{tenant: u.Tenant}
		l.queueIdx[u.Queue] = q
	}
	if q.tenant == u.Tenant {
		i := (site*len(l.types)+typ)*int(numTiers) + int(tier)
		for len(q.lines) <= i {
			q.lines = append(q.lines, 0)
		}
		q.lines[i] = line + 1
	}
	return line, nil
}

func (l *Ledger) newState(u *Usage, line, node int32) meterState {
	k := l.lines[line].key
	st := meterState{
		line: line, tenant: k.tenant, queue: k.queue, typ: int(k.typ), site: int(k.site), tier: k.tier,
		node: node, milli: int64(u.Milli), n: int64(u.Devices), mask: u.DeviceMask,
		from: u.FromMs, pos: u.FromMs, day: noDay, bi: -1,
	}
	for int(st.node) >= len(l.nodeInf) {
		l.nodeInf = append(l.nodeInf, nodeInfo{})
	}
	st.dm = st.milli * st.n
	st.acct = l.account(k.tenant)
	if k.tier != Committed {
		st.rate = l.sites[k.site].rates[k.typ][k.tier]
	}
	l.jobEntry(&st, u)
	return st
}

// Add feeds one usage record. A new open record is kept and metered by
// Meter as time passes; a closed one is metered whole; closing an open
// record meters it to its end (cutting back what Meter metered past the
// end, if anything). A record fed again is a Duplicate and changes
// nothing. Errors: ErrInvalid (a bad field), ErrConflict (the ID was fed
// with other content), ErrSealed (the record reaches before the seal).
func (l *Ledger) Add(u Usage) (Outcome, error) {
	if err := l.check(&u); err != nil {
		return 0, err
	}
	line, err := l.lineOf(&u)
	if err != nil {
		return 0, err
	}
	node := l.nodeID(u.Node)
	ident, full := l.fingerprints(&u, line, node, l.jobKey(u.Job))
	key := idHash(u.ID)
	ref, seen := l.seen.find(key)
	if seen {
		slot := l.seen.rec(ref)
		s := *slot
		if s.ident != uint32(ident) {
			return 0, &UsageError{ID: u.ID, Msg: "fields other than toMs and end differ from the record fed before", Err: ErrConflict}
		}
		i, open := s.isOpen()
		if !open {
			if u.Open() || s.full == full {
				return Duplicate, nil
			}
			return 0, &UsageError{ID: u.ID, Field: "toMs", Msg: "the record was closed before at another time or for another reason", Err: ErrConflict}
		}
		if u.Open() {
			return Duplicate, nil
		}
		if u.ToMs < l.sealed {
			return 0, &UsageError{ID: u.ID, Field: "toMs", Msg: fmt.Sprintf("%s is before the seal at %s", FormatTime(u.ToMs), FormatTime(l.sealed)), Err: ErrSealed}
		}
		r := l.open[i]
		if u.ToMs < r.pos {
			l.retract(&r.meterState, u.ToMs)
		} else {
			l.advance(&r.meterState, r.pos, u.ToMs)
		}
		l.closed(&r.meterState, u.ToMs)
		l.open[i] = nil
		l.free = append(l.free, i)
		*slot = seenRec{ident: uint32(ident), full: full, aux: closedAux(u.ToMs)}
		return Closed, nil
	}
	if u.FromMs < l.sealed {
		return 0, &UsageError{ID: u.ID, Field: "fromMs", Msg: fmt.Sprintf("%s is before the seal at %s", FormatTime(u.FromMs), FormatTime(l.sealed)), Err: ErrSealed}
	}
	st := l.newState(&u, line, node)
	if u.Open() {
		r := &openRec{meterState: st, id: u.ID}
		r.keepLog = true
		var i int32
		if n := len(l.free); n > 0 {
			i = l.free[n-1]
			l.free = l.free[:n-1]
			l.open[i] = r
		} else {
			i = int32(len(l.open))
			l.open = append(l.open, r)
		}
		l.seen.put(ref, key, seenRec{ident: uint32(ident), full: full, aux: openAux(i)})
		l.opened(&r.meterState)
		return Opened, nil
	}
	l.advance(&st, u.FromMs, u.ToMs)
	l.seen.put(ref, key, seenRec{ident: uint32(ident), full: full, aux: closedAux(u.ToMs)})
	l.jobOpen(st.job, 0, u.ToMs)
	return Metered, nil
}

// Meter meters every open record up to now, raises the events that are
// due (grants expiring, budget thresholds crossed by overage) and moves
// the horizon. A driver calls it at a steady interval; credits and budgets
// are then at most one interval behind the usage.
func (l *Ledger) Meter(now int64) error {
	if now < 0 || now > maxTimeMs {
		return fmt.Errorf("meter: now %d: want a Unix time in milliseconds", now)
	}
	first := len(l.events)
	for _, r := range l.open {
		if r != nil && r.pos < now {
			l.advance(&r.meterState, r.pos, now)
		}
	}
	l.horizon = max(l.horizon, now)
	l.expireGrants(now)
	l.checkBudgets(now)
	// Records are metered one after the other; their events are told in
	// the order they happened.
	raised := l.events[first:]
	sort.SliceStable(raised, func(i, j int) bool { return raised[i].AtMs < raised[j].AtMs })
	return nil
}

// Seal makes metering before t final: open records are metered to t,
// records and samples reaching before t are refused from then on
// (ErrSealed), and what the ledger kept to recognise replays of records
// that ended by t, their jobs' usage and older samples are let go. t must
// be a UTC day boundary; a driver seals a month once its invoices are out.
// Reports of sealed periods stay exact.
func (l *Ledger) Seal(t int64) error {
	if t%msPerDay != 0 || t < 0 || t > maxTimeMs {
		return fmt.Errorf("seal: %d is not a UTC day boundary", t)
	}
	if t < l.sealed {
		return fmt.Errorf("seal: %s is before the seal at %s", FormatTime(t), FormatTime(l.sealed))
	}
	for _, r := range l.open {
		if r != nil && r.pos < t {
			l.advance(&r.meterState, r.pos, t)
		}
	}
	l.sealed = t
	l.seen.keep(func(s *seenRec) bool { return !s.closedBy(t) })
	l.pruneSamples(t)
	moved := l.pruneJobs(t)
	for _, r := range l.open {
		if r != nil {
			r.je = moved[r.je]
		}
	}
	return nil
}

// advance meters [from, to) and moves the record's position to to.
func (l *Ledger) advance(st *meterState, from, to int64) {
	if to <= from {
		return
	}
	a := st.acct
	for x := from; x < to; {
		y := min(to, (dayOf(x)+1)*msPerDay)
		if len(a.bounds) > 0 && st.rate != 0 {
			// Credits apply by time: cut where a grant starts or
			// expires, so each piece burns only grants valid in it.
			if b, ok := a.nextBound(x); ok && b < y {
				y = b
			}
		}
		l.piece(st, x, y)
		x = y
	}
	l.flushJob(st)
	st.pos = to
	if n := &l.nodeInf[st.node]; n.horizon < to {
		n.horizon = to
	}
}

// piece meters [x, y), which lies within one day.
func (l *Ledger) piece(st *meterState, x, y int64) {
	if d := dayOf(x); d != st.day {
		st.day, st.cumT, st.cumE, st.cumC, st.q = d, 0, u128{}, u128{}, Totals{}
		st.bi = l.bucketAt(st.line, d)
		st.month = MonthOf(x).Index()
	}
	t, e, c := l.exact(st, x, y)
	st.cumT += t
	st.cumE = st.cumE.add(e)
	st.cumC = st.cumC.add(c)
	delta := l.apply(st, x, y, 1)
	if delta.Charge > 0 {
		l.post(st, x, y, delta.Charge)
	}
}

// apply rounds the record's day totals, adds the change to its bucket and
// job, and adds or (sign -1) removes [x, y) from the committed hours.
func (l *Ledger) apply(st *meterState, x, y int64, sign int64) Totals {
	q := l.round(st)
	delta := q
	delta.sub(st.q)
	st.q = q
	b := l.buckets.at(st.bi)
	b.add(delta)
	if hours := l.hoursOf(b); hours != nil {
		if st.acct.budget > 0 {
			st.acct.dirty[st.month] = true
		}
		for h := x; h < y; {
			e := min(y, (hourOf(h)+1)*msPerHour)
			hours[(h/msPerHour)%24] += sign * st.dm * (e - h)
			h = e
		}
	}
	st.jd.add(delta)
	return delta
}

// round returns the record's day totals rounded half up to their units.
func (l *Ledger) round(st *meterState) Totals {
	si := l.sites[st.site]
	return Totals{
		MilliMs:    st.cumT,
		EnergyMJ:   roundDiv(st.cumE, energyDiv, 0),
		FacilityMJ: roundDiv(st.cumE.mul(uint64(si.pueMilli)), energyDiv*1000, 0),
		CarbonMg:   roundDiv(st.cumC, carbonDiv1, carbonDiv2),
		Charge:     Money(roundDiv(mul64(uint64(st.rate), uint64(st.cumT)), chargeDiv, 0)),
	}
}

// The units of the exact numerators, and the divisors that bring them to
// the units of Totals:
//
//	time    milli x ms                                   (exact as is)
//	energy  milli x mW x percent x ms        / 1e8    -> mJ
//	carbon  energy x PUE per mille x mg/kWh  / 3.6e20 -> mg
//	charge  micro-units per hour x milli x ms / 3.6e9 -> micro-units
const (
	energyDiv  = 100_000_000
	carbonDiv1 = 10_000_000_000
	carbonDiv2 = 36_000_000_000
	chargeDiv  = 1000 * msPerHour
)

// exact returns the exact accelerator-time, energy and carbon numerators
// of [x, y) for a record, with its devices' utilization where samples
// give it and full use elsewhere:
//
//	power of a device = idle + (board - idle) x utilization
//	energy            = milli/1000 x the integral of the devices' power
//	carbon            = energy x PUE x the integral of carbon intensity
func (l *Ledger) exact(st *meterState, x, y int64) (t int64, e, c u128) {
	ty := &l.types[st.typ]
	si := l.sites[st.site]
	dt := y - x
	t = st.dm * dt
	dCI := si.carbon.integral(y) - si.carbon.integral(x)
	pue := uint64(si.pueMilli)
	nd := &l.nodeInf[st.node]
	if !nd.hasSamples() {
		k := uint64(st.dm) * 100 * uint64(ty.boardMW)
		e = mul64(k, uint64(dt))
		c = mul64(k, uint64(dCI)).mul(pue)
		return t, e, c
	}
	// Per device: 100 x idle x dt + (board - idle) x integral of
	// utilization, and the same weighted by carbon intensity.
	var sumU int64   // integral of utilization over the devices
	var sumCU u128   // the same, weighted by carbon intensity
	var flatDevs int // devices with no samples: 100% throughout
	add := func(s *utilSeries) {
		if s == nil {
			flatDevs++
			return
		}
		sumU += s.integral(y, l.ttl) - s.integral(x, l.ttl)
		si.carbon.steps(x, y, func(a, b, mg int64) {
			sumCU = sumCU.add(mul64(uint64(mg), uint64(s.integral(b, l.ttl)-s.integral(a, l.ttl))))
		})
	}
	if st.mask != 0 {
		for m := st.mask; m != 0; m &= m - 1 {
			add(nd.series(bits.TrailingZeros64(m)))
		}
	} else {
		for range st.n {
			add(nd.wide)
		}
	}
	sumU += int64(flatDevs) * 100 * dt
	sumCU = sumCU.add(mul64(uint64(flatDevs)*100, uint64(dCI)))
	idle := uint64(100 * ty.idleMW * st.n)
	dyn := uint64(ty.boardMW - ty.idleMW)
	e = mul64(idle, uint64(dt)).add(mul64(dyn, uint64(sumU))).mul(uint64(st.milli))
	c = mul64(idle, uint64(dCI)).add(sumCU.mul(dyn)).mul(uint64(st.milli)).mul(pue)
	return t, e, c
}

// retract cuts an open record back from its position to c (a close
// earlier than what Meter metered), day by day, returning the charges
// of the cut part to the credits and budgets they went to.
func (l *Ledger) retract(st *meterState, c int64) {
	for st.pos > c {
		lo := max(c, st.day*msPerDay, st.from)
		t, e, cc := l.exact(st, lo, st.pos)
		st.cumT -= t
		st.cumE = st.cumE.sub(e)
		st.cumC = st.cumC.sub(cc)
		delta := l.apply(st, lo, st.pos, -1)
		if delta.Charge < 0 {
			l.refund(st, -delta.Charge)
		}
		st.pos = lo
		if lo > c {
			// Step back into the day before, whose part was metered
			// whole: rebuild its exact totals.
			st.day--
			start := max(st.from, st.day*msPerDay)
			st.bi = l.bucketAt(st.line, st.day)
			st.month = MonthOf(start).Index()
			st.cumT, st.cumE, st.cumC = l.exact(st, start, lo)
			st.q = l.round(st)
		}
	}
	l.flushJob(st)
}
