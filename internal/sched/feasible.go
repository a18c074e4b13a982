package sched

import (
	"fmt"

	"github.com/gpufleet/gpufleet/internal/place"
)

// What the fleet could ever hold. A job that no domain of the fleet as it
// is could hold even empty (3 x 8 accelerators on a fleet of 16, 2 x 8
// required in one rack where a rack has 8) is rejected on submission with
// the resource that is short and the most the fleet could offer, unless it
// asked to wait for the fleet to grow (Job.WaitForCapacity): it then stays
// unschedulable, apart from pending work, until a node is added that lets
// it fit.
//
// The check counts, per topology domain, the nodes of each distinct node
// profile (accelerator type and count, CPU, memory), so its cost grows with
// the profiles and the domains of one level, not with the nodes, and its
// answer is cached per job shape until the fleet grows.

// profile is one distinct kind of node in the fleet.
type profile struct {
	accel    string
	count    int
	cpu, mem int64
}

// addProfile records node i's profile and counts it in every domain above
// the node.
func (c *Core) addProfile(i int) {
	n := &c.fleet.Nodes[i]
	p := profile{accel: n.Accel, count: n.Count, cpu: n.CPUMilli, mem: n.MemoryMiB}
	pi := -1
	for k, q := range c.profiles {
		if q == p {
			pi = k
			break
		}
	}
	if pi < 0 {
		pi = len(c.profiles)
		c.profiles = append(c.profiles, p)
	}
	for len(c.profOf) <= i {
		c.profOf = append(c.profOf, -1)
	}
	c.profOf[i] = pi
	for len(c.profIn) < len(c.fleet.Domains) {
		c.profIn = append(c.profIn, nil)
	}
	for _, d := range c.idx.ancestors[i] {
		for len(c.profIn[d]) <= pi {
			c.profIn[d] = append(c.profIn[d], 0)
		}
		c.profIn[d][pi]++
	}
	if ti := c.fleet.Catalog.Index(n.Accel); ti >= 0 && n.Count > 0 && !c.present[ti] {
		c.present[ti] = true
		c.typesVer++
	}
}

// fleetGrew forgets what the fleet could hold and lets the jobs waiting
// for it to grow be tried again where they now fit.
func (c *Core) fleetGrew() {
	c.fits = nil
	kept := c.waitingForFleet[:0]
	for _, j := range c.waitingForFleet {
		if j.state != jPending {
			continue
		}
		if j.never = c.impossible(j); j.never != nil {
			kept = append(kept, j)
		} else {
			c.pending[j.queue].ReplaceOrInsert(pendOf(j)) // its pend says never too
		}
	}
	clear(c.waitingForFleet[len(kept):])
	c.waitingForFleet = kept
}

// perNode is how many replicas of r one empty node of profile p holds.
func perNode(p profile, r *place.Request) int {
	if !r.Accepts(p.accel) {
		return 0
	}
	n := 1 << 30
	switch {
	case r.Devices > 0:
		n = p.count / r.Devices
	case r.Milli > 0:
		if p.count == 0 {
			return 0
		}
		n = p.count * int(place.Whole/r.Milli)
	}
	if r.CPUMilli > 0 {
		n = min(n, int(p.cpu/r.CPUMilli))
	}
	if r.MemoryMiB > 0 {
		n = min(n, int(p.mem/r.MemoryMiB))
	}
	return n
}

// holds is how many replicas of r domain d could take if it were empty, on
// nodes of type ti (any type: -1).
func (c *Core) holds(d int, r *place.Request, ti int) int {
	n := 0
	if d >= len(c.profIn) {
		return 0
	}
	for pi, k := range c.profIn[d] {
		if k == 0 {
			continue
		}
		p := c.profiles[pi]
		if ti >= 0 && p.accel != c.fleet.Catalog.Types[ti].Name {
			continue
		}
		n += int(k) * perNode(p, r)
	}
	return n
}

// impossible says why the fleet as it is could never hold j, or nil when
// it could. An empty fleet may still grow: it holds everything.
func (c *Core) impossible(j *job) *Status {
	if st, ok := c.fits[j.keyID]; ok {
		return st
	}
	st := c.impossibleNow(j)
	if c.fits == nil {
		c.fits = map[int]*Status{}
	}
	c.fits[j.keyID] = st
	return st
}

func (c *Core) impossibleNow(j *job) *Status {
	for gi := range j.Gangs {
		r := &j.Gangs[gi].Shape
		for _, a := range r.Accel {
			if c.fleet.Catalog.Index(a) < 0 {
				return &Status{Code: Impossible, Room: RoomNode,
					Detail: fmt.Sprintf("gang %d: accelerator type %q is not in the catalog (%v)", gi, a, c.fleet.Catalog.Names())}
			}
		}
	}
	if len(c.profiles) == 0 {
		return nil
	}
	for gi := range j.Gangs {
		if st := c.gangImpossible(j, gi); st != nil {
			return st
		}
	}
	return nil
}

// gangImpossible checks gang gi of j: one replica on some node, and its
// minimum in one domain of the required level (or the fleet), on one of
// its types.
func (c *Core) gangImpossible(j *job, gi int) *Status {
	g := &j.Gangs[gi]
	r := &g.Shape
	opts := c.typeOptions(r)
	one := false
	for _, p := range c.profiles {
		if perNode(p, r) > 0 {
			one = true
			break
		}
	}
	if !one {
		return &Status{Code: Impossible, Room: RoomNode, Detail: c.nodeShort(gi, r)}
	}
	lvl, level := -1, ""
	if j.Topology.Required && j.Topology.Level != "" {
		lvl, _ = c.fleet.LevelIndex(j.Topology.Level)
		level = j.Topology.Level
	}
	best, bestType := 0, -1
	for _, ti := range opts {
		var most int
		if lvl < 0 {
			most = c.holds(0, r, ti)
		} else {
			for _, d := range c.idx.levelDoms[lvl] {
				most = max(most, c.holds(int(d), r, ti))
			}
		}
		if most >= g.Min() {
			return nil
		}
		if most > best || bestType < 0 {
			best, bestType = most, ti
		}
	}
	what := "accelerators"
	if bestType >= 0 {
		what = c.fleet.Catalog.Types[bestType].Name
	}
	size := fmt.Sprintf("%d %s", r.Devices, what)
	if r.Devices == 0 && r.Milli > 0 {
		size = fmt.Sprintf("%d milli of one %s", r.Milli, what)
	}
	if r.Devices == 0 && r.Milli == 0 {
		size = fmt.Sprintf("cpu %dm and memory %dMi", r.CPUMilli, r.MemoryMiB)
	}
	st := &Status{Code: Impossible, Room: RoomFleet, Replicas: g.Min(), Devices: r.Devices, Milli: r.Milli, Type: what, Free: best, Level: level}
	if lvl < 0 {
		st.Detail = fmt.Sprintf("gang %d needs %s of %s; the whole fleet could hold at most %d",
			gi, count(g.Min(), "replica"), size, best)
		return st
	}
	st.Room = RoomDomain
	st.Detail = fmt.Sprintf("gang %d needs %s of %s in one %s; the largest %s could hold at most %d",
		gi, count(g.Min(), "replica"), size, level, level, best)
	return st
}

// nodeShort says which resource no node has enough of for one replica of
// r, and what the largest node that could take its accelerators has.
func (c *Core) nodeShort(gi int, r *place.Request) string {
	var bestAcc, bestCPU, bestMem *profile
	for k := range c.profiles {
		p := &c.profiles[k]
		if !r.Accepts(p.accel) || (r.Devices > 0 || r.Milli > 0) && p.count == 0 {
			continue
		}
		if bestAcc == nil || p.count > bestAcc.count {
			bestAcc = p
		}
		if p.count >= r.Devices {
			if bestCPU == nil || p.cpu > bestCPU.cpu {
				bestCPU = p
			}
			if p.cpu >= r.CPUMilli && (bestMem == nil || p.mem > bestMem.mem) {
				bestMem = p
			}
		}
	}
	head := fmt.Sprintf("no node in the fleet can ever hold one replica of gang %d (%s)", gi, shapeText(r))
	switch {
	case bestAcc == nil:
		return head + ": the fleet has no node of the accelerator types it accepts"
	case bestCPU == nil:
		return fmt.Sprintf("%s: accelerators are short; the largest node has %d %s", head, bestAcc.count, bestAcc.accel)
	case bestMem == nil:
		return fmt.Sprintf("%s: CPU is short; the most on a node with the accelerators is %dm", head, bestCPU.cpu)
	}
	return fmt.Sprintf("%s: memory is short; the most on a node with the accelerators and CPU is %dMi", head, bestMem.mem)
}

func shapeText(r *place.Request) string {
	acc := "any accelerator"
	if len(r.Accel) > 0 {
		acc = fmt.Sprint(r.Accel)
	}
	switch {
	case r.Devices > 0:
		return fmt.Sprintf("%d x %s, cpu %dm, memory %dMi", r.Devices, acc, r.CPUMilli, r.MemoryMiB)
	case r.Milli > 0:
		return fmt.Sprintf("%d milli of one %s, cpu %dm, memory %dMi", r.Milli, acc, r.CPUMilli, r.MemoryMiB)
	}
	return fmt.Sprintf("cpu %dm, memory %dMi", r.CPUMilli, r.MemoryMiB)
}
