package sched

import (
	"fmt"
	"math"
	"slices"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
)

// Power caps. A site (any topology domain: a region, a zone) may have a cap
// on its power draw, facility power by default or IT power. The draw comes
// from the catalog's power model: every accelerator of a node that is up
// (not failed) draws its idle power, and every allocated milli of one adds
// (board - idle power) x milli / 1000, whether its replica is bound or held
// for a deferred job (committed power: the job must be able to run within
// the cap when its window comes). Facility power is IT power x PUE.
//
// The core never admits work that would take a site over its cap: the
// resources filter rules out a node whose capped sites lack the headroom
// for one more replica, and a job kept out that way waits with the code
// PowerCapped. The book keeps, per capped site and catalog type, the
// allocated milli and the devices on up nodes as integers, changed by
// every allocation (index.take), so what-if probes that allocate and take
// back leave it exact; a draw costs O(types) to read.
//
// When a cap is cut below what the site draws (a utility asks for a cut:
// SitePowerCapped), the core stops work there in priority order, lowest
// first and newest first among equals, with each job's notice, until what
// remains is within the cap: jobs held for a later window give their
// capacity back first (they lose nothing), then running jobs are
// preempted (an interruptible one is suspended at a checkpoint and keeps
// its work). They wait again like any preempted job, kept out by the cap
// until power frees.

// powerBook is the draw of every capped site.
type powerBook struct {
	cat   *fleet.Catalog
	sites []*capSite
	byDom map[int]*capSite
	// nodeSites lists, per node, the capped sites above it; up marks the
	// nodes whose idle power counts.
	nodeSites [][]*capSite
	up        []bool
	// waiting are configured sites whose domain has no node yet.
	waiting []Site
}

// capSite is one site's cap and what it draws.
type capSite struct {
	dom   int
	path  string
	capKW float64
	itCap bool
	pue   float64
	// busy and devices are, per catalog type, the allocated milli and the
	// devices of up nodes below the site.
	busy, devices []int64
}

// itW is the site's IT power in watts.
func (s *capSite) itW(cat *fleet.Catalog) float64 {
	w := 0.0
	for t := range s.busy {
		a := &cat.Types[t]
		w += float64(s.devices[t])*a.IdlePowerW + float64(s.busy[t])/1000*(a.BoardPowerW-a.IdlePowerW)
	}
	return w
}

// factor turns IT power into the power the cap is of.
func (s *capSite) factor() float64 {
	if s.itCap || s.pue <= 0 {
		return 1
	}
	return s.pue
}

// kw is the draw the cap is compared with.
func (s *capSite) kw(cat *fleet.Catalog) float64 { return s.itW(cat) * s.factor() / 1000 }

// busyKW is what m allocated milli of type t add to the capped draw.
func (s *capSite) busyKW(cat *fleet.Catalog, t int, m int64) float64 {
	a := &cat.Types[t]
	return float64(m) / 1000 * (a.BoardPowerW - a.IdlePowerW) * s.factor() / 1000
}

// capSlack absorbs the rounding of sums of watts, so a replica that fills
// a cap exactly still fits.
const capSlack = 1e-9

func newPowerBook(cat *fleet.Catalog) *powerBook {
	return &powerBook{cat: cat, byDom: map[int]*capSite{}}
}

// addSite makes domain d a site the book tracks, counting what the nodes
// below it draw now.
func (b *powerBook) addSite(c *Core, d int, path string) *capSite {
	if s := b.byDom[d]; s != nil {
		return s
	}
	s := &capSite{dom: d, path: path, busy: make([]int64, len(b.cat.Types)), devices: make([]int64, len(b.cat.Types))}
	b.sites = append(b.sites, s)
	b.byDom[d] = s
	for n := range c.fleet.Nodes {
		b.syncNode(c, n)
		if !c.inDomain(n, d) {
			continue
		}
		b.nodeSites[n] = append(b.nodeSites[n], s)
		ti := c.idx.nodeType[n]
		if ti < 0 {
			continue
		}
		if b.up[n] {
			s.devices[ti] += int64(len(c.idx.nodes[n].Free))
		}
		s.busy[ti] += busyMilli(c.idx.nodes[n])
	}
	return s
}

// syncNode makes room for node n and notes whether it is up.
func (b *powerBook) syncNode(c *Core, n int) {
	for len(b.nodeSites) <= n {
		b.nodeSites = append(b.nodeSites, nil)
		i := len(b.up)
		b.up = append(b.up, c.fleet.Nodes[i].State != fleet.Down)
	}
}

// addNode registers a node appended to the fleet (NodeAdded).
func (b *powerBook) addNode(c *Core, n int) {
	if len(b.waiting) > 0 {
		// Its domains may be new: a configured site may now exist.
		defer b.activate(c)
	}
	b.syncNode(c, n)
	for _, s := range b.sites {
		if c.inDomain(n, s.dom) {
			b.nodeSites[n] = append(b.nodeSites[n], s)
			if ti := c.idx.nodeType[n]; ti >= 0 && b.up[n] {
				s.devices[ti] += int64(len(c.idx.nodes[n].Free))
			}
		}
	}
}

func busyMilli(pn *place.Node) int64 {
	var m int64
	for _, f := range pn.Free {
		m += int64(place.Whole - f)
	}
	return m
}

// take records m milli of type ti allocated (negative: released) on node n.
func (b *powerBook) take(n, ti int, m int64) {
	if ti < 0 || n >= len(b.nodeSites) {
		return
	}
	for _, s := range b.nodeSites[n] {
		s.busy[ti] += m
	}
}

// setUp records node n going down (its idle power stops) or coming back.
func (b *powerBook) setUp(c *Core, n int, up bool) {
	b.syncNode(c, n)
	if b.up[n] == up {
		return
	}
	b.up[n] = up
	ti := c.idx.nodeType[n]
	if ti < 0 {
		return
	}
	d := int64(len(c.idx.nodes[n].Free))
	if !up {
		d = -d
	}
	for _, s := range b.nodeSites[n] {
		s.devices[ti] += d
	}
}

// room reports whether one more replica of r on node n keeps every capped
// site above it within its cap; when not, it returns the first site
// short.
func (b *powerBook) room(c *Core, n int, r *place.Request) (*capSite, float64) {
	ti := c.idx.nodeType[n]
	if ti < 0 || n >= len(b.nodeSites) {
		return nil, 0
	}
	m := int64(r.Devices) * place.Whole
	if r.Devices == 0 {
		m = int64(r.Milli)
	}
	for _, s := range b.nodeSites[n] {
		if s.capKW <= 0 {
			continue
		}
		if need := s.busyKW(b.cat, ti, m); s.kw(b.cat)+need > s.capKW+capSlack {
			return s, need
		}
	}
	return nil, 0
}

// powerStatus is the status of a job kept out by a site's cap.
func (b *powerBook) powerStatus(s *capSite, need float64) Status {
	return Status{Code: PowerCapped, Domain: s.path, PowerKW: round1(s.kw(b.cat)), CapKW: s.capKW, NeedKW: round1(need), Facility: s.factor() != 1 || !s.itCap}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// initPower builds the book from Config.Sites.
func (c *Core) initPower() error {
	if len(c.cfg.Sites) == 0 {
		return nil
	}
	b := newPowerBook(c.fleet.Catalog)
	seen := map[string]bool{}
	for i, st := range c.cfg.Sites {
		if st.PowerCapKW < 0 || math.IsNaN(st.PowerCapKW) || math.IsInf(st.PowerCapKW, 0) {
			return fmt.Errorf("sites[%d].powerCapKW: %v, want a number of kW (0 for no cap)", i, st.PowerCapKW)
		}
		if st.PUE != 0 && !(st.PUE >= 1 && st.PUE <= 5) {
			return fmt.Errorf("sites[%d].pue: %v, want 1..5", i, st.PUE)
		}
		if st.Domain == "" || seen[st.Domain] {
			return fmt.Errorf("sites[%d].domain: %q is empty or listed twice", i, st.Domain)
		}
		seen[st.Domain] = true
		// A domain the fleet does not have yet (a core rebuilt node by
		// node) takes its site when its first node comes.
		b.waiting = append(b.waiting, st)
	}
	c.power = b
	c.idx.power = b
	b.activate(c)
	return nil
}

// activate gives the configured sites whose domains now exist their
// place in the book.
func (b *powerBook) activate(c *Core) {
	kept := b.waiting[:0]
	for _, st := range b.waiting {
		d, ok := c.domainByPath(st.Domain)
		if !ok {
			kept = append(kept, st)
			continue
		}
		s := b.addSite(c, d, c.fleet.DomainPath(d))
		s.capKW, s.itCap, s.pue = st.PowerCapKW, st.ITCap, st.PUE
	}
	b.waiting = kept
}

// domainByPath finds a domain by its path ("fleet" is the root).
func (c *Core) domainByPath(path string) (int, bool) {
	if len(c.domPaths) != len(c.fleet.Domains) {
		c.domPaths = make(map[string]int, len(c.fleet.Domains))
		for d := range c.fleet.Domains {
			c.domPaths[c.fleet.DomainPath(d)] = d
		}
	}
	d, ok := c.domPaths[path]
	return d, ok
}

// capPower applies SitePowerCapped.
func (c *Core) capPower(e SitePowerCapped) error {
	if e.KW < 0 || math.IsNaN(e.KW) || math.IsInf(e.KW, 0) {
		return fmt.Errorf("site %s: power cap %v kW, want a number of kW (0 lifts the cap)", e.Site, e.KW)
	}
	if e.PUE != 0 && !(e.PUE >= 1 && e.PUE <= 5) {
		return fmt.Errorf("site %s: pue %v, want 1..5", e.Site, e.PUE)
	}
	d, ok := c.domainByPath(e.Site)
	if !ok {
		return fmt.Errorf("site %q: no such domain in the fleet", e.Site)
	}
	if c.power == nil {
		c.power = newPowerBook(c.fleet.Catalog)
		c.idx.power = c.power
	}
	_, known := c.power.byDom[d]
	s := c.power.addSite(c, d, c.fleet.DomainPath(d))
	if !known {
		s.pue = e.PUE
	}
	s.capKW = e.KW
	c.shed(s)
	return nil
}

// shed stops work below site s, in priority order, until what it will
// draw once the stopped work is gone is within its cap.
func (c *Core) shed(s *capSite) {
	cat := c.fleet.Catalog
	over := s.kw(cat) - s.capKW
	if s.capKW <= 0 || over <= capSlack {
		return
	}
	var js []*job
	seen := map[*job]bool{}
	for n := range c.fleet.Nodes {
		if !c.inDomain(n, s.dom) {
			continue
		}
		for _, j := range c.nodeJobs[n] {
			if !seen[j] {
				seen[j] = true
				js = append(js, j)
			}
		}
	}
	// Work already on its way out gives its power back at its deadline.
	var stoppable []*job
	for _, j := range js {
		if j.state == jPreempting && !j.toHold {
			over -= c.jobKW(j, s)
			continue
		}
		stoppable = append(stoppable, j)
	}
	slices.SortFunc(stoppable, func(a, b *job) int {
		if ha, hb := a.state == jHeld, b.state == jHeld; ha != hb {
			if ha {
				return -1
			}
			return 1
		}
		if a.Priority != b.Priority {
			return int(a.Priority) - int(b.Priority)
		}
		if a.seq > b.seq {
			return -1
		}
		return 1
	})
	reason := fmt.Sprintf("site %s's power cap was cut to %.1f kW", s.path, s.capKW)
	for _, j := range stoppable {
		if over <= capSlack {
			return
		}
		over -= c.jobKW(j, s)
		c.stopForPower(j, reason)
	}
}

// jobKW is the busy power job j's replicas add below site s.
func (c *Core) jobKW(j *job, s *capSite) float64 {
	kw := 0.0
	for _, r := range j.reps {
		if ti := c.idx.nodeType[r.node]; ti >= 0 && c.inDomain(r.node, s.dom) {
			kw += s.busyKW(c.fleet.Catalog, ti, int64(len(r.choice.Devices))*int64(r.choice.Milli))
		}
	}
	return kw
}

// stopForPower stops one job for a cap cut: a held job gives its capacity
// back at once, a running one is preempted with its notice (suspended,
// keeping its work, when it is interruptible).
func (c *Core) stopForPower(j *job, reason string) {
	switch j.state {
	case jHeld:
		c.release(j, EndPreempted)
		j.status = Status{Code: Requeued, Detail: "its held capacity was given back: " + reason}
		c.enqueue(j)
	case jPreempting:
		// Being suspended to keep its capacity: it gives it back instead.
		j.toHold = false
	case jRunning:
		c.unshift(j)
		deadline := c.now + j.NoticeSec
		c.emit(Preempt{Job: j.ID, Deadline: deadline, Reason: "stopped: " + reason, Suspend: j.Interruptible})
		if deadline <= c.now {
			c.release(j, EndPreempted)
			if c.requeuePreempted(j, reason) {
				c.emit(Requeue{Job: j.ID, Reason: reason})
			}
			return
		}
		c.setEnd(j, deadline)
		j.state = jPreempting
		j.deadline = deadline
		j.status = Status{Code: Preempting, Detail: "stopped: " + reason, At: deadline}
		c.preempting[j.ID] = j
	}
}

// checkPower recomputes every capped site's draw from the node states.
func (c *Core) checkPower() error {
	b := c.power
	if b == nil {
		return nil
	}
	for _, s := range b.sites {
		busy := make([]int64, len(b.cat.Types))
		devices := make([]int64, len(b.cat.Types))
		for n := range c.fleet.Nodes {
			ti := c.idx.nodeType[n]
			if ti < 0 || !c.inDomain(n, s.dom) {
				continue
			}
			if c.fleet.Nodes[n].State != fleet.Down {
				devices[ti] += int64(len(c.idx.nodes[n].Free))
			}
			busy[ti] += busyMilli(c.idx.nodes[n])
		}
		if !slices.Equal(busy, s.busy) || !slices.Equal(devices, s.devices) {
			return fmt.Errorf("site %s: power book has allocated milli %v and up devices %v, the nodes have %v and %v", s.path, s.busy, s.devices, busy, devices)
		}
	}
	return nil
}

// SitePower is one capped site's draw as the core counts it.
type SitePower struct {
	Site string
	// DrawKW is the draw the cap is compared with (facility power unless
	// the cap is of IT power), counting held capacity; CapKW 0 is no cap.
	DrawKW, CapKW float64
	ITCap         bool
	// PUE is the site's (0: 1).
	PUE float64
}

// Power lists the capped sites with their draw, in the order they were
// first capped (Config.Sites, then events): for metrics and tests.
func (c *Core) Power() []SitePower {
	if c.power == nil {
		return nil
	}
	out := make([]SitePower, 0, len(c.power.sites))
	for _, s := range c.power.sites {
		out = append(out, SitePower{Site: s.path, DrawKW: s.kw(c.fleet.Catalog), CapKW: s.capKW, ITCap: s.itCap, PUE: s.pue})
	}
	return out
}
