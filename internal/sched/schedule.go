package sched

import (
	"container/heap"
	"slices"
	"sort"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// Schedule runs one cycle at time now and returns what it decided: the
// actions in the order they were decided and the usage records of the
// holdings that ended (preemption notices run out, shrinks done). The
// phases:
//
//  1. expire: preemption notices that have run out free their resources,
//     and the victims are requeued;
//  2. admit: queues take turns by weighted dominant-resource share (lowest
//     first); within a queue, priority then FIFO; a job that cannot start
//     does not block smaller ones behind it unless its queue is strict.
//     A job that fails may preempt (reclaim borrowed quota, or lower
//     priority work of its own queue); the first job that fails for want of
//     capacity gets a backfill reservation that later jobs may not delay;
//  3. grow: elastic jobs take free capacity no waiting job could use.
func (c *Core) Schedule(now int64) Ready {
	if now > c.now {
		c.now = now
	}
	c.out = Ready{}
	c.expire()
	c.reproject()
	c.grow(c.admit())
	out := c.out
	c.out = Ready{}
	return out
}

// expire ends preemption notices whose deadline has passed.
func (c *Core) expire() {
	var due []*job
	for _, j := range c.preempting {
		due = append(due, j)
	}
	sort.Slice(due, func(a, b int) bool { return due[a].seq < due[b].seq })
	for _, j := range due {
		if j.state == jPreempting && j.deadline <= c.now {
			delete(c.preempting, j.ID)
			c.release(j, EndPreempted)
			if c.requeuePreempted(j, j.status.Detail) {
				c.emit(Requeue{Job: j.ID, Reason: "preempted: notice period over"})
			}
			continue
		}
		if j.state != jPreempting {
			// A shrink in progress.
			if c.dropLeaving(j) {
				delete(c.preempting, j.ID)
			}
		}
	}
}

// reproject moves the projected end of every job that has outrun its
// runtime estimate: such a job is expected to run twice as long as the
// projection it outran (so started + estimate × 2^k, the first such time
// still ahead), and never past its hard limit (MaxSec) while that is
// ahead. Without it an overrun job's end would stay in the past, and a
// reservation waiting on it would be recomputed every cycle only to land
// on "now" again.
func (c *Core) reproject() {
	var late []*job
	c.ends.Ascend(func(k endKey) bool {
		if k.end > c.now {
			return false
		}
		if k.j.state == jRunning {
			late = append(late, k.j)
		}
		return true
	})
	for _, j := range late {
		end := j.endAt
		for end <= c.now && end > j.started {
			end = j.started + 2*(end-j.started)
		}
		if limit := j.started + j.MaxSec; j.MaxSec > 0 && limit > c.now {
			// At its hard limit the driver stops it. A job still running
			// past its limit (a driver that does not enforce limits) goes
			// on doubling.
			end = min(end, limit)
		}
		if end > c.now {
			c.setEnd(j, end)
		}
	}
}

// dropLeaving releases replicas whose shrink deadline passed; it reports
// whether no shrink is left in progress.
func (c *Core) dropLeaving(j *job) bool {
	left := false
	kept := j.reps[:0]
	freed := quota.Demand{}
	for _, r := range j.reps {
		if r.leaving > 0 && r.leaving <= c.now {
			c.releaseReplica(j, &r, EndShrunk)
			if rd, ok := c.replicaDemand(j, &r); ok {
				for f, v := range rd {
					freed[f] -= v
				}
			}
			continue
		}
		if r.leaving > 0 {
			left = true
		}
		kept = append(kept, r)
	}
	if len(kept) < len(j.reps) {
		c.elastic[j.ID] = j // it may grow back later
	}
	j.reps = kept
	if j.queue > 0 {
		c.queues.Add(j.queue, freed)
		c.tighten()
		for f, v := range freed {
			j.demand[f] += v
		}
	}
	return !left
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
func (h *queueHeap) Push(x any)   { *h = append(*h, x.(*queueTurn)) }
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

// maxReservations bounds the backfill reservations of one cycle.
const maxReservations = 4

// A job whose preemption search found no victim set waits preemptBackoff
// seconds before it searches again, doubling up to maxPreemptBackoff.
const (
	preemptBackoff    = 30
	maxPreemptBackoff = 600
)

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

// reserve finds the earliest time job j could start if running jobs end
// when their estimates say, and the nodes it would take then. Running jobs
// are lifted in order of their projected end; whether j fits is checked
// after 1, 2, 4, ... of them, then the boundary is found by bisection, so a
// reservation costs O(log n) placement probes. It changes nothing.
func (c *Core) reserve(j *job, others holds) *hold {
	if c.ends.Len() == 0 {
		return nil
	}
	const maxEnds = 4096
	// Only jobs on nodes of a type j accepts can make room for it.
	relevant := c.relevantTypes(j)
	var order []endKey
	var cursor endKey
	started, exhausted := false, false
	// more reads the relevant projected ends lazily, in order, up to n.
	more := func(n int) {
		if len(order) >= n || exhausted {
			return
		}
		collect := func(k endKey) bool {
			if started && !endLess(cursor, k) {
				return true
			}
			cursor, started = k, true
			if relevant == nil || c.touches(k.j, relevant) {
				order = append(order, k)
			}
			return len(order) < n
		}
		if !started {
			c.ends.Ascend(collect)
		} else {
			c.ends.AscendGreaterOrEqual(cursor, collect)
		}
		// The walk stops early only once it has n; fewer means the end.
		exhausted = len(order) < n
	}
	var lifted []*saved
	liftTo := func(n int) {
		more(n)
		for len(lifted) < n {
			lifted = append(lifted, c.lift(order[len(lifted)].j))
		}
		for len(lifted) > n {
			c.reinstate(lifted[len(lifted)-1])
			lifted = lifted[:len(lifted)-1]
		}
	}
	fits := func(n int) bool {
		liftTo(n)
		o := c.probe(j, others)
		if o.ok() {
			c.undo(o.t)
			return true
		}
		return false
	}
	lo, hi := 0, 0 // fits(lo) is false; fits(hi) is true once found
	for step := 1; ; step *= 2 {
		more(min(step, maxEnds))
		n := min(step, len(order), maxEnds)
		if n == 0 {
			return nil
		}
		if fits(n) {
			hi = n
			break
		}
		lo = n
		if n < step || n == maxEnds {
			liftTo(0)
			return nil
		}
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	liftTo(hi)
	o := c.probe(j, others)
	var res *hold
	if o.ok() {
		res = &hold{job: j, at: max(order[hi-1].end, c.now)}
		for _, r := range o.t.reps {
			res.nodes.set(r.node)
		}
		c.undo(o.t)
	}
	liftTo(0)
	return res
}

// relevantTypes marks the catalog types any gang of j accepts; nil when
// j has a CPU-only gang (then every node matters).
func (c *Core) relevantTypes(j *job) []bool {
	out := make([]bool, len(c.idx.types))
	for g := range j.Gangs {
		for _, ti := range c.opts(j, g) {
			if ti < 0 {
				return nil
			}
			out[ti] = true
		}
	}
	return out
}

// touches reports whether job v holds a replica on a node of a marked type.
func (c *Core) touches(v *job, types []bool) bool {
	for _, r := range v.reps {
		if ti := c.idx.nodeType[r.node]; ti >= 0 && types[ti] {
			return true
		}
	}
	return false
}

// earliestStart is the backfill prediction for one pending job, computed on
// demand. It leaves the core exactly as it found it.
func (c *Core) earliestStart(j *job) int64 {
	state, _ := c.pcg.MarshalBinary()
	defer func() { _ = c.pcg.UnmarshalBinary(state) }()
	o := c.probe(j, nil)
	if o.ok() {
		c.undo(o.t)
		return c.now
	}
	if r := c.reserve(j, nil); r != nil {
		return r.at
	}
	return -1
}

// saved is a placed job lifted out of the index and the quota tree for a
// what-if probe, with what is needed to put it back exactly.
type saved struct {
	j    *job
	reps []replica
	only []int // indices into reps lifted, when only some replicas are
}

// lift takes a placed job's resources out, keeping its record.
func (c *Core) lift(j *job) *saved {
	s := &saved{j: j, reps: j.reps}
	for i := range j.reps {
		c.idx.take(j.reps[i].node, &j.Gangs[j.reps[i].gang].Shape, j.reps[i].choice, -1)
	}
	if j.demand != nil {
		neg := quota.Demand{}
		for f, v := range j.demand {
			neg[f] = -v
		}
		c.queues.Add(j.queue, neg)
	}
	return s
}

func (c *Core) reinstate(s *saved) {
	j := s.j
	if s.only != nil {
		for _, k := range s.only {
			r := s.reps[k]
			c.idx.take(r.node, &j.Gangs[r.gang].Shape, r.choice, +1)
		}
		c.addReplicas(j, s.reps, s.only, +1)
		return
	}
	for i := range s.reps {
		c.idx.take(s.reps[i].node, &j.Gangs[s.reps[i].gang].Shape, s.reps[i].choice, +1)
	}
	if j.demand != nil {
		c.queues.Add(j.queue, j.demand)
	}
}

// replicaDemand is what one replica of j holds of the queue tree: the
// flavor index and milli-accelerators (nothing for CPU-only gangs).
func (c *Core) replicaDemand(j *job, r *replica) (quota.Demand, bool) {
	ti := j.gangType[r.gang]
	if ti < 0 {
		return nil, false
	}
	return quota.Demand{c.flavor(ti, j.Tier): j.Gangs[r.gang].Shape.GPUMilli()}, true
}

// addReplicas adds (sign +1) or removes (-1) the quota the listed replicas
// hold.
func (c *Core) addReplicas(j *job, reps []replica, idx []int, sign int64) {
	d := quota.Demand{}
	for _, k := range idx {
		if rd, ok := c.replicaDemand(j, &reps[k]); ok {
			for f, v := range rd {
				d[f] += sign * v
			}
		}
	}
	c.queues.Add(j.queue, d)
}

// flavorKey names a quota flavor by catalog type and tier.
type flavorKey struct {
	ti   int
	tier string
}

// flavor is the queue tree's index of the flavor of catalog type ti in a
// tier, -1 when no queue has quota for it; cached until the tree changes.
func (c *Core) flavor(ti int, tier string) int {
	k := flavorKey{ti, tier}
	if f, ok := c.flavors[k]; ok {
		return f
	}
	f := c.queues.FlavorIndex(c.flavorName(ti, tier))
	if c.flavors == nil {
		c.flavors = map[flavorKey]int{}
	}
	c.flavors[k] = f
	return f
}

// flavorName is the name of the flavor of catalog type ti in a tier.
func (c *Core) flavorName(ti int, tier string) string {
	return quota.Flavor(c.fleet.Catalog.Types[ti].Name, tier)
}

// flavorsOf lists the flavors of every type j's gangs accept, in index
// order, without those no queue has quota for.
func (c *Core) flavorsOf(j *job) []int {
	var out []int
	for g := range j.Gangs {
		for _, ti := range c.opts(j, g) {
			if ti < 0 {
				continue
			}
			if f := c.flavor(ti, j.Tier); f >= 0 && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out
}
