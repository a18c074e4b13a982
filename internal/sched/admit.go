package sched

import (
	"container/heap"
	"fmt"
	"math/bits"
	"sort"
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
}

func (c *Core) bindAction(j *job, r replica) Action {
	return Bind{Job: j.ID, Gang: r.gang, Replica: r.idx, Node: c.fleet.Nodes[r.node].Name,
		Devices: append([]int(nil), r.choice.Devices...), Milli: r.choice.Milli, Attempt: j.attempt, Since: r.since}
}

// shapeKey identifies jobs that place identically, for the per-cycle memo
// of shapes that found no room.
func shapeKey(j *job) string {
	s := fmt.Sprintf("%s|%v|%s", j.Topology.Level, j.Topology.Required, j.Tier)
	for g := range j.Gangs {
		r := &j.Gangs[g].Shape
		s += fmt.Sprintf("|%d:%d:%d:%d:%d:%v:%v", j.Gangs[g].Min(), r.Devices, r.Milli, r.CPUMilli, r.MemoryMiB, r.Accel, j.Gangs[g].AnyType)
	}
	return s
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

func (c *Core) admit() int32 {
	h := &queueHeap{}
	push := func(turn *queueTurn, fresh bool) {
		turn.next = c.nextPending(turn)
		if turn.next.j == nil {
			return
		}
		turn.borrow = !c.withinNominal(turn.next.j)
		if fresh {
			*h = append(*h, turn)
			return
		}
		heap.Push(h, turn)
	}
	// Backfill reservations: the jobs that held one last cycle keep theirs
	// first (so a reservation does not wander between blocked jobs as
	// shares shift), then the first blocked jobs of this cycle, up to
	// maxReservations. A reservation outlives its cycle: its nodes stay
	// kept from work that would outlast it, so it stays sound until its
	// time comes; it is recomputed then, if its job still cannot start.
	var res holds
	blockedPrio := int32(-1 << 31)
	if !c.cfg.NoBackfill {
		for _, h := range c.reserved {
			j := h.job
			if j.state != jPending || len(res) == maxReservations {
				continue
			}
			if h.at > c.now {
				res = append(res, h)
				continue
			}
			if o := c.probe(j, res); o.ok() {
				c.undo(o.t)
				continue // it can start now; the loop will start it
			}
			if h := c.reserve(j, res); h != nil {
				res = append(res, h)
				j.earliest = h.at
			}
		}
	}
	c.cycle++
	// Preemptors whose victims are gone start first, before any other job
	// can take the quota or the nodes their victims gave back.
	binds := 0
	if len(c.nominee) > 0 {
		var ready []*job
		seen := map[*job]bool{}
		for _, j := range c.nominee {
			if !seen[j] && j.awaiting <= c.now {
				seen[j] = true
				ready = append(ready, j)
			}
		}
		sort.Slice(ready, func(a, b int) bool { return ready[a].seq < ready[b].seq })
		for _, j := range ready {
			if o := c.probe(j, res); o.ok() {
				c.commit(j, o)
				binds++
			}
		}
	}
	for q, p := range c.pending {
		if p.Len() > 0 {
			push(&queueTurn{q: q, share: c.queues.Share(q)}, true)
		}
	}
	heap.Init(h)
	preemptTries := 0
	preemptedIn := map[int]bool{}
	for h.Len() > 0 {
		if c.cfg.MaxBindsPerCycle > 0 && binds >= c.cfg.MaxBindsPerCycle {
			break
		}
		turn := heap.Pop(h).(*queueTurn)
		// The queue keeps its turn while its jobs fail: failing changes no
		// share, so it would be first again anyway. It yields after an
		// admission, or when its next job would borrow while another queue
		// still has a job within its nominal share.
		for p := turn.next; p.j != nil; p = turn.next {
			turn.cursor = p
			if p.after > c.now && c.reclaimable(p.j) {
				// Backing off after a preemption: a job that would hold
				// capacity another queue is owed is not put back only to
				// be reclaimed at once. One that would not need not wait.
				turn.next = c.nextPending(turn)
				continue
			}
			if p.j.never != nil {
				// Unschedulable until the fleet grows.
				turn.next = c.nextPending(turn)
				continue
			}
			pat := res.pattern(p.j, p.est, c.now)
			slot := &c.memo[p.key]
			if slot.fails(c.cycle, pat) && (len(c.nominee) == 0 || p.j.noms == nil) {
				if c.queues.Strict(turn.q) {
					c.strictReasons(turn.q, p.j)
					break
				}
				turn.next = c.nextPending(turn)
				continue
			}
			j := p.j
			j.seen = c.cycle
			j.blocked = false
			o := c.plan(j, res)
			if o.ok() {
				c.commit(j, o)
				binds++
				turn.share = c.queues.Share(turn.q)
				push(turn, false)
				break
			}
			j.status, j.earliest = o.status, -1
			if j.preemptAt > c.now && j.noms == nil {
				j.status.PreemptAt = j.preemptAt
			}
			if j.noms != nil && j.awaiting > c.now {
				j.status, j.earliest = Status{Code: AwaitingVictims, At: j.awaiting, Count: j.victims}, j.awaiting
			}
			if j.noms != nil && j.awaiting <= c.now {
				// Its victims are gone and it still cannot start: the
				// nodes kept for it go back to everyone.
				c.unnominate(j)
			}
			if o.status.capacity() {
				slot.record(c.cycle, pat, o.status)
				if j.Priority > blockedPrio {
					blockedPrio = j.Priority
				}
			}
			// Preemption: at most one attempt per queue per cycle.
			if !c.cfg.NoPreemption && preemptTries < maxPreemptionsPerCycle && !preemptedIn[turn.q] && j.awaiting <= c.now {
				preemptTries++
				var done bool
				done = c.preempt(j, res)
				switch {
				case !done && j.preemptAt > c.now:
					// It may preempt once it has waited long enough:
					// search then.
					j.status.PreemptAt = j.preemptAt
					j.awaiting = j.preemptAt
					c.wakeAt(j.awaiting, j)
				case !done:
					// Nothing preemptible would let it start: back off, so
					// a job that cannot win does not search every cycle.
					j.backoff = min(max(2*j.backoff, preemptBackoff), maxPreemptBackoff)
					j.awaiting = c.now + j.backoff
					c.wakeAt(j.awaiting, j)
				}
				if done {
					preemptedIn[turn.q] = true
					if j.state == jRunning {
						binds++
						turn.share = c.queues.Share(turn.q)
						slot.cycle = 0
					}
					push(turn, false)
					break
				}
			}
			j.blocked = o.status.capacity() || o.status.Code == OverQuota && o.status.Quota.AtRoot
			for _, h := range res {
				if h.job == j {
					j.earliest = h.at
				}
			}
			if j.blocked && len(res) < maxReservations && !res.has(j) && !c.cfg.NoBackfill {
				if h := c.reserve(j, res); h != nil {
					res = append(res, h)
					j.earliest = h.at
				}
			}
			if c.queues.Strict(turn.q) {
				c.strictReasons(turn.q, j)
				break
			}
			turn.next = c.nextPending(turn)
			if turn.next.j != nil && !turn.borrow && h.Len() > 0 && !(*h)[0].borrow && !c.withinNominal(turn.next.j) {
				push(turn, false)
				break
			}
		}
	}
	c.reserved = append(c.reserved[:0], res...)
	return blockedPrio
}

// A pattern has a bit per reservation; failed has a bit per pattern.
var _ [4 - maxReservations]struct{}
