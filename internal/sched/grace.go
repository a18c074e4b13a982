package sched

import "github.com/gpufleet/gpufleet/internal/quota"

// limitOf is the most queue q may occupy of flavor f: nominal plus
// borrowing limit, and the pool's nominal at the root.
func (c *Core) limitOf(q, f int) int64 {
	nom, borrow, _ := c.queues.Limits(q, f)
	if q == 0 {
		return nom
	}
	return min(quota.Unlimited, nom+borrow)
}

// noteGrace records the queues an administrator's change left above their
// limits, with what they hold now.
func (c *Core) noteGrace() {
	c.grace = nil
	for q := range c.queues.Len() {
		for f := range c.queues.Flavors() {
			if occ := c.queues.Occupation(q, f); occ > c.limitOf(q, f) {
				if c.grace == nil {
					c.grace = map[[2]int]int64{}
				}
				c.grace[[2]int{q, f}] = occ
			}
		}
	}
}

// graceFor extends the grace of queue q's path for a restored job's
// demand: running work comes back whatever the limits say now.
func (c *Core) graceFor(q int, d quota.Demand) {
	for x := q; x >= 0; x = c.queues.Parent(x) {
		for f := range d {
			if f < 0 {
				continue
			}
			if occ := c.queues.Occupation(x, f); occ > c.limitOf(x, f) {
				if c.grace == nil {
					c.grace = map[[2]int]int64{}
				}
				c.grace[[2]int{x, f}] = max(c.grace[[2]int{x, f}], occ)
			}
		}
		if x == 0 {
			break
		}
	}
}

// tighten lowers the grace of queues above their limits as their work
// ends, so that what a queue gave back is never admitted again above its
// limit.
func (c *Core) tighten() {
	for k, g := range c.grace {
		occ, lim := c.queues.Occupation(k[0], k[1]), c.limitOf(k[0], k[1])
		switch {
		case occ <= lim:
			delete(c.grace, k)
		case occ < g:
			c.grace[k] = occ
		}
	}
}
