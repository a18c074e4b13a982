// Package place holds what placement decides on: the allocatable state of a
// node (free milli-accelerators per device, CPU, memory), the shape one
// replica asks for, and the named scoring stages that rank where a replica
// should go. The scheduling core and the simulator share these stages, so a
// policy measured in simulation is the policy that runs live.
package place

import "fmt"

// Whole is one accelerator in milli-units.
const Whole = 1000

// Node is the allocatable state of one node as placement sees it.
type Node struct {
	Index int    // position in the fleet's node list
	Accel string // accelerator type ("" for CPU-only nodes)
	// Free holds the free milli-accelerators of each device (0..1000).
	Free    []int32
	CPUCap  int64
	MemCap  int64
	CPUFree int64
	MemFree int64
	// Schedulable is false for nodes that are draining or down.
	Schedulable bool
	// Mix counts the replicas on the node by accelerator shape: Mix[0]
	// those sharing a device, Mix[k] those taking k whole devices (the last
	// slot also holds larger ones). CPU-only replicas are not counted.
	// Apply keeps it; GPU clustering reads it.
	Mix [MixSlots]int32
}

// MixSlots is the length of Node.Mix.
const MixSlots = 9

// MixSlot is the Node.Mix slot that a replica of shape r counts in, or -1
// for CPU-only work.
func MixSlot(r *Request) int {
	switch {
	case r.Devices > 0:
		return min(r.Devices, MixSlots-1)
	case r.Milli > 0:
		return 0
	}
	return -1
}

// FreeWhole counts fully free devices.
func (n *Node) FreeWhole() int {
	c := 0
	for _, f := range n.Free {
		if f == Whole {
			c++
		}
	}
	return c
}

// FreeMilli sums free milli-accelerators over all devices.
func (n *Node) FreeMilli() int64 {
	var s int64
	for _, f := range n.Free {
		s += int64(f)
	}
	return s
}

// Request is the shape of one replica.
type Request struct {
	// Accel lists acceptable accelerator types; empty accepts any.
	Accel []string
	// Devices is the number of whole accelerators; when it is 0 and Milli
	// is above 0 the replica takes Milli (1..999) of one shared device.
	Devices   int
	Milli     int32
	CPUMilli  int64
	MemoryMiB int64
}

// GPUMilli is the replica's accelerator demand in milli-units.
func (r *Request) GPUMilli() int64 {
	if r.Devices > 0 {
		return int64(r.Devices) * Whole
	}
	return int64(r.Milli)
}

// Validate checks the request's own consistency.
func (r *Request) Validate() error {
	switch {
	case r.Devices < 0:
		return fmt.Errorf("devices %d: must not be negative", r.Devices)
	case r.Devices > 0 && r.Milli != 0 && r.Milli != Whole:
		return fmt.Errorf("milli %d: a fraction is only allowed with devices 0", r.Milli)
	case r.Devices == 0 && (r.Milli < 0 || r.Milli >= Whole):
		return fmt.Errorf("milli %d: want 1..999 for a shared device, or devices >= 1", r.Milli)
	case r.CPUMilli < 0 || r.MemoryMiB < 0:
		return fmt.Errorf("cpu and memory must not be negative")
	}
	return nil
}

// Accepts reports whether the request may run on accelerator type t.
func (r *Request) Accepts(t string) bool {
	if r.Devices == 0 && r.Milli == 0 {
		return true // CPU-only work runs anywhere
	}
	if t == "" {
		return false
	}
	if len(r.Accel) == 0 {
		return true
	}
	for _, a := range r.Accel {
		if a == t {
			return true
		}
	}
	return false
}

// Choice is a concrete placement of one replica on one node.
type Choice struct {
	Node    int
	Devices []int // device indices on the node
	Milli   int32 // milli taken on each device (1000 for whole devices)
}

// Fits reports whether r fits n's CPU, memory and accelerator type, and that
// enough device capacity is free. It does not pick devices.
func Fits(n *Node, r *Request) bool {
	if !n.Schedulable || n.CPUFree < r.CPUMilli || n.MemFree < r.MemoryMiB || !r.Accepts(n.Accel) {
		return false
	}
	switch {
	case r.Devices > 0:
		return n.FreeWhole() >= r.Devices
	case r.Milli > 0:
		for _, f := range n.Free {
			if f >= r.Milli {
				return true
			}
		}
		return false
	}
	return true
}

// Choices lists the distinct ways r can be put on n: for whole devices the
// lowest-indexed free ones; for a fraction, one choice per distinct amount of
// free milli among devices that can take it (devices with equal free milli
// are interchangeable, so the lowest index stands for them). It appends to
// buf and returns it.
func Choices(n *Node, r *Request, buf []Choice) []Choice {
	if !Fits(n, r) {
		return buf
	}
	switch {
	case r.Devices > 0:
		devs := make([]int, 0, r.Devices)
		for i, f := range n.Free {
			if f == Whole {
				devs = append(devs, i)
				if len(devs) == r.Devices {
					break
				}
			}
		}
		return append(buf, Choice{Node: n.Index, Devices: devs, Milli: Whole})
	case r.Milli > 0:
		var seen [Whole + 1]bool
		for i, f := range n.Free {
			if f >= r.Milli && !seen[f] {
				seen[f] = true
				buf = append(buf, Choice{Node: n.Index, Devices: []int{i}, Milli: r.Milli})
			}
		}
		return buf
	}
	return append(buf, Choice{Node: n.Index})
}

// Apply takes a choice's resources from n (sign +1) or gives them back (-1).
func Apply(n *Node, r *Request, c Choice, sign int) {
	n.CPUFree -= int64(sign) * r.CPUMilli
	n.MemFree -= int64(sign) * r.MemoryMiB
	for _, d := range c.Devices {
		n.Free[d] -= int32(sign) * c.Milli
	}
	if k := MixSlot(r); k >= 0 {
		n.Mix[k] += int32(sign)
	}
}

// Scorer ranks one choice on one node; higher is better. Scores are compared
// only among choices for the same request within one placement decision.
type Scorer interface {
	Score(n *Node, r *Request, c Choice) float64
}

// Ranked is implemented by scorers that, once prepared for a decision
// (Preparer), give each node a key that orders nodes as their best scores
// do: a node with a higher key scores higher, whatever choice either takes;
// nodes with equal keys must be scored to be told apart. A caller choosing
// among many nodes then needs to check only the nodes whose key beats the
// best feasible one seen so far.
type Ranked interface {
	Scorer
	Key(node int) uint64
}

// Local is implemented by scorers whose score depends only on the node's
// own state and the request: no per-decision draw, nothing of other nodes
// that changes. A caller may keep such a node's scores for a request shape
// for as long as the node does not change.
type Local interface {
	Scorer
	Local()
}
