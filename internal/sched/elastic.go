package sched

import (
	"sort"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// grow lets elastic jobs take capacity that nothing waiting needs: only in
// a cycle where no job failed for want of capacity and no preemption is in
// flight.
func (c *Core) grow(blockedPrio int32) {
	if len(c.elastic) == 0 || blockedPrio != -1<<31 || len(c.preempting) > 0 {
		return
	}
	js := make([]*job, 0, len(c.elastic))
	for _, j := range c.elastic {
		js = append(js, j)
	}
	sort.Slice(js, func(a, b int) bool { return js[a].seq < js[b].seq })
	for _, j := range js {
		if j.state != jRunning || j.queue == 0 {
			// Over, or running on after its queue was removed: it takes
			// nothing more.
			delete(c.elastic, j.ID)
			continue
		}
		if c.isPaused(j.queue) {
			continue // grows again once admission resumes
		}
		full := true
		for g := range j.Gangs {
			c.growGang(j, g)
			if c.count(j, g) < j.Gangs[g].Replicas {
				full = false
			}
		}
		if full {
			delete(c.elastic, j.ID)
		}
	}
}

func (c *Core) count(j *job, g int) int {
	n := 0
	for _, r := range j.reps {
		if r.gang == g && r.leaving == 0 {
			n++
		}
	}
	return n
}

func (c *Core) growGang(j *job, g int) {
	gang := &j.Gangs[g]
	ti := j.gangType[g]
	for c.count(j, g) < gang.Replicas {
		var d quota.Demand
		f := -1
		if ti >= 0 {
			if f = c.flavor(ti, j.Tier); f < 0 {
				return // its flavor left the tree: no quota to grow on
			}
			d = quota.Demand{f: gang.Shape.GPUMilli()}
			if c.queues.Check(j.queue, d) != nil {
				return
			}
		}
		dom := 0
		if j.Topology.Level != "" && j.Topology.Required && len(j.reps) > 0 {
			lvl, _ := c.fleet.LevelIndex(j.Topology.Level)
			dom = c.fleet.Ancestor(j.reps[0].node, lvl)
		}
		// A grown replica gets a fresh index: one given back in a shrink
		// may still be stopping under its old one.
		next := j.nextRep[g]
		t := &try{c: c, j: j}
		if c.placeGang(t, g, ti, dom, next, 1) == 0 {
			return
		}
		j.nextRep[g]++
		r := t.reps[0]
		r.since = c.now
		j.reps = append(j.reps, r)
		c.nodeJobs[r.node] = append(c.nodeJobs[r.node], j)
		if f >= 0 {
			c.queues.Add(j.queue, d)
			j.demand[f] += d[f]
		}
		c.emit(c.bindAction(j, r))
	}
}

// excess lists the replicas of an elastic job above its gangs' minimums
// (highest replica indices first go).
func (c *Core) excess(j *job) []int {
	var out []int
	for g := range j.Gangs {
		var idx []int
		for k, r := range j.reps {
			if r.gang == g && r.leaving == 0 {
				idx = append(idx, k)
			}
		}
		extra := len(idx) - j.Gangs[g].Min()
		if extra <= 0 {
			continue
		}
		sort.Slice(idx, func(a, b int) bool { return j.reps[idx[a]].idx > j.reps[idx[b]].idx })
		out = append(out, idx[:extra]...)
	}
	return out
}

func (c *Core) isElastic(j *job) bool {
	for g := range j.Gangs {
		if j.Gangs[g].Min() < j.Gangs[g].Replicas {
			return true
		}
	}
	return false
}

// dropLeaving releases replicas whose shrink deadline passed; it reports
// whether no shrink is left in progress.
func (c *Core) dropLeaving(j *job) bool {
	left := false
	kept := j.reps[:0]
	freed := quota.Demand{}
	for _, r := range j.reps {
		if r.leaving > 0 && r.leaving <= c.now {
			c.releaseReplica(j, &r, EndShrunk, true)
			if rd, ok := c.replicaDemand(j, &r); ok {
				for f, v := range rd {
					freed[f] -= v
				}
			}
			continue
		}
		if r.leaving > 0 {
			left = true
		}
		kept = append(kept, r)
	}
	if len(kept) < len(j.reps) {
		c.elastic[j.ID] = j // it may grow back later
	}
	j.reps = kept
	if j.queue > 0 {
		c.queues.Add(j.queue, freed)
		c.tighten()
		for f, v := range freed {
			j.demand[f] += v
		}
	}
	return !left
}
