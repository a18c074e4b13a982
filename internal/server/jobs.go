package server

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// apply hands an event to the core and carries out what it decided.
func (l *loop) apply(ev sched.Event, now time.Time) error {
	r, err := l.core.Apply(ev)
	l.take(r, now)
	return err
}

// take carries out what one call of the core decided.
func (l *loop) take(r sched.Ready, now time.Time) { l.handle(r.Actions, now) }

// handle carries out one cycle's actions. Binds are grouped per job so a
// gang's ranks are numbered over all of its replicas at once.
func (l *loop) handle(acts []sched.Action, now time.Time) {
	var order []sched.JobID
	binds := map[sched.JobID][]sched.Bind{}
	for _, a := range acts {
		switch a := a.(type) {
		case sched.Bind:
			if _, seen := binds[a.Job]; !seen {
				order = append(order, a.Job)
			}
			binds[a.Job] = append(binds[a.Job], a)
		case sched.Preempt:
			l.preempt(a, now)
		case sched.Reject:
			l.reject(a, now)
		case sched.Requeue:
			l.requeue(string(a.Job), a.Reason, now)
		}
	}
	for _, id := range order {
		l.bind(id, binds[id], now)
	}
}

func (l *loop) bind(id sched.JobID, binds []sched.Bind, now time.Time) {
	j := l.jobs[string(id)]
	if j == nil {
		l.log.Error("core bound a job the server does not know", "job", id)
		return
	}
	if j.State == store.Pending {
		// A new attempt: whatever of the last one still runs is stopped.
		l.stopAttempt(j, now)
		for _, r := range j.Replicas {
			if !r.Gone() {
				j.Stale = append(j.Stale, r)
			}
		}
		j.Attempt++
		j.Replicas = nil
		j.State, j.Reason, j.Stopping = store.Running, "", nil
		j.StartedMs = now.UnixMilli()
		j.MasterPort = masterPort(j.Seq)
		l.s.metrics.admissions.WithLabelValues(j.Queue).Inc()
	} else if j.State != store.Running {
		l.log.Error("core bound a job that is not pending or running", "job", id, "state", j.State)
		return
	}
	sort.Slice(binds, func(a, b int) bool {
		if binds[a].Gang != binds[b].Gang {
			return binds[a].Gang < binds[b].Gang
		}
		return binds[a].Replica < binds[b].Replica
	})
	first := len(j.Replicas)
	for _, b := range binds {
		accel := ""
		if n := l.nodes[b.Node]; n != nil && (len(b.Devices) > 0 || b.Milli > 0) {
			accel = n.rec.Info.Accel
		}
		j.Replicas = append(j.Replicas, store.Replica{Gang: b.Gang, Replica: b.Replica, Attempt: j.Attempt,
			Rank: len(j.Replicas), Node: b.Node, Accel: accel, Devices: b.Devices, Milli: b.Milli, State: store.ReplicaStarting})
		l.index(b.Node, j.ID)
	}
	l.setEnv(j, first)
	l.markJob(j)
}

// masterPort picks a job's rendezvous port from its sequence number, so
// jobs that share a node get different ports.
func masterPort(seq uint64) int { return 20000 + int(seq%20000) }

// setEnv fills the environment of replicas from index first on.
func (l *loop) setEnv(j *store.Job, first int) {
	masterAddr := ""
	if len(j.Replicas) > 0 {
		if n := l.nodes[j.Replicas[0].Node]; n != nil {
			masterAddr = n.rec.Info.Address
		}
	}
	local := map[string]int{}
	for i := range j.Replicas {
		r := &j.Replicas[i]
		lr := local[r.Node]
		local[r.Node]++
		if i < first {
			continue
		}
		env := make(map[string]string, len(j.Run.Env)+12)
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
		env["WORLD_SIZE"] = strconv.Itoa(len(j.Replicas))
		env["MASTER_ADDR"] = masterAddr
		env["MASTER_PORT"] = strconv.Itoa(j.MasterPort)
		env["GPUFLEET_JOB"] = j.ID
		env["GPUFLEET_GANG"] = strconv.Itoa(r.Gang)
		env["GPUFLEET_REPLICA"] = strconv.Itoa(r.Replica)
		env["GPUFLEET_ATTEMPT"] = strconv.Itoa(r.Attempt)
		r.Env = env
	}
}

func (l *loop) preempt(a sched.Preempt, now time.Time) {
	j := l.jobs[string(a.Job)]
	if j == nil || j.State != store.Running {
		l.log.Warn("preemption of a job that is not running", "job", a.Job)
		return
	}
	deadline := a.Deadline * 1000
	if len(a.Replicas) > 0 {
		// An elastic job shrinks: the core frees the replicas at the
		// deadline by itself.
		for _, gr := range a.Replicas {
			for i := range j.Replicas {
				r := &j.Replicas[i]
				if r.Gang == gr[0] && r.Replica == gr[1] && !r.Gone() {
					r.Shrunk = true
					stopReplica(r, deadline)
				}
			}
		}
		l.markJob(j)
		return
	}
	j.State, j.Reason = store.Preempting, a.Reason
	l.s.metrics.preemptions.WithLabelValues(j.Queue).Inc()
	l.beginStop(j, store.Stopping{Reason: "preempted: " + a.Reason, Requeue: true, Preempted: true}, deadline, now)
}

func (l *loop) reject(a sched.Reject, now time.Time) {
	j := l.jobs[string(a.Job)]
	if j == nil {
		return
	}
	j.State, j.Reason, j.FinishedMs = store.Failed, "rejected: "+a.Reason, now.UnixMilli()
	l.stopAttempt(j, now)
	l.markJob(j)
}

// requeue records that the core put a job back to pending.
func (l *loop) requeue(id, reason string, now time.Time) {
	j := l.jobs[id]
	if j == nil || store.Terminal(j.State) {
		return
	}
	l.stopAttempt(j, now)
	if j.Stopping != nil && !j.Stopping.Requeue {
		// The job was failing when the core requeued it: it stays failed.
		if err := l.apply(sched.JobCancelled{ID: sched.JobID(id)}, now); err != nil {
			l.log.Warn("drop failed job from the core", "job", id, "err", err)
		}
		j.State, j.Reason, j.FinishedMs, j.Stopping = store.Failed, j.Stopping.Reason, now.UnixMilli(), nil
		l.markJob(j)
		return
	}
	j.State, j.Reason, j.Stopping = store.Pending, "requeued: "+reason, nil
	l.markJob(j)
}

// stopAttempt asks every live replica of the current attempt to stop
// within the grace period.
func (l *loop) stopAttempt(j *store.Job, now time.Time) {
	deadline := now.Add(l.s.cfg.StopGrace).UnixMilli()
	for i := range j.Replicas {
		stopReplica(&j.Replicas[i], deadline)
	}
}

// stopReplica sets a replica's kill deadline (keeping an earlier one). A
// replica no agent was told to start is over at once.
func stopReplica(r *store.Replica, deadlineMs int64) {
	switch {
	case r.Gone():
	case !r.Sent:
		r.State = store.ReplicaSkipped
	case r.StopMs == 0 || r.StopMs > deadlineMs:
		r.StopMs = deadlineMs
	}
}

// beginStop stops the current attempt; once every process is gone the core
// hears of it (finishStop).
func (l *loop) beginStop(j *store.Job, st store.Stopping, deadlineMs int64, now time.Time) {
	j.Stopping = &st
	for i := range j.Replicas {
		stopReplica(&j.Replicas[i], deadlineMs)
	}
	l.markJob(j)
	l.finishStop(j, now)
}

func (l *loop) finishStop(j *store.Job, now time.Time) {
	if j.Stopping == nil {
		return
	}
	for i := range j.Replicas {
		if !j.Replicas[i].Gone() {
			return
		}
	}
	st := *j.Stopping
	j.Stopping = nil
	reason := st.Reason
	if st.Preempted {
		reason = "preempted"
	}
	if err := l.apply(sched.JobFailed{ID: sched.JobID(j.ID), Reason: reason, Requeue: st.Requeue}, now); err != nil {
		l.log.Warn("core refused a job's end", "job", j.ID, "err", err)
	}
	switch {
	case st.Requeue:
		j.State, j.Reason = store.Pending, st.Reason
	case st.Cancelled:
		j.State, j.Reason, j.FinishedMs = store.Cancelled, st.Reason, now.UnixMilli()
	default:
		j.State, j.Reason, j.FinishedMs = store.Failed, st.Reason, now.UnixMilli()
	}
	l.markJob(j)
}

// replicaExited records a process's end and what it means for its job.
func (l *loop) replicaExited(j *store.Job, r *store.Replica, st api.ReplicaStatus, lost bool, now time.Time) {
	if lost {
		r.State = store.ReplicaLost
	} else {
		r.State, r.Exit, r.Signal = store.ReplicaExited, st.ExitCode, st.Signal
	}
	l.markJob(j)
	switch {
	case store.Terminal(j.State):
	case r.StopMs > 0 || j.Stopping != nil:
		l.finishStop(j, now)
	case j.State != store.Running:
	case !lost && st.ExitCode == 0 && st.Signal == "":
		for i := range j.Replicas {
			o := &j.Replicas[i]
			if !o.Shrunk && (o.State != store.ReplicaExited || o.Exit != 0 || o.Signal != "") {
				return
			}
		}
		if err := l.apply(sched.JobFinished{ID: sched.JobID(j.ID)}, now); err != nil {
			l.log.Warn("core refused a job's success", "job", j.ID, "err", err)
		}
		j.State, j.Reason, j.FinishedMs = store.Succeeded, "", now.UnixMilli()
	case !lost:
		what := fmt.Sprintf("exited with code %d", st.ExitCode)
		if st.Signal != "" {
			what = "was killed by " + st.Signal
		}
		reason := fmt.Sprintf("rank %d (gang %d, replica %d) on %s %s", r.Rank, r.Gang, r.Replica, r.Node, what)
		deadline := now.Add(l.s.cfg.StopGrace).UnixMilli()
		if j.Run.RestartPolicy == "gang" && j.Restarts < j.Run.MaxRestarts {
			j.Restarts++
			l.beginStop(j, store.Stopping{Reason: fmt.Sprintf("gang restart %d of %d: %s", j.Restarts, j.Run.MaxRestarts, reason), Requeue: true}, deadline, now)
		} else {
			l.beginStop(j, store.Stopping{Reason: reason}, deadline, now)
		}
	}
}

// cancel ends a job at a user's request. A job with processes running
// keeps its accelerators until every process is gone (SIGTERM now, SIGKILL
// after the stop grace): only then does the core hear of it, so the devices
// are never handed to another job while the old processes still hold them.
func (l *loop) cancel(j *store.Job, now time.Time) *api.Error {
	live := false
	for i := range j.Replicas {
		if j.Replicas[i].Sent && !j.Replicas[i].Gone() {
			live = true
		}
	}
	if live && j.Stopping == nil {
		j.State, j.Reason = store.Cancelling, "cancelled by request; stopping its processes"
		l.beginStop(j, store.Stopping{Reason: "cancelled by request", Cancelled: true}, now.Add(l.s.cfg.StopGrace).UnixMilli(), now)
		return nil
	}
	if live {
		// Already stopping (preempted or failing): it ends cancelled.
		j.Stopping.Cancelled, j.Stopping.Requeue, j.Stopping.Reason = true, false, "cancelled by request"
		j.State = store.Cancelling
		l.markJob(j)
		return nil
	}
	if err := l.apply(sched.JobCancelled{ID: sched.JobID(j.ID)}, now); err != nil {
		return api.Conflict("cancel %s: %v", j.ID, err)
	}
	j.State, j.Reason, j.FinishedMs, j.Stopping = store.Cancelled, "cancelled by request", now.UnixMilli(), nil
	l.stopAttempt(j, now)
	l.markJob(j)
	return nil
}
