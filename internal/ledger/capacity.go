package ledger

import (
	"fmt"
	"sort"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// Capacity is accelerators of a type at a site during [FromMs, ToMs): a
// node, or a set of nodes, present in the fleet. A report takes the fleet's
// capacity as a list of these, so that nodes coming and going are counted
// for the time they were there.
type Capacity struct {
	Type, Site   string
	Accelerators int
	FromMs, ToMs int64
}

// FleetCapacity returns the capacity of a fleet's nodes that are not down
// over [from, to), one entry per type and site; the site of a node is its
// domain at topology level (0 is the outermost, region by default),
// written as a domain path ("us-east", "us-east/z1").
func FleetCapacity(f *fleet.Fleet, level int, from, to int64) ([]Capacity, error) {
	if level < 0 || level >= len(f.Levels) {
		return nil, fmt.Errorf("fleet capacity: level %d: want 0..%d", level, len(f.Levels)-1)
	}
	sum := map[[2]string]int{}
	for i, n := range f.Nodes {
		if n.State == fleet.Down || n.Count == 0 {
			continue
		}
		sum[[2]string{n.Accel, f.DomainPath(f.Ancestor(i, level))}] += n.Count
	}
	out := make([]Capacity, 0, len(sum))
	for k, c := range sum {
		out = append(out, Capacity{Type: k[0], Site: k[1], Accelerators: c, FromMs: from, ToMs: to})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Site < out[j].Site
	})
	return out, nil
}
