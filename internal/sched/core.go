package sched

import (
	"fmt"
	"math/rand/v2"

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
	// jHeld: admitted and placed, its capacity held, waiting for the next
	// run of its carbon plan (see carbon.go).
	jHeld
)

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
	nominee map[int]*job
	// paused are the standing pauses of admission, with their reasons;
	// pausedQ the reason per queue index (nil when nothing is paused).
	paused    map[pauseKey]string
	pausedQ   []string
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
	// boards are the scoreboards of a chain with a local scorer, per
	// request shape and eligible types.
	boards map[boardKey]*scoreboard
	// fitBoards are the fit boards of a chain whose one scorer is
	// place.Ranked, per request shape and eligible types (see pickRanked).
	fitBoards map[boardKey]*fitBoard
	// states numbers node states for the boards (see stateOf).
	states stateNumbers
	// power is the draw of the capped sites; nil when none is (power.go).
	power    *powerBook
	domPaths map[string]int
	// shiftOn is set by the carbon admission rule; due holds the held
	// jobs' next starts and the running ones' next suspensions, deferred the
	// jobs held for a later window (carbon.go). carbonNow caches each site's intensity at
	// carbonAt.
	shiftOn   bool
	due       *btree.BTreeG[dueKey]
	deferred  map[JobID]*job
	carbonAt  int64
	carbonNow map[[2]int64]float64
	pues      map[int]float64
	// held are devices kept apart from placement (DevicesHeld), by key.
	held map[string]heldDevices
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
	if err := c.initPower(); err != nil {
		return nil, err
	}
	if err := c.initCarbon(); err != nil {
		return nil, err
	}
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
		if j.state == jPreempting && j.toHold {
			// Suspended at a checkpoint: its capacity waits for its
			// next run.
			c.closeRun(j)
			return nil
		}
		if j.state == jPreempting {
			c.release(j, EndPreempted)
			if j.stopped {
				c.requeueStopped(j)
			} else {
				c.requeuePreempted(j, e.Reason)
			}
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
		if c.power != nil {
			c.power.addNode(c, i)
		}
		c.nodeJobs = append(c.nodeJobs, nil)
		c.addProfile(i)
		c.fleetGrew()
		return nil
	case NodeFailed:
		return c.nodeDown(e.Node, fleet.Down, "node "+e.Node+" failed: "+e.Reason)
	case NodeDrained:
		return c.nodeDown(e.Node, fleet.Draining, "node "+e.Node+" drained")
	case NodeCordoned:
		i, ok := c.fleet.NodeIndex(e.Node)
		if !ok {
			return fmt.Errorf("node %q: not in the fleet", e.Node)
		}
		c.fleet.Nodes[i].State = fleet.Draining
		c.idx.setSchedulable(i, false)
		if c.power != nil {
			c.power.setUp(c, i, true)
		}
		return nil
	case NodeReturned:
		i, ok := c.fleet.NodeIndex(e.Node)
		if !ok {
			return fmt.Errorf("node %q: not in the fleet", e.Node)
		}
		c.fleet.Nodes[i].State = fleet.Ready
		c.idx.setSchedulable(i, true)
		if c.power != nil {
			c.power.setUp(c, i, true)
		}
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
		c.repause()
		c.noteGrace()
		return nil
	case JobRestored:
		return c.restore(e)
	case DevicesHeld:
		return c.holdDevices(e)
	case DevicesFreed:
		return c.freeDevices(e.Key)
	case AdmissionPaused:
		return c.pause(e)
	case AdmissionResumed:
		return c.resume(e)
	case TimeAdvanced:
		if e.Now > c.now {
			c.now = e.Now
		}
		return nil
	case SitePowerCapped:
		return c.capPower(e)
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
