package sched

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/google/btree"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

type jobState uint8

const (
	jPending jobState = iota
	jRunning
	jPreempting
	jDone
)

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

// job is the core's record of one job.
// jobSet is a set of jobs kept in a slice, for cheap iteration; each job
// is in at most one set (its poolAt is its index there, -1 when in none).
// Its order depends on history: readers that need an order sort.
type jobSet struct{ list []*job }

func (s *jobSet) add(j *job) {
	if j.poolAt >= 0 {
		return
	}
	j.poolAt = len(s.list)
	s.list = append(s.list, j)
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
}

type job struct {
	Job
	seq uint64
	// attempt counts the job's starts; nextRep is, per gang, the replica
	// index the next replica bound will get (indices are never reused
	// within an attempt, so a grown replica is never taken for one that
	// was given back).
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
	prio  int32
	key   int32
	seq   uint64
	est   int64
	after int64 // not before this time (back-off after preemption)
	j     *job
}

func pendOf(j *job) pend {
	return pend{prio: j.Priority, key: int32(j.keyID), seq: j.seq, est: j.EstimatedSec, after: j.after, j: j}
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

// Core is the scheduling state machine. It is not safe for concurrent use:
// one driver goroutine owns it.
type Core struct {
	cfg    Config
	fleet  *fleet.Fleet
	queues *quota.Tree
	pipe   *pipeline
	rng    *rand.Rand
	now    int64
	seq    uint64

	idx     *index
	jobs    map[JobID]*job
	pending []*btree.BTreeG[pend] // per queue index
	running map[JobID]*job
	// pools holds, per queue, its running preemptible jobs: the only
	// candidates preemption ever looks at.
	pools []jobSet
	// nominee[n] is the preemptor node n is being freed for; nominated
	// marks those nodes for a cheap check on the placement path.
	nominee   map[int]*job
	nominated bitset
	// reserved are last cycle's backfill reservations.
	reserved holds
	// wakes holds the future times at which a cycle could decide something
	// new without any new event (back-offs ending); see Wake.
	wakes *btree.BTreeG[wake]
	// keyIDs interns shape keys; memo remembers, per key and cycle, that a
	// shape found no room (the second slot: with a reservation held out).
	keyIDs   map[string]int
	memo     []memoSlot
	cycle    uint64
	ends     *btree.BTreeG[endKey] // running jobs with runtime estimates
	nodeJobs [][]*job
	// out collects what the current Apply or Schedule call decides.
	out Ready
	// sites names each node's site for usage records.
	sites      []string
	siteLevel  int
	present    []bool // catalog types some node carries
	typesVer   int
	pcg        *rand.PCG
	workload   place.Workload
	classes    map[string]int
	preempting map[JobID]*job
	elastic    map[JobID]*job
	// reclaimedAt is, per flavor, the last time quota of it was reclaimed
	// by preemption (see typeOrder).
	reclaimedAt map[int]int64
	// profiles are the distinct kinds of node; profOf is each node's,
	// profIn counts per domain the nodes of each profile below it; fits
	// caches, per shape key, what the fleet could hold at most (see
	// impossible), until the fleet grows.
	profiles []profile
	profOf   []int
	profIn   [][]int32
	fits     map[int]*Status
	// waitingForFleet are jobs the fleet cannot hold yet that asked to
	// wait for it to grow (Job.WaitForCapacity).
	waitingForFleet []*job
	// flavors caches the queue tree's flavor index per type and tier.
	flavors map[flavorKey]int
	// grace holds, per (queue, flavor) an administrator's change left above
	// its limit, the occupation it may still have: running work is not
	// stopped for a quota change, and nothing new is admitted until the
	// queue is back within its limit (see tighten).
	grace map[[2]int]int64
	// Reusable buffers.
	cand      []cand
	pnodes    []*place.Node
	choiceBuf []place.Choice
}

// New builds a core over a fleet and a queue tree. The core takes ownership
// of both; nodes and queues change afterwards only through events.
func New(cfg Config, f *fleet.Fleet, q *quota.Tree) (*Core, error) {
	if f == nil {
		var err error
		if f, err = fleet.New(nil, nil, nil); err != nil {
			return nil, err
		}
	}
	if q == nil {
		var err error
		if q, err = quota.New(nil); err != nil {
			return nil, err
		}
	}
	c := &Core{
		cfg:         cfg,
		fleet:       f,
		queues:      q,
		jobs:        map[JobID]*job{},
		classes:     map[string]int{},
		keyIDs:      map[string]int{},
		nominee:     map[int]*job{},
		preempting:  map[JobID]*job{},
		elastic:     map[JobID]*job{},
		reclaimedAt: map[int]int64{},
		running:     map[JobID]*job{},
		ends:        btree.NewG(16, endLess),
		wakes:       btree.NewG(8, wakeLess),
	}
	c.present = make([]bool, len(f.Catalog.Types))
	switch lvl, err := f.LevelIndex(cfg.SiteLevel); {
	case cfg.SiteLevel != "" && err != nil:
		return nil, fmt.Errorf("site level: %w", err)
	case cfg.SiteLevel != "":
		c.siteLevel = lvl
	default:
		if lvl, err := f.LevelIndex("zone"); err == nil {
			c.siteLevel = lvl
		}
	}
	// The policies' own stream ("policy"): the simulator seeds its
	// reference runs the same way.
	c.pcg = rand.NewPCG(cfg.Seed, 0x706f6c696379)
	c.rng = rand.New(c.pcg)
	c.idx = newIndex(f)
	c.nodeJobs = make([][]*job, len(f.Nodes))
	for i := range f.Nodes {
		c.addProfile(i)
	}
	c.resetPending()
	pipe, err := c.buildPipeline(cfg.Placement)
	if err != nil {
		return nil, err
	}
	c.pipe = pipe
	return c, nil
}

func (c *Core) resetPending() {
	c.pending = make([]*btree.BTreeG[pend], c.queues.Len())
	for _, p := range c.pools {
		for _, j := range p.list {
			j.poolAt = -1
		}
	}
	c.pools = make([]jobSet, c.queues.Len())
	for i := range c.pending {
		c.pending[i] = btree.NewG(8, pendingLess)
	}
}

// Fleet returns the fleet the core schedules (read-only for callers).
func (c *Core) Fleet() *fleet.Fleet { return c.fleet }

// Queues returns the queue tree with current usage (read-only for callers).
func (c *Core) Queues() *quota.Tree { return c.queues }

// Now is the latest time the core has seen.
func (c *Core) Now() int64 { return c.now }

// NodeState returns the allocatable state of node i (read-only).
func (c *Core) NodeState(i int) *place.Node { return c.idx.nodes[i] }

// Apply records one event and returns what it decided at once: the
// rejection of a job that no node could ever hold, the requeues of the jobs
// on a failed node, the usage records of the holdings the event ended. It
// places nothing; Schedule does.
func (c *Core) Apply(ev Event) (Ready, error) {
	c.out = Ready{}
	err := c.apply(ev)
	out := c.out
	c.out = Ready{}
	return out, err
}

func (c *Core) apply(ev Event) error {
	switch e := ev.(type) {
	case JobSubmitted:
		return c.submit(e.Job)
	case JobCancelled:
		j, err := c.lookup(e.ID)
		if err != nil {
			return err
		}
		c.retire(j, EndCancelled)
		return nil
	case JobFinished:
		j, err := c.lookup(e.ID)
		if err != nil {
			return err
		}
		if j.state != jRunning && j.state != jPreempting {
			return fmt.Errorf("job %s: finished but it is not running", e.ID)
		}
		c.retire(j, EndFinished)
		return nil
	case JobFailed:
		j, err := c.lookup(e.ID)
		if err != nil {
			return err
		}
		if j.state != jRunning && j.state != jPreempting {
			return fmt.Errorf("job %s: failed but it is not running", e.ID)
		}
		if !e.Requeue {
			c.retire(j, EndFailed)
			return nil
		}
		if j.state == jPreempting {
			c.release(j, EndPreempted)
			c.requeuePreempted(j, e.Reason)
			return nil
		}
		c.release(j, EndFailed)
		j.status = Status{Code: Requeued, Detail: e.Reason}
		c.enqueue(j)
		return nil
	case NodeAdded:
		i, err := c.fleet.AddNode(e.Node)
		if err != nil {
			return err
		}
		c.idx.addNode(i)
		c.nodeJobs = append(c.nodeJobs, nil)
		c.addProfile(i)
		c.fleetGrew()
		return nil
	case NodeFailed:
		return c.nodeDown(e.Node, fleet.Down, "node "+e.Node+" failed: "+e.Reason)
	case NodeDrained:
		return c.nodeDown(e.Node, fleet.Draining, "node "+e.Node+" drained")
	case NodeReturned:
		i, ok := c.fleet.NodeIndex(e.Node)
		if !ok {
			return fmt.Errorf("node %q: not in the fleet", e.Node)
		}
		c.fleet.Nodes[i].State = fleet.Ready
		c.idx.setSchedulable(i, true)
		return nil
	case QuotaChanged:
		q := c.queues.Queue(e.Queue)
		if q < 0 {
			return fmt.Errorf("queue %q: not in the queue tree", e.Queue)
		}
		if err := c.queues.SetLimits(q, e.Flavor, e.Quota); err != nil {
			return err
		}
		c.flavors = nil // the change may add a flavor to the tree
		c.noteGrace()
		return nil
	case QueuesChanged:
		if err := c.replaceQueues(e.Specs); err != nil {
			return err
		}
		c.noteGrace()
		return nil
	case JobRestored:
		return c.restore(e)
	case TimeAdvanced:
		if e.Now > c.now {
			c.now = e.Now
		}
		return nil
	}
	return fmt.Errorf("event %T: not known to the core", ev)
}

// emit records an action of the current call.
func (c *Core) emit(a Action) { c.out.Actions = append(c.out.Actions, a) }

func (c *Core) lookup(id JobID) (*job, error) {
	j, ok := c.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %q: not known", id)
	}
	return j, nil
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
	if j.state != jRunning && j.state != jPreempting {
		return
	}
	for i := range j.reps {
		c.releaseReplica(j, &j.reps[i], why)
	}
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

func (c *Core) releaseReplica(j *job, r *replica, why EndReason) {
	c.idx.take(r.node, &j.Gangs[r.gang].Shape, r.choice, -1)
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
	js := c.nodeJobs[r.node]
	for k, x := range js {
		if x == j {
			c.nodeJobs[r.node] = append(js[:k:k], js[k+1:]...)
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
	case jRunning, jPreempting:
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
	victims := append([]*job(nil), c.nodeJobs[i]...)
	sort.Slice(victims, func(a, b int) bool { return victims[a].seq < victims[b].seq })
	seen := map[*job]bool{}
	for _, j := range victims {
		if seen[j] {
			continue
		}
		seen[j] = true
		c.release(j, EndRequeued)
		j.status = Status{Code: Requeued, Detail: reason}
		if c.enqueue(j) {
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
		if q < 0 || !t.IsLeaf(q) {
			if j.state == jPending {
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
	for _, r := range j.reps {
		if r.leaving == 0 {
			counts[r.gang]++
		}
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

func shapeText(r *place.Request) string {
	acc := "any accelerator"
	if len(r.Accel) > 0 {
		acc = fmt.Sprint(r.Accel)
	}
	switch {
	case r.Devices > 0:
		return fmt.Sprintf("%d x %s, cpu %dm, memory %dMi", r.Devices, acc, r.CPUMilli, r.MemoryMiB)
	case r.Milli > 0:
		return fmt.Sprintf("%d milli of one %s, cpu %dm, memory %dMi", r.Milli, acc, r.CPUMilli, r.MemoryMiB)
	}
	return fmt.Sprintf("cpu %dm, memory %dMi", r.CPUMilli, r.MemoryMiB)
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

// A pattern has a bit per reservation; failed has a bit per pattern.
var _ [4 - maxReservations]struct{}

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

// wake is a future time at which some job's back-off ends.
type wake struct {
	t   int64
	seq uint64
}

func wakeLess(a, b wake) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}

func (c *Core) wakeAt(t int64, j *job) { c.wakes.ReplaceOrInsert(wake{t: t, seq: j.seq}) }

// Wake returns the earliest time after the core's clock at which Schedule
// could decide something that no event has asked for: a preemption notice
// or a shrink running out, a preempted job's back-off ending, a blocked
// job's preemption back-off ending. It returns -1 when there is none. A
// driver that runs cycles only on events (the simulator) must run one then;
// one that runs them on a timer (the server) needs nothing.
func (c *Core) Wake() int64 {
	for {
		w, ok := c.wakes.Min()
		if !ok || w.t > c.now {
			break
		}
		c.wakes.DeleteMin()
	}
	best := int64(-1)
	if w, ok := c.wakes.Min(); ok {
		best = w.t
	}
	for _, j := range c.preempting {
		t := j.deadline
		if j.state != jPreempting {
			t = 0
			for _, r := range j.reps {
				if r.leaving > 0 && (t == 0 || r.leaving < t) {
					t = r.leaving
				}
			}
		}
		if t > c.now && (best < 0 || t < best) {
			best = t
		}
	}
	return best
}

// limitOf is the most queue q may occupy of flavor f: nominal plus
// borrowing limit, and the pool's nominal at the root.
func (c *Core) limitOf(q, f int) int64 {
	nom, borrow, _ := c.queues.Limits(q, f)
	if q == 0 {
		return nom
	}
	return min(quota.Unlimited, nom+borrow)
}

// noteGrace records the queues an administrator's change left above their
// limits, with what they hold now.
func (c *Core) noteGrace() {
	c.grace = nil
	for q := range c.queues.Len() {
		for f := range c.queues.Flavors() {
			if occ := c.queues.Occupation(q, f); occ > c.limitOf(q, f) {
				if c.grace == nil {
					c.grace = map[[2]int]int64{}
				}
				c.grace[[2]int{q, f}] = occ
			}
		}
	}
}

// graceFor extends the grace of queue q's path for a restored job's
// demand: running work comes back whatever the limits say now.
func (c *Core) graceFor(q int, d quota.Demand) {
	for x := q; x >= 0; x = c.queues.Parent(x) {
		for f := range d {
			if f < 0 {
				continue
			}
			if occ := c.queues.Occupation(x, f); occ > c.limitOf(x, f) {
				if c.grace == nil {
					c.grace = map[[2]int]int64{}
				}
				c.grace[[2]int{x, f}] = max(c.grace[[2]int{x, f}], occ)
			}
		}
		if x == 0 {
			break
		}
	}
}

// tighten lowers the grace of queues above their limits as their work
// ends, so that what a queue gave back is never admitted again above its
// limit.
func (c *Core) tighten() {
	for k, g := range c.grace {
		occ, lim := c.queues.Occupation(k[0], k[1]), c.limitOf(k[0], k[1])
		switch {
		case occ <= lim:
			delete(c.grace, k)
		case occ < g:
			c.grace[k] = occ
		}
	}
}
