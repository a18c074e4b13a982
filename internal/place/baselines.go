package place

import "math"

// The baselines of Weng et al., "Beware of Fragmentation: Scheduling
// GPU-Sharing Workloads with Fragmentation Gradient Descent" (USENIX ATC
// '23), as their simulator scores them: each gives a node whole points
// (0..100), ties between nodes go to the lowest node index (their simulator
// takes the node whose name sorts first, and names nodes in an order drawn
// from the run's seed), and the device within the chosen node is picked by
// the policy's own rule. They are here to be measured against; see
// docs/FRAGMENTATION.md.

// The paper normalises CPU and GPU amounts by the largest node it models.
const (
	specCPU = 128000 // milli-CPU
	specGPU = 8000   // milli-GPU
)

func init() {
	Register("random", func(env *Env) Scorer { return &randomFit{ties: ties{rng: env.Rand}} })
	Register("dotprod", func(*Env) Scorer { return dotProd{} })
	Register("clustering", func(*Env) Scorer { return clustering{} })
	Register("packing", func(*Env) Scorer { return &packing{} })
	Register("bestfit", func(*Env) Scorer { return bestFit{} })
}

// randomFit puts the replica on a node drawn uniformly from those that fit,
// and a shared replica on a device drawn uniformly from those that fit.
type randomFit struct{ ties }

func (s *randomFit) Prepare(*Request) { s.next() }

// Key is node i's draw for the decision: it decides between nodes; the
// device draw only within one.
func (s *randomFit) Key(i int) uint64 { return uint64(s.node(i)) }

func (s *randomFit) Score(n *Node, r *Request, c Choice) float64 {
	var dev uint32
	if len(c.Devices) == 1 && c.Milli < Whole {
		// Choices lists one device per distinct free amount; weight each by
		// how many devices it stands for: the largest of k uniform draws
		// is u^(1/k).
		f := n.Free[c.Devices[0]]
		k := 0
		for _, g := range n.Free {
			if g == f {
				k++
			}
		}
		u := s.unit(n.Index, uint64(f))
		dev = uint32(pow1k(u, k) * drawMax)
	}
	return rank(0, s.node(n.Index), dev)
}

func pow1k(u float64, k int) float64 {
	if k <= 1 {
		return u
	}
	return math.Exp(math.Log(u) / float64(k))
}

// dotProd is Tetris's alignment score as the paper configures it (merged
// GPU dimension, normalised by the largest node): points 100*(1 - <free,
// request>/2), so the node whose free CPU and GPU align least with the
// request wins; devices are picked best-fit.
type dotProd struct{}

func (dotProd) Score(n *Node, r *Request, c Choice) float64 {
	nodeCPU := float64(n.CPUFree) / specCPU
	nodeGPU := float64(n.FreeMilli()) / specGPU
	reqCPU := float64(r.CPUMilli) / specCPU
	reqGPU := float64(r.GPUMilli()) / specGPU
	dot := (nodeCPU*reqCPU + nodeGPU*reqGPU) / 2
	points := int64(100 * (1 - dot))
	return rank(points, 0, bestFitMark(n, c))
}

// clustering keeps replicas of one accelerator shape together: a node that
// already runs only that shape scores in (75, 100], one running it among
// others in (50, 75], an idle node in (25, 50], a node running other shapes
// in [0, 25]; within a band, fuller nodes score higher. CPU-only work
// scores 0 everywhere. Devices are picked best-fit.
type clustering struct{}

func (clustering) Score(n *Node, r *Request, c Choice) float64 {
	var points int64
	if slot := MixSlot(r); slot >= 0 {
		points = 25 * (specGPU - n.FreeMilli()) / specGPU
		kinds := 0
		for _, m := range n.Mix {
			if m > 0 {
				kinds++
			}
		}
		switch {
		case n.Mix[slot] > 0 && kinds == 1:
			points += 75
		case n.Mix[slot] > 0:
			points += 50
		case kinds == 0:
			points += 25
		}
	}
	return rank(points, 0, bestFitMark(n, c))
}

// packing prefers, in this order: partly used devices (the fuller the
// better), free devices on a partly used node (the fewer the better), and
// last a wholly idle node (smaller nodes first). CPU-only work scores 0
// everywhere. Devices are picked best-fit.
type packing struct {
	order []int // scratch
}

func (s *packing) Score(n *Node, r *Request, c Choice) float64 {
	return rank(s.points(n, r), 0, bestFitMark(n, c))
}

func (s *packing) points(n *Node, r *Request) int64 {
	if r.GPUMilli() == 0 {
		return 0
	}
	free := int64(n.FreeWhole())
	if int(free) == len(n.Free) {
		return max(33-free, free)
	}
	milli, want := r.Milli, 1
	if r.Devices > 0 {
		milli, want = Whole, r.Devices
	}
	// Walk devices from the least free up, as the paper does, taking each
	// that fits until the request is covered.
	s.order = ascendingFree(n, s.order[:0])
	var wholeUsed, freePct int64
	for _, d := range s.order {
		if want == 0 {
			break
		}
		f := n.Free[d]
		if f < milli {
			continue
		}
		want--
		if f == Whole {
			wholeUsed++
		}
		freePct += int64(f) * 100 / Whole
	}
	if want > 0 {
		return 0
	}
	if wholeUsed > 0 {
		return max(50-wholeUsed, 33)
	}
	return max(100-freePct/10, 50)
}

// ascendingFree lists n's devices by free milli, least first, keeping index
// order among equals.
func ascendingFree(n *Node, order []int) []int {
	for i := range n.Free {
		order = append(order, i)
	}
	for i := 1; i < len(order); i++ { // insertion sort: stable, and nodes are small
		for j := i; j > 0 && n.Free[order[j]] < n.Free[order[j-1]]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	return order
}

// bestFit scores the free CPU and GPU a placement leaves, each normalised by
// the largest node and weighted one half: the less left, the more points.
// Devices are picked best-fit.
type bestFit struct{}

func (bestFit) Score(n *Node, r *Request, c Choice) float64 {
	left := 0.5*float64(n.CPUFree-r.CPUMilli)/specCPU + 0.5*float64(n.FreeMilli()-r.GPUMilli())/specGPU
	points := int64((1 - left) * 100)
	return rank(points, 0, bestFitMark(n, c))
}

// Local: the score depends on the node and the request alone.
func (dotProd) Local()    {}
func (clustering) Local() {}
func (*packing) Local()   {}
func (bestFit) Local()    {}
