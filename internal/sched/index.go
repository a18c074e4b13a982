package sched

import (
	"github.com/google/btree"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
)

const maxDev = fleet.MaxDevicesPerNode

// domKey orders the domains of one level by how many replicas of one size
// they can take (fit), then by ID.
type domKey struct{ fit, dom int32 }

func domLess(a, b domKey) bool {
	if a.fit != b.fit {
		return a.fit < b.fit
	}
	return a.dom < b.dom
}

// typeIndex is the free capacity of one accelerator type, kept up to date
// incrementally so that a placement never rescans the fleet.
type typeIndex struct {
	// byFree[f] holds the schedulable nodes with exactly f fully free
	// devices.
	byFree [maxDev + 1]bitset
	// partial[m] holds the nodes with a device of exactly m free milli
	// (1..999); partialVals holds the values m that some node has.
	partial     [place.Whole]bitset
	partialVals bitset
	// hist[d][f] counts the schedulable nodes below domain d with f fully
	// free devices.
	hist [][maxDev + 1]int32
	// byLevel[level] lists the ordered trees kept for that level: each
	// orders the level's domains by their fit for replicas of g whole
	// devices. A tree is built the first time a placement asks for its
	// (level, g), and only those are kept up to date.
	byLevel [][]levelTree
}

type levelTree struct {
	g  int
	tr *btree.BTreeG[domKey]
}

// index is the core's view of free capacity.
type index struct {
	f           *fleet.Fleet
	nodes       []*place.Node
	nodeType    []int  // catalog index per node, -1 for CPU-only
	whole       []int8 // indexed free whole devices, -1 when not indexed
	types       []*typeIndex
	schedulable bitset
	levelDoms   [][]int32 // domain IDs per level
	ancestors   [][]int32 // per node: domain IDs from the lowest level up to the root
	// ofType lists the nodes of each catalog type, in index order.
	ofType [][]int32
	// ver counts each node's changes; changed, when not nil, logs the
	// nodes that changed, in order, for the scoreboards (see scoreboard).
	ver     []uint64
	changed *changeLog
	// power, when set, is told of every allocation (see power.go).
	power *powerBook
}

func newIndex(f *fleet.Fleet) *index {
	x := &index{f: f, types: make([]*typeIndex, len(f.Catalog.Types))}
	for i := range x.types {
		x.types[i] = &typeIndex{byLevel: make([][]levelTree, len(f.Levels))}
	}
	x.levelDoms = make([][]int32, len(f.Levels))
	x.syncDomains()
	for i := range f.Nodes {
		x.addNode(i)
	}
	return x
}

// syncDomains makes room for domains added since the last call.
func (x *index) syncDomains() {
	nd := len(x.f.Domains)
	for _, t := range x.types {
		for len(t.hist) < nd {
			t.hist = append(t.hist, [maxDev + 1]int32{})
		}
	}
	seen := 0
	for _, l := range x.levelDoms {
		seen += len(l)
	}
	for d := seen + 1; d < nd; d++ { // domain 0 is the root
		lvl := x.f.Domains[d].Level
		x.levelDoms[lvl] = append(x.levelDoms[lvl], int32(d))
		for _, t := range x.types {
			for _, lt := range t.byLevel[lvl] {
				lt.tr.ReplaceOrInsert(domKey{fit: t.fit(d, lt.g), dom: int32(d)})
			}
		}
	}
}

// addNode registers fleet node i (appended after the index was built).
func (x *index) addNode(i int) {
	n := &x.f.Nodes[i]
	pn := &place.Node{Index: i, Accel: n.Accel, Free: make([]int32, n.Count),
		CPUCap: n.CPUMilli, MemCap: n.MemoryMiB, CPUFree: n.CPUMilli, MemFree: n.MemoryMiB,
		Schedulable: n.State == fleet.Ready}
	for d := range pn.Free {
		pn.Free[d] = place.Whole
	}
	x.nodes = append(x.nodes, pn)
	x.nodeType = append(x.nodeType, x.f.Catalog.Index(n.Accel))
	if n.Count == 0 {
		x.nodeType[i] = -1
	}
	if ti := x.nodeType[i]; ti >= 0 {
		for len(x.ofType) <= ti {
			x.ofType = append(x.ofType, nil)
		}
		x.ofType[ti] = append(x.ofType[ti], int32(i))
	}
	x.whole = append(x.whole, -1)
	var anc []int32
	for d := x.f.NodeDomain[i]; d >= 0; d = x.f.Domains[d].Parent {
		anc = append(anc, int32(d))
	}
	x.ancestors = append(x.ancestors, anc)
	x.syncDomains()
	x.refresh(i)
}

func (t *typeIndex) fit(d, g int) int32 {
	var s int32
	for f := g; f <= maxDev; f++ {
		s += t.hist[d][f] * int32(f/g)
	}
	return s
}

// treeFor returns the tree of a level's domains ordered by their fit for
// replicas of g devices of type ti, building it on first use.
func (x *index) treeFor(ti, g, lvl int) *btree.BTreeG[domKey] {
	t := x.types[ti]
	for _, lt := range t.byLevel[lvl] {
		if lt.g == g {
			return lt.tr
		}
	}
	tr := btree.NewG(16, domLess)
	for _, d := range x.levelDoms[lvl] {
		tr.ReplaceOrInsert(domKey{fit: t.fit(int(d), g), dom: d})
	}
	t.byLevel[lvl] = append(t.byLevel[lvl], levelTree{g: g, tr: tr})
	return tr
}

// detach removes node i's partial-device entries; call before changing the
// node's devices, then refresh.
func (x *index) detach(i int) {
	ti := x.nodeType[i]
	if ti < 0 || x.whole[i] < 0 {
		return
	}
	t := x.types[ti]
	for _, f := range x.nodes[i].Free {
		if f > 0 && f < place.Whole && t.partial[f].has(i) {
			t.partial[f].clear(i)
			if t.partial[f].n == 0 {
				t.partialVals.clear(int(f))
			}
		}
	}
}

// refresh brings the index in line with node i's current state.
func (x *index) refresh(i int) {
	for len(x.ver) <= i {
		x.ver = append(x.ver, 0)
	}
	x.ver[i]++
	if x.changed != nil {
		x.changed.add(i)
	}
	n := x.nodes[i]
	ti := x.nodeType[i]
	if n.Schedulable {
		x.schedulable.set(i)
	} else {
		x.schedulable.clear(i)
	}
	if ti < 0 {
		return
	}
	t := x.types[ti]
	newWhole := int8(-1)
	if n.Schedulable {
		newWhole = int8(n.FreeWhole())
		for _, f := range n.Free {
			if f > 0 && f < place.Whole {
				t.partial[f].set(i)
				t.partialVals.set(int(f))
			}
		}
	} else {
		// An unschedulable node keeps no partial entries either.
		for _, f := range n.Free {
			if f > 0 && f < place.Whole && t.partial[f].has(i) {
				t.partial[f].clear(i)
				if t.partial[f].n == 0 {
					t.partialVals.clear(int(f))
				}
			}
		}
	}
	old := x.whole[i]
	if old == newWhole {
		return
	}
	x.whole[i] = newWhole
	if old >= 0 {
		t.byFree[old].clear(i)
	}
	if newWhole >= 0 {
		t.byFree[newWhole].set(i)
	}
	for _, d := range x.ancestors[i] {
		if old >= 0 {
			t.hist[d][old]--
		}
		if newWhole >= 0 {
			t.hist[d][newWhole]++
		}
		lvl := x.f.Domains[d].Level
		if lvl < 0 {
			continue
		}
		// A domain's fit for g changes by the node's own change in
		// floor(free/g): recompute and move it only when that is not 0.
		for _, lt := range t.byLevel[lvl] {
			delta := int32(max(int(newWhole), 0)/lt.g - max(int(old), 0)/lt.g)
			if delta == 0 {
				continue
			}
			nf := t.fit(int(d), lt.g)
			lt.tr.Delete(domKey{fit: nf - delta, dom: d})
			lt.tr.ReplaceOrInsert(domKey{fit: nf, dom: d})
		}
	}
}

// take applies a choice to node i (sign +1 allocates, -1 releases) and keeps
// the index true.
func (x *index) take(i int, r *place.Request, c place.Choice, sign int) {
	x.detach(i)
	place.Apply(x.nodes[i], r, c, sign)
	x.refresh(i)
	if x.power != nil {
		x.power.take(i, x.nodeType[i], int64(sign)*int64(len(c.Devices))*int64(c.Milli))
	}
}

// setSchedulable changes whether node i takes new work.
func (x *index) setSchedulable(i int, ok bool) {
	x.detach(i)
	x.nodes[i].Schedulable = ok
	x.refresh(i)
}

// freeWholeIn sums fully free devices of type ti below domain d.
func (x *index) freeWholeIn(ti, d int) int {
	s := 0
	h := &x.types[ti].hist[d]
	for f := 1; f <= maxDev; f++ {
		s += int(h[f]) * f
	}
	return s
}
