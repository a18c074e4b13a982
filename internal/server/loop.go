package server

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// loop is the state the loop goroutine owns: the core and the live jobs
// and nodes that mirror what the store holds.
type loop struct {
	s    *Server
	log  *slog.Logger
	term *term
	core *sched.Core
	// specs is the queue tree as the core has it.
	specs []quota.Spec
	nodes map[string]*node
	// lc is the live job lifecycle: every job that is not finished, and
	// finished jobs whose processes are still being stopped.
	lc *lifecycle.Machine
	// acct is the ledger and what drives it (accounting.go).
	acct *accounts
	// svc is the live services' autoscalers and gateway routes.
	svc serviceLoop
	// siteCaps are the power caps administrators set, by site (sites.go).
	siteCaps map[string]store.SiteCap

	dirtyJobs  map[string]*store.Job
	dirtyNodes map[string]*node
	// newJobs are the jobs submitted since the last commit, deleted the
	// jobs it is to delete, with what to do once they are gone.
	newJobs []store.NewJob
	deleted []*store.Job
	// records are extra records for the next commit (Loop.Record).
	records []store.Record
	// seq is the highest job sequence number handed out.
	seq uint64
	// keys are the idempotency keys of the jobs this term accepted lately
	// (see submit).
	keys     map[string]keyRecord
	keyOrder []string
	// after runs once an iteration has decided everything (afterCommit);
	// waiting are the answers and actions that wait for the commit of what
	// was decided before them, inflight those of the commit in flight.
	after    []func(err error)
	waiting  []func()
	inflight []func()
	// busy is set while a commit is in flight; committed brings its
	// outcome.
	busy      bool
	committed chan commitDone
	lastTick  time.Time
	// lastPrune paces the sweep for finished jobs past their retention;
	// pruneBacklog is set while the last look found a full slice.
	lastPrune    time.Time
	pruneBacklog bool
	// cycleEnd and cycleTook pace scheduling cycles under load (see run).
	cycleEnd  time.Time
	cycleTook time.Duration
	owed      bool
	// lastReload paces the forecast's reloads (sites.go).
	lastReload time.Time
}

type node struct {
	rec      store.Node
	lastSeen time.Time
	// reported is set once the node's agent has said what it runs since
	// the server started: until then the node takes no new work.
	reported bool
}

func (l *loop) now() time.Time { return l.s.cfg.Now() }

func (l *loop) markJob(j *store.Job) { l.dirtyJobs[j.ID] = j }
func (l *loop) markNode(n *node)     { l.dirtyNodes[n.rec.Info.Name] = n }

// afterCommit runs fn at the end of this iteration, once it has decided
// everything (its scheduling cycle included); what fn answers is held until
// the commit that persists those decisions is durable. When that commit
// fails the loop stops, and the answers are not given (their callers hear
// the server is not available). err is nil: there for callers that once
// ran after the commit.
func (l *loop) afterCommit(fn func(err error)) { l.after = append(l.after, fn) }

// whenDurable runs fn once everything decided so far is durable.
func (l *loop) whenDurable(fn func()) { l.waiting = append(l.waiting, fn) }

// commitDone is the outcome of one commit.
type commitDone struct {
	err  error
	jobs []*store.Job
}

// run takes the requests waiting, runs a scheduling cycle and commits, in
// a loop: every request waiting when an iteration starts shares its one
// commit (group commit: a burst of submissions pays one fsync, or one etcd
// transaction, for all of them).
//
// A scheduling cycle runs after each iteration, except while requests keep
// waiting and less time has passed since the last cycle ended than that
// cycle took: cycles then take at most half the loop's time. The core
// walks its pending jobs in a cycle, so a cycle costs more as the backlog
// grows; without the bound a burst of submissions into a full fleet
// slowed down as the backlog grew (BenchmarkSubmit). A skipped cycle runs
// as soon as the bound allows, waiting requests or not.
//
// Commits are pipelined: while one is in flight (an fsync, an etcd
// transaction) the loop goes on taking requests and deciding; what it
// decides meanwhile goes in the next commit, sent when the one in flight is
// done. A scheduling cycle is not run while a commit is in flight: nothing
// it decides could be durable, or heard by anyone, before that commit
// returns, so it runs then, once, for everything that came meanwhile, and
// its decisions go in the next commit with the requests taken. (Running one
// per request batch instead spent five times the CPU on cycles, each
// walking every pending job, for fewer submissions: BenchmarkSubmit.) Every answer waits for the commit of everything decided before it
// (whenDurable), so nothing an agent or a client hears is lost by a crash.
func (l *loop) run(ctx context.Context) error {
	t := time.NewTicker(l.s.cfg.Tick)
	defer t.Stop()
	work := make(chan store.Change)
	l.committed = make(chan commitDone, 1)
	go func() {
		for c := range work {
			err := l.s.db.Commit(c)
			l.committed <- commitDone{err: err, jobs: c.Jobs}
		}
	}()
	defer close(work)
	for {
		var owed <-chan time.Time
		if l.owed && !l.busy {
			owed = time.After(max(time.Until(l.cycleEnd.Add(l.cycleTook)), 0))
		}
		settled := false
		select {
		case <-ctx.Done():
			return l.settleInflight(nil)
		case done := <-l.committed:
			if err := l.settleInflight(&done); err != nil {
				return err
			}
			settled = true
		case o := <-l.term.inbox:
			o(l)
			if !l.s.cfg.NoGroupCommit {
				l.drain()
			}
		case <-t.C:
		case <-owed:
		}
		if ctx.Err() != nil {
			// The term is over (or the server stopping): what the ops
			// just taken decided is not committed, and their callers hear
			// so when the term's done closes.
			return l.settleInflight(nil)
		}
		now := l.now()
		// Metering first: a pause it calls for holds before the cycle.
		l.acct.tick(l, now)
		switch {
		case settled:
			// A commit came back: a cycle owed runs now, its decisions in
			// the next commit.
			if l.owed && time.Since(l.cycleEnd) >= l.cycleTook {
				l.cycle(now)
			}
		case l.busy:
			// What a cycle decides now could not be durable before the
			// commit in flight returns: it runs then, once, for all that
			// came meanwhile.
			if now.Sub(l.lastTick) >= l.s.cfg.Tick {
				l.tick(now)
			}
			l.owed = true
		default:
			if now.Sub(l.lastTick) >= l.s.cfg.Tick {
				l.tick(now)
			}
			if len(l.term.inbox) == 0 || time.Since(l.cycleEnd) >= l.cycleTook {
				l.cycle(now)
			} else {
				l.owed = true
			}
		}
		l.decided()
		if !l.busy {
			if c, ok := l.nextChange(); ok {
				l.busy = true
				l.inflight, l.waiting = l.waiting, nil
				work <- c
				if l.s.cfg.NoGroupCommit {
					if err := l.settleInflight(nil); err != nil {
						return err
					}
				}
			}
		}
	}
}

// settleInflight takes the outcome of the commit in flight (waiting for it
// when done is nil): on success its answers are given.
func (l *loop) settleInflight(done *commitDone) error {
	if !l.busy {
		return nil
	}
	if done == nil {
		d := <-l.committed
		done = &d
	}
	l.busy = false
	if done.err != nil {
		err := fmt.Errorf("commit: %w", done.err)
		l.log.Error("store commit failed; stopping", "err", err)
		l.inflight = nil
		return err
	}
	for _, fn := range l.inflight {
		fn()
	}
	l.inflight = nil
	l.lc.Settle(done.jobs)
	return nil
}

// decided runs what waited for the end of the iteration.
func (l *loop) decided() {
	after := l.after
	l.after = nil
	for _, fn := range after {
		fn(nil)
	}
}

// drain takes the ops already waiting, so one cycle and one commit serve
// them all.
func (l *loop) drain() {
	for range cap(l.term.inbox) {
		select {
		case o := <-l.term.inbox:
			o(l)
		default:
			return
		}
	}
}

func (l *loop) tick(now time.Time) {
	l.lastTick = now
	l.checkNodes(now)
	l.autoscale(now)
	l.reloadForecast(now)
	l.updateGauges()
	if l.s.cfg.Retain > 0 && (l.pruneBacklog || now.Sub(l.lastPrune) >= pruneEvery) {
		l.lastPrune = now
		l.pruneBacklog = l.prune(now)
	}
}

// pruneEvery is how often the loop looks for finished jobs past their
// retention; pruneSlice bounds the jobs one look deletes, so that a large
// backlog of them (a store opened after a long stop, or with a shorter
// retention than before) is removed a slice a tick, each slice a small
// part of one commit, without holding up the submissions that share it
// (a commit of thousands of deletions stalls every answer waiting on it).
// The store's index of finished jobs by end time answers the look: it
// reads nothing else. pruneScan bounds the jobs one commit of a tenant's
// deletion removes.
const (
	pruneEvery = time.Minute
	pruneSlice = 500
	pruneScan  = 5000
)

// prune deletes finished jobs that ended more than Retain ago, with their
// idempotency keys and logs, at most pruneSlice of them; it reports
// whether more may be waiting. Only jobs the loop no longer tracks
// qualify: ended, and no replica of any attempt still alive.
func (l *loop) prune(now time.Time) bool {
	before := now.Add(-l.s.cfg.Retain).UnixMilli()
	old, err := l.s.db.Finished(before, pruneSlice)
	if err != nil {
		l.log.Error("reading finished jobs past their retention failed", "err", err)
		return false
	}
	more := len(old) == pruneSlice
	var gone []*store.Job
	for i := range old {
		j := &old[i]
		if l.lc.Job(j.ID) == nil && !lifecycle.Live(j) && j.FinishedMs > 0 {
			gone = append(gone, j)
		}
	}
	if len(gone) == 0 {
		return false
	}
	l.deleted = append(l.deleted, gone...)
	for _, j := range gone {
		if j.IdempotencyKey != "" {
			delete(l.keys, string(store.IdempotencyKey(j.Tenant, j.IdempotencyKey)))
		}
	}
	l.whenDurable(func() {
		for _, j := range gone {
			if err := os.RemoveAll(filepath.Join(l.s.logDir(), j.ID)); err != nil {
				l.log.Warn("removing a pruned job's logs", "job", j.ID, "err", err)
			}
		}
		l.log.Info("pruned finished jobs", "count", len(gone), "retain", l.s.cfg.Retain)
	})
	return more
}

// cycle runs one scheduling cycle and carries out its actions.
func (l *loop) cycle(now time.Time) {
	start := time.Now()
	r := l.core.Schedule(now.Unix())
	l.cycleEnd = time.Now()
	l.cycleTook = l.cycleEnd.Sub(start)
	l.owed = false
	l.s.metrics.schedLatency.Observe(l.cycleTook.Seconds())
	l.take(r, now)
}

// Record adds an extra record to the next commit: it lands with the jobs
// and nodes the loop writes then, or not at all.
func (l *loop) Record(r store.Record) { l.records = append(l.records, r) }

// nextChange is what the loop changed since the last commit, as copies the
// loop will not touch (the commit runs beside it), with what to write for
// them; ok is false when there is nothing to write and no answer waits.
// With answers waiting, a replicated store is asked to confirm the lead
// even when nothing changed: an answer is given only by a server that
// still leads.
func (l *loop) nextChange() (store.Change, bool) {
	nodes := make([]*store.Node, 0, len(l.dirtyNodes))
	for _, n := range l.dirtyNodes {
		rec := n.rec
		nodes = append(nodes, &rec)
	}
	jobs := make([]*store.Job, 0, len(l.dirtyJobs))
	for _, j := range l.dirtyJobs {
		jobs = append(jobs, store.CloneJob(j))
	}
	slices.SortFunc(jobs, func(a, b *store.Job) int { return cmp.Compare(a.Seq, b.Seq) })
	clear(l.dirtyNodes)
	clear(l.dirtyJobs)
	newJobs := make([]store.NewJob, len(l.newJobs))
	for i, n := range l.newJobs {
		n.Job = store.CloneJob(n.Job)
		newJobs[i] = n
	}
	change := store.Change{Nodes: nodes, Jobs: jobs, New: newJobs, Deleted: l.deleted, Records: l.records, Confirm: len(l.waiting) > 0}
	if len(l.newJobs) > 0 {
		change.Seq = l.seq
	}
	l.newJobs, l.deleted, l.records = nil, nil, nil
	return change, !change.Empty() || change.Confirm
}

// commit writes what the loop decided and gives the answers that waited
// for it, without a commit in flight (restore).
func (l *loop) commit() error {
	l.decided()
	c, ok := l.nextChange()
	if !ok {
		return nil
	}
	l.busy = true
	l.inflight, l.waiting = l.waiting, nil
	return l.settleInflight(&commitDone{err: l.s.db.Commit(c), jobs: c.Jobs})
}

// hasLive reports whether any process of a job may still run.
func hasLive(j *store.Job) bool { return lifecycle.Live(j) }

// restore rebuilds the core from the store: queues, then nodes, then
// running jobs with their exact bindings, then pending jobs in submission
// order.
func restore(s *Server) (*loop, error) {
	specs, err := s.db.Queues()
	if err != nil {
		return nil, err
	}
	seq, err := s.db.LastSeq()
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	l := &loop{
		s: s, log: s.log, specs: specs, nodes: map[string]*node{}, seq: seq, keys: map[string]keyRecord{},
		dirtyJobs: map[string]*store.Job{}, dirtyNodes: map[string]*node{}, lastTick: now,
		term: &term{inbox: make(chan op, 4096), done: make(chan struct{})},
	}
	l.term.loop = l
	l.lc = lifecycle.New(lifecycle.Config{StopGraceMs: s.cfg.StopGrace.Milliseconds(), Node: l.nodeFacts})
	if l.acct, err = openAccounts(s); err != nil {
		return nil, err
	}
	if err := l.loadSiteCaps(); err != nil {
		return nil, fmt.Errorf("restore site caps: %w", err)
	}
	s.queues.Store(newQueueIndex(specs))
	nodes, err := s.db.Nodes()
	if err != nil {
		return nil, err
	}
	for _, rec := range nodes {
		// Every node gets a full heartbeat timeout to check in again; one
		// an administrator drained stays drained.
		rec.State = fleet.Ready.String()
		if rec.Drained {
			rec.State = fleet.Draining.String()
		}
		l.nodes[rec.Info.Name] = &node{rec: rec, lastSeen: now}
	}
	var live []*store.Job
	err = s.db.LiveJobs(func(j *store.Job) bool {
		l.lc.Add(j, now.UnixMilli())
		live = append(live, j)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("restore jobs: %w", err)
	}
	// A running job whose bindings no longer fit waits again, in its
	// place among the pending ones; a pending job the core refuses fails.
	type unbound struct {
		j   *store.Job
		u   int
		err error
	}
	var requeued []unbound
	requeue := func(j *store.Job, u int, err error) { requeued = append(requeued, unbound{j, u, err}) }
	core, refused, err := l.buildCore(l.acct.overlay(specs, now), live, 0, requeue)
	if err != nil {
		return nil, err
	}
	l.core = core
	for _, r := range requeued {
		s.log.Warn("restore: running job requeued", "job", r.j.ID, "err", r.err)
		l.acct.requeuedAtRestore(l, r.j, r.u, now)
		l.follow(l.lc.Unbound(r.j.ID, r.u, "requeued: bindings could not be restored: "+r.err.Error(), now.UnixMilli()), now)
	}
	for _, r := range refused {
		s.log.Warn("restore: pending job refused", "job", r.job.ID, "err", r.err)
		l.follow(l.lc.Refused(r.job.ID, r.unit, "refused on restore: "+r.err.Error(), now.UnixMilli()), now)
	}
	l.restoreServices(now)
	l.reapplySiteCaps(now)
	// The running replicas are metered from their start, and the pauses
	// the ledger calls for hold before the first cycle.
	l.acct.meter(l, now)
	if err := l.commit(); err != nil {
		return nil, err
	}
	return l, nil
}

// refusal is a unit of a job the core would not take back.
type refusal struct {
	job  *store.Job
	unit int
	err  error
}

// nodeFacts tells the job lifecycle a node's address and accelerator type.
func (l *loop) nodeFacts(name string) (address, accel string, ok bool) {
	n := l.nodes[name]
	if n == nil {
		return "", "", false
	}
	return n.rec.Info.Address, n.rec.Info.Accel, true
}

// buildCore makes a scheduling core that holds what the loop holds: the
// queue tree, the nodes (each takes no new work until its agent has
// reported what it runs; a drained one keeps what runs on it), the devices
// held apart for processes that outlived their replicas, the running units
// with their exact bindings, and the pending units in submission order. A
// running unit whose bindings the core refuses goes to requeue, which makes
// it pending; a pending unit the core refuses is returned. It is how the
// server starts.
func (l *loop) buildCore(specs []quota.Spec, jobs []*store.Job, now int64, requeue func(*store.Job, int, error)) (*sched.Core, []refusal, error) {
	tree, err := quota.New(specs)
	if err != nil {
		return nil, nil, fmt.Errorf("queues in the store: %w", err)
	}
	f, err := fleet.New(nil, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	core, err := sched.New(l.schedConfig(), f, tree)
	if err != nil {
		return nil, nil, fmt.Errorf("scheduling core: %w", err)
	}
	if now > 0 {
		if _, err := core.Apply(sched.TimeAdvanced{Now: now}); err != nil {
			return nil, nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(l.nodes)) {
		n := l.nodes[name]
		fn, err := fleetNode(n.rec.Info)
		if err == nil {
			fn.State = nodeState(n.rec.State)
			if !n.reported && fn.State == fleet.Ready {
				fn.State = fleet.Draining
			}
			_, err = core.Apply(sched.NodeAdded{Node: fn})
		}
		if err != nil {
			l.log.Warn("node left out of the core", "node", name, "err", err)
		}
	}
	for _, h := range l.lc.Held() {
		if _, err := core.Apply(h); err != nil {
			l.log.Warn("devices held apart could not be restored", "key", h.Key, "err", err)
		}
	}
	jobs = slices.Clone(jobs)
	slices.SortFunc(jobs, func(a, b *store.Job) int { return cmp.Compare(a.Seq, b.Seq) })
	var refused []refusal
	type unitOf struct {
		j *store.Job
		u int
	}
	var pending []unitOf
	for _, j := range jobs {
		j.Normalize()
		coreJobs := j.CoreJobs()
		for u := range j.Units {
			un := &j.Units[u]
			if u >= len(coreJobs) {
				break
			}
			switch un.State {
			case store.Running, store.Preempting, store.Cancelling:
				_, err := core.Apply(sched.JobRestored{Job: coreJobs[u], Binds: restoreBinds(j, u), Start: un.StartedMs / 1000, Attempt: un.Attempt})
				if err != nil {
					requeue(j, u, err)
					pending = append(pending, unitOf{j, u})
				}
			case store.Pending:
				pending = append(pending, unitOf{j, u})
			}
		}
	}
	for _, p := range pending {
		r, err := core.Apply(sched.JobSubmitted{Job: p.j.CoreJobs()[p.u]})
		for _, a := range r.Actions {
			if rej, ok := a.(sched.Reject); ok && err == nil {
				err = fmt.Errorf("%s", rej.Reason)
			}
		}
		if err != nil {
			refused = append(refused, refusal{job: p.j, unit: p.u, err: err})
		}
	}
	return core, refused, nil
}

// nodeState reads a node record's state for the core.
func nodeState(s string) fleet.NodeState {
	switch s {
	case fleet.Draining.String():
		return fleet.Draining
	case fleet.Down.String():
		return fleet.Down
	}
	return fleet.Ready
}

// restoreBinds lists the bindings unit u of a running job holds in the
// core: its current attempt's replicas that were not given back (nor are
// held apart, which the core no longer counts as the unit's).
func restoreBinds(j *store.Job, u int) []sched.Bind {
	un := &j.Units[u]
	var out []sched.Bind
	for _, r := range j.Replicas {
		if r.Unit != u || r.Shrunk || r.Held || r.Attempt != un.Attempt {
			continue
		}
		since := r.BoundMs / 1000
		if since == 0 {
			since = un.StartedMs / 1000
		}
		b := sched.Bind{Job: sched.JobID(un.Core), Gang: r.Gang, Replica: r.Replica, Node: r.Node, Devices: r.Devices, Milli: r.Milli,
			Attempt: un.Attempt, Since: since}
		switch {
		case j.Service != nil:
			// A service replica's members are its unit's one gang, by rank.
			b.Gang, b.Replica = 0, r.Rank
		case j.Run.Independent():
			b.Gang, b.Replica = 0, 0
		}
		out = append(out, b)
	}
	return out
}

// fleetNode turns a registration into the fleet's node.
func fleetNode(info api.NodeInfo) (fleet.Node, error) {
	path := make([]string, len(fleet.DefaultLevels))
	for i, lvl := range fleet.DefaultLevels {
		path[i] = info.Path[lvl]
		if path[i] == "" {
			path[i] = "default"
		}
	}
	for k := range info.Path {
		if !contains(fleet.DefaultLevels, k) {
			return fleet.Node{}, api.Invalid("path."+k, "unknown topology level %q: want one of %v", k, fleet.DefaultLevels)
		}
	}
	return fleet.Node{Name: info.Name, Path: path, Accel: info.Accel, Count: info.Count, CPUMilli: info.CPUMilli,
		MemoryMiB: info.MemoryMiB, Labels: info.Labels, State: fleet.Ready}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// queueIndex is a read-only snapshot of the queue tree for handlers.
type queueIndex struct {
	specs    []quota.Spec
	byName   map[string]int
	tenantOf map[string]string
	children map[string][]string
}

func newQueueIndex(specs []quota.Spec) *queueIndex {
	qi := &queueIndex{specs: specs, byName: map[string]int{}, tenantOf: map[string]string{}, children: map[string][]string{}}
	parent := map[string]string{}
	for i, sp := range specs {
		qi.byName[sp.Name] = i
		parent[sp.Name] = sp.Parent
		if sp.Parent != "" {
			qi.children[sp.Parent] = append(qi.children[sp.Parent], sp.Name)
		}
	}
	for _, sp := range specs {
		t := sp.Name
		for depth := 0; parent[t] != "" && depth < len(specs); depth++ {
			t = parent[t]
		}
		qi.tenantOf[sp.Name] = t
	}
	for _, c := range qi.children {
		sort.Strings(c)
	}
	return qi
}

// leavesOf lists a tenant's queues that take jobs.
func (qi *queueIndex) leavesOf(tenant string) []string {
	var out []string
	for _, sp := range qi.specs {
		if qi.tenantOf[sp.Name] == tenant && len(qi.children[sp.Name]) == 0 {
			out = append(out, sp.Name)
		}
	}
	sort.Strings(out)
	return out
}
