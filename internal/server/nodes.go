package server

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// register adds a node or welcomes a known one back.
func (l *loop) register(info api.NodeInfo, now time.Time) *api.Error {
	if n := l.nodes[info.Name]; n != nil {
		old := n.rec.Info
		if old.Accel != info.Accel || old.Count != info.Count || old.CPUMilli != info.CPUMilli ||
			old.MemoryMiB != info.MemoryMiB || !maps.Equal(old.Path, info.Path) {
			return api.Conflict("node %s is registered with another inventory (%d x %q, path %v); give the new machine another name", info.Name, old.Count, old.Accel, old.Path)
		}
		n.rec.Info.Address, n.rec.Info.Labels = info.Address, info.Labels
		n.lastSeen = now
		l.markNode(n)
		l.nodeBack(n)
		return nil
	}
	fn, err := fleetNode(info)
	if err != nil {
		return err.(*api.Error)
	}
	if _, err := l.core.Apply(sched.NodeAdded{Node: fn}); err != nil {
		return api.Invalid("", "node %s: %v", info.Name, err)
	}
	n := &node{rec: store.Node{Info: info, State: fleet.Ready.String(), Registered: now.Unix()}, lastSeen: now}
	l.nodes[info.Name] = n
	l.markNode(n)
	return nil
}

func (l *loop) nodeBack(n *node) {
	if n.rec.State != fleet.Down.String() {
		return
	}
	if _, err := l.core.Apply(sched.NodeReturned{Node: n.rec.Info.Name}); err != nil {
		l.log.Warn("core refused a node's return", "node", n.rec.Info.Name, "err", err)
		return
	}
	n.rec.State = fleet.Ready.String()
	if n.rec.Drained {
		// An administrator's drain outlasts a spell down. The node holds
		// nothing now (it was requeued when it went down).
		if _, err := l.core.Apply(sched.NodeCordoned{Node: n.rec.Info.Name}); err != nil {
			l.log.Warn("core refused to keep a returning node drained", "node", n.rec.Info.Name, "err", err)
		} else {
			n.rec.State = fleet.Draining.String()
		}
	}
	l.markNode(n)
	l.log.Info("node is back", "node", n.rec.Info.Name, "state", n.rec.State)
}

// checkNodes marks nodes that missed heartbeats down.
func (l *loop) checkNodes(now time.Time) {
	for _, name := range slices.Sorted(maps.Keys(l.nodes)) {
		n := l.nodes[name]
		if n.rec.State == fleet.Down.String() || now.Sub(n.lastSeen) < l.s.cfg.HeartbeatTimeout {
			continue
		}
		reason := fmt.Sprintf("no heartbeat for %s", now.Sub(n.lastSeen).Round(time.Second))
		l.log.Warn("node down", "node", name, "reason", reason)
		l.nodeDown(n, reason, now)
	}
}

func (l *loop) nodeDown(n *node, reason string, now time.Time) {
	name := n.rec.Info.Name
	r, err := l.core.Apply(sched.NodeFailed{Node: name, Reason: reason})
	if err != nil {
		l.log.Error("core refused a node failure", "node", name, "err", err)
		return
	}
	// The core requeued what ran on the node (Requeue actions); mirror it
	// per job once its replicas there are marked lost.
	requeued := map[string]sched.Requeue{}
	var other []sched.Action
	for _, a := range r.Actions {
		if rq, ok := a.(sched.Requeue); ok {
			requeued[string(rq.Job)] = rq
			continue
		}
		other = append(other, a)
	}
	l.handle(other, now)
	n.rec.State = fleet.Down.String()
	l.markNode(n)
	for _, id := range slices.Sorted(maps.Keys(l.onNode[name])) {
		j := l.jobs[id]
		if j == nil {
			continue
		}
		j.Stale = slices.DeleteFunc(j.Stale, func(r store.Replica) bool { return r.Node == name })
		var lost []*store.Replica
		for i := range j.Replicas {
			if r := &j.Replicas[i]; r.Node == name && !r.Gone() {
				r.State = store.ReplicaLost
				lost = append(lost, r)
			}
		}
		l.markJob(j)
		if len(lost) == 0 {
			continue
		}
		if _, ok := requeued[id]; ok && !store.Terminal(j.State) && j.State != store.Pending {
			l.requeue(id, "node "+name+" is down: "+reason, now)
		}
		l.finishStop(j, now)
	}
	delete(l.onNode, name)
}

// vouchLogs splits a node's log chunks into those of replicas the loop
// knows on that node and those of jobs it does not hold (finished ones).
func (l *loop) vouchLogs(nodeName string, chunks []api.LogChunk) (known, unknown []api.LogChunk) {
	for _, c := range chunks {
		if j := l.jobs[c.Job]; j != nil {
			if r, _ := findReplica(j, c.ReplicaKey); r != nil && r.Node == nodeName {
				known = append(known, c)
			}
			continue
		}
		unknown = append(unknown, c)
	}
	return known, unknown
}

// heartbeat records a node's report of its replicas.
func (l *loop) heartbeat(req api.HeartbeatRequest, now time.Time) *api.Error {
	n := l.nodes[req.Node]
	if n == nil {
		return api.NotFound("node %s is not registered", req.Node)
	}
	n.lastSeen = now
	l.nodeBack(n)
	for _, st := range req.Replicas {
		j := l.jobs[st.Job]
		if j == nil {
			continue
		}
		r, current := findReplica(j, st.ReplicaKey)
		if r == nil || r.Node != req.Node || r.Gone() {
			continue
		}
		if !r.Sent {
			// The agent runs it, whatever the store said (a restart may
			// have lost the note that it was sent).
			r.Sent = true
			l.markJob(j)
		}
		switch st.State {
		case api.ReplicaRunning:
			if r.State == store.ReplicaStarting {
				r.State = store.ReplicaRunning
				l.markJob(j)
			}
		case api.ReplicaExited:
			if !current {
				j.Stale = slices.DeleteFunc(j.Stale, func(o store.Replica) bool {
					return o.Attempt == st.Attempt && o.Gang == st.Gang && o.Replica == st.Replica
				})
				l.markJob(j)
				continue
			}
			l.replicaExited(j, r, st, false, now)
		}
	}
	return nil
}

func findReplica(j *store.Job, k api.ReplicaKey) (r *store.Replica, current bool) {
	for i := range j.Replicas {
		if r := &j.Replicas[i]; r.Attempt == k.Attempt && r.Gang == k.Gang && r.Replica == k.Replica {
			return r, true
		}
	}
	for i := range j.Stale {
		if r := &j.Stale[i]; r.Attempt == k.Attempt && r.Gang == k.Gang && r.Replica == k.Replica {
			return r, false
		}
	}
	return nil, false
}

// desired is the node's desired state: every replica that should run, and
// stop orders for those that should not.
func (l *loop) desired(name string) api.HeartbeatResponse {
	resp := api.HeartbeatResponse{Run: []api.Assignment{}, Stop: []api.StopOrder{}, IntervalMillis: int(l.s.cfg.HeartbeatInterval.Milliseconds())}
	for _, id := range slices.Sorted(maps.Keys(l.onNode[name])) {
		j := l.jobs[id]
		if j == nil {
			continue
		}
		running := j.State == store.Running || j.State == store.Preempting || j.State == store.Cancelling
		for _, list := range [][]store.Replica{j.Replicas, j.Stale} {
			for i := range list {
				r := &list[i]
				if r.Node != name || r.Gone() {
					continue
				}
				key := api.ReplicaKey{Job: j.ID, Gang: r.Gang, Replica: r.Replica, Attempt: r.Attempt}
				if r.StopMs == 0 && running && r.Attempt == j.Attempt {
					resp.Run = append(resp.Run, api.Assignment{ReplicaKey: key, Command: j.Run.Command, Env: r.Env})
					if !r.Sent {
						// Stored with the next commit. Should the server
						// die first, a later stop counts the replica as
						// never started, and its agent stops the process
						// itself as one nobody asked for.
						r.Sent = true
						l.markJob(j)
					}
				} else {
					deadline := r.StopMs
					if deadline == 0 {
						deadline = l.now().Add(l.s.cfg.StopGrace).UnixMilli()
					}
					resp.Stop = append(resp.Stop, api.StopOrder{ReplicaKey: key, DeadlineUnixMilli: deadline})
				}
			}
		}
	}
	return resp
}
