package sched

import (
	"slices"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// flavorKey names a quota flavor by catalog type and tier.
type flavorKey struct {
	ti   int
	tier string
}

// flavor is the queue tree's index of the flavor of catalog type ti in a
// tier, -1 when no queue has quota for it; cached until the tree changes.
func (c *Core) flavor(ti int, tier string) int {
	k := flavorKey{ti, tier}
	if f, ok := c.flavors[k]; ok {
		return f
	}
	f := c.queues.FlavorIndex(c.flavorName(ti, tier))
	if c.flavors == nil {
		c.flavors = map[flavorKey]int{}
	}
	c.flavors[k] = f
	return f
}

// flavorName is the name of the flavor of catalog type ti in a tier.
func (c *Core) flavorName(ti int, tier string) string {
	return quota.Flavor(c.fleet.Catalog.Types[ti].Name, tier)
}

// flavorsOf lists the flavors of every type j's gangs accept, in index
// order, without those no queue has quota for.
func (c *Core) flavorsOf(j *job) []int {
	var out []int
	for g := range j.Gangs {
		for _, ti := range c.opts(j, g) {
			if ti < 0 {
				continue
			}
			if f := c.flavor(ti, j.Tier); f >= 0 && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out
}
