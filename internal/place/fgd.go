package place

import "slices"

func init() {
	Register("fgd", func(env *Env) Scorer {
		return &fgd{frag: newFragCache(newFragModel(env.Workload, fragOptions{coverage: 0.95}))}
	})
}

// fgd is Fragmentation Gradient Descent (Weng et al., ATC '23): put the
// replica where the node's fragmentation, measured against the target
// workload's most frequent classes, grows least. Points are
// 100*sigmoid(-growth/1000), whole points as in the paper's simulator;
// ties go to the lowest node index and, within a node, the lowest device.
// Without a target workload every placement scores the same.
type fgd struct {
	frag *fragCache
}

func (s *fgd) Prepare(r *Request) { s.frag.prepare(r) }

func (s *fgd) Score(n *Node, r *Request, c Choice) float64 {
	before, after := s.frag.delta(n, r, c)
	mark := uint32(1)
	if dev := sharedDevice(c); dev >= 0 && s.frag.bestShared(n, r, fgdPoints) != dev {
		mark = 0
	}
	return rank(fgdPoints(before, after), 0, mark)
}

// fgdPoints are the paper's whole points for a fragmentation change.
func fgdPoints(before, after float64) int64 {
	return int64(sigmoid((before-after)/1000) * 100)
}

// sharedDevice is the device of a choice that shares one, or -1.
func sharedDevice(c Choice) int {
	if len(c.Devices) == 1 && c.Milli < Whole {
		return c.Devices[0]
	}
	return -1
}

// fragCache remembers each node's fragmentation and, per request shape and
// device, the fragmentation a placement would leave, for as long as the
// node stays as it was. A placement changes one node, so between two
// arrivals of a shape almost every node answers from the cache.
type fragCache struct {
	model  *fragModel
	shapes map[fragShape]uint64
	cur    fragShape // the request being placed
	shape  uint64    // and its id
	nodes  []fragNode
	free   []int32 // scratch
	dev    [1]int
}

type fragShape struct {
	cpu     int64
	mem     int64 // 0 unless the model checks memory
	milli   int32
	devices int
}

type fragNode struct {
	valid  bool
	accel  string
	cpu    int64
	mem    int64
	free   []int32
	tf     *typeFrag
	before float64
	after  map[uint64]float64
}

func newFragCache(m *fragModel) *fragCache {
	return &fragCache{model: m, shapes: map[fragShape]uint64{}, cur: fragShape{devices: -1}}
}

func (fc *fragCache) shapeOf(r *Request) fragShape {
	k := fragShape{cpu: r.CPUMilli, milli: r.Milli, devices: r.Devices}
	if fc.model.opts.memory {
		k.mem = r.MemoryMiB
	}
	return k
}

func (fc *fragCache) prepare(r *Request) {
	k := fc.shapeOf(r)
	id, ok := fc.shapes[k]
	if !ok {
		id = uint64(len(fc.shapes))
		fc.shapes[k] = id
	}
	fc.cur, fc.shape = k, id
}

// node returns n's cache entry, refreshed if n changed since it was
// filled, with r as the shape being placed.
func (fc *fragCache) node(n *Node, r *Request) *fragNode {
	if fc.cur != fc.shapeOf(r) {
		fc.prepare(r) // scored without Prepare
	}
	if n.Index >= len(fc.nodes) {
		fc.nodes = append(fc.nodes, make([]fragNode, n.Index+1-len(fc.nodes))...)
	}
	e := &fc.nodes[n.Index]
	if e.valid && e.cpu == n.CPUFree && e.mem == n.MemFree && e.accel == n.Accel && slices.Equal(e.free, n.Free) {
		return e
	}
	e.valid, e.accel, e.cpu, e.mem = true, n.Accel, n.CPUFree, n.MemFree
	e.free = append(e.free[:0], n.Free...)
	e.tf = fc.model.forType(n.Accel)
	e.before = e.tf.frag(n.CPUFree, n.MemFree, n.Free)
	if e.after == nil {
		e.after = map[uint64]float64{}
	} else {
		clear(e.after)
	}
	return e
}

// delta returns n's fragmentation before and after placing r as c.
func (fc *fragCache) delta(n *Node, r *Request, c Choice) (before, after float64) {
	e := fc.node(n, r)
	dev := sharedDevice(c)
	key := fc.shape << 12
	if dev >= 0 {
		key |= uint64(n.Free[dev]) + 1
	}
	if v, ok := e.after[key]; ok {
		return e.before, v
	}
	fc.free = append(fc.free[:0], n.Free...)
	for _, d := range c.Devices {
		fc.free[d] -= c.Milli
	}
	v := e.tf.frag(n.CPUFree-r.CPUMilli, n.MemFree-r.MemoryMiB, fc.free)
	e.after[key] = v
	return e.before, v
}

// bestShared returns the device on which a shared request r scores best on
// n under points, the lowest index among equals, as the paper's device scan
// picks it.
func (fc *fragCache) bestShared(n *Node, r *Request, points func(before, after float64) int64) int {
	e := fc.node(n, r)
	key := fc.shape<<12 | 0xfff
	if v, ok := e.after[key]; ok {
		return int(v)
	}
	best, bestDev := int64(0), -1
	for i, f := range n.Free {
		if f < r.Milli {
			continue
		}
		before, after := fc.delta(n, r, Choice{Node: n.Index, Milli: r.Milli, Devices: fc.one(i)})
		if p := points(before, after); bestDev < 0 || p > best {
			best, bestDev = p, i
		}
	}
	e.after[key] = float64(bestDev)
	return bestDev
}

// one returns a scratch one-device list.
func (fc *fragCache) one(d int) []int {
	fc.dev[0] = d
	return fc.dev[:]
}

// Local: the score depends on the node and the request alone.
func (*fgd) Local() {}
