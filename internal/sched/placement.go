package sched

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// observe adds a job's replica shapes to the workload the fragmentation
// scorers plan for.
func (c *Core) observe(j *job) {
	for g := range j.Gangs {
		r := j.Gangs[g].Shape
		key := fmt.Sprintf("%d/%d/%d/%d/%s", r.Devices, r.Milli, r.CPUMilli, r.MemoryMiB, strings.Join(r.Accel, "|"))
		i, ok := c.classes[key]
		if !ok {
			i = len(c.workload.Classes)
			c.classes[key] = i
			r.Accel = append([]string(nil), r.Accel...)
			c.workload.Classes = append(c.workload.Classes, place.Class{Req: r})
		}
		c.workload.Classes[i].Weight += float64(j.Gangs[g].Replicas)
	}
}

func (hs holds) blocks(j *job, now int64, n int) bool {
	for _, h := range hs {
		if h.blocks(j, now, n) {
			return true
		}
	}
	return false
}

type cand struct {
	choice place.Choice
	// score holds the scorers' scores and, last, the device the
	// candidate order prefers for a fraction.
	score [maxScorers + 1]float64
	order int
}

// try is the state of one placement attempt: what has been allocated so far
// (so it can be undone) and why it failed.
type try struct {
	c    *Core
	j    *job
	hold holds
	reps []replica
	// anyOK marks the catalog types an anyType placement may use.
	anyOK []bool
	// within, when above 0, keeps the placement below that domain (a
	// site the carbon rule chose); capped is the first site whose power
	// cap ruled a node out, with what the replica needed there.
	within  int
	capped  *capSite
	needKW  float64
	noPower bool
}

// anyType asks pickOne to rank the nodes of every type marked in
// try.anyOK together.
const anyType = -2

func (c *Core) alloc(t *try, g, ridx int, ch place.Choice) {
	c.idx.take(ch.Node, &t.j.Gangs[g].Shape, ch, +1)
	t.reps = append(t.reps, replica{gang: g, idx: ridx, node: ch.Node, choice: ch})
}

// usable reports whether node n can take request r of job j now: the
// filters of the chain. The built-in ones are applied inline, fused (the
// same checks as readyFilter, accelFilter, resourceFilter and
// reservationFilter, in that order), because every candidate of every
// placement passes through them.
func (c *Core) usable(t *try, n int, r *place.Request) bool {
	if !place.Fits(c.idx.nodes[n], r) {
		return false
	}
	if c.nominated.has(n) {
		if c.nominee[n] != t.j {
			return false
		}
	} else if t.hold.blocks(t.j, c.now, n) {
		return false
	}
	for _, f := range c.pipe.filters {
		if !f.feasible(t, n, r) {
			return false
		}
	}
	if t.within > 0 && !c.inDomain(n, t.within) {
		return false
	}
	if c.power != nil && !t.noPower {
		if s, need := c.power.room(c, n, r); s != nil {
			if t.capped == nil {
				t.capped, t.needKW = s, need
			}
			return false
		}
	}
	return true
}

// best ranks the choices on the collected candidate nodes and returns the
// winner.
func (c *Core) best(t *try, nodes []int, r *place.Request) (place.Choice, bool) {
	if c.pipe.only != nil {
		// Full ranking by one scorer: exactly place.Select, the selection
		// the fragmentation experiments measure.
		c.pnodes = c.pnodes[:0]
		for _, n := range nodes {
			c.pnodes = append(c.pnodes, c.idx.nodes[n])
		}
		ch, ok := place.Select(c.pnodes, r, c.pipe.only, c.choiceBuf[:0])
		return ch, ok
	}
	c.cand = c.cand[:0]
	var buf []place.Choice
	for order, n := range nodes {
		buf = place.Choices(c.idx.nodes[n], r, buf[:0])
		for _, ch := range buf {
			cd := cand{choice: ch, order: order}
			k := 0
			for _, s := range c.pipe.scorers {
				cd.score[k] = s.score(t, n, r, ch)
				k++
			}
			if r.Milli > 0 && r.Devices == 0 {
				// Among a node's devices, the candidate order picks: the
				// least free that fits with best fit.
				cd.score[k] = c.pipe.order.rank(int(c.idx.nodes[n].Free[ch.Devices[0]]))
			}
			c.cand = append(c.cand, cd)
		}
	}
	if len(c.cand) == 0 {
		return place.Choice{}, false
	}
	bi := 0
	for i := 1; i < len(c.cand); i++ {
		if better(&c.cand[i], &c.cand[bi]) {
			bi = i
		}
	}
	return c.cand[bi].choice, true
}

func better(a, b *cand) bool {
	for k := range a.score {
		if a.score[k] != b.score[k] {
			return a.score[k] > b.score[k]
		}
	}
	return a.order < b.order
}

// rackFree is the fully free device count of node n's lowest domain.
func (c *Core) rackFree(n int) int {
	ti := c.idx.nodeType[n]
	if ti < 0 {
		return 0
	}
	return c.idx.freeWholeIn(ti, c.fleet.NodeDomain[n])
}

// domainBelow reports whether domain d is within (or below) domain w.
func (c *Core) domainBelow(d, w int) bool {
	lw := c.fleet.Domains[w].Level
	for d > 0 && c.fleet.Domains[d].Level > lw {
		d = c.fleet.Domains[d].Parent
	}
	return d == w
}

// inDomain reports whether node n lies below domain d.
func (c *Core) inDomain(n, d int) bool {
	if d == 0 {
		return true
	}
	lvl := c.fleet.Domains[d].Level
	anc := c.idx.ancestors[n]
	// ancestors run from the lowest level up; index by depth.
	k := len(c.fleet.Levels) - 1 - lvl
	return k >= 0 && k < len(anc) && int(anc[k]) == d
}

// pickOne chooses a node for one replica of r (catalog type ti, -1 for any
// or CPU-only) below domain d, from the index in candidate order.
func (c *Core) pickOne(t *try, r *place.Request, ti, d int) (place.Choice, bool) {
	limit := c.pipe.k
	if len(c.pipe.scorers) == 0 {
		limit = 1
	}
	var nodes []int
	const scanLimit = 4096
	scanned, base := 0, 0
	// visit collects node n if it can take the replica; it returns false
	// to stop the scan: limit candidates found since base, or scanLimit
	// nodes looked at (ranking every node, limit < 0, never stops).
	// A chain that ranks sites (the carbon stage) collects up to limit
	// candidates from each site, so that every site is in the running.
	var perSite map[int]int
	full, sites := 0, 0
	if c.pipe.perSite && limit > 0 {
		perSite, sites = map[int]int{}, len(c.idx.levelDoms[c.siteLevel])
	}
	visit := func(n int) bool {
		scanned++
		if c.inDomain(n, d) && c.usable(t, n, r) {
			if perSite != nil {
				s := c.fleet.Ancestor(n, c.siteLevel)
				if perSite[s] < limit {
					nodes = append(nodes, n)
					if perSite[s]++; perSite[s] == limit {
						full++
					}
				}
				return full < sites && scanned < scanLimit
			}
			nodes = append(nodes, n)
		}
		return limit < 0 || len(nodes)-base < max(limit, 1) && scanned < scanLimit
	}
	if limit < 0 {
		if b, k := c.boardFor(t, r, ti, d); b != nil {
			return c.pick(b, k, r)
		}
		if rk, ok := c.pipe.only.(place.Ranked); ok && !c.cfg.NoScoreboards && c.plainCandidates(t, d) {
			if k, ok := keyFor(t, r, ti); ok {
				return c.pickRanked(rk, r, k)
			}
		}
	}
	switch {
	case ti == anyType && limit < 0:
		// One replica that takes any of several types, every feasible
		// node ranked: all of them, in node order.
		s := &c.idx.schedulable
		for n := s.next(0); n >= 0; n = s.next(n + 1) {
			if nt := c.idx.nodeType[n]; nt >= 0 && t.anyOK[nt] {
				visit(n)
			}
		}
	case ti == anyType:
		// One replica that takes any of several types: the first
		// candidates of each type's index, ranked together.
		for ty, ok := range t.anyOK {
			if !ok {
				continue
			}
			base, scanned = len(nodes), 0
			if r.Devices > 0 {
				c.scanWhole(ty, r.Devices, visit)
			} else {
				c.scanFraction(ty, r.Milli, visit)
			}
		}
	case ti < 0 || (r.Devices == 0 && r.Milli == 0):
		s := &c.idx.schedulable
		for n := s.next(0); n >= 0; n = s.next(n + 1) {
			if ti >= 0 && c.idx.nodeType[n] != ti {
				continue
			}
			if !visit(n) {
				break
			}
		}
	case limit < 0:
		// Rank every feasible node of the type.
		s := &c.idx.schedulable
		for n := s.next(0); n >= 0; n = s.next(n + 1) {
			if c.idx.nodeType[n] == ti {
				visit(n)
			}
		}
	case r.Devices > 0:
		c.scanWhole(ti, r.Devices, visit)
	default:
		c.scanFraction(ti, r.Milli, visit)
	}
	if len(nodes) == 0 {
		return place.Choice{}, false
	}
	return c.best(t, nodes, r)
}

// scanWhole visits nodes with at least g fully free devices in candidate
// order.
func (c *Core) scanWhole(ti, g int, visit func(int) bool) {
	tx := c.idx.types[ti]
	c.pipe.order.buckets(g, maxDev, func(f int) bool {
		b := &tx.byFree[f]
		for n := b.next(0); n >= 0; n = b.next(n + 1) {
			if !visit(n) {
				return false
			}
		}
		return true
	})
}

// scanFraction visits nodes that can take m milli of one device: with best
// fit, partly used devices with the least room first, then nodes by fewest
// whole free devices; with spread, the emptiest nodes first (the candidate
// order's buckets and partialFirst).
func (c *Core) scanFraction(ti int, m int32, visit func(int) bool) {
	tx := c.idx.types[ti]
	seen := map[int]bool{}
	once := func(n int) bool {
		if seen[n] {
			return true
		}
		seen[n] = true
		return visit(n)
	}
	partial := func() bool {
		for v := tx.partialVals.next(int(m)); v >= 0 && v < place.Whole; v = tx.partialVals.next(v + 1) {
			b := &tx.partial[v]
			for n := b.next(0); n >= 0; n = b.next(n + 1) {
				if !once(n) {
					return false
				}
			}
		}
		return true
	}
	whole := func() bool {
		more := true
		c.pipe.order.buckets(1, maxDev, func(f int) bool {
			b := &tx.byFree[f]
			for n := b.next(0); n >= 0; n = b.next(n + 1) {
				if !once(n) {
					more = false
					return false
				}
			}
			return true
		})
		return more
	}
	if !c.pipe.order.partialFirst() {
		if whole() {
			partial()
		}
		return
	}
	if partial() {
		whole()
	}
}

// placeGang places count replicas of gang g (type ti) below domain d,
// starting at replica index first. It allocates as it goes and reports
// how many it placed.
func (c *Core) placeGang(t *try, g, ti, d, first, count int) int {
	r := &t.j.Gangs[g].Shape
	if ti >= 0 && r.Devices > 0 && (count > 1 || d != 0) && c.pipe.k >= 0 {
		return c.descend(t, g, ti, d, first, count)
	}
	placed := 0
	for placed < count {
		ch, ok := c.pickOne(t, r, ti, d)
		if !ok {
			break
		}
		c.alloc(t, g, first+placed, ch)
		placed++
	}
	return placed
}

// descend places whole-device replicas below domain d using the fewest
// subdomains: a child that can hold all the remaining replicas is preferred
// (the tightest such child, to keep larger ones whole); otherwise the
// children with the most room are filled first.
func (c *Core) descend(t *try, g, ti, d, first, count int) int {
	r := &t.j.Gangs[g].Shape
	dom := &c.fleet.Domains[d]
	tx := c.idx.types[ti]
	if len(dom.Children) == 0 {
		placed := 0
		for placed < count {
			var nodes []int
			for _, n := range dom.Nodes {
				if c.idx.nodeType[n] == ti && c.usable(t, n, r) {
					nodes = append(nodes, n)
				}
			}
			if len(nodes) == 0 {
				break
			}
			o := c.pipe.order
			sort.SliceStable(nodes, func(a, b int) bool {
				return o.rank(int(c.idx.whole[nodes[a]])) > o.rank(int(c.idx.whole[nodes[b]]))
			})
			ch, ok := c.best(t, nodes, r)
			if !ok {
				break
			}
			c.alloc(t, g, first+placed, ch)
			placed++
		}
		return placed
	}
	type kid struct {
		d   int
		fit int32
	}
	kids := make([]kid, 0, len(dom.Children))
	for _, ch := range dom.Children {
		if f := tx.fit(ch, r.Devices); f > 0 {
			kids = append(kids, kid{ch, f})
		}
	}
	placed := 0
	for placed < count && len(kids) > 0 {
		rem := int32(count - placed)
		pick := -1
		for i, k := range kids {
			if k.fit < rem {
				continue
			}
			if pick < 0 || c.pipe.order.rank(int(k.fit)) > c.pipe.order.rank(int(kids[pick].fit)) {
				pick = i
			}
		}
		if pick < 0 {
			for i, k := range kids {
				if pick < 0 || k.fit > kids[pick].fit {
					pick = i
				}
			}
		}
		k := kids[pick]
		kids = append(kids[:pick], kids[pick+1:]...)
		n := min(int(rem), int(k.fit))
		placed += c.descend(t, g, ti, k.d, first+placed, n)
	}
	return placed
}

// typeOptions lists the catalog types a gang accepts, in its order of
// preference (catalog order of the types the fleet has, when it names
// none); -1 for CPU-only gangs.
func (c *Core) typeOptions(r *place.Request) []int {
	if r.Devices == 0 && r.Milli == 0 {
		return []int{-1}
	}
	var out []int
	if len(r.Accel) == 0 {
		for i, ok := range c.present {
			if ok {
				out = append(out, i)
			}
		}
		if len(out) == 0 {
			out = append(out, 0)
		}
		return out
	}
	for _, a := range r.Accel {
		if i := c.fleet.Catalog.Index(a); i >= 0 {
			out = append(out, i)
		}
	}
	return out
}

// opts is typeOptions for gang g of job j, cached on the job until the
// fleet gains a new accelerator type.
func (c *Core) opts(j *job, g int) []int {
	if j.optsVer != c.typesVer || j.optsCache == nil {
		j.optsCache = make([][]int, len(j.Gangs))
		for k := range j.Gangs {
			j.optsCache[k] = c.typeOptions(&j.Gangs[k].Shape)
		}
		j.optsVer = c.typesVer
	}
	return j.optsCache[g]
}

// outcome is the result of trying to place a whole job.
type outcome struct {
	t      *try
	types  []int
	demand quota.Demand
	// status is Fits on success; otherwise what stopped the job, as the
	// job's most preferred option saw it (the reason users see).
	status Status
	set    bool
}

func (o *outcome) fail(s Status) {
	if !o.set {
		o.set, o.status = true, s
	}
}

// ok reports whether the job was placed.
func (o *outcome) ok() bool { return o.status.Code == Fits }

// plan tries to place job j (its gangs at their minimum sizes) and, on
// success, leaves the replicas allocated in the index (not yet in the quota
// tree). On failure nothing stays allocated, and the status says what
// stopped it, with the figures of its reason.
func (c *Core) plan(j *job, h holds) outcome { return c.planFor(&try{c: c, j: j, hold: h}, true) }

// probe is plan for what-if questions that only ask whether j fits: a
// capacity failure's status carries no figures, which spares the search
// through the fleet that a reason takes.
func (c *Core) probe(j *job, h holds) outcome { return c.planFor(&try{c: c, j: j, hold: h}, false) }

// planWithin is plan with every replica below domain d.
func (c *Core) planWithin(j *job, h holds, d int) outcome {
	return c.planFor(&try{c: c, j: j, hold: h, within: d}, true)
}

func (c *Core) planFor(t *try, explain bool) outcome {
	j, h := t.j, t.hold
	out := outcome{t: t}
	levels := []int{-1} // -1: the whole fleet
	if j.Topology.Level != "" {
		lvl, _ := c.fleet.LevelIndex(j.Topology.Level)
		if j.Topology.Required {
			levels = []int{lvl}
		} else {
			levels = levels[:0]
			for l := lvl; l >= 0; l-- {
				levels = append(levels, l)
			}
			levels = append(levels, -1)
		}
	}
	var tried map[int]bool
	for _, lvl := range levels {
		for _, d := range c.candidateDomains(j, lvl, t.within) {
			if t.within > 0 {
				if tried[d] {
					continue
				}
				if tried == nil {
					tried = map[int]bool{}
				}
				tried[d] = true
			}
			if c.fillJob(j, t, d, &out) {
				out.status = Status{Code: Fits}
				return out
			}
		}
	}
	out.fail(Status{Code: NoCapacity})
	if out.status.capacity() && explain {
		if t.capped != nil && c.fitsWithoutPower(t) {
			out.status = c.power.powerStatus(t.capped, t.needKW)
		} else {
			out.status = c.capacityStatus(j, h)
		}
	}
	return out
}

// fitsWithoutPower reports whether the attempt t stood for would have
// placed its job but for the power caps: then the caps are the reason.
func (c *Core) fitsWithoutPower(t *try) bool {
	o := c.planFor(&try{c: c, j: t.j, hold: t.hold, within: t.within, noPower: true}, false)
	if o.ok() {
		c.undo(o.t, 0)
		return true
	}
	return false
}

const domainTries = 8

// candidateDomains lists the domains of a level that could hold the job's
// first gang, tightest first (loosest first with spread); with within set,
// only those below that domain (within itself when the level is its own or
// above it, where one domain holds all of it).
func (c *Core) candidateDomains(j *job, lvl, within int) []int {
	if within > 0 && (lvl < 0 || lvl <= c.fleet.Domains[within].Level) {
		return []int{within}
	}
	if lvl < 0 {
		return []int{0}
	}
	g0 := &j.Gangs[0]
	need := int32(g0.Min())
	gsize := g0.Shape.Devices
	if gsize == 0 {
		gsize, need = 1, 1
	}
	var out []int
	seen := map[int]bool{}
	for _, ti := range c.opts(j, 0) {
		if ti < 0 {
			return c.allDomains(lvl, within)
		}
		n := 0
		c.pipe.order.domains(c.idx.treeFor(ti, gsize, lvl), need, func(k domKey) bool {
			if within > 0 && !c.domainBelow(int(k.dom), within) {
				return true
			}
			if !seen[int(k.dom)] {
				seen[int(k.dom)] = true
				out = append(out, int(k.dom))
			}
			n++
			return n < domainTries
		})
	}
	return out
}

func (c *Core) allDomains(lvl, within int) []int {
	out := make([]int, 0, len(c.idx.levelDoms[lvl]))
	for _, d := range c.idx.levelDoms[lvl] {
		if within > 0 && !c.domainBelow(int(d), within) {
			continue
		}
		out = append(out, int(d))
		if len(out) == domainTries {
			break
		}
	}
	return out
}

// fillJob places every gang of j below domain d, trying each gang's
// accelerator types in order, checking quota for each choice.
func (c *Core) fillJob(j *job, t *try, d int, out *outcome) bool {
	types := make([]int, len(j.Gangs))
	demand := quota.Demand{}
	for g := range j.Gangs {
		gang := &j.Gangs[g]
		ti, f, ok, exhausted := c.fillAny(j, t, g, d, demand)
		if ok {
			types[g] = ti
			if ti >= 0 {
				demand[f] += gang.Shape.GPUMilli()
			}
			continue
		}
		if exhausted {
			// Every type it accepts was ranked together and none has a
			// node: the types one by one would find none either.
			out.fail(Status{Code: NoCapacity})
			c.undo(t, 0)
			return false
		}
		done := false
		for _, ti := range c.typeOrder(j, g) {
			var f int
			var add int64
			if ti >= 0 {
				f = c.flavor(ti, j.Tier)
				add = int64(gang.Min()) * gang.Shape.GPUMilli()
				if f < 0 {
					out.fail(Status{Code: NoFlavor, Flavor: c.flavorName(ti, j.Tier)})
					continue
				}
				trial := quota.Demand{}
				for k, v := range demand {
					trial[k] = v
				}
				trial[f] += add
				if r := c.queues.Check(j.queue, trial); r != nil {
					out.fail(Status{Code: OverQuota, Quota: r})
					continue
				}
			}
			mark := len(t.reps)
			if c.placeGang(t, g, ti, d, 0, gang.Min()) == gang.Min() {
				types[g] = ti
				if ti >= 0 {
					demand[f] += add
				}
				done = true
				break
			}
			c.undo(t, mark)
			out.fail(Status{Code: NoCapacity})
		}
		if !done {
			c.undo(t, 0)
			return false
		}
	}
	out.types, out.demand = types, demand
	return true
}

// reclaimMemory is how long quota reclaimed on a flavor keeps borrowers
// off it when they have another choice (see typeOrder).
const reclaimMemory = 3600

// typeOrder is the order in which gang g of j tries its accelerator types:
// the job's own order, except that a type on which j would borrow quota
// another queue is owed goes last when quota of it was reclaimed in the
// last reclaimMemory seconds. Work that borrows where reclaims are going
// on is the next to be preempted; on another of its types it can run to
// the end. With no recent reclaim the job's order stands.
func (c *Core) typeOrder(j *job, g int) []int {
	opts := c.opts(j, g)
	if len(opts) < 2 || len(c.reclaimedAt) == 0 {
		return opts
	}
	var late []bool
	for k, ti := range opts {
		if ti < 0 || !c.borrowsContested(j, g, ti) {
			continue
		}
		if late == nil {
			late = make([]bool, len(opts))
		}
		late[k] = true
	}
	if late == nil {
		return opts
	}
	out := make([]int, 0, len(opts))
	for k, ti := range opts {
		if !late[k] {
			out = append(out, ti)
		}
	}
	for k, ti := range opts {
		if late[k] {
			out = append(out, ti)
		}
	}
	return out
}

// borrowsContested reports whether gang g of j, on type ti, would hold
// quota another queue is owed (above the nominal of some queue on its path
// while a sibling has a nominal claim) on a flavor reclaimed recently.
func (c *Core) borrowsContested(j *job, g, ti int) bool {
	f := c.flavor(ti, j.Tier)
	if f < 0 {
		return false
	}
	at, ok := c.reclaimedAt[f]
	return ok && c.now-at <= reclaimMemory && c.holdsOwed(j, g, f)
}

// fillAny places a one-replica gang that names no accelerator type (or
// whose types are a set, Gang.AnyType) by
// ranking the nodes of every type its queue has quota for together, rather
// than trying the types in catalog order. It reports the type and flavor
// used; ok is false when the gang is not of that kind or found no node.
// exhausted reports a search that ranked every node of every type the gang
// accepts (every type within quota, every feasible node ranked) and found
// none: trying the types one by one cannot do better.
func (c *Core) fillAny(j *job, t *try, g, d int, demand quota.Demand) (ti, f int, ok, exhausted bool) {
	gang := &j.Gangs[g]
	opts := c.opts(j, g)
	if (len(gang.Shape.Accel) > 0 && !gang.AnyType) || gang.Min() != 1 || len(opts) < 2 || opts[0] < 0 {
		return 0, 0, false, false
	}
	if t.anyOK == nil {
		t.anyOK = make([]bool, len(c.idx.types))
	}
	clear(t.anyOK)
	some, all := false, true
	for _, ti := range opts {
		f := c.flavor(ti, j.Tier)
		if f < 0 {
			all = false
			continue
		}
		trial := quota.Demand{f: gang.Shape.GPUMilli()}
		for k, v := range demand {
			trial[k] += v
		}
		if c.queues.Check(j.queue, trial) == nil {
			t.anyOK[ti], some = true, true
		} else {
			all = false
		}
	}
	if !some {
		return 0, 0, false, false // the per-type loop records the reasons
	}
	ch, found := c.pickOne(t, &gang.Shape, anyType, d)
	if !found {
		return 0, 0, false, all && c.pipe.k < 0
	}
	c.alloc(t, g, 0, ch)
	ti = c.idx.nodeType[ch.Node]
	return ti, c.flavor(ti, j.Tier), true, false
}

// undo takes back what attempt t allocated after its first mark replicas
// (all of it with mark 0).
func (c *Core) undo(t *try, mark int) {
	for i := len(t.reps) - 1; i >= mark; i-- {
		r := t.reps[i]
		c.idx.take(r.node, &t.j.Gangs[r.gang].Shape, r.choice, -1)
	}
	t.reps = t.reps[:mark]
}

// capacityStatus says, with figures, why the fleet could not hold j: about
// its largest gang on its most preferred type.
func (c *Core) capacityStatus(j *job, hs holds) Status {
	g := &j.Gangs[0]
	for gi := range j.Gangs {
		if j.Gangs[gi].Shape.Devices*j.Gangs[gi].Min() > g.Shape.Devices*g.Min() {
			g = &j.Gangs[gi]
		}
	}
	r := &g.Shape
	st := Status{Code: NoCapacity, Replicas: g.Min(), Devices: r.Devices, Milli: r.Milli, CPUMilli: r.CPUMilli, MemoryMiB: r.MemoryMiB}
	ti := c.typeOptions(r)[0]
	if ti < 0 {
		st.Room = RoomHost
		return st
	}
	st.Type = c.fleet.Catalog.Types[ti].Name
	for _, x := range hs {
		if x.job != j {
			st.Holder, st.HeldUntil = x.job.ID, x.at
			break
		}
	}
	tx := c.idx.types[ti]
	if r.Devices == 0 {
		st.Room = RoomFraction
		if v := tx.partialVals.next(int(r.Milli)); v >= 0 && v < place.Whole || c.mostWhole(ti) > 0 {
			st.Most = 1
		}
		return st
	}
	need := g.Min() * r.Devices
	if j.Topology.Level != "" && j.Topology.Required {
		lvl, _ := c.fleet.LevelIndex(j.Topology.Level)
		st.Room, st.Level = RoomDomain, j.Topology.Level
		// Among the domains that can take the most replicas of this size
		// (read from the top of the index's ordered tree, at most 64 of
		// them, rather than scanning the level) the one with the most free.
		best, bestFree, seen := -1, 0, 0
		c.idx.treeFor(ti, r.Devices, lvl).Descend(func(k domKey) bool {
			f := c.idx.freeWholeIn(ti, int(k.dom))
			if best < 0 || f > bestFree || f == bestFree && int(k.dom) < best {
				best, bestFree = int(k.dom), f
			}
			seen++
			return seen < 64
		})
		if best >= 0 {
			st.Domain, st.Free = c.fleet.DomainPath(best), bestFree
		}
		return st
	}
	st.Free, st.Most = c.idx.freeWholeIn(ti, 0), c.mostWhole(ti)
	switch {
	case st.Free >= need && st.Holder != "":
		st.Room = RoomHeld
	case st.Free >= need && st.Most >= r.Devices:
		st.Room = RoomHostResources
	case st.Free >= need:
		st.Room = RoomScattered
	default:
		st.Room = RoomShort
	}
	return st
}

// mostWhole is the most fully free devices of type ti on one schedulable
// node.
func (c *Core) mostWhole(ti int) int {
	tx := c.idx.types[ti]
	for f := maxDev; f > 0; f-- {
		if tx.byFree[f].n > 0 {
			return f
		}
	}
	return 0
}
