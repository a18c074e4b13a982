package sched

import (
	"fmt"
	"slices"

	"github.com/gpufleet/gpufleet/internal/place"
)

// heldDevices are devices of a node kept apart from placement.
type heldDevices struct {
	node   int
	shape  place.Request
	choice place.Choice
}

// holdDevices takes devices of a node out of the capacity index for
// something the core does not place (DevicesHeld). The devices must be
// free: a driver holds them before any job could be placed there.
func (c *Core) holdDevices(e DevicesHeld) error {
	if _, dup := c.held[e.Key]; dup {
		return fmt.Errorf("devices %q: already held", e.Key)
	}
	n, ok := c.fleet.NodeIndex(e.Node)
	if !ok {
		return fmt.Errorf("devices %q: node %q not in the fleet", e.Key, e.Node)
	}
	h := heldDevices{node: n, choice: place.Choice{Node: n, Devices: slices.Clone(e.Devices), Milli: e.Milli},
		shape: place.Request{CPUMilli: e.CPUMilli, MemoryMiB: e.MemoryMiB}}
	switch {
	case e.Milli > 0 && e.Milli < place.Whole:
		h.shape.Milli = e.Milli
	default:
		h.shape.Devices = len(e.Devices)
		h.choice.Milli = place.Whole
	}
	if len(e.Devices) == 0 {
		h.shape.Devices, h.shape.Milli = 0, 0
	}
	// Whatever type the node has: the request is the node's own.
	pn := c.idx.nodes[n]
	if pn.Accel != "" {
		h.shape.Accel = []string{pn.Accel}
	}
	if err := c.checkChoice(n, &h.shape, h.choice); err != nil {
		return fmt.Errorf("devices %q: %w", e.Key, err)
	}
	c.idx.take(n, &h.shape, h.choice, +1)
	if c.held == nil {
		c.held = map[string]heldDevices{}
	}
	c.held[e.Key] = h
	return nil
}

// freeDevices gives held devices back.
func (c *Core) freeDevices(key string) error {
	h, ok := c.held[key]
	if !ok {
		return fmt.Errorf("devices %q: not held", key)
	}
	delete(c.held, key)
	c.idx.take(h.node, &h.shape, h.choice, -1)
	return nil
}
