package sim

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// Scheduler is the part of the scheduling core the engine drives.
type Scheduler interface {
	Apply(ev sched.Event) (sched.Ready, error)
	Schedule(now int64) sched.Ready
}

// Source yields a workload's jobs in arrival order and io.EOF after the
// last; TraceReader and Generator are sources.
type Source interface {
	Next() (Job, error)
}

// Config tunes a simulation run. The zero value is usable.
type Config struct {
	// Sched configures the core (placement chain, backfill, preemption,
	// its seed).
	Sched sched.Config
	// Seed drives the engine's own random draws (node failures).
	Seed uint64
	// FailuresPerNodeDay is the mean rate of node failures; 0 turns them
	// off. Failed nodes come back after an exponential repair time.
	FailuresPerNodeDay float64
	// RepairMeanSec is the mean repair time (default 4 hours).
	RepairMeanSec int64
	// Outages are node failures at given times, in addition to the random
	// ones: what-if scenarios and tests.
	Outages []Outage
	// NodeEvents add and retire nodes during the run (nodes.go).
	NodeEvents []NodeEvent
	// AbandonAfterSec, when positive, withdraws a job that has waited this
	// long since its arrival without ever starting: it is cancelled and
	// recorded as abandoned, as a user gives up on a queue. A capacity
	// plan uses it so that a fleet short of capacity does not pile up a
	// backlog whose waits are long past what it measures.
	AbandonAfterSec int64
	// SampleSec is the interval of the time series (default 600).
	SampleSec int64
	// CycleSec, when positive, runs scheduling cycles only at multiples of
	// it, as a periodic scheduler would; 0 runs one at every instant where
	// something happened.
	CycleSec int64
	// Until stops the run at this virtual time; 0 runs until the work is
	// done.
	Until int64
	// Accounting, when set, meters the run in the ledger (account.go).
	Accounting *Accounting
	// PUE gives a node's power usage effectiveness; nil or 0 means
	// DefaultPUE.
	PUE func(n *fleet.Node) float64
	// Progress, when set, is called now and then with the number of jobs
	// that have arrived.
	Progress func(arrived int)
	// Usage, when set, hears every usage record the core emits and, at the
	// end, one for every holding still open: what a meter of energy and
	// carbon reads.
	Usage func(sched.Usage)
}

// Outage takes a node down at At for Duration seconds (0: for good).
type Outage struct {
	Node     string `json:"node"`
	At       int64  `json:"at"`
	Duration int64  `json:"duration"`
}

// DefaultPUE applies where the fleet gives no site PUE.
const DefaultPUE = 1.2

type jobState uint8

const (
	jsPending jobState = iota
	jsRunning
	jsPreempting
	jsDone
)

// Job outcomes as the results name them.
const (
	StatusFinished = "finished"
	StatusTimedOut = "timed-out"
	StatusRejected = "rejected"
	StatusRunning  = "running"
	StatusPending  = "pending"
	// StatusAbandoned: withdrawn unstarted after Config.AbandonAfterSec.
	StatusAbandoned = "abandoned"
)

type bindRec struct {
	gang, replica int32
	node          int32
	milli         int32 // accelerator milli taken on the node in all
}

type shrinkRec struct {
	at    int64
	pairs [][2]int
}

// simJob is the engine's record of a job that has arrived and is not done.
// Done jobs become JobRecords and their slot is reused, so that memory
// follows the jobs in the system, not the length of the trace.
type simJob struct {
	id       sched.JobID
	seq      int64 // arrival order
	kind     sched.Kind
	state    jobState
	tenant   int32
	queue    int32
	replicas int32 // over all gangs, at full size
	accels   float64
	arrival  int64
	duration int64
	ckptSec  int64
	maxSec   int64
	start    int64 // first start, -1 before
	end      int64 // -1 until done
	status   string
	reason   string

	binds   []bindRec
	shrinks []shrinkRec
	finVer  uint32 // bumped whenever the finish time changes
	runVer  uint32 // bumped whenever a run stops

	segStart     int64 // start of the current run
	lastT        int64 // time the fields below were brought up to
	nextCkpt     int64
	work         float64 // seconds of work done at relative speed 1
	ckptWork     float64 // work saved by the last checkpoint
	savedAtStart float64 // ckptWork when the current run began
	rate         float64 // work per second in the current run
	alloc        int64   // accelerator milli held now
	sinceCkpt    float64 // accelerator milli-seconds since the last checkpoint

	accelMilliSec float64
	lostMilliSec  float64
	preemptions   int32
	requeues      int32
	// suspending marks a run told to stop at a checkpoint keeping all its
	// work (Preempt.Suspend).
	suspending bool
}

type nodeInfo struct {
	name  string
	class int32 // power class
	cap   int64 // accelerator milli
	used  int64
	up    bool
	speed float64
	// retiring: cordoned for good; gone: retired and empty, out of the
	// fleet's capacity for the rest of the run.
	retiring, gone bool
}

// powerClass groups nodes of one accelerator type and PUE.
type powerClass struct {
	accel        string
	idleW, busyW float64 // idle power, and board minus idle power, per accelerator
	pue          float64
	upAccels     int64
	usedMilli    int64
	// Integrals over time, in milli-seconds, for utilization by type, and
	// their values at the last sample.
	busyInt, capInt       float64
	sampleBusy, sampleCap float64
}

type engine struct {
	cfg  Config
	core Scheduler
	now  int64

	jobs    []simJob // slots of jobs in the system; free ones are in free
	free    []int32
	byID    map[sched.JobID]int32
	arrived int
	q       eventQueue
	// records of done jobs, with their arrival order for sorting.
	records []JobRecord
	recSeq  []int64
	lastEnd int64 // end of the last job with a duration

	nodes      []nodeInfo
	nodeByName map[string]int32
	classes    []powerClass
	classOf    map[classKey]int32
	catalog    *fleet.Catalog
	adds       int // node deliveries still to come

	tenants    []string
	tenantIdx  map[string]int32
	tenantUsed []int64
	tenantLast []int64
	tenantMS   []float64 // accelerator milli-seconds
	queueNames []string
	queueIdx   map[string]int32
	tree       *quota.Tree

	// Fleet-wide state and its integrals over time.
	capUp       int64 // accelerator milli on nodes that are up
	usedUp      int64
	freeEmpty   int64 // free milli on up nodes that hold nothing
	lastAcc     int64
	energyJ     float64
	itEnergyJ   float64
	busyInt     float64 // milli-seconds
	capInt      float64
	fragInt     float64 // fragmentation x seconds
	pending     int
	running     int
	origin      int64
	started     bool
	nextSample  int64
	sampleBusy  float64
	sampleCap   float64
	sampleFrag  float64
	sampleEnerg float64
	lastSample  int64
	samples     []Sample

	// Termination bookkeeping.
	srcDone    bool
	finiteLeft int // jobs with a duration that arrived and are not done
	jobEvents  int // evFinish, evStop and evShrink in the queue
	repairs    int
	tickAt     int64
	dirty      bool
	// lastProgress is the last time a job first started, ended, or stopped
	// with more work saved than it started its run with.
	lastProgress int64

	rng      *rand.Rand
	starting []int32
	c        counters
	// usageMS sums the core's usage records per tenant (accelerator
	// milli-seconds): the same figure tenantMS measures from the actions.
	usageMS map[string]int64
	acct    *accountant
}

// apply hands an event to the core and carries out at once what it
// decided (a node failure's requeues).
func (e *engine) apply(ev sched.Event) error {
	r, err := e.core.Apply(ev)
	if err != nil {
		return err
	}
	return e.take1(r)
}

// take1 carries out one call's actions and sums its usage records.
func (e *engine) take1(r sched.Ready) error {
	for _, a := range r.Actions {
		if err := e.act(a); err != nil {
			return err
		}
	}
	e.meter(r.Usage)
	return nil
}

func (e *engine) meter(us []sched.Usage) {
	for i := range us {
		e.usageMS[us[i].Tenant] += us[i].AccelMilliSeconds()
		if e.cfg.Usage != nil {
			e.cfg.Usage(us[i])
		}
	}
	if e.acct != nil {
		e.acct.closed(us)
	}
}

type counters struct {
	scheduleCalls int64
	actions       int64
	binds         int64
	preemptions   int64
	shrinks       int64
	requeues      int64
	failRequeues  int64
	rejections    int64
	nodeFailures  int64
	suspensions   int64
	lostPreempt   float64 // accelerator milli-seconds
	lostFailure   float64
}

// Run replays src through a scheduling core built over fleet f and the
// queue tree specs, and returns what happened. The core takes f; Run does
// not change it otherwise.
func Run(cfg Config, f *fleet.Fleet, specs []quota.Spec, src Source) (*Result, error) {
	coreTree, err := quota.New(specs)
	if err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	core, err := sched.New(cfg.Sched, f, coreTree)
	if err != nil {
		return nil, err
	}
	return runWith(cfg, f, specs, core, src)
}

// runWith drives any Scheduler; Run gives it the core.
func runWith(cfg Config, f *fleet.Fleet, specs []quota.Spec, core Scheduler, src Source) (*Result, error) {
	tree, err := quota.New(specs)
	if err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	e, err := newEngine(cfg, f, tree)
	if err != nil {
		return nil, err
	}
	e.core = core
	ahead := prefetch(src)
	defer ahead.Close()
	if cfg.Accounting != nil {
		if e.acct, err = newAccountant(*cfg.Accounting, f, specs, cfg.Sched.SiteLevel); err != nil {
			return nil, err
		}
		e.acct.siteOf = SiteNames(f, cfg.Sched.SiteLevel)
		e.acct.start()
		defer e.acct.stop()
	}
	if err := e.run(ahead); err != nil {
		return nil, err
	}
	r := e.result()
	return r, e.account(r)
}

func newEngine(cfg Config, f *fleet.Fleet, tree *quota.Tree) (*engine, error) {
	if cfg.SampleSec <= 0 {
		cfg.SampleSec = 600
	}
	if cfg.RepairMeanSec <= 0 {
		cfg.RepairMeanSec = 4 * 3600
	}
	if cfg.FailuresPerNodeDay < 0 {
		return nil, fmt.Errorf("failure rate %v: must not be negative", cfg.FailuresPerNodeDay)
	}
	e := &engine{
		cfg:        cfg,
		byID:       map[sched.JobID]int32{},
		nodeByName: make(map[string]int32, len(f.Nodes)),
		tenantIdx:  map[string]int32{},
		queueIdx:   map[string]int32{},
		tree:       tree,
		rng:        rand.New(rand.NewPCG(cfg.Seed, 0x5eed5eed)),
		tickAt:     -1,
		usageMS:    map[string]int64{},
	}
	e.classOf, e.catalog = map[classKey]int32{}, f.Catalog
	for i := range f.Nodes {
		e.addNode(f.Catalog, &f.Nodes[i])
	}
	for i := 1; i < tree.Len(); i++ {
		if tree.Parent(i) == 0 {
			e.tenantOf(tree.Name(i))
		}
	}
	for i, o := range cfg.Outages {
		n, ok := e.nodeByName[o.Node]
		if !ok {
			return nil, fmt.Errorf("outages[%d].node: %q is not in the fleet", i, o.Node)
		}
		if o.At < 0 || o.Duration < 0 {
			return nil, fmt.Errorf("outages[%d]: at and duration must not be negative", i)
		}
		e.q.push(event{t: o.At, kind: evFailure, node: n, job: int32(i)})
		e.repairs++ // an outage to come keeps the run going like a repair
	}
	if err := e.queueNodeEvents(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *engine) tenantOf(name string) int32 {
	if i, ok := e.tenantIdx[name]; ok {
		return i
	}
	i := int32(len(e.tenants))
	e.tenantIdx[name] = i
	e.tenants = append(e.tenants, name)
	e.tenantUsed = append(e.tenantUsed, 0)
	e.tenantLast = append(e.tenantLast, e.now)
	e.tenantMS = append(e.tenantMS, 0)
	return i
}

func (e *engine) queueOf(name string) int32 {
	if i, ok := e.queueIdx[name]; ok {
		return i
	}
	i := int32(len(e.queueNames))
	e.queueIdx[name] = i
	e.queueNames = append(e.queueNames, name)
	return i
}

func (e *engine) run(src Source) error {
	next, err := src.Next()
	if err == io.EOF {
		e.srcDone = true
	} else if err != nil {
		return err
	}
	for !e.srcDone || e.finiteLeft > 0 && !e.stalled() {
		t := int64(math.MaxInt64)
		if !e.srcDone {
			t = next.Arrival
		}
		if e.q.Len() > 0 && e.q.peek().t < t {
			t = e.q.peek().t
		}
		if t == math.MaxInt64 {
			break
		}
		if e.cfg.Until > 0 && t > e.cfg.Until {
			if e.started && e.cfg.Until > e.now {
				e.sampleUpTo(e.cfg.Until)
				e.accumulate(e.cfg.Until)
				e.now = e.cfg.Until
			}
			break
		}
		if !e.started {
			e.begin(t)
		}
		if t > e.now {
			e.sampleUpTo(t)
			e.accumulate(t)
			e.now = t
			if err := e.apply(sched.TimeAdvanced{Now: t}); err != nil {
				return err
			}
		}
		for e.q.Len() > 0 && e.q.peek().t == t {
			if err := e.handle(e.q.pop()); err != nil {
				return err
			}
		}
		for !e.srcDone && next.Arrival == t {
			if err := e.submit(&next); err != nil {
				return err
			}
			next, err = src.Next()
			if err == io.EOF {
				e.srcDone = true
			} else if err != nil {
				return err
			}
		}
		if e.dirty {
			if err := e.cycle(t); err != nil {
				return err
			}
		}
	}
	e.finish()
	return nil
}

// stallLimit is how long a run whose workload has all arrived goes on with
// nothing but node failures and repairs happening before it gives up on
// the jobs still waiting.
const stallLimit = 30 * 86400

// stalled reports that nothing left can start or end a job: no job event
// is due, and either no cycle or repair is pending or nothing has started
// or ended for stallLimit.
func (e *engine) stalled() bool {
	if e.jobEvents > 0 || e.adds > 0 {
		return false
	}
	if e.tickAt < 0 && e.repairs == 0 {
		return true
	}
	// Cycles or repairs are still due: give up only after stallLimit
	// without a job starting or ending.
	return e.now-e.lastProgress > stallLimit
}

// begin starts the clock at the first arrival.
func (e *engine) begin(t int64) {
	e.started = true
	e.origin, e.now, e.lastAcc, e.lastSample = t, t, t, t
	e.nextSample = t + e.cfg.SampleSec
	for i := range e.tenantLast {
		e.tenantLast[i] = t
	}
	if e.cfg.FailuresPerNodeDay > 0 && len(e.nodes) > 0 {
		e.pushFailure()
	}
	if e.acct != nil && (e.acct.limited || len(e.acct.cfg.Commitments) > 0) {
		e.scheduleMeter(t)
	}
}

func (e *engine) pushFailure() {
	rate := e.cfg.FailuresPerNodeDay * float64(len(e.nodes)) / 86400
	dt := int64(math.Ceil(e.rng.ExpFloat64() / rate))
	e.q.push(event{t: e.now + max(dt, 1), kind: evFailure, job: -1})
}

func (e *engine) pushJobEvent(ev event) {
	e.jobEvents++
	e.q.push(ev)
}

func (e *engine) handle(ev event) error {
	switch ev.kind {
	case evFinish, evStop, evShrink:
		e.jobEvents--
	case evRepair:
		e.repairs--
	}
	switch ev.kind {
	case evFinish:
		j := &e.jobs[ev.job]
		if ev.ver != j.finVer || (j.state != jsRunning && j.state != jsPreempting) {
			return nil
		}
		return e.complete(ev.job)
	case evStop:
		j := &e.jobs[ev.job]
		if ev.ver != j.runVer || j.state != jsPreempting {
			return nil
		}
		e.stop(ev.job, false)
		if err := e.apply(sched.JobFailed{ID: j.id, Reason: "preempted", Requeue: true}); err != nil {
			return fmt.Errorf("job %s: %w", j.id, err)
		}
		e.dirty = true
	case evShrink:
		j := &e.jobs[ev.job]
		if ev.ver != j.runVer || (j.state != jsRunning && j.state != jsPreempting) {
			return nil
		}
		e.applyShrinks(ev.job)
		e.dirty = true
	case evFailure:
		var n int32
		var repair int64
		if ev.job >= 0 { // a scripted outage
			e.repairs--
			n, repair = ev.node, e.cfg.Outages[ev.job].Duration
		} else {
			e.pushFailure()
			n = int32(e.rng.IntN(len(e.nodes)))
			repair = max(1, int64(math.Round(e.rng.ExpFloat64()*float64(e.cfg.RepairMeanSec))))
		}
		if !e.nodes[n].up {
			return nil
		}
		e.c.nodeFailures++
		// Down first: the requeues the core decides at once are carried
		// out as failures of the jobs on it.
		e.setUp(n, false)
		if err := e.apply(sched.NodeFailed{Node: e.nodes[n].name, Reason: "simulated failure"}); err != nil {
			return err
		}
		if repair > 0 {
			e.repairs++
			e.q.push(event{t: e.now + repair, kind: evRepair, node: n, job: -1})
		}
		e.dirty = true
	case evRepair:
		if e.nodes[ev.node].retiring {
			// Retired while down: it stays out.
			return nil
		}
		if err := e.apply(sched.NodeReturned{Node: e.nodes[ev.node].name}); err != nil {
			return err
		}
		e.setUp(ev.node, true)
		e.dirty = true
	case evTick:
		if e.tickAt == ev.t {
			e.tickAt = -1
		}
		e.dirty = true
	case evAbandon:
		j := &e.jobs[ev.job]
		if ev.ver != j.runVer || j.state != jsPending || j.start >= 0 || len(j.binds) > 0 {
			return nil
		}
		if err := e.apply(sched.JobCancelled{ID: j.id}); err != nil {
			return fmt.Errorf("job %s: %w", j.id, err)
		}
		j.reason = fmt.Sprintf("abandoned after waiting %d seconds", e.cfg.AbandonAfterSec)
		e.done(ev.job, StatusAbandoned)
		e.dirty = true
	case evNodeAdd:
		return e.deliver(int(ev.job))
	case evNodeRetire:
		return e.retire(int(ev.job))
	case evMeter:
		return e.meterNow()
	}
	return nil
}

func (e *engine) submit(w *Job) error {
	if _, dup := e.byID[w.ID]; dup {
		return fmt.Errorf("job %s (arrival %d): the id is already in use", w.ID, w.Arrival)
	}
	r, err := e.core.Apply(sched.JobSubmitted{Job: w.Job})
	if err != nil {
		return fmt.Errorf("job %s (arrival %d): %w", w.ID, w.Arrival, err)
	}
	tenant := w.Tenant
	if qi := e.tree.Queue(w.Queue); qi >= 0 {
		tenant = e.tree.Tenant(qi)
	}
	sj := simJob{
		id: w.ID, kind: w.Kind, state: jsPending,
		tenant: e.tenantOf(tenant), queue: e.queueOf(w.Queue),
		arrival: w.Arrival, duration: w.Duration, ckptSec: w.CheckpointSec, maxSec: w.MaxSec,
		start: -1, end: -1,
	}
	for g := range w.Gangs {
		sj.replicas += int32(w.Gangs[g].Replicas)
		sj.accels += float64(w.Gangs[g].Replicas) * float64(w.Gangs[g].Shape.GPUMilli()) / 1000
	}
	e.arrived++
	sj.seq = int64(e.arrived)
	var idx int32
	if n := len(e.free); n > 0 {
		idx = e.free[n-1]
		e.free = e.free[:n-1]
		// Versions carry on from the slot's last job, so that its stale
		// events never match the new one.
		old := &e.jobs[idx]
		sj.finVer, sj.runVer = old.finVer+1, old.runVer+1
		e.jobs[idx] = sj
	} else {
		idx = int32(len(e.jobs))
		e.jobs = append(e.jobs, sj)
	}
	e.byID[w.ID] = idx
	e.pending++
	if w.Duration != NoDuration {
		e.finiteLeft++
	}
	if e.cfg.AbandonAfterSec > 0 {
		e.q.push(event{t: w.Arrival + e.cfg.AbandonAfterSec, kind: evAbandon, job: idx, ver: sj.runVer})
	}
	e.dirty = true
	if e.cfg.Progress != nil && e.arrived%1000 == 0 {
		e.cfg.Progress(e.arrived)
	}
	// A job no node could ever hold is rejected on submission.
	return e.take1(r)
}

// cycle runs scheduling cycles at t until one changes nothing that needs
// another (a notice of zero seconds ends a job at once).
func (e *engine) cycle(t int64) error {
	if c := e.cfg.CycleSec; c > 0 && t%c != 0 {
		at := (t/c + 1) * c
		if e.tickAt != at {
			e.tickAt = at
			e.q.push(event{t: at, kind: evTick, job: -1})
		}
		return nil
	}
	for round := 0; e.dirty && round < 8; round++ {
		e.dirty = false
		r := e.core.Schedule(t)
		e.meter(r.Usage)
		acts := r.Actions
		e.c.scheduleCalls++
		e.c.actions += int64(len(acts))
		e.starting = e.starting[:0]
		for _, a := range acts {
			if err := e.act(a); err != nil {
				return err
			}
		}
		for _, ji := range e.starting {
			e.begin1(ji)
		}
	}
	// The core may decide something new later without any event (a
	// back-off ending): run a cycle then.
	if wk, ok := e.core.(interface{ Wake() int64 }); ok {
		if w := wk.Wake(); w > t {
			if c := e.cfg.CycleSec; c > 0 && w%c != 0 {
				w = (w/c + 1) * c
			}
			if e.tickAt < 0 || w < e.tickAt {
				e.tickAt = w
				e.q.push(event{t: w, kind: evTick, job: -1})
			}
		}
	}
	return nil
}

func (e *engine) lookup(id sched.JobID) (int32, *simJob, error) {
	ji, ok := e.byID[id]
	if !ok {
		return 0, nil, fmt.Errorf("core acted on job %s, which the simulation does not know", id)
	}
	return ji, &e.jobs[ji], nil
}

func (e *engine) act(a sched.Action) error {
	switch a := a.(type) {
	case sched.Bind:
		ji, j, err := e.lookup(a.Job)
		if err != nil {
			return err
		}
		n, ok := e.nodeByName[a.Node]
		if !ok {
			return fmt.Errorf("core bound job %s to node %q, which the simulation does not know", a.Job, a.Node)
		}
		e.c.binds++
		if j.state == jsPending && (len(j.binds) == 0) {
			e.starting = append(e.starting, ji)
		}
		growing := j.state == jsRunning || j.state == jsPreempting
		if growing {
			e.advanceJob(j, e.now)
		}
		b := bindRec{gang: int32(a.Gang), replica: int32(a.Replica), node: n, milli: a.Milli * int32(len(a.Devices))}
		j.binds = append(j.binds, b)
		e.take(j, b, +1)
		if growing {
			e.setRate(j)
			e.scheduleFinish(ji)
		}
	case sched.Preempt:
		ji, j, err := e.lookup(a.Job)
		if err != nil {
			return err
		}
		if j.state != jsRunning && j.state != jsPreempting {
			return nil
		}
		at := max(a.Deadline, e.now)
		if len(a.Replicas) > 0 {
			e.c.shrinks++
			j.shrinks = append(j.shrinks, shrinkRec{at: at, pairs: a.Replicas})
			e.pushJobEvent(event{t: at, kind: evShrink, job: ji, ver: j.runVer})
			return nil
		}
		if j.state == jsPreempting {
			return nil
		}
		j.state = jsPreempting
		j.reason = a.Reason
		if a.Suspend {
			// It checkpoints in its notice and keeps its work.
			e.c.suspensions++
			j.suspending = true
			e.pushJobEvent(event{t: at, kind: evStop, job: ji, ver: j.runVer})
			return nil
		}
		e.c.preemptions++
		j.preemptions++
		e.pushJobEvent(event{t: at, kind: evStop, job: ji, ver: j.runVer})
	case sched.Requeue:
		ji, j, err := e.lookup(a.Job)
		if err != nil {
			return err
		}
		if j.state == jsPending && len(j.binds) > 0 {
			// Bound and taken back within one cycle: it never ran.
			e.releaseAll(j)
			return nil
		}
		if j.state != jsRunning && j.state != jsPreempting {
			return nil
		}
		// The core has already taken the job back; the engine stops what
		// still runs. A requeue of a job on a failed node is that failure.
		failed := false
		for _, b := range j.binds {
			if !e.nodes[b.node].up {
				failed = true
				break
			}
		}
		e.stop(ji, failed)
		j.reason = a.Reason
	case sched.Reject:
		ji, j, err := e.lookup(a.Job)
		if err != nil {
			return err
		}
		if j.state == jsDone {
			return nil
		}
		if j.state != jsPending {
			e.advanceJob(j, e.now)
			e.releaseAll(j)
			e.running--
			j.state = jsPending
			e.pending++
		} else if len(j.binds) > 0 {
			e.releaseAll(j)
		}
		e.c.rejections++
		j.reason = a.Reason
		e.done(ji, StatusRejected)
	default:
		return fmt.Errorf("core returned an action of type %T the simulation cannot carry out", a)
	}
	return nil
}

// begin1 starts a job whose binds arrived in this cycle.
func (e *engine) begin1(ji int32) {
	j := &e.jobs[ji]
	if j.state != jsPending || len(j.binds) == 0 {
		return
	}
	j.state = jsRunning
	e.pending--
	e.running++
	if j.start < 0 {
		j.start = e.now
		e.lastProgress = e.now
	}
	j.segStart, j.lastT = e.now, e.now
	j.work = j.ckptWork
	j.savedAtStart = j.ckptWork
	j.sinceCkpt = 0
	j.nextCkpt = 0
	if j.ckptSec > 0 {
		j.nextCkpt = e.now + j.ckptSec
	}
	e.setRate(j)
	e.scheduleFinish(ji)
}

// setRate derives the job's speed from where its replicas run: a gang
// moves at the pace of its slowest accelerator, and an elastic job below
// full size does proportionally less work.
func (e *engine) setRate(j *simJob) {
	if len(j.binds) == 0 {
		j.rate = 0
		return
	}
	speed := math.Inf(1)
	for _, b := range j.binds {
		if s := e.nodes[b.node].speed; s < speed {
			speed = s
		}
	}
	j.rate = speed * float64(len(j.binds)) / float64(j.replicas)
}

func (e *engine) scheduleFinish(ji int32) {
	j := &e.jobs[ji]
	j.finVer++
	var at int64 = -1
	if j.duration != NoDuration && j.rate > 0 {
		rem := float64(j.duration) - j.work
		at = j.lastT
		if rem > 1e-9 {
			at += int64(math.Ceil(rem/j.rate - 1e-9))
		}
	}
	if j.maxSec > 0 && j.duration != NoDuration {
		if lim := j.segStart + j.maxSec; at < 0 || lim < at {
			at = lim
		}
	}
	if at >= 0 {
		e.pushJobEvent(event{t: max(at, e.now), kind: evFinish, job: ji, ver: j.finVer})
	}
}

// advanceJob brings a running job's work, checkpoints and accounting up to
// time t.
func (e *engine) advanceJob(j *simJob, t int64) {
	dt := t - j.lastT
	if dt <= 0 {
		return
	}
	if j.ckptSec > 0 && t >= j.nextCkpt {
		k := (t - j.nextCkpt) / j.ckptSec
		tc := j.nextCkpt + k*j.ckptSec
		j.ckptWork = j.work + j.rate*float64(tc-j.lastT)
		j.sinceCkpt = float64(j.alloc) * float64(t-tc)
		j.nextCkpt = tc + j.ckptSec
	} else {
		j.sinceCkpt += float64(j.alloc) * float64(dt)
	}
	j.work += j.rate * float64(dt)
	j.accelMilliSec += float64(j.alloc) * float64(dt)
	j.lastT = t
}

func (e *engine) complete(ji int32) error {
	j := &e.jobs[ji]
	e.advanceJob(j, e.now)
	if j.work >= float64(j.duration)-1e-6 {
		if err := e.apply(sched.JobFinished{ID: j.id}); err != nil {
			return fmt.Errorf("job %s: %w", j.id, err)
		}
		e.releaseAll(j)
		e.running--
		e.done(ji, StatusFinished)
	} else {
		reason := fmt.Sprintf("ran past its maxSec of %d seconds", j.maxSec)
		if err := e.apply(sched.JobFailed{ID: j.id, Reason: reason}); err != nil {
			return fmt.Errorf("job %s: %w", j.id, err)
		}
		e.releaseAll(j)
		e.running--
		j.reason = reason
		e.done(ji, StatusTimedOut)
	}
	e.dirty = true
	return nil
}

// stop ends a job's current run: work since its last checkpoint is lost,
// its capacity freed, and it waits again.
func (e *engine) stop(ji int32, failure bool) {
	j := &e.jobs[ji]
	e.advanceJob(j, e.now)
	suspended := j.suspending && !failure
	j.suspending = false
	switch {
	case suspended:
		// Suspended at a checkpoint: everything done so far is saved.
		j.ckptWork, j.sinceCkpt = j.work, 0
	case j.kind != sched.Service:
		if failure {
			e.c.lostFailure += j.sinceCkpt
		} else {
			e.c.lostPreempt += j.sinceCkpt
		}
		j.lostMilliSec += j.sinceCkpt
	}
	if !suspended {
		e.c.requeues++
		if failure {
			e.c.failRequeues++
		}
		j.requeues++
	}
	if j.ckptWork > j.savedAtStart {
		e.lastProgress = e.now
	}
	j.work, j.sinceCkpt = j.ckptWork, 0
	e.releaseAll(j)
	j.shrinks = nil
	j.state = jsPending
	j.runVer++
	j.finVer++
	e.running--
	e.pending++
}

func (e *engine) applyShrinks(ji int32) {
	j := &e.jobs[ji]
	e.advanceJob(j, e.now)
	kept := j.shrinks[:0]
	for _, s := range j.shrinks {
		if s.at > e.now {
			kept = append(kept, s)
			continue
		}
		for _, p := range s.pairs {
			for k, b := range j.binds {
				if int(b.gang) == p[0] && int(b.replica) == p[1] {
					e.take(j, b, -1)
					j.binds = append(j.binds[:k], j.binds[k+1:]...)
					break
				}
			}
		}
	}
	j.shrinks = kept
	e.setRate(j)
	e.scheduleFinish(ji)
}

func (e *engine) releaseAll(j *simJob) {
	for _, b := range j.binds {
		e.take(j, b, -1)
	}
	j.binds = j.binds[:0]
	j.rate = 0
}

// done ends a job: its record is kept and its slot freed. The job must not
// be used afterwards.
func (e *engine) done(ji int32, status string) {
	j := &e.jobs[ji]
	e.lastProgress = e.now
	if j.state == jsPending {
		e.pending--
	}
	j.status = status
	j.end = e.now
	if j.duration != NoDuration {
		e.finiteLeft--
		e.lastEnd = max(e.lastEnd, j.end)
	}
	delete(e.byID, j.id)
	e.keep(j)
	e.jobs[ji] = simJob{state: jsDone, finVer: j.finVer + 1, runVer: j.runVer + 1}
	e.free = append(e.free, ji)
}

// keep turns a job into its record.
func (e *engine) keep(j *simJob) {
	rec := JobRecord{
		ID: string(j.id), Tenant: e.tenants[j.tenant], Queue: e.queueNames[j.queue], Kind: j.kind.String(),
		Accels: round6(j.accels), Arrival: j.arrival, Start: j.start, End: j.end, Wait: -1,
		Status: j.status, Preemptions: int(j.preemptions), Requeues: int(j.requeues),
		AccelHours:     round6(j.accelMilliSec / 1000 / 3600),
		LostAccelHours: round6(j.lostMilliSec / 1000 / 3600),
		Reason:         j.reason,
	}
	if j.start >= 0 {
		rec.Wait = j.start - j.arrival
	}
	e.records = append(e.records, rec)
	e.recSeq = append(e.recSeq, j.seq)
}

// take adds (sign +1) or removes (-1) one replica's accelerators from the
// books: node, power class, tenant and job.
func (e *engine) take(j *simJob, b bindRec, sign int64) {
	m := sign * int64(b.milli)
	if m == 0 {
		return
	}
	t := j.tenant
	e.tenantMS[t] += float64(e.tenantUsed[t]) * float64(e.now-e.tenantLast[t])
	e.tenantLast[t] = e.now
	e.tenantUsed[t] += m
	j.alloc += m
	n := &e.nodes[b.node]
	before := n.used
	n.used += m
	if n.up {
		e.usedUp += m
		if n.class >= 0 {
			e.classes[n.class].usedMilli += m
		}
		switch {
		case before == 0 && n.used > 0:
			e.freeEmpty -= n.cap
		case before > 0 && n.used == 0:
			e.freeEmpty += n.cap
		}
	}
	if n.retiring && n.used == 0 && !n.gone {
		e.remove(b.node)
	}
}

func (e *engine) setUp(ni int32, up bool) {
	n := &e.nodes[ni]
	if n.up == up {
		return
	}
	sign := int64(1)
	if !up {
		sign = -1
	}
	n.up = up
	e.capUp += sign * n.cap
	e.usedUp += sign * n.used
	if n.used == 0 {
		e.freeEmpty += sign * n.cap
	}
	if n.class >= 0 {
		c := &e.classes[n.class]
		c.upAccels += sign * n.cap / 1000
		c.usedMilli += sign * n.used
	}
}

// severalTypes reports whether the fleet has more than one accelerator
// type.
func (e *engine) severalTypes() bool {
	for _, c := range e.classes {
		if c.accel != e.classes[0].accel {
			return true
		}
	}
	return false
}

// utilizationByType is busy over available accelerator-time for each
// accelerator type: since the last sample, or over the whole run.
func (e *engine) utilizationByType(sinceSample bool) map[string]float64 {
	busy, avail := map[string]float64{}, map[string]float64{}
	for _, c := range e.classes {
		b, a := c.busyInt, c.capInt
		if sinceSample {
			b, a = b-c.sampleBusy, a-c.sampleCap
		}
		busy[c.accel] += b
		avail[c.accel] += a
	}
	out := map[string]float64{}
	for t, a := range avail {
		if a > 0 {
			out[t] = busy[t] / a
		}
	}
	return out
}

// power is the facility power draw now, in watts, and the IT part of it.
func (e *engine) power() (facility, it float64) {
	for i := range e.classes {
		c := &e.classes[i]
		p := float64(c.upAccels)*c.idleW + float64(c.usedMilli)/1000*c.busyW
		it += p
		facility += p * c.pue
	}
	return facility, it
}

func (e *engine) fragmentation() float64 {
	free := e.capUp - e.usedUp
	if free <= 0 {
		return 0
	}
	return 1 - float64(e.freeEmpty)/float64(free)
}

// accumulate integrates the fleet-wide state up to t.
func (e *engine) accumulate(t int64) {
	dt := float64(t - e.lastAcc)
	if dt <= 0 {
		return
	}
	fac, it := e.power()
	e.energyJ += fac * dt
	e.itEnergyJ += it * dt
	e.busyInt += float64(e.usedUp) * dt
	e.capInt += float64(e.capUp) * dt
	for i := range e.classes {
		c := &e.classes[i]
		c.busyInt += float64(c.usedMilli) * dt
		c.capInt += float64(c.upAccels) * 1000 * dt
	}
	e.fragInt += e.fragmentation() * dt
	e.lastAcc = t
}

// sampleUpTo records the samples whose interval ends at or before t.
func (e *engine) sampleUpTo(t int64) {
	for e.nextSample <= t {
		e.accumulate(e.nextSample)
		e.record(e.nextSample)
		e.nextSample += e.cfg.SampleSec
	}
}

func (e *engine) record(at int64) {
	span := float64(at - e.lastSample)
	e.lastSample = at
	s := Sample{T: at, Pending: e.pending, Running: e.running}
	if c := e.capInt - e.sampleCap; c > 0 {
		s.Utilization = (e.busyInt - e.sampleBusy) / c
	}
	if span > 0 {
		s.Fragmentation = (e.fragInt - e.sampleFrag) / span
		s.PowerKW = (e.energyJ - e.sampleEnerg) / span / 1000
		s.BusyAccels = (e.busyInt - e.sampleBusy) / span / 1000
	}
	s.CapacityAccels = float64(e.capUp) / 1000
	if e.severalTypes() {
		s.UtilizationByType = e.utilizationByType(true)
	}
	for i := range e.classes {
		c := &e.classes[i]
		c.sampleBusy, c.sampleCap = c.busyInt, c.capInt
	}
	e.sampleBusy, e.sampleCap, e.sampleFrag, e.sampleEnerg = e.busyInt, e.capInt, e.fragInt, e.energyJ
	e.samples = append(e.samples, s)
}

// finish closes the books at the end of the run.
func (e *engine) finish() {
	if !e.started {
		return
	}
	e.accumulate(e.now)
	if len(e.samples) == 0 || e.samples[len(e.samples)-1].T < e.now {
		e.record(e.now)
	}
	for t := range e.tenants {
		e.tenantMS[t] += float64(e.tenantUsed[t]) * float64(e.now-e.tenantLast[t])
		e.tenantLast[t] = e.now
	}
	if h, ok := e.core.(interface{ Holdings(func(sched.Usage) bool) }); ok {
		h.Holdings(func(u sched.Usage) bool {
			u.To = e.now
			e.usageMS[u.Tenant] += u.AccelMilliSeconds()
			if e.cfg.Usage != nil {
				e.cfg.Usage(u)
			}
			return true
		})
	}
	for i := range e.jobs {
		j := &e.jobs[i]
		switch j.state {
		case jsRunning, jsPreempting:
			e.advanceJob(j, e.now)
			j.status = StatusRunning
		case jsPending:
			j.status = StatusPending
		default:
			continue
		}
		e.keep(j)
	}
	e.jobs, e.free = nil, nil
}
