package sched

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gpufleet/gpufleet/internal/place"
)

// victim is a candidate for preemption: a whole job, or only the replicas
// of an elastic job above its minimum (a shrink).
type victim struct {
	j      *job
	shrink []int // indices into j.reps; nil for the whole job
	lost   float64
}

// preempt looks for the smallest set of running jobs whose removal lets j
// start, and preempts them with their notice. Three kinds of victims are
// allowed: work of other queues that borrows quota when j's queue asks for
// no more than its nominal share (reclaim), lower-priority work of j's own
// queue, and, for work of any tier but spot, spot-tier work anywhere
// (taken first, with Config.SpotNoticeSec). Non-preemptible jobs are never victims. Elastic jobs shrink to
// their minimum before any whole job is taken. It reports whether it acted.
// The phases:
//
//  1. wait: a job preempts only once it has waited Config.PreemptAfterSec
//     for room to turn up on its own;
//  2. candidates: the eligible victims in the order they are taken
//     (victims), the ones in the cheapest place first (focus);
//  3. search: the shortest prefix of them whose removal lets j fit, then
//     every victim it can do without put back (victimSet);
//  4. notice: each victim is told to stop by its notice deadline (notify);
//  5. j starts at once when every notice was zero, or waits for its victims
//     with their nodes kept for it.
func (c *Core) preempt(j *job, res holds) bool {
	j.preemptAt = 0
	if at := j.pendingSince + c.preemptWait(); at > c.now {
		// Room may yet turn up on its own.
		j.preemptAt = at
		return false
	}
	scope := c.reclaimScope(j)
	cands, hope := c.focus(j, c.victims(j, scope), res)
	if len(cands) == 0 || !hope {
		return false
	}
	chosen := c.victimSet(j, cands, res)
	if chosen == nil {
		return false
	}
	// The victims' nodes, read before their replicas are released: kept
	// for j while it waits.
	var nodes []int
	for _, v := range chosen {
		if v.shrink != nil {
			for _, k := range v.shrink {
				nodes = append(nodes, v.j.reps[k].node)
			}
			continue
		}
		for _, r := range v.j.reps {
			nodes = append(nodes, r.node)
		}
	}
	n, last, immediate := c.notify(j, scope, chosen)
	if immediate {
		if p := c.probe(j, res); p.ok() {
			c.commit(j, p)
		}
		return true
	}
	c.nominate(j, nodes)
	j.awaiting = last
	j.victims = n
	j.status = Status{Code: AwaitingVictims, Count: n, At: last}
	j.earliest = last
	return true
}

// victimSet asks "what if these were gone?": it lifts candidates in order
// and finds the shortest prefix that lets j fit (shortestPrefix), then puts
// back every victim j can do without, newest choice first (bounded, for
// very long prefixes). It leaves the core as it found it and returns the
// victims needed, in candidate order; nil when no prefix lets j start.
func (c *Core) victimSet(j *job, cands []victim, res holds) []victim {
	var lifted []*saved
	taken := map[*job]map[int]bool{}
	liftTo := func(n int) {
		for len(lifted) < n {
			lifted = append(lifted, c.liftVictim(cands[len(lifted)], taken))
		}
		for len(lifted) > n {
			k := len(lifted) - 1
			sv := lifted[k]
			c.reinstate(sv)
			for _, r := range sv.only {
				delete(taken[sv.j], r)
			}
			if sv.only == nil {
				delete(taken, sv.j)
			}
			lifted = lifted[:k]
		}
	}
	fits := func(n int) bool {
		liftTo(n)
		if p := c.probe(j, res); p.ok() {
			c.undo(p.t, 0)
			return true
		}
		return false
	}
	hi := shortestPrefix(len(cands), func(int) int { return len(cands) }, fits)
	if hi == 0 {
		liftTo(0)
		return nil
	}
	liftTo(hi)
	need := make([]bool, len(lifted))
	for i := range need {
		need[i] = true
	}
	for i := len(lifted) - 2; i >= 0 && i >= len(lifted)-2-maxMinimize; i-- {
		c.reinstate(lifted[i])
		if p := c.probe(j, res); p.ok() {
			c.undo(p.t, 0)
			need[i] = false
			continue
		}
		c.relift(lifted[i])
	}
	for i := len(lifted) - 1; i >= 0; i-- {
		if need[i] {
			c.reinstate(lifted[i])
		}
	}
	var out []victim
	for i, v := range cands[:len(lifted)] {
		if need[i] {
			out = append(out, v)
		}
	}
	return out
}

// notify preempts the chosen victims for j: each gets a Preempt with its
// notice deadline (a shrink takes only the surplus replicas of an elastic
// job, unless the whole job is taken too). A victim whose notice is zero
// is released at once. It returns how many victims were told, the last
// deadline, and whether all of them are gone already.
func (c *Core) notify(j *job, scope int, chosen []victim) (n int, last int64, immediate bool) {
	whole := map[*job]bool{}
	for _, v := range chosen {
		if v.shrink == nil {
			whole[v.j] = true
		}
	}
	immediate = true
	var shrunkNow []*job
	for _, v := range chosen {
		if v.shrink != nil && whole[v.j] {
			continue
		}
		n++
		notice := v.j.NoticeSec
		reason := fmt.Sprintf("preempted for %s: higher priority in queue %s", j.ID, c.queues.Name(v.j.queue))
		switch {
		case v.j.Tier == TierSpot && j.Tier != TierSpot:
			reason = fmt.Sprintf("preempted for %s: spot capacity taken back for the %s tier", j.ID, tierName(j.Tier))
			if c.cfg.SpotNoticeSec > 0 {
				notice = c.cfg.SpotNoticeSec
			}
		case scope >= 0 && !c.sharesAncestor(scope, v.j.queue):
			reason = fmt.Sprintf("preempted for %s: reclaiming quota that %s lent to queue %s", j.ID, c.queues.Name(scope), c.queues.Name(v.j.queue))
			for f := range v.j.demand {
				if f >= 0 {
					c.reclaimedAt[f] = c.now
				}
			}
		}
		deadline := c.now + notice
		last = max(last, deadline)
		if v.shrink != nil {
			if c.shrink(v, deadline, reason) {
				// Released after the loop: dropping replicas now would
				// shift the indices the job's other shrinks refer to.
				shrunkNow = append(shrunkNow, v.j)
			} else {
				immediate = false
			}
			continue
		}
		c.emit(Preempt{Job: v.j.ID, Deadline: deadline, Reason: reason})
		if deadline <= c.now {
			c.release(v.j, EndPreempted)
			if c.requeuePreempted(v.j, reason) {
				c.emit(Requeue{Job: v.j.ID, Reason: reason})
			}
			continue
		}
		immediate = false
		c.setEnd(v.j, deadline)
		v.j.state = jPreempting
		v.j.deadline = deadline
		v.j.status = Status{Code: Preempting, Detail: reason, At: deadline}
		c.preempting[v.j.ID] = v.j
	}
	for _, v := range shrunkNow {
		if c.dropLeaving(v) {
			delete(c.preempting, v.ID)
		}
	}
	return n, last, immediate
}

// shrink tells an elastic victim to give back the replicas of v by the
// deadline, merging with the Preempt just emitted for the same job and
// deadline. It reports whether the deadline has already come.
func (c *Core) shrink(v victim, deadline int64, reason string) bool {
	var pairs [][2]int
	for _, k := range v.shrink {
		v.j.reps[k].leaving = max(deadline, 1)
		pairs = append(pairs, [2]int{v.j.reps[k].gang, v.j.reps[k].idx})
	}
	if k := len(c.out.Actions) - 1; k >= 0 {
		if p, ok := c.out.Actions[k].(Preempt); ok && p.Job == v.j.ID && len(p.Replicas) > 0 && p.Deadline == deadline {
			p.Replicas = append(p.Replicas, pairs...)
			c.out.Actions[k] = p
			pairs = nil
		}
	}
	if pairs != nil {
		c.emit(Preempt{Job: v.j.ID, Deadline: deadline, Reason: reason, Replicas: pairs})
	}
	c.preempting[v.j.ID] = v.j
	return deadline <= c.now
}

// preemptWait is Config.PreemptAfterSec with its default.
func (c *Core) preemptWait() int64 {
	switch w := c.cfg.PreemptAfterSec; {
	case w == 0:
		return 60
	case w < 0:
		return 0
	default:
		return w
	}
}

// reclaimScope finds the queue on j's path (its own leaf first, then its
// ancestors) that would stay within its nominal quota on j's preferred
// accelerator types if j started: quota that this queue's subtree is owed
// may be reclaimed from borrowers outside it. It returns -1 when no queue
// on the path is owed what j needs.
func (c *Core) reclaimScope(j *job) int {
	for x := j.queue; x > 0; x = c.queues.Parent(x) {
		ok := true
		for g := range j.Gangs {
			opts := c.opts(j, g)
			if opts[0] < 0 {
				continue
			}
			f := c.flavor(opts[0], j.Tier)
			if f < 0 {
				return -1
			}
			add := int64(j.Gangs[g].Min()) * j.Gangs[g].Shape.GPUMilli()
			if c.queues.Usage(x, f)+add > c.queues.Nominal(x, f) {
				ok = false
				break
			}
		}
		if ok {
			return x
		}
	}
	return -1
}

// reclaimable reports whether j, started now on the types it would try
// first (typeOrder), would hold capacity that another queue is owed: at
// some level of its path it would be above its nominal while a sibling has
// a nominal claim on the flavor. Such a job backs off after a preemption.
func (c *Core) reclaimable(j *job) bool {
	for g := range j.Gangs {
		if ti := c.typeOrder(j, g)[0]; ti >= 0 {
			if f := c.flavor(ti, j.Tier); f >= 0 && c.holdsOwed(j, g, f) {
				return true
			}
		}
	}
	return false
}

// holdsOwed reports whether gang g of j, started on flavor f, would hold
// quota another queue is owed: at some level of j's path it would be above
// its nominal while a sibling has a nominal claim on the flavor.
func (c *Core) holdsOwed(j *job, g, f int) bool {
	add := int64(j.Gangs[g].Min()) * j.Gangs[g].Shape.GPUMilli()
	for x := j.queue; x > 0; x = c.queues.Parent(x) {
		if c.queues.Usage(x, f)+add > c.queues.Nominal(x, f) && c.queues.SiblingsOwed(x, f) {
			return true
		}
	}
	return false
}

// withinNominal reports whether j would start within the nominal quota of
// its queue or of an ancestor: such jobs are admitted before borrowers.
func (c *Core) withinNominal(j *job) bool { return c.reclaimScope(j) >= 0 }

// maxMinimize bounds the victims the minimization tries to put back;
// maxVictims bounds the candidates a preemption considers.
const (
	maxMinimize = 32
	maxVictims  = 1024
)

// victims lists the candidates in the order they are tried: shrinks first,
// then whole jobs by priority (lowest first), work lost since the last
// checkpoint (least first), newest first.
func (c *Core) victims(j *job, scope int) []victim {
	out := rankVictims(c, c.eligible(j, scope))
	if len(out) > maxVictims {
		out = out[:maxVictims]
	}
	return out
}

// eligible lists the running jobs j may preempt, filtered as the pools are
// read (a pool can hold thousands of jobs, few of them eligible), in the
// pools' order: rankVictims' orders are total, so it does not matter.
// Work admitted in this very cycle is never a victim in it (that would only
// thrash), nor work on nodes of a type j does not accept (it makes no room
// for j).
func (c *Core) eligible(j *job, scope int) []*job {
	flavors := c.flavorsOf(j)
	relevant := c.relevantTypes(j)
	takesSpot := j.Tier != TierSpot
	var run []*job
	for q, pool := range c.pools {
		spot := takesSpot && pool.spot > 0
		if len(pool.list) == 0 || (q != j.queue && scope < 0 && !spot) {
			continue
		}
		var borrowed []int
		if q != j.queue && scope >= 0 {
			borrowed = c.reclaimFrom(q, scope, flavors)
		}
		if q != j.queue && borrowed == nil && !spot {
			continue // nothing in this queue may be reclaimed for j
		}
		for _, v := range pool.list {
			if v == j || v.state != jRunning || !v.Preemptible || v.started == c.now {
				continue
			}
			switch {
			case takesSpot && v.Tier == TierSpot:
				// Any other tier takes spot capacity back, in any queue
				// and whatever the priorities.
			case q == j.queue && (v.Priority >= j.Priority || !takesSpot && v.Tier != TierSpot):
				// Its own queue: lower priority only (the scope always
				// holds j's own queue, so there is no reclaim from it),
				// and spot work never takes another tier's.
				continue
			case q != j.queue && !slices.ContainsFunc(borrowed, func(f int) bool { return v.demand[f] > 0 }):
				continue
			}
			if relevant != nil && !c.touches(v, relevant) {
				continue
			}
			run = append(run, v)
		}
	}
	return run
}

// reclaimFrom lists the flavors (of those j accepts) that the work of
// queue q may be preempted for, to give scope back what it is owed: q lies
// outside scope and its subtree borrows the flavor from the pool it shares
// with scope (q's ancestor just below the two queues' common ancestor holds
// more than its nominal). Borrowing deeper inside q's own subtree takes
// nothing from scope and does not count. The flavors are the same for
// every job of the queue. Nil when nothing of q may be reclaimed.
func (c *Core) reclaimFrom(q, scope int, flavors []int) []int {
	if c.sharesAncestor(scope, q) {
		return nil
	}
	a := c.belowCommon(q, scope)
	if a <= 0 {
		return nil
	}
	var borrowed []int
	for _, f := range flavors {
		if c.queues.Borrowing(a, f) > 0 {
			borrowed = append(borrowed, f)
		}
	}
	return borrowed
}

// rankVictims orders the candidates: one shrink candidate per surplus
// replica of an elastic job (highest index first, so the minimization keeps
// every replica it can), then every job whole; spot-tier work, shrinks and
// whole jobs, comes before all other work. The orders are total (job
// sequence numbers are unique).
func rankVictims(c *Core, run []*job) []victim {
	var shrinks, whole []victim
	for _, v := range run {
		lost := c.workLost(v)
		for _, k := range c.excess(v) {
			shrinks = append(shrinks, victim{j: v, shrink: []int{k}, lost: lost})
		}
		whole = append(whole, victim{j: v, lost: lost})
	}
	slices.SortFunc(shrinks, func(x, y victim) int {
		if x.j.Priority != y.j.Priority {
			return cmp.Compare(x.j.Priority, y.j.Priority)
		}
		if x.j.seq != y.j.seq {
			return cmp.Compare(y.j.seq, x.j.seq)
		}
		return cmp.Compare(y.j.reps[y.shrink[0]].idx, x.j.reps[x.shrink[0]].idx)
	})
	slices.SortFunc(whole, func(x, y victim) int {
		if x.j.Priority != y.j.Priority {
			return cmp.Compare(x.j.Priority, y.j.Priority)
		}
		if x.lost != y.lost {
			return cmp.Compare(x.lost, y.lost)
		}
		return cmp.Compare(y.j.seq, x.j.seq)
	})
	// Spot work first: it was sold as the capacity taken back first.
	out := make([]victim, 0, len(shrinks)+len(whole))
	for _, spot := range []bool{true, false} {
		for _, list := range [][]victim{shrinks, whole} {
			for _, v := range list {
				if (v.j.Tier == TierSpot) == spot {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// focus reorders the candidates so that those inside the one place where
// j would need the cheapest victims come first: the domain of j's required
// topology level, or the node for a one-replica job. Without it the
// shortest prefix that lets j fit could take victims all over the fleet,
// most of them of no use to j.
//
// It also reports whether preemption can help at all: false when no such
// place has room enough even with every candidate gone.
func (c *Core) focus(j *job, cands []victim, res holds) ([]victim, bool) {
	g := &j.Gangs[0]
	opts := c.opts(j, 0)
	if opts[0] < 0 || g.Shape.Devices == 0 || len(cands) == 0 || len(j.Gangs) > 1 {
		return cands, true
	}
	f := focusOn{c: c, j: j, cands: cands, res: res, replicas: g.Min(), size: g.Shape.Devices}
	switch {
	case j.Topology.Required && j.Topology.Level != "":
		f.lvl, _ = c.fleet.LevelIndex(j.Topology.Level)
	case f.replicas == 1:
		f.lvl = len(c.fleet.Levels) // the node itself
	default:
		return cands, true
	}
	best := f.cheapest(opts)
	if best < 0 {
		return cands, false
	}
	inside := func(v victim) bool {
		for _, r := range v.j.reps {
			if f.where(r.node) != best {
				return false
			}
		}
		return true
	}
	out := make([]victim, 0, len(cands))
	for _, v := range cands {
		if inside(v) {
			out = append(out, v)
		}
	}
	for _, v := range cands {
		if !inside(v) {
			out = append(out, v)
		}
	}
	return out, true
}

// focusOn is one focus question: which place (domain of level lvl, or node
// when lvl is the number of levels) could hold replicas of size devices of
// job j with the cheapest victims among cands.
type focusOn struct {
	c              *Core
	j              *job
	cands          []victim
	res            holds
	lvl            int
	replicas, size int
}

func (f *focusOn) where(n int) int {
	if f.lvl == len(f.c.fleet.Levels) {
		return n
	}
	return f.c.fleet.Ancestor(n, f.lvl)
}

// placeCost is what a place's victims cost: their highest priority, the
// work they lose, their number; found is false when even every candidate
// there would not make room.
type placeCost struct {
	prio  int32
	lost  float64
	n     int
	found bool
}

// cheaper orders costs: found first, then the lowest priority, the least
// work lost, the fewest victims.
func (a placeCost) cheaper(b placeCost) bool {
	if a.found != b.found {
		return a.found
	}
	if a.prio != b.prio {
		return a.prio < b.prio
	}
	if a.lost != b.lost {
		return a.lost < b.lost
	}
	return a.n < b.n
}

// cheapest finds, over j's types and every place with candidates, the
// place whose victims cost least (ties: the job's earlier type, then the
// place of the first candidate); -1 when none has room enough.
func (f *focusOn) cheapest(opts []int) int {
	best, bestCost := -1, placeCost{}
	for _, ti := range opts {
		order, byPlace := f.places(ti)
		for _, p := range order {
			if cs := f.cost(ti, p, byPlace[p]); cs.found && cs.cheaper(bestCost) {
				best, bestCost = p, cs
			}
		}
	}
	return best
}

// places groups the candidates with whole devices of type ti by place:
// the places in the order of their first candidate, and per place the
// candidates' indices.
func (f *focusOn) places(ti int) ([]int, map[int][]int) {
	var order []int
	byPlace := map[int][]int{}
	for k, v := range f.cands {
		for _, r := range v.j.reps {
			if f.c.idx.nodeType[r.node] != ti || r.choice.Milli != place.Whole {
				continue
			}
			p := f.where(r.node)
			if _, ok := byPlace[p]; !ok {
				order = append(order, p)
			}
			if l := byPlace[p]; len(l) == 0 || l[len(l)-1] != k {
				byPlace[p] = append(l, k)
			}
		}
	}
	return order, byPlace
}

// cost takes place p's candidates (of type ti) in the candidates' order,
// cheapest first, until its nodes of the type can take the gang: what they
// can take now (the domain's fit, from the index) plus what each node gains
// as candidates on it go. A node kept for another preemptor, or held by a
// reservation j may not use, gains nothing.
func (f *focusOn) cost(ti, p int, idx []int) placeCost {
	c := f.c
	room := 0
	if f.lvl == len(c.fleet.Levels) {
		room = max(int(c.idx.whole[p]), 0) / f.size
	} else {
		room = int(c.idx.types[ti].fit(p, f.size))
	}
	freed := map[int]int{} // node -> devices freed so far
	type repOf struct {
		j *job
		r int
	}
	gone := map[repOf]bool{} // replicas counted (shrinks, then the whole job)
	cs := placeCost{prio: noneBlocked}
	for _, k := range idx {
		if room >= f.replicas {
			break
		}
		v := f.cands[k]
		gain := 0
		for ri, r := range v.j.reps {
			n := r.node
			if c.idx.nodeType[n] != ti || r.choice.Milli != place.Whole || c.idx.whole[n] < 0 || f.where(n) != p {
				continue
			}
			if v.shrink != nil && !slices.Contains(v.shrink, ri) || gone[repOf{v.j, ri}] {
				continue
			}
			gone[repOf{v.j, ri}] = true
			if c.nominated.has(n) && c.nominee[n] != f.j || f.res.blocks(f.j, c.now, n) {
				continue
			}
			free := int(c.idx.whole[n]) + freed[n]
			gain += (free+len(r.choice.Devices))/f.size - free/f.size
			freed[n] += len(r.choice.Devices)
		}
		if gain == 0 {
			continue
		}
		room += gain
		cs.prio = max(cs.prio, v.j.Priority)
		cs.lost += v.lost
		cs.n++
	}
	cs.found = room >= f.replicas
	return cs
}

// belowCommon returns the ancestor-or-self of queue q that is a child of
// the lowest common ancestor of q and scope.
func (c *Core) belowCommon(q, scope int) int {
	for a := q; a > 0; a = c.queues.Parent(a) {
		if p := c.queues.Parent(a); p == 0 || c.sharesAncestor(p, scope) {
			return a
		}
	}
	return -1
}

// sharesAncestor reports whether queue a is q or one of q's ancestors.
func (c *Core) sharesAncestor(a, q int) bool {
	for x := q; x > 0; x = c.queues.Parent(x) {
		if x == a {
			return true
		}
	}
	return false
}

// workLost is the accelerator-seconds a job would lose if stopped now.
func (c *Core) workLost(j *job) float64 {
	since := c.now - j.started
	if j.CheckpointSec > 0 {
		since %= j.CheckpointSec
	}
	var milli int64
	for _, r := range j.reps {
		milli += j.Gangs[r.gang].Shape.GPUMilli()
	}
	return float64(since) * float64(milli) / 1000
}

// A job whose preemption search found no victim set waits preemptBackoff
// seconds before it searches again, doubling up to maxPreemptBackoff.
const (
	preemptBackoff    = 30
	maxPreemptBackoff = 600
)
