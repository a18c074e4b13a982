package lifecycle

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// Take carries out what one call of the scheduling core decided: binds
// (grouped per unit, so a gang's ranks are numbered over all of its
// replicas at once), preemptions and shrinks, rejections, requeues. (A
// process that outlives what the core holds, a preempted replica killed at
// its deadline, keeps its devices on its node: the agent starts nothing on
// a device a live process holds.)
func (m *Machine) Take(r sched.Ready, nowMs int64) Out {
	var order []sched.JobID
	binds := map[sched.JobID][]sched.Bind{}
	for _, a := range r.Actions {
		switch a := a.(type) {
		case sched.Bind:
			if _, seen := binds[a.Job]; !seen {
				order = append(order, a.Job)
			}
			binds[a.Job] = append(binds[a.Job], a)
		case sched.Preempt:
			m.preempt(a, nowMs)
		case sched.Reject:
			m.reject(a, nowMs)
		case sched.Requeue:
			m.requeue(a.Job, a.Reason, nowMs)
		}
	}
	for _, id := range order {
		m.bind(id, binds[id], nowMs)
	}
	return m.flush()
}

func (m *Machine) bind(id sched.JobID, binds []sched.Bind, nowMs int64) {
	j, u, ok := m.Unit(id)
	if !ok {
		return
	}
	un := &j.Units[u]
	grown := false
	switch un.State {
	case Pending:
		// A new attempt: whatever of the last one still runs is stopped.
		for _, i := range j.replicasOf(u) {
			stopReplica(&j.Replicas[i], nowMs+m.cfg.StopGraceMs)
		}
		kept := j.Replicas[:0]
		for _, r := range j.Replicas {
			switch {
			case r.Unit != u:
				kept = append(kept, r)
			case !r.Gone():
				j.Stale = append(j.Stale, r)
			}
		}
		j.Replicas = kept
		un.Attempt++
		un.State, un.Reason, un.Stopping = Running, "", nil
		un.StartedMs = nowMs
		if j.MasterPort == 0 {
			j.MasterPort = masterPort(j.Seq)
		}
		j.Generation = 0
		m.out.Admitted = append(m.out.Admitted, j.Queue)
		j.addEvent(nowMs, EventAdmitted, fmt.Sprintf("attempt %d%s", un.Attempt, unitText(j, u)))
	case Running:
		grown = true
	default:
		return
	}
	slices.SortFunc(binds, func(a, b sched.Bind) int {
		if a.Gang != b.Gang {
			return a.Gang - b.Gang
		}
		return a.Replica - b.Replica
	})
	for _, b := range binds {
		_, accel, _ := m.cfg.Node(b.Node)
		if len(b.Devices) == 0 && b.Milli == 0 {
			accel = ""
		}
		r := Replica{Unit: u, Gang: b.Gang, Replica: b.Replica, Attempt: un.Attempt, Node: b.Node, Accel: accel,
			Devices: b.Devices, Milli: b.Milli, State: ReplicaStarting, BoundMs: nowMs}
		switch {
		case j.Service != nil:
			r.Gang, r.Replica, r.Rank = 0, u*j.members()+b.Replica, b.Replica
		case j.Run.Independent():
			r.Gang, r.Replica = j.element(u)
			r.Rank = u
		default:
			r.Rank = j.freeRank()
		}
		j.Replicas = append(j.Replicas, r)
		m.index(b.Node, j.ID)
	}
	if grown {
		j.Generation++
		j.addEvent(nowMs, EventGrown, fmt.Sprintf("to %d replicas", j.liveCount(u)))
		if j.Run.Resize == ResizeRestart && !j.Run.Independent() {
			m.restartForResize(j, u, nowMs)
			return
		}
	}
	j.sum()
	m.setEnv(j)
	m.out.dirty(j)
}

// freeRank is the lowest rank no live replica of the current attempt
// holds: a gang that shrank from the top and grows back numbers its ranks
// 0..n-1 again.
func (j *Job) freeRank() int {
	used := map[int]bool{}
	for i := range j.Replicas {
		if r := &j.Replicas[i]; !r.Gone() || r.State == "" {
			used[r.Rank] = true
		}
	}
	for rank := 0; ; rank++ {
		if !used[rank] {
			return rank
		}
	}
}

// liveCount counts the replicas of unit u that hold their place (not
// given back, not over).
func (j *Job) liveCount(u int) int {
	n := 0
	for i := range j.Replicas {
		if r := &j.Replicas[i]; r.Unit == u && !r.Shrunk && !r.Gone() {
			n++
		}
	}
	return n
}

func unitText(j *Job, u int) string {
	if !j.Run.Independent() && j.Service == nil {
		return ""
	}
	return fmt.Sprintf(" of replica %d", u)
}

// masterPort picks a job's rendezvous port from its sequence number, so
// jobs that share a node get different ports.
func masterPort(seq uint64) int { return 20000 + int(seq%20000) }

// setEnv fills in the environment of every replica of the current attempts
// that has none yet.
func (m *Machine) setEnv(j *Job) {
	if j.Service != nil {
		m.setServiceEnv(j)
		return
	}
	masterAddr := ""
	if len(j.Replicas) > 0 {
		masterAddr, _, _ = m.cfg.Node(j.Replicas[0].Node)
	}
	local := map[string]int{}
	world := 0
	for i := range j.Replicas {
		if r := &j.Replicas[i]; !r.Shrunk && !r.Gone() {
			world++
		}
	}
	if j.Run.Independent() {
		world = j.Size()
	}
	for i := range j.Replicas {
		r := &j.Replicas[i]
		lr := local[r.Node]
		local[r.Node]++
		if r.Env != nil {
			continue
		}
		env := make(map[string]string, len(j.Run.Env)+14)
		for k, v := range j.Run.Env {
			env[k] = v
		}
		devs := make([]string, len(r.Devices))
		for d, idx := range r.Devices {
			devs[d] = strconv.Itoa(idx)
		}
		env["CUDA_VISIBLE_DEVICES"] = strings.Join(devs, ",")
		if r.Milli > 0 && r.Milli < 1000 {
			env["GPUFLEET_GPU_MILLI"] = strconv.Itoa(int(r.Milli))
		}
		env["RANK"] = strconv.Itoa(r.Rank)
		env["LOCAL_RANK"] = strconv.Itoa(lr)
		env["WORLD_SIZE"] = strconv.Itoa(world)
		env["MASTER_ADDR"] = masterAddr
		env["MASTER_PORT"] = strconv.Itoa(j.MasterPort)
		env["GPUFLEET_JOB"] = j.ID
		env["GPUFLEET_GANG"] = strconv.Itoa(r.Gang)
		env["GPUFLEET_REPLICA"] = strconv.Itoa(r.Replica)
		env["GPUFLEET_ATTEMPT"] = strconv.Itoa(r.Attempt)
		if j.Run.Independent() {
			env["GPUFLEET_ARRAY_INDEX"] = strconv.Itoa(r.Rank)
			env["GPUFLEET_ARRAY_SIZE"] = strconv.Itoa(j.Size())
		}
		r.Env = env
	}
}

func (m *Machine) preempt(a sched.Preempt, nowMs int64) {
	j, u, ok := m.Unit(a.Job)
	if !ok || j.Units[u].State != Running {
		return
	}
	deadline := a.Deadline * 1000
	if len(a.Replicas) > 0 {
		// An elastic job shrinks: the core frees the replicas at the
		// deadline by itself.
		for _, gr := range a.Replicas {
			for i := range j.Replicas {
				r := &j.Replicas[i]
				if r.Unit == u && r.Gang == gr[0] && r.Replica == gr[1] && !r.Gone() {
					r.Shrunk = true
					stopReplica(r, deadline)
				}
			}
		}
		j.Generation++
		j.addEvent(nowMs, EventShrunk, fmt.Sprintf("to %d replicas: %s", j.liveCount(u), a.Reason))
		m.out.dirty(j)
		if j.Run.Resize == ResizeRestart {
			m.restartForResize(j, u, nowMs)
		}
		return
	}
	un := &j.Units[u]
	un.State, un.Reason = Preempting, a.Reason
	m.out.Preempted = append(m.out.Preempted, j.Queue)
	j.addEvent(nowMs, EventPreempted, a.Reason+unitText(j, u))
	m.beginStop(j, u, Stopping{Reason: "preempted: " + a.Reason, Requeue: true, Preempted: true}, deadline, nowMs)
}

// restartForResize restarts a gang whose membership changed, at its new
// size, as a new attempt through the core (ResizeRestart).
func (m *Machine) restartForResize(j *Job, u int, nowMs int64) {
	if j.Units[u].Stopping != nil {
		return
	}
	j.addEvent(nowMs, EventRestarted, "its size changed (resize: restart)")
	m.beginStop(j, u, Stopping{Reason: "restarted at its new size (resize: restart)", Requeue: true}, nowMs+m.cfg.StopGraceMs, nowMs)
}

func (m *Machine) reject(a sched.Reject, nowMs int64) {
	j, u, ok := m.Unit(a.Job)
	if !ok {
		return
	}
	un := &j.Units[u]
	un.State, un.Reason, un.FinishedMs, un.Stopping = Failed, "rejected: "+a.Reason, nowMs, nil
	m.stopUnit(j, u, nowMs)
	j.addEvent(nowMs, EventRejected, a.Reason+unitText(j, u))
	j.sum()
	m.out.dirty(j)
}

// requeue records that the core put a unit back to pending.
func (m *Machine) requeue(id sched.JobID, reason string, nowMs int64) {
	j, u, ok := m.Unit(id)
	if !ok {
		return
	}
	un := &j.Units[u]
	if Terminal(un.State) {
		return
	}
	m.stopUnit(j, u, nowMs)
	if un.Stopping != nil && !un.Stopping.Requeue {
		// The unit was failing or cancelled when the core requeued it: it
		// stays so, and the core forgets it.
		m.out.Core = append(m.out.Core, sched.JobCancelled{ID: id})
		un.State, un.Reason, un.FinishedMs = Failed, un.Stopping.Reason, nowMs
		if un.Stopping.Cancelled {
			un.State = Cancelled
		}
		un.Stopping = nil
		j.sum()
		m.out.dirty(j)
		return
	}
	un.State, un.Reason, un.Stopping = Pending, "requeued: "+reason, nil
	j.addEvent(nowMs, EventRequeued, reason+unitText(j, u))
	j.sum()
	m.out.dirty(j)
}

// stopUnit asks every live replica of a unit's current attempt to stop
// within the grace period.
func (m *Machine) stopUnit(j *Job, u int, nowMs int64) {
	for _, i := range j.replicasOf(u) {
		stopReplica(&j.Replicas[i], nowMs+m.cfg.StopGraceMs)
	}
	m.out.dirty(j)
}

// stopReplica sets a replica's kill deadline (keeping an earlier one). A
// replica no agent was told to start is over at once.
func stopReplica(r *Replica, deadlineMs int64) {
	switch {
	case r.Gone():
	case !r.Sent:
		r.State = ReplicaSkipped
	case r.StopMs == 0 || r.StopMs > deadlineMs:
		r.StopMs = deadlineMs
	}
}

// beginStop stops a unit's current attempt; once every process is gone the
// core hears of it (finishStop).
func (m *Machine) beginStop(j *Job, u int, st Stopping, deadlineMs, nowMs int64) {
	j.Units[u].Stopping = &st
	for _, i := range j.replicasOf(u) {
		stopReplica(&j.Replicas[i], deadlineMs)
	}
	j.sum()
	m.out.dirty(j)
	m.finishStop(j, u, nowMs)
}

// finishStop ends a unit's stop once every process of it is gone: the core
// hears that the unit stopped, and it becomes pending again or ends.
func (m *Machine) finishStop(j *Job, u int, nowMs int64) {
	un := &j.Units[u]
	if un.Stopping == nil {
		return
	}
	for _, i := range j.replicasOf(u) {
		if !j.Replicas[i].Gone() {
			return
		}
	}
	st := *un.Stopping
	if st.Requeue && j.Service != nil && !serviceNeeds(j) {
		st.Requeue, st.Cancelled = false, true
	}
	un.Stopping = nil
	m.out.Core = append(m.out.Core, sched.JobFailed{ID: coreID(un.Core), Reason: reasonOf(&st), Requeue: st.Requeue})
	switch {
	case st.Requeue:
		un.State, un.Reason = Pending, st.Reason
	case st.Cancelled:
		un.State, un.Reason, un.FinishedMs = Cancelled, st.Reason, nowMs
		if j.Service == nil {
			// A service's replicas are stopped by design; its own cancel
			// is one event of the job's.
			j.addEvent(nowMs, EventCancelled, unitText(j, u))
		}
	default:
		un.State, un.Reason, un.FinishedMs = Failed, st.Reason, nowMs
		j.addEvent(nowMs, EventFailed, st.Reason)
	}
	j.sum()
	m.out.dirty(j)
}

// exited records a process's end and what it means for its unit.
func (m *Machine) exited(j *Job, r *Replica, exit int, signal string, lost bool, nowMs int64) {
	if lost {
		r.State = ReplicaLost
	} else {
		r.State, r.Exit, r.Signal = ReplicaExited, exit, signal
	}
	m.release(j, r)
	m.out.dirty(j)
	u := r.Unit
	if u >= len(j.Units) {
		return
	}
	un := &j.Units[u]
	switch {
	case Terminal(un.State):
	case r.StopMs > 0 || un.Stopping != nil:
		m.finishStop(j, u, nowMs)
	case un.State != Running:
	case j.Service != nil && !lost:
		m.serviceExited(j, r, exit, signal, nowMs)
	case !lost && exit == 0 && signal == "":
		for _, i := range j.replicasOf(u) {
			if o := &j.Replicas[i]; !o.Shrunk && !o.Succeeded() {
				return
			}
		}
		m.out.Core = append(m.out.Core, sched.JobFinished{ID: coreID(un.Core)})
		un.State, un.Reason, un.FinishedMs = Succeeded, "", nowMs
		if !j.Run.Independent() {
			j.addEvent(nowMs, EventSucceeded, "")
		}
		j.sum()
		if j.Run.Independent() && j.State == Succeeded {
			j.addEvent(nowMs, EventSucceeded, "")
		}
	case !lost:
		what := fmt.Sprintf("exited with code %d", exit)
		if signal != "" {
			what = "was killed by " + signal
		}
		reason := fmt.Sprintf("rank %d (gang %d, replica %d) on %s %s", r.Rank, r.Gang, r.Replica, r.Node, what)
		deadline := nowMs + m.cfg.StopGraceMs
		if (j.Run.RestartPolicy == RestartGang || j.Run.RestartPolicy == RestartOnFailure) && un.Restarts < j.Run.MaxRestarts {
			un.Restarts++
			what := "gang restart"
			if j.Run.Independent() {
				what = "restart"
			}
			j.addEvent(nowMs, EventRestarted, fmt.Sprintf("%s %d of %d: %s", what, un.Restarts, j.Run.MaxRestarts, reason))
			m.beginStop(j, u, Stopping{Reason: fmt.Sprintf("%s %d of %d: %s", what, un.Restarts, j.Run.MaxRestarts, reason), Requeue: true}, deadline, nowMs)
		} else {
			m.beginStop(j, u, Stopping{Reason: reason}, deadline, nowMs)
		}
	}
}

// Cancel ends a job at a user's request. A unit with processes running
// keeps its accelerators until every process is gone (SIGTERM now, SIGKILL
// after the stop grace): only then does the core hear of it, so the
// devices are never handed to another job while the old processes still
// hold them.
func (m *Machine) Cancel(id string, nowMs int64) (Out, error) {
	j := m.jobs[id]
	if j == nil || Terminal(j.State) {
		state := "over"
		if j != nil {
			state = j.State
		}
		return m.flush(), fmt.Errorf("job %s is already %s", id, state)
	}
	if j.Service != nil {
		j.Service.Ended = true
	}
	for u := range j.Units {
		un := &j.Units[u]
		if Terminal(un.State) {
			continue
		}
		live := false
		for _, i := range j.replicasOf(u) {
			if r := &j.Replicas[i]; r.Sent && !r.Gone() {
				live = true
			}
		}
		switch {
		case live && un.Stopping == nil:
			un.State, un.Reason = Cancelling, "cancelled by request; stopping its processes"
			m.beginStop(j, u, Stopping{Reason: "cancelled by request", Cancelled: true}, nowMs+m.cfg.StopGraceMs, nowMs)
		case live:
			// Already stopping (preempted or failing): it ends cancelled.
			un.Stopping.Cancelled, un.Stopping.Requeue, un.Stopping.Reason = true, false, "cancelled by request"
			un.State = Cancelling
		default:
			m.out.Core = append(m.out.Core, sched.JobCancelled{ID: coreID(un.Core)})
			un.State, un.Reason, un.FinishedMs, un.Stopping = Cancelled, "cancelled by request", nowMs, nil
			m.stopUnit(j, u, nowMs)
		}
	}
	if j.Service != nil || !Live(j) || j.State != Cancelling {
		j.addEvent(nowMs, EventCancelled, "by request")
	}
	j.sum()
	if Terminal(j.State) && j.FinishedMs == 0 {
		j.FinishedMs = nowMs
	}
	m.out.dirty(j)
	return m.flush(), nil
}

// Unbound records that the core could not take back the bindings of a
// running unit (a driver rebuilding its core from the records): the unit
// waits again; its processes are told to stop, and their devices are held
// apart until they have.
func (m *Machine) Unbound(id string, u int, reason string, nowMs int64) Out {
	j := m.jobs[id]
	if j == nil || u >= len(j.Units) {
		return m.flush()
	}
	m.stopUnit(j, u, nowMs)
	for _, i := range j.replicasOf(u) {
		m.hold(j, &j.Replicas[i])
	}
	un := &j.Units[u]
	un.State, un.Reason, un.Stopping = Pending, reason, nil
	j.addEvent(nowMs, EventRequeued, reason+unitText(j, u))
	j.sum()
	m.out.dirty(j)
	return m.flush()
}

// Refused records that the core refused a pending unit for good.
func (m *Machine) Refused(id string, u int, reason string, nowMs int64) Out {
	j := m.jobs[id]
	if j == nil || u >= len(j.Units) {
		return m.flush()
	}
	un := &j.Units[u]
	un.State, un.Reason, un.FinishedMs = Failed, reason, nowMs
	j.addEvent(nowMs, EventRejected, reason+unitText(j, u))
	j.sum()
	m.out.dirty(j)
	return m.flush()
}
