package sched

// Explain reports a job's state, its current pending reason and the nodes
// it occupies. It reads the core's state and writes nothing: the reason of
// a job the last cycle skipped, because a job of the same shape found no
// room before it, is that job's. EarliestStart is the cycle's reservation
// when the job holds one; EarliestStart(id) computes one on demand.
func (c *Core) Explain(id JobID) (Explanation, bool) {
	j, ok := c.jobs[id]
	if !ok {
		return Explanation{}, false
	}
	ex := Explanation{Job: id, Status: j.status, EarliestStart: j.earliest}
	if c.skipped(j) {
		ex.EarliestStart = -1
	}
	switch j.state {
	case jPending:
		ex.State = StatePending
		ex.Status = c.pendingStatus(j)
		if j.never != nil {
			ex.State = StateUnschedulable
		}
	case jRunning:
		ex.State = StateRunning
		ex.Status = Status{}
	case jPreempting:
		ex.State = StatePreempting
	case jHeld:
		// Admitted, its capacity held for a cleaner window: to its
		// owner it waits.
		ex.State = StatePending
		ex.EarliestStart = j.plan.runs[j.plan.cur].from
	}
	if ex.Status.PreemptAt > 0 {
		ex.Status.NoPreempt = c.noPreemption(j)
	}
	ex.Reason = ex.Status.Reason()
	seen := map[int]bool{}
	for _, r := range j.reps {
		if !seen[r.node] {
			seen[r.node] = true
			ex.Nodes = append(ex.Nodes, c.fleet.Nodes[r.node].Name)
		}
	}
	return ex, true
}

// skipped reports whether pending job j was passed over in the last cycle
// because a job of its shape found no room before it.
func (c *Core) skipped(j *job) bool {
	return j.state == jPending && j.seen != c.cycle && c.cycle > 0 && c.memo[j.keyID].cycle == c.cycle
}

// EarliestStart predicts when a pending job that waits for capacity could
// start if running jobs end when their estimates say: the time of its
// backfill reservation, or a what-if search run now (lifting running jobs
// in order of their projected ends). It returns -1 when the job is not
// waiting for capacity or no prediction can be made. The search changes
// the core's state while it runs and restores it exactly, random state
// included, so later decisions are the same whether or not it was asked.
func (c *Core) EarliestStart(id JobID) int64 {
	j, ok := c.jobs[id]
	if ok && j.state == jHeld {
		return j.plan.runs[j.plan.cur].from
	}
	if !ok || j.state != jPending {
		return -1
	}
	if j.earliest >= 0 && !c.skipped(j) {
		return j.earliest
	}
	if c.cfg.NoBackfill || !j.blocked && !c.skipped(j) {
		return -1
	}
	return c.earliestStart(j)
}

// noPreemption says why preemption could not help pending job j, or ""
// when it could: lower-priority preemptible work runs in its queue on a
// type it accepts, spot work runs there for a job of another tier, or its queue (or an ancestor) is owed quota that work
// outside it borrows. It reads the core's state only.
func (c *Core) noPreemption(j *job) string {
	if c.cfg.NoPreemption {
		return "preemption is turned off"
	}
	relevant := c.relevantTypes(j)
	eligible := func(v *job) bool {
		return v != j && v.state == jRunning && v.Preemptible && (relevant == nil || c.touches(v, relevant))
	}
	for _, v := range c.pools[j.queue].list {
		if v.Priority < j.Priority && (j.Tier != TierSpot || v.Tier == TierSpot) && eligible(v) {
			return ""
		}
	}
	if j.Tier != TierSpot {
		for _, pool := range c.pools {
			if pool.spot == 0 {
				continue
			}
			for _, v := range pool.list {
				if v.Tier == TierSpot && eligible(v) {
					return ""
				}
			}
		}
	}
	scope := c.reclaimScope(j)
	if scope < 0 {
		return "its queue would be above its nominal quota, so it may not reclaim quota from other queues, and no lower-priority preemptible work runs in its queue"
	}
	flavors := c.flavorsOf(j)
	for q, pool := range c.pools {
		if q == j.queue || len(pool.list) == 0 || c.sharesAncestor(scope, q) {
			continue
		}
		a := c.belowCommon(q, scope)
		if a <= 0 {
			continue
		}
		for _, f := range flavors {
			if c.queues.Borrowing(a, f) <= 0 {
				continue
			}
			for _, v := range pool.list {
				if eligible(v) && v.demand[f] > 0 {
					return ""
				}
			}
		}
	}
	return "no preemptible work of other queues borrows the quota its queue is owed (theirs is within their own quota), and no lower-priority preemptible work runs in its queue"
}

// Waiting is one pending job as its queue holds it.
type Waiting struct {
	Job   JobID
	Queue string
	// Position is the job's place in its queue's order (priority, then
	// submission), from 1.
	Position int
	// Status is why it waits, as Explain says (without the what-if
	// questions Explain may also ask: see EarliestStart).
	Status Status
}

// Pending calls fn for every pending job, queue by queue in the tree's
// order and in each queue's own order, until fn returns false. It reads
// the core's state only, at O(1) per job: the status of every pending job
// is kept up to date by the cycles, so metrics and dashboards read it for
// free.
func (c *Core) Pending(fn func(Waiting) bool) {
	for q, p := range c.pending {
		pos := 0
		more := true
		p.Ascend(func(x pend) bool {
			pos++
			more = fn(Waiting{Job: x.j.ID, Queue: c.queues.Name(q), Position: pos, Status: c.pendingStatus(x.j)})
			return more
		})
		if !more {
			return
		}
		// Jobs held for a cleaner window come after those that wait for
		// a turn (O(held) a queue, and only when some are held).
		if len(c.deferred) == 0 {
			continue
		}
		for _, j := range c.heldJobs(q) {
			pos++
			if !fn(Waiting{Job: j.ID, Queue: c.queues.Name(q), Position: pos, Status: j.status}) {
				return
			}
		}
	}
}

// pendingStatus is a pending job's status as Explain reports it.
func (c *Core) pendingStatus(j *job) Status {
	st := j.status
	if c.skipped(j) {
		st = c.memo[j.keyID].status
	}
	if st.Code == Fits {
		st = Status{Code: NotTried}
	}
	if j.never != nil {
		st = *j.never
		st.Code = Unschedulable
	} else if c.isPaused(j.queue) {
		st = Status{Code: Paused, Detail: c.pausedQ[j.queue]}
	}
	return st
}
