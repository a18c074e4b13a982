package sched

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// jobSet is a set of jobs kept in a slice, for cheap iteration; each job
// is in at most one set (its poolAt is its index there, -1 when in none).
// Its order depends on history: readers that need an order sort.
// jobSet is an unordered set of jobs (a job is in at most one) that counts
// its spot-tier members.
type jobSet struct {
	list []*job
	spot int
}

func (s *jobSet) add(j *job) {
	if j.poolAt >= 0 {
		return
	}
	j.poolAt = len(s.list)
	s.list = append(s.list, j)
	if j.Tier == TierSpot {
		s.spot++
	}
}

func (s *jobSet) remove(j *job) {
	i := j.poolAt
	if i < 0 || i >= len(s.list) || s.list[i] != j {
		return
	}
	last := s.list[len(s.list)-1]
	s.list[i], last.poolAt = last, i
	s.list[len(s.list)-1] = nil
	s.list = s.list[:len(s.list)-1]
	j.poolAt = -1
	if j.Tier == TierSpot {
		s.spot--
	}
}

// job is the core's record of one job.
type job struct {
	Job
	seq uint64
	// attempt counts the job's starts; nextRep is, per gang, the replica
	// index the next replica bound will get (indices are never reused
	// within an attempt, so a grown replica is never taken for one that
	// was given back).
	// stopped marks a job told to stop by a pause of admission.
	stopped   bool
	attempt   int
	nextRep   []int
	queue     int
	state     jobState
	submitted int64
	started   int64
	reps      []replica
	gangType  []int // catalog index chosen per gang while placed; -1 CPU-only
	demand    quota.Demand
	deadline  int64 // end of the preemption notice
	endAt     int64 // key of the job in Core.ends, 0 when absent
	// status is why the job waits (or stops), as the last cycle that
	// tried it saw it; victims counts the jobs preempted for it.
	status   Status
	victims  int
	earliest int64
	// awaiting is when the victims preempted for this job leave; while it
	// lies in the future the job does not preempt again.
	awaiting int64
	backoff  int64 // the current preemption back-off, seconds
	// evictions counts the times the job was preempted; after is when it
	// may start again (an exponential back-off, so a job that borrows is
	// not put back only to be reclaimed again at once).
	evictions int
	after     int64
	// blocked is set while the job waits for capacity (or for the fleet's
	// whole quota pool), when a backfill prediction means something.
	blocked   bool
	seen      uint64 // the last cycle that tried this job itself
	optsCache [][]int
	optsVer   int
	// keyID groups jobs that place identically (see shapeKey).
	keyID int
	// noms are the nodes this job's preemptions are freeing for it: no
	// other job may take them while it waits.
	noms []int
	// never is set for jobs the fleet could never hold as it is.
	never *Status
	// poolAt is the job's index in its queue's pool, -1 when in none.
	poolAt int
	// pendingSince is when the job last became pending; preemptAt, when
	// set, is when it may first preempt (PreemptAfterSec).
	pendingSince, preemptAt int64
	// plan is a shifted job's carbon plan; dueAt the time of its entry in
	// Core.due (0: none); toHold marks a job being suspended that keeps
	// its capacity; intensity is the forecast intensity its start used.
	plan      *shiftPlan
	dueAt     int64
	toHold    bool
	intensity float64
}

func (j *job) finishesBy() int64 {
	if j.EstimatedSec <= 0 {
		return 0
	}
	return j.started + j.EstimatedSec
}

// pend is a pending job as its queue holds it: what ordering and the
// per-cycle memo need sit inline, so skipping a job whose shape already
// found no room in this cycle does not touch the job itself.
type pend struct {
	prio      int32
	key       int32
	seq       uint64
	est       int64
	after     int64 // not before this time (back-off after preemption)
	notBefore int64 // Job.NotBefore
	never     bool  // job.never is set (fleetGrew keeps it in step)
	j         *job
}

func pendOf(j *job) pend {
	return pend{prio: j.Priority, key: int32(j.keyID), seq: j.seq, est: j.EstimatedSec, after: j.after,
		notBefore: j.NotBefore, never: j.never != nil, j: j}
}

func pendingLess(a, b pend) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	return a.seq < b.seq
}

type endKey struct {
	end int64
	seq uint64
	j   *job
}

func endLess(a, b endKey) bool {
	if a.end != b.end {
		return a.end < b.end
	}
	return a.seq < b.seq
}

// replica is one placed replica of a running job.
type replica struct {
	gang, idx int
	node      int
	choice    place.Choice
	// leaving is the deadline of a shrink in progress; 0 otherwise.
	leaving int64
	// since is when the replica was bound.
	since int64
}

// newJob checks a job and makes its record. A running job being restored
// may name a queue that was removed while it ran: it runs on, charged to no
// queue, as it did before the restart (restoring set).
func (c *Core) newJob(spec Job, restoring bool) (*job, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("job %q: %w", spec.ID, err)
	}
	if _, dup := c.jobs[spec.ID]; dup {
		return nil, fmt.Errorf("job %q: already known", spec.ID)
	}
	q := c.queues.Queue(spec.Queue)
	switch {
	case (q < 0 || !c.queues.IsLeaf(q)) && restoring:
		q = 0
	case q < 0 || !c.queues.IsLeaf(q):
		return nil, fmt.Errorf("job %q: queue %q is not a leaf queue of the tree", spec.ID, spec.Queue)
	}
	if spec.Tenant != "" && q > 0 && c.queues.Tenant(q) != spec.Tenant {
		return nil, fmt.Errorf("job %q: queue %q belongs to tenant %q, not %q", spec.ID, spec.Queue, c.queues.Tenant(q), spec.Tenant)
	}
	spec.Gangs = append([]Gang(nil), spec.Gangs...)
	if spec.Tier == TierSpot {
		spec.Preemptible = true // spot capacity may always be taken back
	}
	c.seq++
	j := &job{Job: spec, seq: c.seq, queue: q, submitted: c.now, earliest: -1, poolAt: -1}
	if spec.Topology.Level != "" && !contains(c.fleet.Levels, spec.Topology.Level) {
		return nil, fmt.Errorf("job %q: topology level %q: want one of %s", spec.ID, spec.Topology.Level, strings.Join(c.fleet.Levels, ", "))
	}
	key := shapeKey(j)
	id, ok := c.keyIDs[key]
	if !ok {
		id = len(c.memo)
		c.keyIDs[key] = id
		c.memo = append(c.memo, memoSlot{})
	}
	j.keyID = id
	j.never = c.impossible(j)
	return j, nil
}

func (c *Core) submit(spec Job) error {
	j, err := c.newJob(spec, false)
	if err != nil {
		return err
	}
	c.jobs[j.ID] = j
	c.observe(j)
	if j.never != nil && !j.WaitForCapacity {
		j.state = jDone
		j.status = *j.never
		c.emit(Reject{Job: j.ID, Reason: j.never.Reason()})
		delete(c.jobs, j.ID)
		return nil
	}
	c.enqueue(j)
	if j.never != nil {
		c.waitingForFleet = append(c.waitingForFleet, j)
	}
	return nil
}

// enqueue makes j pending. A job whose queue was removed while it ran has
// nowhere to wait: it is rejected, and enqueue reports false.
func (c *Core) enqueue(j *job) bool {
	if j.queue == 0 {
		c.unnominate(j)
		j.state = jDone
		delete(c.jobs, j.ID)
		c.emit(Reject{Job: j.ID, Reason: fmt.Sprintf("queue %q was removed while the job ran; it cannot wait for another start", j.Queue)})
		return false
	}
	j.state = jPending
	j.pendingSince, j.preemptAt = c.now, 0
	j.reps = nil
	j.gangType = nil
	j.demand = nil
	c.pending[j.queue].ReplaceOrInsert(pendOf(j))
	if j.NotBefore > c.now {
		c.wakeAt(j.NotBefore, j)
	}
	return true
}

// requeuePreempted puts a preempted job back to pending with its back-off;
// it reports false when the job was rejected instead (see enqueue).
func (c *Core) requeuePreempted(j *job, reason string) bool {
	j.evictions++
	base := c.cfg.RequeueBackoffSec
	if base == 0 {
		base = 60
	}
	if base > 0 {
		wait := min(base<<min(j.evictions-1, 16), max(base, 3600))
		j.after = c.now + wait
		c.wakeAt(j.after, j)
	}
	j.status = Status{Code: Requeued, Detail: reason}
	if base > 0 {
		j.status.Count, j.status.At = j.evictions, j.after
	}
	return c.enqueue(j)
}

// release frees everything a placed job holds and forgets its placement;
// why ends its replicas' usage.
func (c *Core) release(j *job, why EndReason) {
	if j.state != jRunning && j.state != jPreempting && j.state != jHeld {
		return
	}
	held := j.state == jHeld
	for i := range j.reps {
		c.releaseReplica(j, &j.reps[i], why, !held)
	}
	c.unshift(j)
	if j.demand != nil {
		neg := quota.Demand{}
		for f, v := range j.demand {
			neg[f] = -v
		}
		c.queues.Add(j.queue, neg)
		c.tighten()
	}
	delete(c.running, j.ID)
	c.pools[j.queue].remove(j)
	delete(c.preempting, j.ID)
	if j.endAt > 0 {
		c.ends.Delete(endKey{end: j.endAt, seq: j.seq, j: j})
		j.endAt = 0
	}
	j.reps, j.demand, j.gangType = nil, nil, nil
	j.state = jPending
}

func (c *Core) releaseReplica(j *job, r *replica, why EndReason, bound bool) {
	c.idx.take(r.node, &j.Gangs[r.gang].Shape, r.choice, -1)
	c.dropNodeJob(j, r.node)
	if !bound {
		return // held for a later run: nothing was used
	}
	// A replica told to stop by a deadline is charged until it stops or
	// the deadline passes, whichever comes first, even when the cycle
	// that frees it runs later.
	to := c.now
	switch {
	case why == EndShrunk && r.leaving > 0:
		to = min(to, r.leaving)
	case why == EndPreempted && j.state == jPreempting:
		to = min(to, j.deadline)
	}
	c.out.Usage = append(c.out.Usage, c.usage(j, r, max(to, r.since), why))
}

// dropNodeJob takes one entry of j off node n's list.
func (c *Core) dropNodeJob(j *job, n int) {
	js := c.nodeJobs[n]
	for k, x := range js {
		if x == j {
			c.nodeJobs[n] = append(js[:k:k], js[k+1:]...)
			break
		}
	}
}

// nominate keeps nodes for preemptor j until it starts or gives up.
func (c *Core) nominate(j *job, nodes []int) {
	for _, n := range nodes {
		if p := c.nominee[n]; p != nil && p != j {
			continue // the first preemptor keeps it
		}
		c.nominee[n] = j
		c.nominated.set(n)
		j.noms = append(j.noms, n)
	}
}

// unnominate releases the nodes kept for j.
func (c *Core) unnominate(j *job) {
	for _, n := range j.noms {
		if c.nominee[n] == j {
			delete(c.nominee, n)
			c.nominated.clear(n)
		}
	}
	j.noms = nil
}

// retire ends a job for good, whatever its state.
func (c *Core) retire(j *job, why EndReason) {
	c.unnominate(j)
	switch j.state {
	case jPending:
		c.pending[j.queue].Delete(pendOf(j))
	case jRunning, jPreempting, jHeld:
		c.release(j, why)
	}
	j.state = jDone
	delete(c.jobs, j.ID)
}

func (c *Core) nodeDown(name string, st fleet.NodeState, reason string) error {
	i, ok := c.fleet.NodeIndex(name)
	if !ok {
		return fmt.Errorf("node %q: not in the fleet", name)
	}
	c.fleet.Nodes[i].State = st
	c.idx.setSchedulable(i, false)
	if c.power != nil {
		c.power.setUp(c, i, st != fleet.Down)
	}
	victims := append([]*job(nil), c.nodeJobs[i]...)
	sort.Slice(victims, func(a, b int) bool { return victims[a].seq < victims[b].seq })
	seen := map[*job]bool{}
	for _, j := range victims {
		if seen[j] {
			continue
		}
		seen[j] = true
		held := j.state == jHeld
		c.release(j, EndRequeued)
		j.status = Status{Code: Requeued, Detail: reason}
		// A held job never ran: its driver knows it only as pending.
		if c.enqueue(j) && !held {
			c.emit(Requeue{Job: j.ID, Reason: reason})
		}
	}
	return nil
}

func (c *Core) replaceQueues(specs []quota.Spec) error {
	t, err := quota.New(specs)
	if err != nil {
		return err
	}
	c.queues = t
	c.flavors = nil
	oldPending := c.pending
	c.resetPending()
	// Running jobs keep running; their usage moves to the new tree.
	ids := make([]*job, 0, len(c.jobs))
	for _, j := range c.jobs {
		ids = append(ids, j)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a].seq < ids[b].seq })
	for _, j := range ids {
		q := t.Queue(j.Queue)
		if (q < 0 || !t.IsLeaf(q)) && j.state == jHeld {
			// Held for a later window: it has not started, so it goes
			// the way of a pending job of a removed queue.
			c.dropHold(j)
			oldPending[j.queue].ReplaceOrInsert(pendOf(j))
		}
		if q < 0 || !t.IsLeaf(q) {
			if j.state == jPending {
				c.unnominate(j)
				oldPending[j.queue].Delete(pendOf(j))
				c.emit(Reject{Job: j.ID, Reason: fmt.Sprintf("queue %q was removed", j.Queue)})
				j.state = jDone
				delete(c.jobs, j.ID)
				continue
			}
			q = 0 // a running job of a removed queue is charged to nobody
		}
		j.queue = q
		if j.Preemptible && (j.state == jRunning || j.state == jPreempting) {
			c.pools[q].add(j)
		}
		if j.state == jPending {
			c.pending[q].ReplaceOrInsert(pendOf(j))
			continue
		}
		// A running job's usage moves to its queue in the new tree; one
		// whose queue is gone runs on charged to none.
		j.demand = nil
		if q > 0 {
			j.demand = c.demandFor(j, j.gangType)
			delete(j.demand, -1)
			c.queues.Add(q, j.demand)
		}
	}
	return nil
}

// demandFor is a job's quota demand per flavor index when its gangs run on
// the given catalog types, with the current replica counts. Flavors missing
// from the tree map to -1.
func (c *Core) demandFor(j *job, types []int) quota.Demand {
	d := quota.Demand{}
	counts := make([]int, len(j.Gangs))
	// Replicas given back in a shrink hold their quota until they leave.
	for _, r := range j.reps {
		counts[r.gang]++
	}
	if len(j.reps) == 0 {
		for g := range j.Gangs {
			counts[g] = j.Gangs[g].Min()
		}
	}
	for g := range j.Gangs {
		if types[g] < 0 {
			continue
		}
		f := c.flavor(types[g], j.Tier)
		d[f] += int64(counts[g]) * j.Gangs[g].Shape.GPUMilli()
	}
	return d
}

func (c *Core) restore(e JobRestored) error {
	j, err := c.newJob(e.Job, true)
	if err != nil {
		return err
	}
	want := 0
	for g := range j.Gangs {
		want += j.Gangs[g].Min()
	}
	if len(e.Binds) < want {
		return fmt.Errorf("job %q: restored with %d binds, needs at least %d", j.ID, len(e.Binds), want)
	}
	j.gangType = make([]int, len(j.Gangs))
	for g := range j.gangType {
		j.gangType[g] = -2
	}
	var done []replica
	undo := func() {
		for i := len(done) - 1; i >= 0; i-- {
			c.idx.take(done[i].node, &j.Gangs[done[i].gang].Shape, done[i].choice, -1)
		}
	}
	for k, b := range e.Binds {
		if b.Gang < 0 || b.Gang >= len(j.Gangs) {
			undo()
			return fmt.Errorf("job %q: binds[%d].gang %d out of range", j.ID, k, b.Gang)
		}
		n, ok := c.fleet.NodeIndex(b.Node)
		if !ok {
			undo()
			return fmt.Errorf("job %q: binds[%d].node %q not in the fleet", j.ID, k, b.Node)
		}
		r := &j.Gangs[b.Gang].Shape
		ch := place.Choice{Node: n, Devices: append([]int(nil), b.Devices...), Milli: b.Milli}
		if err := c.checkChoice(n, r, ch); err != nil {
			undo()
			return fmt.Errorf("job %q: binds[%d]: %w", j.ID, k, err)
		}
		ti := c.idx.nodeType[n]
		if j.gangType[b.Gang] == -2 {
			j.gangType[b.Gang] = ti
		}
		c.idx.take(n, r, ch, +1)
		since := b.Since
		if since == 0 {
			since = e.Start
		}
		done = append(done, replica{gang: b.Gang, idx: b.Replica, node: n, choice: ch, since: since})
	}
	j.attempt = max(e.Attempt, 1)
	j.nextRep = make([]int, len(j.Gangs))
	for _, r := range done {
		j.nextRep[r.gang] = max(j.nextRep[r.gang], r.idx+1)
	}
	for g := range j.gangType {
		if j.gangType[g] == -2 {
			j.gangType[g] = -1
		}
	}
	c.jobs[j.ID] = j
	j.reps = done
	for _, r := range done {
		c.nodeJobs[r.node] = append(c.nodeJobs[r.node], j)
	}
	j.demand = c.demandFor(j, j.gangType)
	delete(j.demand, -1)
	if j.queue > 0 {
		c.queues.Add(j.queue, j.demand)
		c.graceFor(j.queue, j.demand)
	} else {
		j.demand = nil
	}
	c.markRunning(j, e.Start)
	return nil
}

// checkChoice verifies that a concrete choice fits node n right now.
func (c *Core) checkChoice(n int, r *place.Request, ch place.Choice) error {
	pn := c.idx.nodes[n]
	if !r.Accepts(pn.Accel) {
		return fmt.Errorf("node %s has %q accelerators, the gang accepts %v", c.fleet.Nodes[n].Name, pn.Accel, r.Accel)
	}
	if pn.CPUFree < r.CPUMilli || pn.MemFree < r.MemoryMiB {
		return fmt.Errorf("node %s lacks CPU or memory", c.fleet.Nodes[n].Name)
	}
	want := r.Devices
	milli := int32(place.Whole)
	if r.Devices == 0 && r.Milli > 0 {
		want, milli = 1, r.Milli
	}
	if len(ch.Devices) != want || (want > 0 && ch.Milli != milli) {
		return fmt.Errorf("node %s: %d devices of %d milli bound, the gang asks %d of %d", c.fleet.Nodes[n].Name, len(ch.Devices), ch.Milli, want, milli)
	}
	seen := map[int]bool{}
	for _, d := range ch.Devices {
		if d < 0 || d >= len(pn.Free) || seen[d] {
			return fmt.Errorf("node %s: device %d invalid or repeated", c.fleet.Nodes[n].Name, d)
		}
		seen[d] = true
		if pn.Free[d] < milli {
			return fmt.Errorf("node %s: device %d has %d milli free, %d asked: it is already bound", c.fleet.Nodes[n].Name, d, pn.Free[d], milli)
		}
	}
	return nil
}

func (c *Core) markRunning(j *job, start int64) {
	j.backoff = 0
	j.state = jRunning
	j.started = start
	j.status = Status{}
	j.earliest = -1
	c.running[j.ID] = j
	if j.Preemptible {
		c.pools[j.queue].add(j)
	}
	if e := j.finishesBy(); e > 0 {
		c.setEnd(j, e)
	}
}

// dropHold frees a held job's placement without touching the queue tree
// (which is being replaced): it becomes pending.
func (c *Core) dropHold(j *job) {
	for i := range j.reps {
		r := &j.reps[i]
		c.idx.take(r.node, &j.Gangs[r.gang].Shape, r.choice, -1)
		c.dropNodeJob(j, r.node)
	}
	if j.endAt > 0 {
		c.ends.Delete(endKey{end: j.endAt, seq: j.seq, j: j})
		j.endAt = 0
	}
	c.unshift(j)
	j.reps, j.demand, j.gangType = nil, nil, nil
	j.state = jPending
}
