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
		return nil
	}
	fn, err := fleetNode(info)
	if err != nil {
		return err.(*api.Error)
	}
	if _, err := l.core.Apply(sched.NodeAdded{Node: fn}); err != nil {
		return api.Invalid("", "node %s: %v", info.Name, err)
	}
	n := &node{rec: store.Node{Info: info, State: fleet.Ready.String(), Registered: now.Unix()}, lastSeen: now, reported: true}
	l.nodes[info.Name] = n
	l.markNode(n)
	return nil
}

// nodeBack lets a node that was down, or that has not reported since the
// server started, take work again, once its agent has said what it runs:
// the processes no live replica accounts for are held apart first.
func (l *loop) nodeBack(n *node) {
	if n.reported && n.rec.State != fleet.Down.String() {
		return
	}
	n.reported = true
	if n.rec.State == fleet.Down.String() || !n.rec.Drained {
		if _, err := l.core.Apply(sched.NodeReturned{Node: n.rec.Info.Name}); err != nil {
			l.log.Warn("core refused a node's return", "node", n.rec.Info.Name, "err", err)
			return
		}
	}
	n.rec.State = fleet.Ready.String()
	if n.rec.Drained {
		// An administrator's drain outlasts a spell down or a restart.
		if _, err := l.core.Apply(sched.NodeCordoned{Node: n.rec.Info.Name}); err != nil {
			l.log.Warn("core refused to keep a returning node drained", "node", n.rec.Info.Name, "err", err)
		} else {
			n.rec.State = fleet.Draining.String()
		}
	}
	l.markNode(n)
	l.log.Info("node reports", "node", n.rec.Info.Name, "state", n.rec.State)
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

// nodeDown tells the core a node failed (it requeues what ran there) and
// the machine that its replicas are lost.
func (l *loop) nodeDown(n *node, reason string, now time.Time) {
	name := n.rec.Info.Name
	r, err := l.core.Apply(sched.NodeFailed{Node: name, Reason: reason})
	if err != nil {
		l.log.Error("core refused a node failure", "node", name, "err", err)
		return
	}
	n.rec.State = fleet.Down.String()
	l.markNode(n)
	l.follow(l.lc.NodeDown(name, now.UnixMilli()), now)
	l.take(r, now)
}

// heartbeat records a node's report of its replicas. The report is taken
// before the node may take work again, so a process that outlived what the
// server counts (a node that went down and came back) keeps its devices.
func (l *loop) heartbeat(req api.HeartbeatRequest, now time.Time) *api.Error {
	n := l.nodes[req.Node]
	if n == nil {
		return api.NotFound("node %s is not registered", req.Node)
	}
	n.lastSeen = now
	l.acct.sample(l, req.Node, req.Utilization, now)
	l.follow(l.lc.Heartbeat(req.Node, req.Replicas, now.UnixMilli()), now)
	l.nodeBack(n)
	return nil
}

// vouchLogs splits a node's log chunks into those of replicas the loop
// knows on that node and those of jobs it does not hold (finished ones).
func (l *loop) vouchLogs(nodeName string, chunks []api.LogChunk) (known, unknown []api.LogChunk) {
	for _, c := range chunks {
		ok, live := l.lc.Vouch(nodeName, c.ReplicaKey)
		switch {
		case ok:
			known = append(known, c)
		case !live:
			unknown = append(unknown, c)
		}
	}
	return known, unknown
}

// desired is the node's desired state (lifecycle.Machine.Desired).
func (l *loop) desired(name string) api.HeartbeatResponse {
	now := l.now()
	resp, out := l.lc.Desired(name, now.UnixMilli())
	l.follow(out, now)
	resp.IntervalMillis = int(l.s.cfg.HeartbeatInterval.Milliseconds())
	return resp
}
