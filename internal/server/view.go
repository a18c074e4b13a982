package server

import (
	"math"
	"sort"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func jobView(j *store.Job) api.Job {
	v := api.Job{
		ID: j.ID, Name: j.Name, Tenant: j.Tenant, Queue: j.Queue, Kind: j.Spec.Kind.String(),
		Priority: j.Spec.Priority, Preemptible: j.Spec.Preemptible, State: j.State, Reason: j.Reason,
		Submitted: msTime(j.SubmittedMs), Started: msTime(j.StartedMs), Finished: msTime(j.FinishedMs),
		Attempt: j.Attempt, Restarts: j.Restarts, Command: j.Run.Command,
	}
	for _, g := range j.Spec.Gangs {
		v.Gangs = append(v.Gangs, api.Gang{Name: g.Name, Replicas: g.Replicas, MinReplicas: g.MinReplicas,
			Accel: g.Shape.Accel, Devices: g.Shape.Devices, Milli: g.Shape.Milli})
	}
	for _, r := range j.Replicas {
		rv := api.Replica{Rank: r.Rank, Gang: r.Gang, Replica: r.Replica, Attempt: r.Attempt, Node: r.Node, Accel: r.Accel,
			Devices: r.Devices, Milli: r.Milli, State: r.State, Signal: r.Signal, Bound: msTime(r.BoundMs)}
		if r.State == store.ReplicaExited {
			code := r.Exit
			rv.ExitCode = &code
		}
		v.Replicas = append(v.Replicas, rv)
	}
	return v
}

// explanationView is the core's explanation as the API shows it: the
// reason with its times in RFC 3339 (UTC; the command line shows them in
// local time and as "in 4m 10s"), and the status code.
func explanationView(ex sched.Explanation) *api.Explanation {
	v := &api.Explanation{State: ex.State, Reason: ex.Status.Text(wallTime), Code: ex.Status.Code.String(), Nodes: ex.Nodes}
	if ex.State == sched.StateRunning {
		v.Reason, v.Code = "", ""
	}
	if ex.EarliestStart >= 0 && ex.State == sched.StatePending {
		t := time.Unix(ex.EarliestStart, 0).UTC()
		v.EarliestStart = &t
	}
	return v
}

// wallTime renders the core's times (Unix seconds live) as RFC 3339.
func wallTime(t int64) string { return time.Unix(t, 0).UTC().Format(time.RFC3339) }

// explain is the core's explanation of a job: of its one unit, or for an
// array job of its first unit waiting (else running). With estimate set it
// also asks the core for a pending unit's earliest start (a what-if).
func (l *loop) explain(id string, estimate bool) (sched.Explanation, bool) {
	j := l.lc.Job(id)
	if j == nil {
		return sched.Explanation{}, false
	}
	pick := -1
	for u := range j.Units {
		st := j.Units[u].State
		if st == store.Pending && (pick < 0 || j.Units[pick].State != store.Pending) {
			pick = u
		}
		if pick < 0 && !store.Terminal(st) {
			pick = u
		}
	}
	if pick < 0 {
		return sched.Explanation{}, false
	}
	core := sched.JobID(j.Units[pick].Core)
	ex, ok := l.core.Explain(core)
	if ok && estimate && ex.State == sched.StatePending {
		ex.EarliestStart = l.core.EarliestStart(core)
	}
	return ex, ok
}

func quotaView(qs map[string]quota.Limits) map[string]api.Quota {
	if len(qs) == 0 {
		return nil
	}
	out := make(map[string]api.Quota, len(qs))
	for f, l := range qs {
		q := api.Quota{Nominal: float64(l.Nominal) / 1000}
		if l.Borrow != nil {
			b := float64(*l.Borrow) / 1000
			q.BorrowingLimit = &b
		}
		if l.Lend != nil {
			x := float64(*l.Lend) / 1000
			q.LendingLimit = &x
		}
		out[f] = q
	}
	return out
}

func quotaSpec(qs map[string]api.Quota) map[string]quota.Limits {
	if len(qs) == 0 {
		return nil
	}
	out := make(map[string]quota.Limits, len(qs))
	for f, q := range qs {
		l := quota.Limits{Nominal: api.Milli(q.Nominal)}
		if q.BorrowingLimit != nil {
			b := api.Milli(*q.BorrowingLimit)
			l.Borrow = &b
		}
		if q.LendingLimit != nil {
			x := api.Milli(*q.LendingLimit)
			l.Lend = &x
		}
		out[f] = l
	}
	return out
}

// held reports, per queue and flavor, the milli-accelerators running jobs
// hold, and per queue the pending and running job counts.
func (l *loop) held() (usage map[string]map[string]int64, pending, running map[string]int) {
	usage, pending, running = map[string]map[string]int64{}, map[string]int{}, map[string]int{}
	l.lc.Jobs(func(j *store.Job) {
		switch j.State {
		case store.Pending:
			pending[j.Queue]++
			return
		case store.Running, store.Preempting, store.Cancelling:
			running[j.Queue]++
		default:
			return
		}
		for _, r := range j.Replicas {
			n := l.nodes[r.Node]
			if !holding(j, &r) || n == nil {
				continue
			}
			f := quota.Flavor(n.rec.Info.Accel, j.Spec.Tier)
			m := usage[j.Queue]
			if m == nil {
				m = map[string]int64{}
				usage[j.Queue] = m
			}
			m[f] += replicaMilli(&r)
		}
	})
	return usage, pending, running
}

// holding reports whether a replica holds capacity in the core: of its
// unit's current attempt, the unit placed, not given back, not held apart.
func holding(j *store.Job, r *store.Replica) bool {
	if r.Shrunk || r.Held || r.Unit >= len(j.Units) {
		return false
	}
	u := &j.Units[r.Unit]
	switch u.State {
	case store.Running, store.Preempting, store.Cancelling:
		return r.Attempt == u.Attempt
	}
	return false
}

func replicaMilli(r *store.Replica) int64 {
	if r.Milli > 0 && r.Milli < 1000 {
		return int64(r.Milli)
	}
	return int64(len(r.Devices)) * 1000
}

// round4 keeps four decimals of a share: enough to draw, short to read.
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

func accelMap(m map[string]int64) map[string]float64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v) / 1000
	}
	return out
}

// queueViews lists queues (all, or one tenant's).
func (l *loop) queueViews(tenant string) []api.Queue {
	qi := l.s.queues.Load()
	usage, pending, running := l.held()
	stats := queueStats(l.core.Queues())
	var out []api.Queue
	for _, sp := range l.specs {
		t := qi.tenantOf[sp.Name]
		if tenant != "" && t != tenant {
			continue
		}
		u := map[string]int64{}
		for _, q := range l.specs {
			if q.Name == sp.Name || isBelow(qi, q.Name, sp.Name) {
				for f, v := range usage[q.Name] {
					u[f] += v
				}
			}
		}
		st := stats[sp.Name]
		out = append(out, api.Queue{Name: sp.Name, Tenant: t, Parent: sp.Parent, Weight: weight(sp.Weight), Strict: sp.Strict,
			Quotas: quotaView(sp.Quotas), Usage: accelMap(u), Borrowed: accelMap(st.borrowed), Lent: accelMap(st.lent),
			Share: round4(st.share), Entitlement: round4(st.entitlement), Pending: pending[sp.Name], Running: running[sp.Name]})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// weight is a queue's fair-share weight as the core uses it: 0 stands for
// the default, 1.
func weight(w float64) float64 {
	if w == 0 {
		return 1
	}
	return w
}

func isBelow(qi *queueIndex, q, ancestor string) bool {
	for i := 0; i < len(qi.specs); i++ {
		k, ok := qi.byName[q]
		if !ok || qi.specs[k].Parent == "" {
			return false
		}
		q = qi.specs[k].Parent
		if q == ancestor {
			return true
		}
	}
	return false
}

// tenantViews lists tenants (all, or one).
func (l *loop) tenantViews(tenant string) []api.Tenant {
	qi := l.s.queues.Load()
	var out []api.Tenant
	for _, q := range l.queueViews(tenant) {
		if q.Parent != "" {
			continue
		}
		queues := qi.children[q.Name]
		if queues == nil {
			queues = []string{}
		}
		out = append(out, api.Tenant{Name: q.Name, Weight: q.Weight, Quotas: q.Quotas, Usage: q.Usage, Queues: queues})
	}
	return out
}

// nodeViews lists nodes, with what their replicas hold when withUsage:
// that is every tenant's usage, for admins only.
func (l *loop) nodeViews(withUsage bool) []api.Node {
	alloc := map[string]int64{}
	l.lc.Jobs(func(j *store.Job) {
		for _, list := range [][]store.Replica{j.Replicas, j.Stale} {
			for _, r := range list {
				if holding(j, &r) || r.Held && !r.Gone() {
					alloc[r.Node] += replicaMilli(&r)
				}
			}
		}
	})
	out := make([]api.Node, 0, len(l.nodes))
	for _, n := range l.nodes {
		i := n.rec.Info
		v := api.Node{Name: i.Name, Address: i.Address, State: n.rec.State, Path: i.Path, Accel: i.Accel,
			Count: i.Count, CPUMilli: i.CPUMilli, MemoryMiB: i.MemoryMiB, Labels: i.Labels,
			LastHeartbeat: n.lastSeen.UTC(), Drained: n.rec.Drained}
		if withUsage {
			a := alloc[i.Name]
			v.AllocatedMilli = &a
		}
		out = append(out, v)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}
