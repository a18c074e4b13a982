package sched

import (
	"container/heap"
	"math"
	"math/bits"
	"sort"
	"strconv"
)

// commit makes a successful plan real: quota, node lists, Bind actions.
func (c *Core) commit(j *job, o outcome) {
	c.unnominate(j)
	c.pending[j.queue].Delete(pendOf(j))
	j.attempt++
	j.nextRep = make([]int, len(j.Gangs))
	for g := range j.Gangs {
		j.nextRep[g] = j.Gangs[g].Min()
	}
	j.reps = append([]replica(nil), o.t.reps...)
	for i := range j.reps {
		j.reps[i].since = c.now
	}
	j.gangType = o.types
	j.demand = o.demand
	c.queues.Add(j.queue, j.demand)
	for _, r := range j.reps {
		c.nodeJobs[r.node] = append(c.nodeJobs[r.node], j)
		c.emit(c.bindAction(j, r))
	}
	c.markRunning(j, c.now)
	if c.isElastic(j) {
		c.elastic[j.ID] = j
	}
	if c.cfg.Forecast != nil && len(j.reps) > 0 {
		if j.intensity = c.intensityAt(j.reps[0].node, j.runtime()); math.IsNaN(j.intensity) {
			j.intensity = 0
		}
	}
}

func (c *Core) bindAction(j *job, r replica) Action {
	return Bind{Job: j.ID, Gang: r.gang, Replica: r.idx, Node: c.fleet.Nodes[r.node].Name,
		Devices: append([]int(nil), r.choice.Devices...), Milli: r.choice.Milli, Attempt: j.attempt, Since: r.since}
}

// shapeKey identifies jobs that place identically, for the per-cycle memo
// of shapes that found no room.
func shapeKey(j *job) string {
	// The same text as fmt's "%s|%v|%s" and "|%d:%d:%d:%d:%d:%v:%v" per
	// gang, built without fmt: a key is made for every job submitted.
	b := make([]byte, 0, 64)
	b = append(b, j.Topology.Level...)
	b = append(b, '|')
	b = strconv.AppendBool(b, j.Topology.Required)
	b = append(b, '|')
	b = append(b, j.Tier...)
	for g := range j.Gangs {
		r := &j.Gangs[g].Shape
		b = append(b, '|')
		b = strconv.AppendInt(b, int64(j.Gangs[g].Min()), 10)
		for _, v := range [...]int64{int64(r.Devices), int64(r.Milli), r.CPUMilli, r.MemoryMiB} {
			b = append(b, ':')
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ":["...)
		for i, a := range r.Accel {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, a...)
		}
		b = append(b, "]:"...)
		b = strconv.AppendBool(b, j.Gangs[g].AnyType)
	}
	return string(b)
}

// strictReasons marks the jobs behind a blocked head of a strict queue.
func (c *Core) strictReasons(q int, head *job) {
	c.pending[q].AscendGreaterOrEqual(pendOf(head), func(p pend) bool {
		if j := p.j; j != head {
			j.seen = c.cycle
			j.status = Status{Code: StrictHead, Holder: head.ID, Detail: c.queues.Name(q)}
		}
		return true
	})
}

// nextPending returns the job after the queue's cursor, reading the queue
// in batches so that a long run of blocked jobs costs little each. Only the
// job being tried leaves the queue during a cycle, and it is never in the
// batch, so a batch stays valid.
func (c *Core) nextPending(turn *queueTurn) pend {
	if len(turn.buf) == 0 {
		p := c.pending[turn.q]
		// Batches start small (most queues admit a job or two a cycle) and
		// double while the queue keeps being read.
		turn.batch = min(max(4, 2*turn.batch), 256)
		collect := func(x pend) bool {
			if x.j != turn.cursor.j {
				turn.buf = append(turn.buf, x)
			}
			return len(turn.buf) < turn.batch
		}
		if turn.cursor.j == nil {
			p.Ascend(collect)
		} else {
			p.AscendGreaterOrEqual(turn.cursor, collect)
		}
		if len(turn.buf) == 0 {
			return pend{}
		}
	}
	x := turn.buf[0]
	turn.buf = turn.buf[1:]
	return x
}

// memoSlot remembers a shape's failures for want of room in one cycle,
// by the reservations that kept the failing job out (holds.pattern). A job
// kept out by those reservations and more sees no more nodes, so it fails
// too and is not tried again: jobs of one shape differ in their runtime
// estimates, so they are kept out by different sets of reservations, and
// remembering only equal sets tried nearly every blocked training gang of
// a long backlog in every cycle.
type memoSlot struct {
	cycle  uint64
	failed uint16 // bit p: failed when kept out by the reservations of pattern p
	status Status // the last failure
}

// fails reports whether the shape failed this cycle when kept out by a
// subset of the reservations of pat.
func (s *memoSlot) fails(cycle uint64, pat uint8) bool {
	if s.cycle != cycle {
		return false
	}
	for f := s.failed; f != 0; f &= f - 1 {
		if p := uint8(bits.TrailingZeros16(f)); p&^pat == 0 {
			return true
		}
	}
	return false
}

func (s *memoSlot) record(cycle uint64, pat uint8, st Status) {
	if s.cycle != cycle {
		s.cycle, s.failed = cycle, 0
	}
	s.failed |= 1 << pat
	s.status = st
}

// queueHeap orders queues for one cycle by weighted dominant share.
type queueTurn struct {
	q      int
	share  float64
	cursor pend
	// borrow is set when the queue's next job would take it above its
	// nominal quota: queues within their guaranteed share go first, so
	// borrowed quota is not handed out only to be reclaimed at once.
	borrow bool
	next   pend // next.j is nil when the queue has no more
	buf    []pend
	batch  int
}

type queueHeap []*queueTurn

func (h queueHeap) Len() int { return len(h) }

func (h queueHeap) Less(a, b int) bool {
	if h[a].borrow != h[b].borrow {
		return !h[a].borrow
	}
	if h[a].share != h[b].share {
		return h[a].share < h[b].share
	}
	return h[a].q < h[b].q
}

func (h queueHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }

func (h *queueHeap) Push(x any) { *h = append(*h, x.(*queueTurn)) }

func (h *queueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

const maxPreemptionsPerCycle = 4

// noneBlocked is the blocked priority of a cycle in which no job failed
// for want of capacity.
const noneBlocked = int32(-1 << 31)

// admission is the state of one admission pass: the queue turns, the
// backfill reservations of the cycle and what the pass has done so far.
type admission struct {
	c            *Core
	turns        queueHeap
	res          holds
	binds        int
	preemptTries int
	preemptedIn  map[int]bool
	// blockedPrio is the highest priority of a job that failed for want
	// of capacity (noneBlocked when none did): elastic growth waits for
	// such jobs.
	blockedPrio int32
	// wanted marks the catalog types jobs failed for want of (all of
	// them: wantedAll): capacity held for a carbon window on them starts
	// now instead of idling (see carbon.go).
	wanted    []bool
	wantedAll bool
}

// verdict is how one job's attempt leaves its queue's turn.
type verdict uint8

const (
	// passedOver: the job was not tried (backing off, unschedulable, or
	// its shape already found no room this cycle); the next is.
	passedOver verdict = iota
	// failed: the job was tried and cannot start; the next is tried
	// unless the queue yields.
	failed
	// turnOver: the queue's turn is over (a job started or preempted, or
	// a strict queue's head is blocked).
	turnOver
)

// admit is phase 2 of the cycle. Its steps:
//
//  1. reservations: the jobs that held a backfill reservation last cycle
//     keep theirs first, so a reservation does not wander between blocked
//     jobs as shares shift;
//  2. preemptors: jobs whose victims are gone start before any other job
//     can take the quota or the nodes their victims gave back;
//  3. turns: queues take turns by weighted dominant share until none has
//     a job left to try. It returns the blocked priority (see admission).
func (c *Core) admit() int32 {
	a := &admission{c: c, preemptedIn: map[int]bool{}, blockedPrio: noneBlocked}
	a.keepReservations()
	c.cycle++
	a.startPreemptors()
	a.takeTurns()
	c.reserved = append(c.reserved[:0], a.res...)
	if len(c.deferred) > 0 && (a.wanted != nil || a.wantedAll) {
		c.startHeld(a.wanted, a.wantedAll)
	}
	return a.blockedPrio
}

// keepReservations carries last cycle's reservations over, up to
// maxReservations. A reservation outlives its cycle: its nodes stay kept
// from work that would outlast it, so it stays sound until its time comes;
// it is recomputed then, if its job still cannot start.
func (a *admission) keepReservations() {
	c := a.c
	if c.cfg.NoBackfill {
		return
	}
	for _, h := range c.reserved {
		j := h.job
		if j.state != jPending || len(a.res) == maxReservations || c.isPaused(j.queue) {
			continue
		}
		if h.at > c.now {
			a.res = append(a.res, h)
			continue
		}
		if o := c.probe(j, a.res); o.ok() {
			c.undo(o.t, 0)
			continue // it can start now; the turns will start it
		}
		if h := c.reserve(j, a.res); h != nil {
			a.res = append(a.res, h)
			j.earliest = h.at
		}
	}
}

// startPreemptors starts the jobs whose victims have left, in submission
// order.
func (a *admission) startPreemptors() {
	c := a.c
	if len(c.nominee) == 0 {
		return
	}
	var ready []*job
	seen := map[*job]bool{}
	for _, j := range c.nominee {
		if !seen[j] && j.awaiting <= c.now && !c.isPaused(j.queue) {
			seen[j] = true
			ready = append(ready, j)
		}
	}
	sort.Slice(ready, func(x, y int) bool { return ready[x].seq < ready[y].seq })
	for _, j := range ready {
		if o := c.probe(j, a.res); o.ok() {
			c.commit(j, o)
			a.binds++
		}
	}
}

// push puts a queue (back) in line with its next job, if it has one.
func (a *admission) push(turn *queueTurn, fresh bool) {
	turn.next = a.c.nextPending(turn)
	if turn.next.j == nil {
		return
	}
	turn.borrow = !a.c.withinNominal(turn.next.j)
	if fresh {
		a.turns = append(a.turns, turn)
		return
	}
	heap.Push(&a.turns, turn)
}

// takeTurns runs the queues' turns. A queue keeps its turn while its jobs
// fail: failing changes no share, so it would be first again anyway. It
// yields after an admission, or when its next job would borrow while
// another queue still has a job within its nominal share.
func (a *admission) takeTurns() {
	c := a.c
	for q, p := range c.pending {
		if p.Len() > 0 && !c.isPaused(q) {
			a.push(&queueTurn{q: q, share: c.queues.Share(q)}, true)
		}
	}
	heap.Init(&a.turns)
	for a.turns.Len() > 0 {
		if c.cfg.MaxBindsPerCycle > 0 && a.binds >= c.cfg.MaxBindsPerCycle {
			return
		}
		turn := heap.Pop(&a.turns).(*queueTurn)
		for p := turn.next; p.j != nil; p = turn.next {
			turn.cursor = p
			v := a.attempt(turn, p)
			if v == turnOver {
				break
			}
			turn.next = c.nextPending(turn)
			if v == failed && a.yields(turn) {
				a.push(turn, false)
				break
			}
		}
	}
}

// yields reports whether a queue whose job just failed gives its turn up:
// its next job would borrow while the queue first in line has a job
// within its nominal share.
func (a *admission) yields(turn *queueTurn) bool {
	return turn.next.j != nil && !turn.borrow && a.turns.Len() > 0 && !a.turns[0].borrow && !a.c.withinNominal(turn.next.j)
}

// attempt tries one pending job of a queue's turn.
func (a *admission) attempt(turn *queueTurn, p pend) verdict {
	c := a.c
	j := p.j
	if p.after > c.now && c.reclaimable(j) {
		// Backing off after a preemption: a job that would hold capacity
		// another queue is owed is not put back only to be reclaimed at
		// once. One that would not need not wait.
		return passedOver
	}
	// The pend's copies, not the job's fields: skipping must not touch the
	// job (a cache miss for every pending job a cycle reads).
	if p.never {
		return passedOver // unschedulable until the fleet grows
	}
	if p.notBefore > c.now {
		// Its window has not opened; the core wakes when it does.
		j.seen = c.cycle
		j.status = Status{Code: Deferred, Shift: ShiftWindow, At: j.NotBefore, Until: j.Deadline}
		return passedOver
	}
	pat := a.res.pattern(j, p.est, c.now)
	slot := &c.memo[p.key]
	if slot.fails(c.cycle, pat) && (len(c.nominee) == 0 || j.noms == nil) {
		// A job of this shape, kept out by no more reservations, found no
		// room in this cycle.
		if c.queues.Strict(turn.q) {
			c.strictReasons(turn.q, j)
			return turnOver
		}
		return passedOver
	}
	j.seen = c.cycle
	j.blocked = false
	o := c.plan(j, a.res)
	if o.ok() && c.shiftable(j) {
		var done bool
		if o, done = c.shift(j, o, a.res); done {
			a.binds++
			turn.share = c.queues.Share(turn.q)
			a.push(turn, false)
			return turnOver
		}
	}
	if o.ok() {
		c.commit(j, o)
		a.binds++
		turn.share = c.queues.Share(turn.q)
		a.push(turn, false)
		return turnOver
	}
	a.failed(j, o, slot, pat)
	if a.mayPreempt(turn, j) && a.preempt(turn, j, slot) {
		return turnOver
	}
	a.backfill(j, o)
	if c.queues.Strict(turn.q) {
		c.strictReasons(turn.q, j)
		return turnOver
	}
	return failed
}

// failed records why j could not start: its status, the memo of its
// shape, the cycle's blocked priority; and gives back the nodes kept for
// it when its victims are gone and it still cannot start.
func (a *admission) failed(j *job, o outcome, slot *memoSlot, pat uint8) {
	c := a.c
	j.status, j.earliest = o.status, -1
	if j.preemptAt > c.now && j.noms == nil {
		j.status.PreemptAt = j.preemptAt
	}
	if j.noms != nil && j.awaiting > c.now {
		j.status, j.earliest = Status{Code: AwaitingVictims, At: j.awaiting, Count: j.victims}, j.awaiting
	}
	if j.noms != nil && j.awaiting <= c.now {
		c.unnominate(j)
	}
	if o.status.capacity() {
		slot.record(c.cycle, pat, o.status)
		a.blockedPrio = max(a.blockedPrio, j.Priority)
		if len(c.deferred) > 0 && !c.canWait(j) {
			a.want(j)
		}
	}
}

// want marks the types j failed for want of.
func (a *admission) want(j *job) {
	types := a.c.relevantTypes(j)
	if types == nil {
		a.wantedAll = true
		return
	}
	if a.wanted == nil {
		a.wanted = make([]bool, len(types))
	}
	for t, ok := range types {
		a.wanted[t] = a.wanted[t] || ok
	}
}

// mayPreempt reports whether j may search for victims now: at most one
// search per queue and maxPreemptionsPerCycle in all per cycle, and none
// while its own victims are still leaving.
func (a *admission) mayPreempt(turn *queueTurn, j *job) bool {
	return !a.c.cfg.NoPreemption && a.preemptTries < maxPreemptionsPerCycle && !a.preemptedIn[turn.q] && j.awaiting <= a.c.now
}

// preempt runs j's preemption search and reports whether it acted (the
// queue's turn is then over). A search that could not act backs j off: it
// waits out Config.PreemptAfterSec, or, when nothing preemptible would let
// it start, searches again only after an exponential back-off.
func (a *admission) preempt(turn *queueTurn, j *job, slot *memoSlot) bool {
	c := a.c
	a.preemptTries++
	if c.preempt(j, a.res) {
		a.preemptedIn[turn.q] = true
		if j.state == jRunning {
			a.binds++
			turn.share = c.queues.Share(turn.q)
			slot.cycle = 0
		}
		a.push(turn, false)
		return true
	}
	if j.preemptAt > c.now {
		// It may preempt once it has waited long enough: search then.
		j.status.PreemptAt = j.preemptAt
		j.awaiting = j.preemptAt
	} else {
		j.backoff = min(max(2*j.backoff, preemptBackoff), maxPreemptBackoff)
		j.awaiting = c.now + j.backoff
	}
	c.wakeAt(j.awaiting, j)
	return false
}

// backfill gives a job blocked by capacity (or by the fleet's whole quota
// pool) its earliest start and, while fewer than maxReservations are held,
// a reservation that later jobs may not delay.
func (a *admission) backfill(j *job, o outcome) {
	c := a.c
	j.blocked = o.status.capacity() || o.status.Code == OverQuota && o.status.Quota.AtRoot
	for _, h := range a.res {
		if h.job == j {
			j.earliest = h.at
		}
	}
	if j.blocked && len(a.res) < maxReservations && !a.res.has(j) && !c.cfg.NoBackfill {
		if h := c.reserve(j, a.res); h != nil {
			a.res = append(a.res, h)
			j.earliest = h.at
		}
	}
}

// A pattern has a bit per reservation; failed has a bit per pattern.
var _ [4 - maxReservations]struct{}
