package sched

import (
	"fmt"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// outcome is the result of trying to place a whole job.
type outcome struct {
	t      *try
	types  []int
	demand quota.Demand
	// status is Fits on success; otherwise what stopped the job, as the
	// job's most preferred option saw it (the reason users see).
	status Status
	set    bool
}

func (o *outcome) fail(s Status) {
	if !o.set {
		o.set, o.status = true, s
	}
}

// ok reports whether the job was placed.
func (o *outcome) ok() bool { return o.status.Code == Fits }

const domainTries = 8

// plan tries to place job j (its gangs at their minimum sizes) and, on
// success, leaves the replicas allocated in the index (not yet in the quota
// tree). On failure nothing stays allocated, and the status says what
// stopped it, with the figures of its reason.
func (c *Core) plan(j *job, h holds) outcome { return c.planFor(j, h, true) }

// probe is plan for what-if questions that only ask whether j fits: a
// capacity failure's status carries no figures, which spares the search
// through the fleet that a reason takes.
func (c *Core) probe(j *job, h holds) outcome { return c.planFor(j, h, false) }

func (c *Core) planFor(j *job, h holds, explain bool) outcome {
	t := &try{c: c, j: j, hold: h}
	out := outcome{t: t}
	levels := []int{-1} // -1: the whole fleet
	if j.Topology.Level != "" {
		lvl, _ := c.fleet.LevelIndex(j.Topology.Level)
		if j.Topology.Required {
			levels = []int{lvl}
		} else {
			levels = levels[:0]
			for l := lvl; l >= 0; l-- {
				levels = append(levels, l)
			}
			levels = append(levels, -1)
		}
	}
	for _, lvl := range levels {
		for _, d := range c.candidateDomains(j, lvl) {
			if c.fillJob(j, t, d, &out) {
				out.status = Status{Code: Fits}
				return out
			}
		}
	}
	out.fail(Status{Code: NoCapacity})
	if out.status.capacity() && explain {
		out.status = c.capacityStatus(j, h)
	}
	return out
}

// candidateDomains lists the domains of a level that could hold the job's
// first gang, tightest first (loosest first with spread).
func (c *Core) candidateDomains(j *job, lvl int) []int {
	if lvl < 0 {
		return []int{0}
	}
	g0 := &j.Gangs[0]
	need := int32(g0.Min())
	gsize := g0.Shape.Devices
	if gsize == 0 {
		gsize, need = 1, 1
	}
	var out []int
	seen := map[int]bool{}
	for _, ti := range c.opts(j, 0) {
		if ti < 0 {
			return c.allDomains(lvl)
		}
		n := 0
		c.pipe.order.domains(c.idx.treeFor(ti, gsize, lvl), need, func(k domKey) bool {
			if !seen[int(k.dom)] {
				seen[int(k.dom)] = true
				out = append(out, int(k.dom))
			}
			n++
			return n < domainTries
		})
	}
	return out
}

func (c *Core) allDomains(lvl int) []int {
	out := make([]int, 0, len(c.idx.levelDoms[lvl]))
	for _, d := range c.idx.levelDoms[lvl] {
		out = append(out, int(d))
		if len(out) == domainTries {
			break
		}
	}
	return out
}

// fillJob places every gang of j below domain d, trying each gang's
// accelerator types in order, checking quota for each choice.
func (c *Core) fillJob(j *job, t *try, d int, out *outcome) bool {
	types := make([]int, len(j.Gangs))
	demand := quota.Demand{}
	for g := range j.Gangs {
		gang := &j.Gangs[g]
		if ti, f, ok := c.fillAny(j, t, g, d, demand, out); ok {
			types[g] = ti
			if ti >= 0 {
				demand[f] += gang.Shape.GPUMilli()
			}
			continue
		}
		done := false
		for _, ti := range c.typeOrder(j, g) {
			var f int
			var add int64
			if ti >= 0 {
				f = c.flavor(ti, j.Tier)
				add = int64(gang.Min()) * gang.Shape.GPUMilli()
				if f < 0 {
					out.fail(Status{Code: NoFlavor, Flavor: c.flavorName(ti, j.Tier)})
					continue
				}
				trial := quota.Demand{}
				for k, v := range demand {
					trial[k] = v
				}
				trial[f] += add
				if r := c.queues.Check(j.queue, trial); r != nil {
					out.fail(Status{Code: OverQuota, Quota: r})
					continue
				}
			}
			mark := len(t.reps)
			if c.placeGang(t, g, ti, d, 0, gang.Min()) == gang.Min() {
				types[g] = ti
				if ti >= 0 {
					demand[f] += add
				}
				done = true
				break
			}
			c.undoTo(t, mark)
			out.fail(Status{Code: NoCapacity})
		}
		if !done {
			c.undo(t)
			return false
		}
	}
	out.types, out.demand = types, demand
	return true
}

// reclaimMemory is how long quota reclaimed on a flavor keeps borrowers
// off it when they have another choice (see typeOrder).
const reclaimMemory = 3600

// typeOrder is the order in which gang g of j tries its accelerator types:
// the job's own order, except that a type on which j would borrow quota
// another queue is owed goes last when quota of it was reclaimed in the
// last reclaimMemory seconds. Work that borrows where reclaims are going
// on is the next to be preempted; on another of its types it can run to
// the end. With no recent reclaim the job's order stands.
func (c *Core) typeOrder(j *job, g int) []int {
	opts := c.opts(j, g)
	if len(opts) < 2 || len(c.reclaimedAt) == 0 {
		return opts
	}
	var late []bool
	for k, ti := range opts {
		if ti < 0 || !c.borrowsContested(j, g, ti) {
			continue
		}
		if late == nil {
			late = make([]bool, len(opts))
		}
		late[k] = true
	}
	if late == nil {
		return opts
	}
	out := make([]int, 0, len(opts))
	for k, ti := range opts {
		if !late[k] {
			out = append(out, ti)
		}
	}
	for k, ti := range opts {
		if late[k] {
			out = append(out, ti)
		}
	}
	return out
}

// borrowsContested reports whether gang g of j, on type ti, would hold
// quota another queue is owed (above the nominal of some queue on its path
// while a sibling has a nominal claim) on a flavor reclaimed recently.
func (c *Core) borrowsContested(j *job, g, ti int) bool {
	f := c.flavor(ti, j.Tier)
	if f < 0 {
		return false
	}
	at, ok := c.reclaimedAt[f]
	return ok && c.now-at <= reclaimMemory && c.holdsOwed(j, g, f)
}

// fillAny places a one-replica gang that names no accelerator type (or
// whose types are a set, Gang.AnyType) by
// ranking the nodes of every type its queue has quota for together, rather
// than trying the types in catalog order. It reports the type and flavor
// used; ok is false when the gang is not of that kind or found no node.
func (c *Core) fillAny(j *job, t *try, g, d int, demand quota.Demand, out *outcome) (ti, f int, ok bool) {
	gang := &j.Gangs[g]
	opts := c.opts(j, g)
	if (len(gang.Shape.Accel) > 0 && !gang.AnyType) || gang.Min() != 1 || len(opts) < 2 || opts[0] < 0 {
		return 0, 0, false
	}
	if t.anyOK == nil {
		t.anyOK = make([]bool, len(c.idx.types))
	}
	clear(t.anyOK)
	some := false
	for _, ti := range opts {
		f := c.flavor(ti, j.Tier)
		if f < 0 {
			continue
		}
		trial := quota.Demand{f: gang.Shape.GPUMilli()}
		for k, v := range demand {
			trial[k] += v
		}
		if c.queues.Check(j.queue, trial) == nil {
			t.anyOK[ti], some = true, true
		}
	}
	if !some {
		return 0, 0, false // the per-type loop records the reasons
	}
	ch, found := c.pickOne(t, &gang.Shape, anyType, d)
	if !found {
		return 0, 0, false
	}
	c.alloc(t, g, 0, ch)
	ti = c.idx.nodeType[ch.Node]
	return ti, c.flavor(ti, j.Tier), true
}

func (c *Core) undoTo(t *try, mark int) {
	for i := len(t.reps) - 1; i >= mark; i-- {
		r := t.reps[i]
		c.idx.take(r.node, &t.j.Gangs[r.gang].Shape, r.choice, -1)
	}
	t.reps = t.reps[:mark]
}

// capacityStatus says, with figures, why the fleet could not hold j: about
// its largest gang on its most preferred type.
func (c *Core) capacityStatus(j *job, hs holds) Status {
	g := &j.Gangs[0]
	for gi := range j.Gangs {
		if j.Gangs[gi].Shape.Devices*j.Gangs[gi].Min() > g.Shape.Devices*g.Min() {
			g = &j.Gangs[gi]
		}
	}
	r := &g.Shape
	st := Status{Code: NoCapacity, Replicas: g.Min(), Devices: r.Devices, Milli: r.Milli, CPUMilli: r.CPUMilli, MemoryMiB: r.MemoryMiB}
	ti := c.typeOptions(r)[0]
	if ti < 0 {
		st.Room = RoomHost
		return st
	}
	st.Type = c.fleet.Catalog.Types[ti].Name
	for _, x := range hs {
		if x.job != j {
			st.Holder, st.HeldUntil = x.job.ID, x.at
			break
		}
	}
	tx := c.idx.types[ti]
	if r.Devices == 0 {
		st.Room = RoomFraction
		if v := tx.partialVals.next(int(r.Milli)); v >= 0 && v < place.Whole || c.mostWhole(ti) > 0 {
			st.Most = 1
		}
		return st
	}
	need := g.Min() * r.Devices
	if j.Topology.Level != "" && j.Topology.Required {
		lvl, _ := c.fleet.LevelIndex(j.Topology.Level)
		st.Room, st.Level = RoomDomain, j.Topology.Level
		// Among the domains that can take the most replicas of this size
		// (read from the top of the index's ordered tree, at most 64 of
		// them, rather than scanning the level) the one with the most free.
		best, bestFree, seen := -1, 0, 0
		c.idx.treeFor(ti, r.Devices, lvl).Descend(func(k domKey) bool {
			f := c.idx.freeWholeIn(ti, int(k.dom))
			if best < 0 || f > bestFree || f == bestFree && int(k.dom) < best {
				best, bestFree = int(k.dom), f
			}
			seen++
			return seen < 64
		})
		if best >= 0 {
			st.Domain, st.Free = c.fleet.DomainPath(best), bestFree
		}
		return st
	}
	st.Free, st.Most = c.idx.freeWholeIn(ti, 0), c.mostWhole(ti)
	switch {
	case st.Free >= need && st.Holder != "":
		st.Room = RoomHeld
	case st.Free >= need && st.Most >= r.Devices:
		st.Room = RoomHostResources
	case st.Free >= need:
		st.Room = RoomScattered
	default:
		st.Room = RoomShort
	}
	return st
}

// mostWhole is the most fully free devices of type ti on one schedulable
// node.
func (c *Core) mostWhole(ti int) int {
	tx := c.idx.types[ti]
	for f := maxDev; f > 0; f-- {
		if tx.byFree[f].n > 0 {
			return f
		}
	}
	return 0
}

// commit makes a successful plan real: quota, node lists, Bind actions.
func (c *Core) commit(j *job, o outcome) {
	c.unnominate(j)
	c.pending[j.queue].Delete(pendOf(j))
	j.attempt++
	j.nextRep = make([]int, len(j.Gangs))
	for g := range j.Gangs {
		j.nextRep[g] = j.Gangs[g].Min()
	}
	j.reps = append([]replica(nil), o.t.reps...)
	for i := range j.reps {
		j.reps[i].since = c.now
	}
	j.gangType = o.types
	j.demand = o.demand
	c.queues.Add(j.queue, j.demand)
	for _, r := range j.reps {
		c.nodeJobs[r.node] = append(c.nodeJobs[r.node], j)
		c.emit(c.bindAction(j, r))
	}
	c.markRunning(j, c.now)
	if c.isElastic(j) {
		c.elastic[j.ID] = j
	}
}

func (c *Core) bindAction(j *job, r replica) Action {
	return Bind{Job: j.ID, Gang: r.gang, Replica: r.idx, Node: c.fleet.Nodes[r.node].Name,
		Devices: append([]int(nil), r.choice.Devices...), Milli: r.choice.Milli, Attempt: j.attempt, Since: r.since}
}

func (c *Core) isElastic(j *job) bool {
	for g := range j.Gangs {
		if j.Gangs[g].Min() < j.Gangs[g].Replicas {
			return true
		}
	}
	return false
}

// shapeKey identifies jobs that place identically, for the per-cycle memo
// of shapes that found no room.
func shapeKey(j *job) string {
	s := fmt.Sprintf("%s|%v|%s", j.Topology.Level, j.Topology.Required, j.Tier)
	for g := range j.Gangs {
		r := &j.Gangs[g].Shape
		s += fmt.Sprintf("|%d:%d:%d:%d:%d:%v:%v", j.Gangs[g].Min(), r.Devices, r.Milli, r.CPUMilli, r.MemoryMiB, r.Accel, j.Gangs[g].AnyType)
	}
	return s
}
