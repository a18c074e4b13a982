package place

import "math"

func init() {
	Register("sfgd", func(env *Env) Scorer { return newSFGD(env) })
}

// sfgd is gpufleet's own placement policy: fragmentation gradient descent
// (see fgd) over a wider notion of waste. A placement is charged, in
// milli-accelerators, for
//
//   - fragmentation: the growth of the node's fragmentation against the
//     target workload, exactly as FGD measures it;
//   - stranding: accelerators that the node's remaining CPU or memory can
//     no longer feed. The workload's accelerator tasks bring, on average,
//     cpuPerMilli milli-CPU and memPerMilli MiB per milli-accelerator; a
//     node whose free CPU (memory) falls short of that for its free
//     accelerators strands the difference. FGD only notices CPU once a
//     whole task class no longer fits, so it lets CPU-only work eat the CPU
//     that a node's idle accelerators will need;
//   - scarcity: taking an accelerator type that type-constrained tasks of
//     the workload depend on. Each type's pressure is the constrained
//     demand it can expect (each constrained class spread over the types it
//     accepts in proportion to their supply, the workload scaled to the
//     fleet) over its supply, capped at 1; taking m milli of a type costs
//     m times its pressure, so flexible work leaves contested types to the
//     work that has nowhere else to go.
//
// The charge becomes whole points as in FGD (100*sigmoid(-charge/1000)).
// Equal points go to a node already in use before an idle one, which keeps
// idle nodes whole for the largest tasks, then to the lowest node index;
// within a node, to the device FGD would take.
//
// Without a target workload the charges are all zero and the policy packs:
// nodes in use first, then the lowest index.
type sfgd struct {
	frag        *fragCache
	cpuPerMilli float64
	memPerMilli float64
	pressure    map[string]float64
}

func newSFGD(env *Env) *sfgd {
	s := &sfgd{
		frag:     newFragCache(newFragModel(env.Workload, fragOptions{coverage: 0.95})),
		pressure: map[string]float64{},
	}
	if env.Workload == nil {
		return s
	}
	var cpu, mem, gpu float64
	for _, c := range env.Workload.Classes {
		if g := c.Req.GPUMilli(); g > 0 && c.Weight > 0 {
			cpu += c.Weight * float64(c.Req.CPUMilli)
			mem += c.Weight * float64(c.Req.MemoryMiB)
			gpu += c.Weight * float64(g)
		}
	}
	if gpu > 0 {
		s.cpuPerMilli, s.memPerMilli = cpu/gpu, mem/gpu
	}
	s.pressure = typePressure(env.Workload, env.Nodes)
	return s
}

// typePressure is, per accelerator type, the demand of type-constrained
// classes it can expect over its supply.
func typePressure(w *Workload, nodes []*Node) map[string]float64 {
	supply := map[string]float64{}
	var total float64
	for _, n := range nodes {
		if n.Accel != "" {
			supply[n.Accel] += float64(len(n.Free)) * Whole
			total += float64(len(n.Free)) * Whole
		}
	}
	var demand float64
	constrained := map[string]float64{}
	for _, c := range w.Classes {
		g := c.Weight * float64(c.Req.GPUMilli())
		if g <= 0 {
			continue
		}
		demand += g
		if len(c.Req.Accel) == 0 {
			continue
		}
		var reach float64
		for _, t := range c.Req.Accel {
			reach += supply[t]
		}
		if reach == 0 {
			continue
		}
		for _, t := range c.Req.Accel {
			constrained[t] += g * supply[t] / reach
		}
	}
	out := map[string]float64{}
	if demand == 0 {
		return out
	}
	for t, d := range constrained {
		if supply[t] > 0 {
			// Scale the workload so its demand equals the fleet's supply.
			out[t] = min(1, d/demand*total/supply[t])
		}
	}
	return out
}

func (s *sfgd) Prepare(r *Request) { s.frag.prepare(r) }

func (s *sfgd) Score(n *Node, r *Request, c Choice) float64 {
	before, after := s.frag.delta(n, r, c)
	extra := s.extra(n, r)
	mark := uint32(1)
	if dev := sharedDevice(c); dev >= 0 &&
		s.frag.bestShared(n, r, func(b, a float64) int64 { return fgdPoints(b, a+extra) }) != dev {
		mark = 0
	}
	var used uint32
	if n.FreeWhole() < len(n.Free) || n.CPUFree < n.CPUCap || n.MemFree < n.MemCap {
		used = 1
	}
	return rank(fgdPoints(before, after+extra), used, mark)
}

// extra is the stranding and scarcity charge of placing r on n; it does not
// depend on the device.
func (s *sfgd) extra(n *Node, r *Request) float64 {
	g := float64(n.FreeMilli())
	x := float64(r.GPUMilli())
	v := s.strand(g-x, float64(n.CPUFree-r.CPUMilli), float64(n.MemFree-r.MemoryMiB)) -
		s.strand(g, float64(n.CPUFree), float64(n.MemFree))
	return v + x*s.pressure[n.Accel]
}

// strand is the accelerator milli that free CPU and memory cannot feed.
func (s *sfgd) strand(g, cpu, mem float64) float64 {
	var v float64
	if s.cpuPerMilli > 0 {
		v += math.Max(0, g-cpu/s.cpuPerMilli)
	}
	if s.memPerMilli > 0 {
		v += math.Max(0, g-mem/s.memPerMilli)
	}
	return v
}

// Local: the score depends on the node and the request alone.
func (*sfgd) Local() {}
