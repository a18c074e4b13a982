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
	// trees[g][level] orders the domains of a level by their fit for
	// replicas of g whole devices; built on first use.
	trees map[int][]*btree.BTreeG[domKey]
	gs    []int // keys of trees, in the order they were built
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
}

func newIndex(f *fleet.Fleet) *index {
	x := &index{f: f, types: make([]*typeIndex, len(f.Catalog.Types))}
	for i := range x.types {
		x.types[i] = &typeIndex{trees: map[int][]*btree.BTreeG[domKey]{}}
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
			for g, trees := range t.trees {
				trees[lvl].ReplaceOrInsert(domKey{fit: t.fit(d, g), dom: int32(d)})
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

// treesFor returns the per-level domain trees for replicas of g devices,
// building them on first use.
func (x *index) treesFor(ti, g int) []*btree.BTreeG[domKey] {
	t := x.types[ti]
	if tr, ok := t.trees[g]; ok {
		return tr
	}
	tr := make([]*btree.BTreeG[domKey], len(x.f.Levels))
	for lvl := range tr {
		tr[lvl] = btree.NewG(16, domLess)
		for _, d := range x.levelDoms[lvl] {
			tr[lvl].ReplaceOrInsert(domKey{fit: t.fit(int(d), g), dom: d})
		}
	}
	t.trees[g] = tr
	t.gs = append(t.gs, g)
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
	var before [maxDev + 1]int32
	for _, d := range x.ancestors[i] {
		lvl := x.f.Domains[d].Level
		if lvl >= 0 {
			for _, g := range t.gs {
				before[g] = t.fit(int(d), g)
			}
		}
		if old >= 0 {
			t.hist[d][old]--
		}
		if newWhole >= 0 {
			t.hist[d][newWhole]++
		}
		if lvl < 0 {
			continue
		}
		for _, g := range t.gs {
			if nf := t.fit(int(d), g); nf != before[g] {
				tr := t.trees[g][lvl]
				tr.Delete(domKey{fit: before[g], dom: d})
				tr.ReplaceOrInsert(domKey{fit: nf, dom: d})
			}
		}
	}
}

// take applies a choice to node i (sign +1 allocates, -1 releases) and keeps
// the index true.
func (x *index) take(i int, r *place.Request, c place.Choice, sign int) {
	x.detach(i)
	place.Apply(x.nodes[i], r, c, sign)
	x.refresh(i)
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
