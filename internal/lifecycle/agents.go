package lifecycle

import (
	"fmt"
	"maps"
	"slices"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// orphan is a process an agent reports running that no live replica of
// the machine accounts for: a replica of a node that went down and came
// back, one stopped before the server knew it had started, one of a job
// the server no longer holds. Its devices are held apart and it is told to
// stop.
type orphan struct {
	key     api.ReplicaKey
	devices []int
	milli   int32
	stopMs  int64
}

func orphanKey(node string, k api.ReplicaKey) string {
	return fmt.Sprintf("orphan/%s/%s/%d/%d/%d", node, k.Job, k.Attempt, k.Gang, k.Replica)
}

// Heartbeat records a node's report of its replicas: processes running,
// exits. A process the machine does not account for is an orphan: its
// devices are held apart from placement until the agent reports it gone,
// and the node's desired state tells the agent to stop it.
func (m *Machine) Heartbeat(node string, reports []api.ReplicaStatus, nowMs int64) Out {
	seen := map[string]bool{}
	for _, st := range reports {
		j := m.jobs[st.Job]
		var r *Replica
		current := false
		if j != nil {
			r, current = FindReplica(j, st.Gang, st.Replica, st.Attempt)
		}
		if r == nil || r.Node != node || r.Gone() {
			if st.State == api.ReplicaRunning {
				seen[orphanKey(node, st.ReplicaKey)] = true
				m.orphanRunning(node, st, nowMs)
			} else {
				m.orphanGone(node, st.ReplicaKey)
			}
			continue
		}
		if !r.Sent {
			// The agent runs it, whatever the record said (a restart may
			// have lost the note that it was sent).
			r.Sent = true
			m.out.dirty(j)
		}
		switch st.State {
		case api.ReplicaRunning:
			if r.State == ReplicaStarting {
				r.State = ReplicaRunning
				m.out.dirty(j)
			}
			if j.Service != nil && current {
				m.serviceReport(j, r, st.Port, st.Ready, nowMs)
			}
		case api.ReplicaExited:
			if !current {
				r.State, r.Exit, r.Signal = ReplicaExited, st.ExitCode, st.Signal
				m.release(j, r)
				j.Stale = slices.DeleteFunc(j.Stale, func(o Replica) bool {
					return o.Attempt == st.Attempt && o.Gang == st.Gang && o.Replica == st.Replica
				})
				m.out.dirty(j)
				continue
			}
			m.exited(j, r, st.ExitCode, st.Signal, false, nowMs)
		}
	}
	// Orphans the agent no longer reports are gone.
	for k := range m.orphans[node] {
		if !seen[k] {
			m.orphanGone(node, m.orphans[node][k].key)
		}
	}
	return m.flush()
}

func (m *Machine) orphanRunning(node string, st api.ReplicaStatus, nowMs int64) {
	k := orphanKey(node, st.ReplicaKey)
	if _, ok := m.orphans[node][k]; ok {
		return
	}
	if m.orphans == nil {
		m.orphans = map[string]map[string]*orphan{}
	}
	if m.orphans[node] == nil {
		m.orphans[node] = map[string]*orphan{}
	}
	o := &orphan{key: st.ReplicaKey, devices: slices.Clone(st.Devices), milli: st.Milli, stopMs: nowMs + m.cfg.StopGraceMs}
	m.orphans[node][k] = o
	if len(o.devices) > 0 {
		milli := o.milli
		if milli <= 0 {
			milli = 1000
		}
		m.out.Core = append(m.out.Core, sched.DevicesHeld{Key: k, Node: node, Devices: o.devices, Milli: milli})
	}
}

func (m *Machine) orphanGone(node string, key api.ReplicaKey) {
	k := orphanKey(node, key)
	o, ok := m.orphans[node][k]
	if !ok {
		return
	}
	delete(m.orphans[node], k)
	if len(o.devices) > 0 {
		m.out.Core = append(m.out.Core, sched.DevicesFreed{Key: k})
	}
}

// Orphans counts the processes held as orphans, per node (for metrics and
// tests).
func (m *Machine) Orphans() map[string]int {
	out := map[string]int{}
	for n, os := range m.orphans {
		if len(os) > 0 {
			out[n] = len(os)
		}
	}
	return out
}

// Desired is a node's desired state: every replica that should run, and
// stop orders for those that should not, orphans included. It marks the
// replicas it hands out as sent (persist the dirty jobs before answering).
func (m *Machine) Desired(node string, nowMs int64) (api.HeartbeatResponse, Out) {
	resp := api.HeartbeatResponse{Run: []api.Assignment{}, Stop: []api.StopOrder{}}
	for _, id := range slices.Sorted(maps.Keys(m.onNode[node])) {
		j := m.jobs[id]
		if j == nil {
			continue
		}
		for _, list := range [][]Replica{j.Replicas, j.Stale} {
			for i := range list {
				r := &list[i]
				if r.Node != node || r.Gone() {
					continue
				}
				key := api.ReplicaKey{Job: j.ID, Gang: r.Gang, Replica: r.Replica, Attempt: r.Attempt}
				if m.runs(j, r) {
					a := api.Assignment{ReplicaKey: key, Command: j.Run.Command, Env: r.Env}
					if !j.Run.Independent() && j.Run.Resize != ResizeRestart && j.isElastic() {
						a.Membership = j.membership(m)
					}
					if j.Service != nil {
						a.Service = &api.ServiceRun{Port: j.Service.Spec.ReadinessPort}
						if r.Rank == 0 {
							a.Service.ReadinessPath = j.Service.Spec.ReadinessPath
						}
					}
					resp.Run = append(resp.Run, a)
					if !r.Sent {
						// Stored with the next commit. Should the server
						// die first, a later stop counts the replica as
						// never started, and its agent stops the process
						// itself as one nobody asked for.
						r.Sent = true
						m.out.dirty(j)
					}
				} else {
					deadline := r.StopMs
					if deadline == 0 {
						deadline = nowMs + m.cfg.StopGraceMs
					}
					resp.Stop = append(resp.Stop, api.StopOrder{ReplicaKey: key, DeadlineUnixMilli: deadline})
				}
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.orphans[node])) {
		o := m.orphans[node][k]
		resp.Stop = append(resp.Stop, api.StopOrder{ReplicaKey: o.key, DeadlineUnixMilli: o.stopMs})
	}
	return resp, m.flush()
}

// runs reports whether replica r of j should be running.
func (m *Machine) runs(j *Job, r *Replica) bool {
	if r.StopMs != 0 || r.Unit >= len(j.Units) {
		return false
	}
	u := &j.Units[r.Unit]
	switch u.State {
	case Running, Preempting, Cancelling:
	default:
		return false
	}
	return r.Attempt == u.Attempt
}

// isElastic reports whether some gang of j may change size.
func (j *Job) isElastic() bool {
	for _, g := range j.Spec.Gangs {
		if g.MinReplicas > 0 && g.MinReplicas < g.Replicas {
			return true
		}
	}
	return false
}

// membership is the current attempt's live replicas with their ranks, for
// a resizable gang (ResizeNotify).
func (j *Job) membership(m *Machine) *api.Membership {
	ms := &api.Membership{Generation: j.Generation}
	for i := range j.Replicas {
		r := &j.Replicas[i]
		if r.Shrunk || r.Gone() {
			continue
		}
		addr, _, _ := m.cfg.Node(r.Node)
		ms.Members = append(ms.Members, api.Member{Rank: r.Rank, Node: r.Node, Address: addr, Gang: r.Gang, Replica: r.Replica})
	}
	slices.SortFunc(ms.Members, func(a, b api.Member) int { return a.Rank - b.Rank })
	ms.WorldSize = len(ms.Members)
	return ms
}

// NodeDown records that a node stopped answering: every replica on it is
// lost (the core, told NodeFailed, requeues their units; the driver hands
// that Ready to Take after this), and its orphans are forgotten (should
// the node come back with them, its agent reports them again).
func (m *Machine) NodeDown(node string, nowMs int64) Out {
	for _, j := range m.OnNode(node) {
		j.Stale = slices.DeleteFunc(j.Stale, func(r Replica) bool { return r.Node == node })
		for i := range j.Replicas {
			if r := &j.Replicas[i]; r.Node == node && !r.Gone() {
				r.State = ReplicaLost
				m.release(j, r)
			}
		}
		for u := range j.Units {
			m.finishStop(j, u, nowMs)
		}
		m.out.dirty(j)
	}
	for k := range m.orphans[node] {
		m.orphanGone(node, m.orphans[node][k].key)
	}
	delete(m.onNode, node)
	return m.flush()
}

// Evict stops the jobs running on a node as a preemption without notice
// stops them (a drain that evicts): SIGTERM now, SIGKILL after the stop
// grace; they are requeued once their processes are gone, so their devices
// are never handed on while they still run.
func (m *Machine) Evict(node string, nowMs int64) Out {
	for _, j := range m.OnNode(node) {
		for u := range j.Units {
			un := &j.Units[u]
			if un.State != Running || un.Stopping != nil {
				continue
			}
			if !slices.ContainsFunc(j.Replicas, func(r Replica) bool { return r.Unit == u && r.Node == node && !r.Gone() }) {
				continue
			}
			un.State, un.Reason = Preempting, "evicted: node "+node+" is drained"
			j.addEvent(nowMs, EventPreempted, "evicted: node "+node+" is drained"+unitText(j, u))
			m.beginStop(j, u, Stopping{Reason: "requeued: node " + node + " was drained", Requeue: true}, nowMs+m.cfg.StopGraceMs, nowMs)
		}
	}
	return m.flush()
}

// Bound reports whether a node holds a replica of running work.
func (m *Machine) Bound(node string) bool {
	for _, j := range m.OnNode(node) {
		for i := range j.Replicas {
			if r := &j.Replicas[i]; r.Node == node && !r.Shrunk && !r.Gone() {
				return true
			}
		}
	}
	return false
}

// Vouch reports whether a log chunk of a replica comes from the node the
// machine places it on; known is false when the job is not live.
func (m *Machine) Vouch(node string, k api.ReplicaKey) (ok, known bool) {
	j := m.jobs[k.Job]
	if j == nil {
		return false, false
	}
	r, _ := FindReplica(j, k.Gang, k.Replica, k.Attempt)
	return r != nil && r.Node == node, true
}

// Held lists the replicas whose devices the core must hold apart, as
// DevicesHeld events: what a driver that rebuilds a core from the records
// applies after the nodes and before the jobs.
func (m *Machine) Held() []sched.DevicesHeld {
	var out []sched.DevicesHeld
	ids := slices.Sorted(maps.Keys(m.jobs))
	for _, id := range ids {
		j := m.jobs[id]
		for _, list := range [][]Replica{j.Replicas, j.Stale} {
			for i := range list {
				r := &list[i]
				if !r.Held || r.Gone() {
					continue
				}
				sh := j.Spec.Gangs[r.Gang].Shape
				out = append(out, sched.DevicesHeld{Key: heldKey(j, r), Node: r.Node, Devices: slices.Clone(r.Devices),
					Milli: r.Milli, CPUMilli: sh.CPUMilli, MemoryMiB: sh.MemoryMiB})
			}
		}
	}
	return out
}
