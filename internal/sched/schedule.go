package sched

import (
	"sort"
)

// Schedule runs one cycle at time now and returns what it decided: the
// actions in the order they were decided and the usage records of the
// holdings that ended (preemption notices run out, shrinks done). The
// phases:
//
//  1. expire: preemption notices that have run out free their resources,
//     and the victims are requeued (a job suspended between two carbon
//     runs keeps its capacity held);
//  2. shift: held jobs whose carbon run starts are bound, running ones
//     whose run has ended are suspended (carbon.go);
//  3. admit: queues take turns by weighted dominant-resource share (lowest
//     first); within a queue, priority then FIFO; a job that cannot start
//     does not block smaller ones behind it unless its queue is strict.
//     A job that fails may preempt (reclaim borrowed quota, or lower
//     priority work of its own queue); the first job that fails for want of
//     capacity gets a backfill reservation that later jobs may not delay;
//  4. grow: elastic jobs take free capacity no waiting job could use.
func (c *Core) Schedule(now int64) Ready {
	if now > c.now {
		c.now = now
	}
	c.out = Ready{}
	c.expire()
	c.shiftDue()
	c.reproject()
	c.grow(c.admit())
	out := c.out
	c.out = Ready{}
	return out
}

// expire ends preemption notices whose deadline has passed.
func (c *Core) expire() {
	var due []*job
	for _, j := range c.preempting {
		due = append(due, j)
	}
	sort.Slice(due, func(a, b int) bool { return due[a].seq < due[b].seq })
	for _, j := range due {
		if j.state == jPreempting && j.deadline <= c.now && j.toHold {
			reason := j.status.Detail
			c.closeRun(j)
			c.emit(Requeue{Job: j.ID, Reason: reason})
			continue
		}
		if j.state == jPreempting && j.deadline <= c.now {
			delete(c.preempting, j.ID)
			c.release(j, EndPreempted)
			if j.stopped {
				c.requeueStopped(j)
				continue
			}
			if c.requeuePreempted(j, j.status.Detail) {
				c.emit(Requeue{Job: j.ID, Reason: "preempted: notice period over"})
			}
			continue
		}
		if j.state != jPreempting {
			// A shrink in progress.
			if c.dropLeaving(j) {
				delete(c.preempting, j.ID)
			}
		}
	}
}

// wake is a future time at which some job's back-off ends.
type wake struct {
	t   int64
	seq uint64
}

func wakeLess(a, b wake) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}

func (c *Core) wakeAt(t int64, j *job) { c.wakes.ReplaceOrInsert(wake{t: t, seq: j.seq}) }

// Wake returns the earliest time after the core's clock at which Schedule
// could decide something that no event has asked for: a preemption notice
// or a shrink running out, a preempted job's back-off ending, a blocked
// job's preemption back-off ending. It returns -1 when there is none. A
// driver that runs cycles only on events (the simulator) must run one then;
// one that runs them on a timer (the server) needs nothing.
func (c *Core) Wake() int64 {
	for {
		w, ok := c.wakes.Min()
		if !ok || w.t > c.now {
			break
		}
		c.wakes.DeleteMin()
	}
	best := int64(-1)
	if w, ok := c.wakes.Min(); ok {
		best = w.t
	}
	if k, ok := c.due.Min(); ok && k.t > c.now && (best < 0 || k.t < best) {
		// A held job's carbon run starts, or a running one's ends.
		best = k.t
	}
	for _, j := range c.preempting {
		t := j.deadline
		if j.state != jPreempting {
			t = 0
			for _, r := range j.reps {
				if r.leaving > 0 && (t == 0 || r.leaving < t) {
					t = r.leaving
				}
			}
		}
		if t > c.now && (best < 0 || t < best) {
			best = t
		}
	}
	return best
}
