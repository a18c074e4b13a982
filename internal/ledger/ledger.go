package ledger

import (
	"fmt"
	"math/bits"
	"sort"
)

// Ledger meters usage and keeps the accounts. Build it with New.
type Ledger struct {
	cfg     Config
	cur     Currency
	types   []typeInfo
	typeIdx map[string]int
	sites   []*siteInfo
	siteIdx map[string]int
	defSite *Site
	defTier Tier
	ttl     int64

	tenants names
	queues  names
	// nodes numbers nodes by a 128-bit hash of their name: a map whose
	// keys hold no pointer to chase (there are thousands of nodes).
	nodes   map[idKey]int32
	kinds   names
	nodeInf []nodeInfo

	lines    []lineInfo
	lineIdx  map[lineKey]int32
	queueIdx map[string]*queueLines
	last     lastLine
	lastNode lastNode
	lastKind lastNode

	// seen holds every record ID fed, open or closed, by a 128-bit hash
	// of the ID: a map without pointers, which the garbage collector
	// need not scan, and no copy of the IDs.
	seen idTable
	open []*openRec
	free []int32 // free slots of open

	buckets bucketStore

	jobs jobTable
	// hours holds the committed-tier hours of buckets (bucket.hours - 1).
	hours [][24]int64

	commits []*commitment
	grants  []*grant
	acct    map[int32]*account // per tenant

	events  []Event
	sealed  int64
	horizon int64
}

// names interns strings as small integers.
type names struct {
	idx map[string]int32
	s   []string
}

func (n *names) id(s string) int32 {
	if i, ok := n.idx[s]; ok {
		return i
	}
	if n.idx == nil {
		n.idx = map[string]int32{}
	}
	i := int32(len(n.s))
	n.idx[s] = i
	n.s = append(n.s, s)
	return i
}

func (n *names) lookup(s string) (int32, bool) {
	i, ok := n.idx[s]
	return i, ok
}

// lineKey is the finest grain of the accounts: tenant x queue x tier x
// accelerator type x site.
type lineKey struct {
	tenant, queue int32
	tier          Tier
	typ, site     int32
}

type lineInfo struct {
	key lineKey
	// days[d-base] is 1 + the index of the line's bucket for day d, 0
	// when it has none.
	base int64
	days []int32
	// The day last looked up and 1 + its bucket: records of a line come
	// close together in time.
	lastDay int64
	lastIdx int32
}

// idKey is the FNV-1a 128-bit hash of a record ID: collisions among a
// trillion IDs have a chance of about 1e-15.
type idKey [2]uint64

// spread mixes the hash's halves (the murmur3 finalizer) into a table
// index: FNV's low bits alone cluster for names that differ in their last
// characters.
func (k idKey) spread() uint64 {
	x := k[0] ^ k[1]
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func idHash(s string) idKey {
	// FNV-1a, 128 bits: offset basis 0x6c62272e07bb014262b821756295c58d,
	// prime 2^88 + 0x13b.
	hi, lo := uint64(0x6c62272e07bb0142), uint64(0x62b821756295c58d)
	for i := 0; i < len(s); i++ {
		lo ^= uint64(s[i])
		h, l := bits.Mul64(lo, 0x13b)
		hi = h + hi*0x13b + lo<<24
		lo = l
	}
	return idKey{hi, lo}
}

// bucket is one line's totals for one UTC day. It holds no pointer, so
// the collector skips the slice of them.
type bucket struct {
	line int32
	day  int32
	// hours is 1 + the index in Ledger.hours of the committed-tier time
	// per hour of the day, which coverage by commitments is settled on;
	// 0 outside the committed tier.
	hours int32
	Totals
}

// hoursOf returns a bucket's committed-tier hours, or nil.
func (l *Ledger) hoursOf(b *bucket) *[24]int64 {
	if b.hours == 0 {
		return nil
	}
	return &l.hours[b.hours-1]
}

// Totals are metered quantities. Every field is exact to its unit and
// additive: the totals of a set of records are the sums of theirs.
type Totals struct {
	// MilliMs is accelerator-time in milli-accelerator-milliseconds: one
	// accelerator for one hour is 3,600,000,000.
	MilliMs int64
	// EnergyMJ is IT energy (the accelerators' own draw) in millijoules;
	// FacilityMJ is that times the site's PUE.
	EnergyMJ, FacilityMJ int64
	// CarbonMg is facility energy times the grid's carbon intensity, in
	// milligrams of CO2e.
	CarbonMg int64
	// Charge is usage at the tier's rate: on-demand and spot usage. Usage
	// in the committed tier is settled against commitments per hour by
	// reports and invoices instead (see Row.Overage).
	Charge Money
}

func (t *Totals) add(o Totals) {
	t.MilliMs += o.MilliMs
	t.EnergyMJ += o.EnergyMJ
	t.FacilityMJ += o.FacilityMJ
	t.CarbonMg += o.CarbonMg
	t.Charge += o.Charge
}

func (t *Totals) sub(o Totals) {
	t.MilliMs -= o.MilliMs
	t.EnergyMJ -= o.EnergyMJ
	t.FacilityMJ -= o.FacilityMJ
	t.CarbonMg -= o.CarbonMg
	t.Charge -= o.Charge
}

// AcceleratorHours returns MilliMs in accelerator-hours.
func (t Totals) AcceleratorHours() float64 { return float64(t.MilliMs) / (1000 * msPerHour) }

// KWh returns IT energy in kilowatt-hours.
func (t Totals) KWh() float64 { return float64(t.EnergyMJ) / 3.6e9 }

// FacilityKWh returns facility energy in kilowatt-hours.
func (t Totals) FacilityKWh() float64 { return float64(t.FacilityMJ) / 3.6e9 }

// CarbonKg returns carbon in kilograms of CO2e.
func (t Totals) CarbonKg() float64 { return float64(t.CarbonMg) / 1e6 }

// New builds a ledger.
func New(cfg Config) (*Ledger, error) {
	types, byType, cur, defTier, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	l := &Ledger{
		cfg: cfg, cur: cur, types: types, typeIdx: byType, defTier: defTier,
		siteIdx: map[string]int{}, lineIdx: map[lineKey]int32{}, queueIdx: map[string]*queueLines{},
		acct: map[int32]*account{}, nodes: map[idKey]int32{},
		ttl: cfg.SampleTTLMs,
	}
	if l.ttl == 0 {
		l.ttl = DefaultSampleTTLMs
	}
	if cfg.ExpectRecords < 0 || cfg.ExpectRecords > 1<<30 {
		return nil, fmt.Errorf("expected records %d: want 0..%d", cfg.ExpectRecords, 1<<30)
	}
	l.seen.reserve(cfg.ExpectRecords)
	names := make([]string, 0, len(cfg.Sites))
	for n := range cfg.Sites {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "" {
			return nil, fmt.Errorf("sites: a site name is empty")
		}
		si, err := resolveSite(n, cfg.Sites[n], types)
		if err != nil {
			return nil, err
		}
		l.siteIdx[n] = len(l.sites)
		l.sites = append(l.sites, si)
	}
	if cfg.DefaultSite != nil {
		if _, err := resolveSite("(default)", *cfg.DefaultSite, types); err != nil {
			return nil, err
		}
		d := *cfg.DefaultSite
		l.defSite = &d
	}
	return l, nil
}

// Currency returns the currency amounts are kept in.
func (l *Ledger) Currency() Currency { return l.cur }

func (l *Ledger) siteNames() []string {
	out := make([]string, len(l.sites))
	for i, s := range l.sites {
		out[i] = s.name
	}
	return out
}

// site returns a site's index, adding a site with the default attributes
// the first time an unlisted name is used.
func (l *Ledger) site(name string) int {
	if i, ok := l.siteIdx[name]; ok {
		return i
	}
	si, _ := resolveSite(name, *l.defSite, l.types)
	l.siteIdx[name] = len(l.sites)
	l.sites = append(l.sites, si)
	return len(l.sites) - 1
}

func (l *Ledger) node(name string) *nodeInfo {
	id := l.nodeID(name)
	for int(id) >= len(l.nodeInf) {
		l.nodeInf = append(l.nodeInf, nodeInfo{})
	}
	return &l.nodeInf[id]
}

func (l *Ledger) line(k lineKey) int32 {
	if i, ok := l.lineIdx[k]; ok {
		return i
	}
	i := int32(len(l.lines))
	l.lineIdx[k] = i
	l.lines = append(l.lines, lineInfo{key: k})
	return i
}

// bucketOf returns the index of a line's bucket for a day, if it has one.
func (l *Ledger) bucketOf(line int32, day int64) (int32, bool) {
	li := &l.lines[line]
	if day == li.lastDay && li.lastIdx != 0 {
		return li.lastIdx - 1, true
	}
	if i := day - li.base; i >= 0 && i < int64(len(li.days)) && li.days[i] != 0 {
		li.lastDay, li.lastIdx = day, li.days[i]
		return li.days[i] - 1, true
	}
	return 0, false
}

// bucketAt returns the index of a line's bucket for a day, adding it.
func (l *Ledger) bucketAt(line int32, day int64) int32 {
	if i, ok := l.bucketOf(line, day); ok {
		return i
	}
	li := &l.lines[line]
	switch {
	case len(li.days) == 0:
		li.base, li.days = day, make([]int32, 1, 32)
	case day < li.base:
		grown := make([]int32, int(li.base-day)+len(li.days), int(li.base-day)+cap(li.days))
		copy(grown[li.base-day:], li.days)
		li.base, li.days = day, grown
	case day-li.base >= int64(len(li.days)):
		li.days = append(li.days, make([]int32, int(day-li.base)+1-len(li.days))...)
	}
	i := l.buckets.n
	li.days[day-li.base] = i + 1
	b := bucket{line: line, day: int32(day)}
	if l.lines[line].key.tier == Committed {
		l.hours = append(l.hours, [24]int64{})
		b.hours = int32(len(l.hours))
	}
	l.buckets.add(b)
	return i
}

// Events returns the events raised since the last call, in the order they
// were raised, and forgets them.
func (l *Ledger) Events() []Event {
	out := l.events
	l.events = nil
	return out
}

// Horizon returns the time Meter last metered open records to.
func (l *Ledger) Horizon() int64 { return l.horizon }

// Sealed returns the time before which metering is final (0: none).
func (l *Ledger) Sealed() int64 { return l.sealed }

// OpenRecords returns how many records are open.
func (l *Ledger) OpenRecords() int { return len(l.open) - len(l.free) }
