package sched

import (
	"fmt"
	"sort"
)

// AdmissionPaused stops the admission of a tenant's new work, or of one of
// its queues' (Queue set): its pending jobs stay pending with Reason as
// their status (code Paused), and its elastic jobs grow no more. With Stop,
// its running work is also told to stop, with each job's notice, whether
// preemptible or not, and is requeued; it starts again once admission
// resumes. It is what a driver applies when a tenant's prepaid credits or
// budget run out. A pause is a standing rule: it holds for queues created
// after it, and a second pause of the same scope replaces the first.
type AdmissionPaused struct {
	Tenant string
	Queue  string
	Reason string
	Stop   bool
}

// AdmissionResumed lifts the pause of the same scope.
type AdmissionResumed struct {
	Tenant string
	Queue  string
}

func (AdmissionPaused) isEvent()  {}
func (AdmissionResumed) isEvent() {}

// pauseKey is the scope of a pause: a tenant, or one queue of it.
type pauseKey struct{ tenant, queue string }

// pause records an AdmissionPaused and applies it.
func (c *Core) pause(e AdmissionPaused) error {
	if e.Tenant == "" {
		return fmt.Errorf("admission paused: tenant: empty; name the tenant whose work to pause")
	}
	if e.Reason == "" {
		e.Reason = "admission of tenant " + e.Tenant + "'s work is paused"
		if e.Queue != "" {
			e.Reason = "admission to queue " + e.Queue + " is paused"
		}
	}
	if c.paused == nil {
		c.paused = map[pauseKey]string{}
	}
	c.paused[pauseKey{e.Tenant, e.Queue}] = e.Reason
	c.repause()
	// Pending jobs of the scope give back the nodes kept for them.
	for _, j := range c.nominee {
		if j.state == jPending && c.pausedQ[j.queue] != "" {
			c.unnominate(j)
		}
	}
	if e.Stop {
		c.stopPaused()
	}
	c.unholdPaused(e.Stop)
	return nil
}

// resume lifts a pause.
func (c *Core) resume(e AdmissionResumed) error {
	k := pauseKey{e.Tenant, e.Queue}
	if _, ok := c.paused[k]; !ok {
		return fmt.Errorf("admission resumed: tenant %q queue %q: admission is not paused there", e.Tenant, e.Queue)
	}
	delete(c.paused, k)
	c.repause()
	return nil
}

// repause works out, per queue of the tree, the reason its admission is
// paused ("" when it is not); nil when nothing is paused. A queue's own
// pause speaks before its tenant's.
func (c *Core) repause() {
	if len(c.paused) == 0 {
		c.pausedQ = nil
		return
	}
	c.pausedQ = make([]string, c.queues.Len())
	for q := 1; q < c.queues.Len(); q++ {
		t := c.queues.Tenant(q)
		if r, ok := c.paused[pauseKey{t, c.queues.Name(q)}]; ok {
			c.pausedQ[q] = r
		} else if r, ok := c.paused[pauseKey{t, ""}]; ok {
			c.pausedQ[q] = r
		}
	}
}

// isPaused reports whether admission to queue q is paused.
func (c *Core) isPaused(q int) bool { return c.pausedQ != nil && c.pausedQ[q] != "" }

// stopPaused tells the running work of paused queues to stop by its
// notice, in submission order.
func (c *Core) stopPaused() {
	var stop []*job
	for _, j := range c.running {
		if j.state == jRunning && c.isPaused(j.queue) {
			stop = append(stop, j)
		}
	}
	sort.Slice(stop, func(a, b int) bool { return stop[a].seq < stop[b].seq })
	for _, j := range stop {
		reason := "stopped: " + c.pausedQ[j.queue]
		deadline := c.now + j.NoticeSec
		j.stopped = true
		c.emit(Preempt{Job: j.ID, Deadline: deadline, Reason: reason})
		if deadline <= c.now {
			c.release(j, EndPreempted)
			c.requeueStopped(j)
			continue
		}
		c.setEnd(j, deadline)
		j.state = jPreempting
		j.deadline = deadline
		j.status = Status{Code: Preempting, Detail: reason, At: deadline}
		c.preempting[j.ID] = j
	}
}

// requeueStopped puts a job that a pause stopped back in its queue: not a
// preemption, so no back-off and no eviction counted.
func (c *Core) requeueStopped(j *job) {
	reason := j.status.Detail
	if j.status.Code != Preempting {
		reason = "stopped: " + c.pausedQ[j.queue]
	}
	j.stopped = false
	j.status = Status{Code: Requeued, Detail: reason}
	if c.enqueue(j) {
		c.emit(Requeue{Job: j.ID, Reason: reason})
	}
}
