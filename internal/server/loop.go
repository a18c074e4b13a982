package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// loop is the state the loop goroutine owns: the core and the live jobs
// and nodes that mirror what the store holds.
type loop struct {
	s    *Server
	log  *slog.Logger
	core *sched.Core
	// specs is the queue tree as the core has it.
	specs []quota.Spec
	nodes map[string]*node
	// jobs holds every job that is not finished, and finished jobs whose
	// processes are still being stopped.
	jobs map[string]*store.Job
	// onNode indexes live jobs by the nodes their replicas are on.
	onNode map[string]map[string]struct{}

	dirtyJobs  map[string]*store.Job
	dirtyNodes map[string]*node
	// after runs once the pending writes are durable (err nil) or failed.
	after    []func(err error)
	lastTick time.Time
	// lastPrune and pruneFrom pace the sweep for finished jobs past their
	// retention (see prune).
	lastPrune time.Time
	pruneFrom uint64
}

type node struct {
	rec      store.Node
	lastSeen time.Time
}

func (l *loop) now() time.Time { return l.s.cfg.Now() }

func (l *loop) markJob(j *store.Job) { l.dirtyJobs[j.ID] = j }
func (l *loop) markNode(n *node)     { l.dirtyNodes[n.rec.Info.Name] = n }

// afterCommit runs fn once the writes made so far are durable.
func (l *loop) afterCommit(fn func(err error)) { l.after = append(l.after, fn) }

func (l *loop) run(ctx context.Context) error {
	t := time.NewTicker(l.s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-l.s.inbox:
			o(l)
			l.drain()
		case <-t.C:
		}
		now := l.now()
		if now.Sub(l.lastTick) >= l.s.cfg.Tick {
			l.tick(now)
		}
		l.cycle(now)
		if err := l.commit(); err != nil {
			return err
		}
	}
}

// drain takes the ops already waiting, so one cycle and one commit serve
// them all.
func (l *loop) drain() {
	for range cap(l.s.inbox) {
		select {
		case o := <-l.s.inbox:
			o(l)
		default:
			return
		}
	}
}

func (l *loop) tick(now time.Time) {
	l.lastTick = now
	l.checkNodes(now)
	l.updateGauges()
	if l.s.cfg.Retain > 0 && now.Sub(l.lastPrune) >= pruneEvery {
		l.lastPrune = now
		l.prune(now)
	}
}

// pruneEvery is how often the loop looks for finished jobs past their
// retention; pruneScan bounds the records one look reads, so a large store
// is swept a slice at a time without holding up the loop.
const (
	pruneEvery = time.Minute
	pruneScan  = 5000
)

// prune deletes finished jobs that ended more than Retain ago, with their
// idempotency keys and logs. Only jobs the loop no longer tracks qualify:
// ended, and no replica of any attempt still alive.
func (l *loop) prune(now time.Time) {
	before := now.Add(-l.s.cfg.Retain).UnixMilli()
	gone, next, err := l.s.db.PruneJobs(l.pruneFrom, pruneScan, func(j *store.Job) bool {
		_, live := l.jobs[j.ID]
		return !live && store.Terminal(j.State) && !hasLive(j) && j.FinishedMs > 0 && j.FinishedMs < before
	})
	if err != nil {
		l.log.Error("pruning finished jobs failed", "err", err)
		return
	}
	l.pruneFrom = next
	for _, j := range gone {
		if err := os.RemoveAll(filepath.Join(l.s.logDir(), j.ID)); err != nil {
			l.log.Warn("removing a pruned job's logs", "job", j.ID, "err", err)
		}
	}
	if len(gone) > 0 {
		l.log.Info("pruned finished jobs", "count", len(gone), "retain", l.s.cfg.Retain)
	}
}

// cycle runs one scheduling cycle and carries out its actions.
func (l *loop) cycle(now time.Time) {
	start := time.Now()
	r := l.core.Schedule(now.Unix())
	l.s.metrics.schedLatency.Observe(time.Since(start).Seconds())
	l.take(r, now)
}

func (l *loop) commit() error {
	nodes := make([]*store.Node, 0, len(l.dirtyNodes))
	for _, n := range l.dirtyNodes {
		nodes = append(nodes, &n.rec)
	}
	jobs := make([]*store.Job, 0, len(l.dirtyJobs))
	for _, j := range l.dirtyJobs {
		jobs = append(jobs, j)
	}
	clear(l.dirtyNodes)
	clear(l.dirtyJobs)
	err := l.s.db.Commit(nodes, jobs)
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
		l.log.Error("store commit failed; stopping", "err", err)
	}
	after := l.after
	l.after = nil
	for _, fn := range after {
		fn(err)
	}
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if store.Terminal(j.State) && !hasLive(j) {
			l.evict(j)
		}
	}
	return nil
}

func hasLive(j *store.Job) bool {
	for i := range j.Replicas {
		if !j.Replicas[i].Gone() {
			return true
		}
	}
	return len(j.Stale) > 0
}

func (l *loop) evict(j *store.Job) {
	delete(l.jobs, j.ID)
	for i := range j.Replicas {
		if m := l.onNode[j.Replicas[i].Node]; m != nil {
			delete(m, j.ID)
		}
	}
}

func (l *loop) index(nodeName, job string) {
	m := l.onNode[nodeName]
	if m == nil {
		m = map[string]struct{}{}
		l.onNode[nodeName] = m
	}
	m[job] = struct{}{}
}

// restore rebuilds the core from the store: queues, then nodes, then
// running jobs with their exact bindings, then pending jobs in submission
// order.
func restore(s *Server) (*loop, error) {
	specs, err := s.db.Queues()
	if err != nil {
		return nil, err
	}
	tree, err := quota.New(specs)
	if err != nil {
		return nil, fmt.Errorf("queues in the store: %w", err)
	}
	f, err := fleet.New(nil, nil, nil)
	if err != nil {
		return nil, err
	}
	core, err := sched.New(s.cfg.Sched, f, tree)
	if err != nil {
		return nil, fmt.Errorf("scheduling core: %w", err)
	}
	now := s.cfg.Now()
	l := &loop{
		s: s, log: s.log, core: core, specs: specs,
		nodes: map[string]*node{}, jobs: map[string]*store.Job{}, onNode: map[string]map[string]struct{}{},
		dirtyJobs: map[string]*store.Job{}, dirtyNodes: map[string]*node{}, lastTick: now,
	}
	s.queues.Store(newQueueIndex(specs))
	nodes, err := s.db.Nodes()
	if err != nil {
		return nil, err
	}
	for _, rec := range nodes {
		fn, err := fleetNode(rec.Info)
		if err == nil {
			_, err = core.Apply(sched.NodeAdded{Node: fn})
		}
		if err != nil {
			s.log.Warn("restore: node left out", "node", rec.Info.Name, "err", err)
			continue
		}
		// Every node gets a full heartbeat timeout to check in again.
		rec.State = fleet.Ready.String()
		l.nodes[rec.Info.Name] = &node{rec: rec, lastSeen: now}
	}
	var pending []*store.Job
	err = s.db.Jobs(func(j *store.Job) bool {
		switch j.State {
		case store.Running, store.Preempting, store.Cancelling:
			if _, err := core.Apply(sched.JobRestored{Job: j.Spec, Binds: restoreBinds(j), Start: j.StartedMs / 1000, Attempt: j.Attempt}); err != nil {
				s.log.Warn("restore: running job requeued", "job", j.ID, "err", err)
				l.stopAttempt(j, now)
				j.State, j.Reason, j.Stopping = store.Pending, "requeued: bindings could not be restored: "+err.Error(), nil
				pending = append(pending, j)
				l.markJob(j)
			}
		case store.Pending:
			pending = append(pending, j)
		default:
			if !hasLive(j) {
				return true
			}
		}
		l.jobs[j.ID] = j
		for i := range j.Replicas {
			l.index(j.Replicas[i].Node, j.ID)
		}
		for i := range j.Stale {
			l.index(j.Stale[i].Node, j.ID)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("restore jobs: %w", err)
	}
	for _, j := range pending {
		if err := l.apply(sched.JobSubmitted{Job: j.Spec}, now); err != nil {
			s.log.Warn("restore: pending job refused", "job", j.ID, "err", err)
			j.State, j.Reason, j.FinishedMs = store.Failed, "refused on restore: "+err.Error(), now.UnixMilli()
			l.markJob(j)
		}
	}
	if err := l.commit(); err != nil {
		return nil, err
	}
	return l, nil
}

// restoreBinds lists the bindings a running job holds in the core.
func restoreBinds(j *store.Job) []sched.Bind {
	var out []sched.Bind
	for _, r := range j.Replicas {
		if r.Shrunk {
			continue
		}
		out = append(out, sched.Bind{Job: sched.JobID(j.ID), Gang: r.Gang, Replica: r.Replica, Node: r.Node, Devices: r.Devices, Milli: r.Milli,
			Attempt: j.Attempt, Since: j.StartedMs / 1000})
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
