package sched

import (
	"cmp"
	"slices"
)

// usage is the record of replica r of job j held until to.
func (c *Core) usage(j *job, r *replica, to int64, why EndReason) Usage {
	sh := &j.Gangs[r.gang].Shape
	u := Usage{
		Job: j.ID, Attempt: j.attempt, Tenant: j.Tenant, Queue: j.Queue, Kind: j.Kind,
		Gang: r.gang, Replica: r.idx, Tier: j.Tier, Node: c.fleet.Nodes[r.node].Name, Site: c.siteOf(r.node),
		Devices: append([]int(nil), r.choice.Devices...), Milli: r.choice.Milli,
		CPUMilli: sh.CPUMilli, MemoryMiB: sh.MemoryMiB, From: r.since, To: to, End: why, Intensity: round1(j.intensity),
	}
	if u.Tenant == "" && j.queue > 0 {
		u.Tenant = c.queues.Tenant(j.queue)
	}
	if ti := c.idx.nodeType[r.node]; ti >= 0 && len(r.choice.Devices) > 0 {
		u.Type = c.fleet.Catalog.Types[ti].Name
	}
	return u
}

// siteOf names node n's site: its domain at the site level, as a path.
func (c *Core) siteOf(n int) string {
	for len(c.sites) <= n {
		c.sites = append(c.sites, "")
	}
	if c.sites[n] == "" {
		lvl := c.siteLevel
		d := c.fleet.Ancestor(n, lvl)
		c.sites[n] = c.fleet.DomainPath(d)
	}
	return c.sites[n]
}

// Holdings calls fn with an open record (End Open, To the core's clock) for
// every replica that holds capacity now, in job then replica order, so that
// a consumer can meter running work before its records close.
func (c *Core) Holdings(fn func(Usage) bool) {
	js := make([]*job, 0, len(c.running))
	for _, j := range c.running {
		js = append(js, j)
	}
	sortJobs(js)
	for _, j := range js {
		for i := range j.reps {
			if !fn(c.usage(j, &j.reps[i], c.now, EndOpen)) {
				return
			}
		}
	}
}

func sortJobs(js []*job) {
	slices.SortFunc(js, func(a, b *job) int { return cmp.Compare(a.seq, b.seq) })
}
