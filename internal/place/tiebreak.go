package place

import (
	"math"
	"math/rand/v2"
)

// The paper baselines score nodes in whole points (0..100), as the Kubernetes
// scheduler framework does, then pick a device within the chosen node by a
// rule of their own. rank packs the points, a per-node draw (used by the
// random policy only; 0 elsewhere, leaving ties to Select's index order) and
// a device mark into one float64 so that Select's plain "highest wins"
// reproduces that: the points decide, then the draw, then the mark. The mark
// is the same for every node's preferred device, so it picks the device
// within a node without breaking ties between nodes. All three fields are
// integers, so the packing is exact in a float64's 53-bit mantissa.
const (
	drawBits   = 21
	drawMax    = 1<<drawBits - 1
	pointsMax  = 1<<(53-2*drawBits) - 1
	pointShift = 2 * drawBits
)

func rank(points int64, node, dev uint32) float64 {
	points = min(max(points, 0), pointsMax)
	return float64(points<<pointShift | int64(node&drawMax)<<drawBits | int64(dev&drawMax))
}

// ties draws the per-decision random numbers that break ties. Without a
// source every draw is zero and Select's index order breaks the ties.
type ties struct {
	rng  *rand.Rand
	salt uint64
}

func (t *ties) next() {
	if t.rng != nil {
		t.salt = t.rng.Uint64()
	}
}

// node is node i's draw for the current decision.
func (t *ties) node(i int) uint32 {
	if t.rng == nil {
		return 0
	}
	return uint32(mix64(t.salt^uint64(i)*0x9e3779b97f4a7c15) >> (64 - drawBits))
}

// unit is a uniform draw in (0, 1) for node i and key k.
func (t *ties) unit(i int, k uint64) float64 {
	h := mix64(t.salt ^ mix64(uint64(i)<<32^k^0x5851f42d4c957f2d))
	return (float64(h>>11) + 0.5) / (1 << 53)
}

// mix64 is the SplitMix64 finaliser: a cheap bijective scramble.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// bestFitMark is 1 for the device that the paper's "best" GPU selection takes
// within a node (the shared device with the least free milli that fits, the
// lowest index among equals) and 0 for other devices. It is a 0/1 mark
// rather than a grade so that it orders choices within one node and never
// breaks a tie between nodes. Whole-device and CPU-only requests have one
// choice per node.
func bestFitMark(n *Node, c Choice) uint32 {
	if len(c.Devices) != 1 || c.Milli == Whole {
		return 1
	}
	best := -1
	for i, f := range n.Free {
		if f >= c.Milli && (best < 0 || f < n.Free[best]) {
			best = i
		}
	}
	if best == c.Devices[0] {
		return 1
	}
	return 0
}

// sigmoid maps a fragmentation change onto (0, 1).
func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
