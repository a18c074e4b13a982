package sched

import (
	"fmt"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// CheckInvariants recomputes the core's derived state from scratch and
// compares: every device's allocation within 0..1000 milli and equal to the
// sum of the replicas bound to it, CPU and memory likewise, the capacity
// index equal to the node states, and every queue within its limits. It is
// meant for tests and for a driver's self-check; it costs O(fleet + jobs).
func (c *Core) CheckInvariants() error {
	if err := c.checkPools(); err != nil {
		return err
	}
	for q, t := range c.pending {
		var err error
		t.Ascend(func(p pend) bool {
			if p != pendOf(p.j) {
				err = fmt.Errorf("queue %d: pending entry of job %s is %+v, its job says %+v", q, p.j.ID, p, pendOf(p.j))
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	used := make([][]int32, len(c.idx.nodes))
	cpu := make([]int64, len(c.idx.nodes))
	mem := make([]int64, len(c.idx.nodes))
	for i, n := range c.idx.nodes {
		used[i] = make([]int32, len(n.Free))
	}
	usage := map[[2]int]int64{}
	for _, j := range c.jobs {
		if j.state != jRunning && j.state != jPreempting && j.state != jHeld {
			if len(j.reps) > 0 {
				return fmt.Errorf("job %s: %d replicas placed but state %d", j.ID, len(j.reps), j.state)
			}
			continue
		}
		counts := make([]int, len(j.Gangs))
		for _, r := range j.reps {
			s := &j.Gangs[r.gang].Shape
			for _, d := range r.choice.Devices {
				used[r.node][d] += r.choice.Milli
			}
			cpu[r.node] += s.CPUMilli
			mem[r.node] += s.MemoryMiB
			if r.leaving == 0 {
				counts[r.gang]++
			}
			if ti := j.gangType[r.gang]; ti >= 0 && c.flavor(ti, j.Tier) >= 0 {
				usage[[2]int{j.queue, c.flavor(ti, j.Tier)}] += s.GPUMilli()
			}
		}
		for g := range j.Gangs {
			if counts[g] < j.Gangs[g].Min() && (j.state == jRunning || j.state == jHeld) && !c.shrinking(j) {
				return fmt.Errorf("job %s gang %d: %d replicas placed, minimum %d: a gang must be whole", j.ID, g, counts[g], j.Gangs[g].Min())
			}
		}
		if j.Topology.Required && j.Topology.Level != "" {
			lvl, _ := c.fleet.LevelIndex(j.Topology.Level)
			dom := -1
			for _, r := range j.reps {
				d := c.fleet.Ancestor(r.node, lvl)
				if dom >= 0 && d != dom {
					return fmt.Errorf("job %s: replicas in %s and %s, but it requires one %s", j.ID, c.fleet.DomainPath(dom), c.fleet.DomainPath(d), j.Topology.Level)
				}
				dom = d
			}
		}
	}
	for _, h := range c.held {
		for _, d := range h.choice.Devices {
			used[h.node][d] += h.choice.Milli
		}
		cpu[h.node] += h.shape.CPUMilli
		mem[h.node] += h.shape.MemoryMiB
	}
	for i, n := range c.idx.nodes {
		for d, f := range n.Free {
			if f < 0 || f > place.Whole {
				return fmt.Errorf("node %s device %d: %d milli free, outside 0..1000", c.fleet.Nodes[i].Name, d, f)
			}
			if place.Whole-f != used[i][d] {
				return fmt.Errorf("node %s device %d: %d milli allocated, replicas hold %d", c.fleet.Nodes[i].Name, d, place.Whole-f, used[i][d])
			}
		}
		if n.CPUCap-n.CPUFree != cpu[i] || n.MemCap-n.MemFree != mem[i] || n.CPUFree < 0 || n.MemFree < 0 {
			return fmt.Errorf("node %s: cpu/memory accounting off", c.fleet.Nodes[i].Name)
		}
		if err := c.checkIndexed(i); err != nil {
			return err
		}
	}
	for q := 1; q < c.queues.Len(); q++ {
		for f := range c.queues.Flavors() {
			if c.queues.IsLeaf(q) && c.queues.Usage(q, f) != usage[[2]int{q, f}] {
				return fmt.Errorf("queue %s flavor %s: usage %d, running jobs hold %d", c.queues.Name(q), c.queues.Flavors()[f], c.queues.Usage(q, f), usage[[2]int{q, f}])
			}
			nom, borrow, _ := c.queues.Limits(q, f)
			if occ := c.queues.Occupation(q, f); occ > max(min(quota.Unlimited, nom+borrow), c.grace[[2]int{q, f}]) {
				return fmt.Errorf("queue %s flavor %s: occupation %d above nominal %d + borrowing limit %d (grace after an administrator's change: %d)", c.queues.Name(q), c.queues.Flavors()[f], occ, nom, borrow, c.grace[[2]int{q, f}])
			}
		}
	}
	for n, j := range c.nominee {
		if j.state != jPending || !c.nominated.has(n) {
			return fmt.Errorf("node %s is kept for %s, which is not waiting (state %d)", c.fleet.Nodes[n].Name, j.ID, j.state)
		}
	}
	if c.nominated.n != len(c.nominee) {
		return fmt.Errorf("%d nodes marked kept, %d kept", c.nominated.n, len(c.nominee))
	}
	if err := c.checkDomains(); err != nil {
		return err
	}
	if err := c.checkPower(); err != nil {
		return err
	}
	if err := c.checkHeld(); err != nil {
		return err
	}
	for f := range c.queues.Flavors() {
		if occ, nom := c.queues.Occupation(0, f), c.queues.Nominal(0, f); occ > max(nom, c.grace[[2]int{0, f}]) {
			return fmt.Errorf("flavor %s: the tree holds %d, the pool is %d", c.queues.Flavors()[f], occ, nom)
		}
	}
	return nil
}

func (c *Core) shrinking(j *job) bool {
	for _, r := range j.reps {
		if r.leaving > 0 {
			return true
		}
	}
	return false
}

// checkIndexed verifies node i's entries in the capacity index.
func (c *Core) checkIndexed(i int) error {
	n := c.idx.nodes[i]
	ti := c.idx.nodeType[i]
	if c.idx.schedulable.has(i) != n.Schedulable {
		return fmt.Errorf("node %d: schedulable index disagrees", i)
	}
	if ti < 0 {
		return nil
	}
	t := c.idx.types[ti]
	want := int8(-1)
	if n.Schedulable {
		want = int8(n.FreeWhole())
	}
	if c.idx.whole[i] != want {
		return fmt.Errorf("node %d: indexed with %d whole free, has %d", i, c.idx.whole[i], want)
	}
	for f := range t.byFree {
		if t.byFree[f].has(i) != (int8(f) == want) {
			return fmt.Errorf("node %d: free-count buckets disagree", i)
		}
	}
	for v := 1; v < place.Whole; v++ {
		has := false
		if n.Schedulable {
			for _, f := range n.Free {
				if int(f) == v {
					has = true
				}
			}
		}
		if t.partial[v].has(i) != has {
			return fmt.Errorf("node %d: partial-device index disagrees at %d milli", i, v)
		}
	}
	return nil
}

// checkDomains recomputes the per-domain histograms and the domain trees.
func (c *Core) checkDomains() error {
	for ti, t := range c.idx.types {
		hist := make([][maxDev + 1]int32, len(c.fleet.Domains))
		for i := range c.idx.nodes {
			if c.idx.nodeType[i] != ti || c.idx.whole[i] < 0 {
				continue
			}
			for _, d := range c.idx.ancestors[i] {
				hist[d][c.idx.whole[i]]++
			}
		}
		for d := range hist {
			if hist[d] != t.hist[d] {
				return fmt.Errorf("type %d domain %s: histogram %v, recomputed %v", ti, c.fleet.DomainPath(d), t.hist[d], hist[d])
			}
		}
		for lvl, lts := range t.byLevel {
			for _, lt := range lts {
				g, tr := lt.g, lt.tr
				if tr.Len() != len(c.idx.levelDoms[lvl]) {
					return fmt.Errorf("type %d g %d level %d: tree has %d domains, level has %d", ti, g, lvl, tr.Len(), len(c.idx.levelDoms[lvl]))
				}
				var err error
				tr.Ascend(func(k domKey) bool {
					if f := t.fit(int(k.dom), g); f != k.fit {
						err = fmt.Errorf("type %d g %d domain %d: tree says fit %d, histogram %d", ti, g, k.dom, k.fit, f)
						return false
					}
					return true
				})
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkPools: the pools hold exactly the running (or preempting)
// preemptible jobs, each in its own queue's pool at the index it records.
func (c *Core) checkPools() error {
	in := 0
	for q, p := range c.pools {
		for i, j := range p.list {
			if j.poolAt != i || j.queue != q || !j.Preemptible || (j.state != jRunning && j.state != jPreempting) {
				return fmt.Errorf("pool of queue %d: job %s at %d records %d, queue %d, preemptible %v, state %d", q, j.ID, i, j.poolAt, j.queue, j.Preemptible, j.state)
			}
			in++
		}
	}
	want := 0
	for _, j := range c.jobs {
		if j.Preemptible && (j.state == jRunning || j.state == jPreempting) {
			want++
		} else if j.poolAt >= 0 {
			return fmt.Errorf("job %s (state %d) records pool index %d", j.ID, j.state, j.poolAt)
		}
	}
	if in != want {
		return fmt.Errorf("pools hold %d jobs, %d running jobs are preemptible", in, want)
	}
	return nil
}

// checkHeld: held jobs are exactly those in state held, each with a plan,
// a due entry at its next run's start, and its replicas unbound.
func (c *Core) checkHeld() error {
	n := 0
	for _, j := range c.jobs {
		if j.state != jHeld {
			if c.deferred[j.ID] != nil {
				return fmt.Errorf("job %s is listed held in state %d", j.ID, j.state)
			}
			continue
		}
		n++
		switch {
		case c.deferred[j.ID] != j:
			return fmt.Errorf("job %s is held but not listed", j.ID)
		case j.plan == nil || j.plan.cur >= len(j.plan.runs):
			return fmt.Errorf("job %s is held without a run to come", j.ID)
		case j.dueAt != j.plan.runs[j.plan.cur].from:
			return fmt.Errorf("job %s is held for t=%d but due at t=%d", j.ID, j.plan.runs[j.plan.cur].from, j.dueAt)
		case c.running[j.ID] != nil:
			return fmt.Errorf("job %s is held and running", j.ID)
		}
	}
	if n != len(c.deferred) {
		return fmt.Errorf("%d jobs held, %d listed", n, len(c.deferred))
	}
	due := 0
	c.due.Ascend(func(k dueKey) bool {
		due++
		return true
	})
	withDue := 0
	for _, j := range c.jobs {
		if j.dueAt != 0 {
			withDue++
		}
	}
	if due != withDue {
		return fmt.Errorf("%d due entries, %d jobs due", due, withDue)
	}
	return nil
}
