package sched

// hold is a backfill reservation: nodes kept for a blocked job until at.
type hold struct {
	job   *job
	at    int64
	nodes bitset
}

// blocks reports whether j may not use node n because of the reservation:
// the node is kept and j, by its own estimate, would still run at the
// reservation's start.
func (h *hold) blocks(j *job, now int64, n int) bool {
	if h == nil || h.job == j || !h.nodes.has(n) {
		return false
	}
	return j.EstimatedSec <= 0 || now+j.EstimatedSec > h.at
}

// holds are the reservations of one cycle, oldest first.
type holds []*hold

// pattern says which reservations would keep a job with estimate est out
// (bit i for holds[i]); jobs with equal patterns see the same nodes.
func (hs holds) pattern(j *job, est, now int64) uint8 {
	var p uint8
	for i, h := range hs {
		if h.job != j && (est <= 0 || now+est > h.at) {
			p |= 1 << i
		}
	}
	return p
}

// has reports whether j holds one of the reservations.
func (hs holds) has(j *job) bool {
	for _, h := range hs {
		if h.job == j {
			return true
		}
	}
	return false
}

// reproject moves the projected end of every job that has outrun its
// runtime estimate: such a job is expected to run twice as long as the
// projection it outran (so started + estimate × 2^k, the first such time
// still ahead), and never past its hard limit (MaxSec) while that is
// ahead. Without it an overrun job's end would stay in the past, and a
// reservation waiting on it would be recomputed every cycle only to land
// on "now" again.
func (c *Core) reproject() {
	var late []*job
	c.ends.Ascend(func(k endKey) bool {
		if k.end > c.now {
			return false
		}
		if k.j.state == jRunning {
			late = append(late, k.j)
		}
		return true
	})
	for _, j := range late {
		end := j.endAt
		for end <= c.now && end > j.started {
			end = j.started + 2*(end-j.started)
		}
		if limit := j.started + j.MaxSec; j.MaxSec > 0 && limit > c.now {
			// At its hard limit the driver stops it. A job still running
			// past its limit (a driver that does not enforce limits) goes
			// on doubling.
			end = min(end, limit)
		}
		if end > c.now {
			c.setEnd(j, end)
		}
	}
}

// reserve finds the earliest time job j could start if running jobs end
// when their estimates say, and the nodes it would take then. Running jobs
// are lifted in order of their projected end; whether j fits is checked
// after 1, 2, 4, ... of them, then the boundary is found by bisection, so a
// reservation costs O(log n) placement probes. It changes nothing.
func (c *Core) reserve(j *job, others holds) *hold {
	if c.ends.Len() == 0 {
		return nil
	}
	const maxEnds = 4096
	// Only jobs on nodes of a type j accepts can make room for it.
	relevant := c.relevantTypes(j)
	var order []endKey
	var cursor endKey
	started, exhausted := false, false
	// more reads the relevant projected ends lazily, in order, up to n.
	more := func(n int) {
		if len(order) >= n || exhausted {
			return
		}
		collect := func(k endKey) bool {
			if started && !endLess(cursor, k) {
				return true
			}
			cursor, started = k, true
			if relevant == nil || c.touches(k.j, relevant) {
				order = append(order, k)
			}
			return len(order) < n
		}
		if !started {
			c.ends.Ascend(collect)
		} else {
			c.ends.AscendGreaterOrEqual(cursor, collect)
		}
		// The walk stops early only once it has n; fewer means the end.
		exhausted = len(order) < n
	}
	var lifted []*saved
	liftTo := func(n int) {
		more(n)
		for len(lifted) < n {
			lifted = append(lifted, c.lift(order[len(lifted)].j))
		}
		for len(lifted) > n {
			c.reinstate(lifted[len(lifted)-1])
			lifted = lifted[:len(lifted)-1]
		}
	}
	fits := func(n int) bool {
		liftTo(n)
		o := c.probe(j, others)
		if o.ok() {
			c.undo(o.t, 0)
			return true
		}
		return false
	}
	hi := shortestPrefix(maxEnds, func(n int) int { more(n); return len(order) }, fits)
	if hi == 0 {
		liftTo(0)
		return nil
	}
	liftTo(hi)
	o := c.probe(j, others)
	var res *hold
	if o.ok() {
		res = &hold{job: j, at: max(order[hi-1].end, c.now)}
		for _, r := range o.t.reps {
			res.nodes.set(r.node)
		}
		c.undo(o.t, 0)
	}
	liftTo(0)
	return res
}

// relevantTypes marks the catalog types any gang of j accepts; nil when
// j has a CPU-only gang (then every node matters).
func (c *Core) relevantTypes(j *job) []bool {
	out := make([]bool, len(c.idx.types))
	for g := range j.Gangs {
		for _, ti := range c.opts(j, g) {
			if ti < 0 {
				return nil
			}
			out[ti] = true
		}
	}
	return out
}

// touches reports whether job v holds a replica on a node of a marked type.
func (c *Core) touches(v *job, types []bool) bool {
	for _, r := range v.reps {
		if ti := c.idx.nodeType[r.node]; ti >= 0 && types[ti] {
			return true
		}
	}
	return false
}

// earliestStart is the backfill prediction for one pending job, computed on
// demand. It leaves the core exactly as it found it.
func (c *Core) earliestStart(j *job) int64 {
	state, _ := c.pcg.MarshalBinary()
	defer func() { _ = c.pcg.UnmarshalBinary(state) }()
	o := c.probe(j, nil)
	if o.ok() {
		c.undo(o.t, 0)
		return c.now
	}
	if r := c.reserve(j, nil); r != nil {
		return r.at
	}
	return -1
}

// maxReservations bounds the backfill reservations of one cycle.
const maxReservations = 4

// setEnd moves a running job's projected end (for backfill) to t.
func (c *Core) setEnd(j *job, t int64) {
	if j.endAt > 0 {
		c.ends.Delete(endKey{end: j.endAt, seq: j.seq, j: j})
	}
	j.endAt = t
	c.ends.ReplaceOrInsert(endKey{end: t, seq: j.seq, j: j})
}
