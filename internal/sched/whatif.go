package sched

import "github.com/gpufleet/gpufleet/internal/quota"

// saved is a placed job lifted out of the index and the quota tree for a
// what-if probe, with what is needed to put it back exactly.
type saved struct {
	j    *job
	reps []replica
	only []int // indices into reps lifted, when only some replicas are
}

// lift takes a placed job's resources out, keeping its record.
func (c *Core) lift(j *job) *saved {
	s := &saved{j: j, reps: j.reps}
	for i := range j.reps {
		c.idx.take(j.reps[i].node, &j.Gangs[j.reps[i].gang].Shape, j.reps[i].choice, -1)
	}
	if j.demand != nil {
		neg := quota.Demand{}
		for f, v := range j.demand {
			neg[f] = -v
		}
		c.queues.Add(j.queue, neg)
	}
	return s
}

func (c *Core) reinstate(s *saved) {
	j := s.j
	if s.only != nil {
		for _, k := range s.only {
			r := s.reps[k]
			c.idx.take(r.node, &j.Gangs[r.gang].Shape, r.choice, +1)
		}
		c.addReplicas(j, s.reps, s.only, +1)
		return
	}
	for i := range s.reps {
		c.idx.take(s.reps[i].node, &j.Gangs[s.reps[i].gang].Shape, s.reps[i].choice, +1)
	}
	if j.demand != nil {
		c.queues.Add(j.queue, j.demand)
	}
}

// replicaDemand is what one replica of j holds of the queue tree: the
// flavor index and milli-accelerators (nothing for CPU-only gangs, or
// when the tree has no longer the flavor).
func (c *Core) replicaDemand(j *job, r *replica) (quota.Demand, bool) {
	ti := j.gangType[r.gang]
	if ti < 0 {
		return nil, false
	}
	f := c.flavor(ti, j.Tier)
	if f < 0 {
		return nil, false // its flavor left the tree: it runs on charged to none
	}
	return quota.Demand{f: j.Gangs[r.gang].Shape.GPUMilli()}, true
}

// addReplicas adds (sign +1) or removes (-1) the quota the listed replicas
// hold.
func (c *Core) addReplicas(j *job, reps []replica, idx []int, sign int64) {
	d := quota.Demand{}
	for _, k := range idx {
		if rd, ok := c.replicaDemand(j, &reps[k]); ok {
			for f, v := range rd {
				d[f] += sign * v
			}
		}
	}
	c.queues.Add(j.queue, d)
}

// liftVictim takes a victim's resources out for a what-if probe; replicas
// already lifted as shrinks of the same job are not lifted twice.
func (c *Core) liftVictim(v victim, gone map[*job]map[int]bool) *saved {
	if gone[v.j] == nil {
		gone[v.j] = map[int]bool{}
	}
	if v.shrink == nil && len(gone[v.j]) == 0 {
		for k := range v.j.reps {
			gone[v.j][k] = true
		}
		return c.lift(v.j)
	}
	only := v.shrink
	if only == nil {
		for k := range v.j.reps {
			if !gone[v.j][k] {
				only = append(only, k)
			}
		}
		if only == nil {
			only = []int{}
		}
	}
	for _, k := range only {
		gone[v.j][k] = true
	}
	s := &saved{j: v.j, reps: v.j.reps, only: only}
	c.relift(s)
	return s
}

// relift takes a saved victim's resources out again after a reinstate.
func (c *Core) relift(s *saved) {
	if s.only == nil {
		c.lift(s.j)
		return
	}
	for _, k := range s.only {
		r := s.reps[k]
		c.idx.take(r.node, &s.j.Gangs[r.gang].Shape, r.choice, -1)
	}
	c.addReplicas(s.j, s.reps, s.only, -1)
}

// shortestPrefix finds the shortest prefix of a list of what-if changes
// (running jobs lifted in order) after which fits holds: it tries prefixes
// of 1, 2, 4, ... items, then bisects between the longest that failed and
// the first that fitted, so a search costs O(log n) calls of fits, which
// must be monotone in the prefix's length. size(n) makes up to n items
// available and returns how many there are (fewer than n: the list ends
// there). It returns 0 when no prefix of at most limit items fits.
func shortestPrefix(limit int, size func(n int) int, fits func(n int) bool) int {
	lo, hi := 0, 0 // fits(lo) is false; fits(hi) is true once found
	for step := 1; ; step *= 2 {
		n := min(step, size(min(step, limit)), limit)
		if n == 0 {
			return 0
		}
		if fits(n) {
			hi = n
			break
		}
		lo = n
		if n < step || n == limit {
			return 0
		}
	}
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fits(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}
