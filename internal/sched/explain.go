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
		ex.Status, ex.EarliestStart = c.memo[j.keyID].status, -1
	}
	switch j.state {
	case jPending:
		ex.State = StatePending
		if ex.Status.Code == Fits {
			ex.Status = Status{Code: NotTried}
		}
		if j.never != nil {
			ex.State, ex.Status = StateUnschedulable, *j.never
			ex.Status.Code = Unschedulable
		}
	case jRunning:
		ex.State = StateRunning
		ex.Status = Status{}
	case jPreempting:
		ex.State = StatePreempting
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
	if !ok || j.state != jPending {
		return -1
	}
	if j.earliest >= 0 && !c.skipped(j) {
		return j.earliest
	}
	if c.cfg.NoBackfill || !(j.blocked || c.skipped(j)) {
		return -1
	}
	return c.earliestStart(j)
}

// noPreemption says why preemption could not help pending job j, or ""
// when it could: lower-priority preemptible work runs in its queue on a
// type it accepts, or its queue (or an ancestor) is owed quota that work
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
		if v.Priority < j.Priority && eligible(v) {
			return ""
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
