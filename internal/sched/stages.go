package sched

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/btree"

	"github.com/gpufleet/gpufleet/internal/place"
)

// The placement chain is built from small named stages, chosen and ordered
// by configuration (Config.Placement), in the manner of Nomad's iterator
// stack and the Kubernetes scheduler framework's Filter and Score points.
// Stages run in this order, whatever order the configuration lists them in:
//
//  1. filters rule nodes out. "ready" (the node takes new work),
//     "accelerator" (its type is one the replica accepts), "resources" (its
//     free devices, CPU and memory hold the replica) and "reservation"
//     (nodes held by a backfill reservation are skipped by jobs that would
//     outlast it; nodes kept for a preemptor by all other jobs) always run,
//     because they are what makes a placement valid; further filters run
//     after them in the order configured;
//  2. one candidate order says which room is tried first: "bestfit" (the
//     least free capacity that fits, the tightest domain) or "spread" (the
//     most free). It drives the walk of the capacity index, so it decides
//     which nodes the scorers see;
//  3. scorers rank the candidates, compared in the order configured, each
//     breaking the ties of the one before: "fragmentation" (prefer nodes in
//     the fullest rack, so empty racks stay whole for gangs) and every
//     scorer of package place by name (random, dotprod, clustering,
//     packing, fgd, sfgd, ...). For a fractional replica the candidate
//     order then picks the device; the candidates' order breaks the last
//     ties.
//
// A new stage (energy, carbon, price) is a type with the interface of its
// kind registered in stageKinds: no admission code changes.

// stage is one named step of the chain.
type stage interface{ name() string }

// filter rules out nodes that may not take one replica of r in attempt t.
type filter interface {
	stage
	feasible(t *try, n int, r *place.Request) bool
}

// order is the candidate order: which room the walk of the capacity index
// tries first.
type order interface {
	stage
	// rank is higher for room tried sooner (free devices of a node, free
	// milli of a device, replicas a domain can take).
	rank(room int) float64
	// buckets visits the values lo..hi in the order they are tried.
	buckets(lo, hi int, visit func(v int) bool)
	// domains visits the domains of tr that can take at least need
	// replicas, in the order they are tried.
	domains(tr *btree.BTreeG[domKey], need int32, visit func(domKey) bool)
	// partialFirst: a fractional replica tries partly used devices before
	// whole free ones.
	partialFirst() bool
}

// scorer ranks the ways one replica can go on a feasible node; higher is
// better.
type scorer interface {
	stage
	score(t *try, n int, r *place.Request, ch place.Choice) float64
}

// maxScorers is how many scorers a candidate's score holds: a chain with
// more is an error, not a chain whose last scorers are ignored.
const maxScorers = 4

// stageKinds builds every stage by name, for a core.
var stageKinds = map[string]func(c *Core) (stage, error){
	"ready":         func(*Core) (stage, error) { return readyFilter{}, nil },
	"accelerator":   func(*Core) (stage, error) { return accelFilter{}, nil },
	"resources":     func(*Core) (stage, error) { return resourceFilter{}, nil },
	"reservation":   func(c *Core) (stage, error) { return reservationFilter{c}, nil },
	"bestfit":       func(*Core) (stage, error) { return bestFit{}, nil },
	"spread":        func(*Core) (stage, error) { return spread{}, nil },
	"fragmentation": func(c *Core) (stage, error) { return fragmentation{c}, nil },
	"carbon": func(c *Core) (stage, error) {
		if c.cfg.Forecast == nil {
			return nil, fmt.Errorf("placement stage carbon needs a carbon forecast (Config.Forecast)")
		}
		return carbonScorer{c}, nil
	},
}

// builtinFilters always run, first, in this order.
var builtinFilters = []string{"ready", "accelerator", "resources", "reservation"}

// DefaultPlacement is the chain used when the configuration names none.
var DefaultPlacement = []string{"ready", "accelerator", "resources", "reservation", "bestfit", "fragmentation"}

// Stages lists every stage name the placement chain accepts.
func Stages() []string {
	out := append([]string(nil), builtinFilters...)
	out = append(out, "bestfit", "spread", "fragmentation")
	var more []string
	for n := range stageKinds {
		if !slices.Contains(out, n) {
			more = append(more, n)
		}
	}
	slices.Sort(more)
	out = append(out, more...)
	for _, n := range place.Names() {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// pipeline is a built chain.
type pipeline struct {
	names []string
	// filters are the configured filters beyond the built-in ones, which
	// usable applies inline.
	filters []filter
	order   order
	scorers []scorer
	// k bounds the feasible nodes the scorers rank (Config.Candidates).
	k int
	// only is the single place scorer of a chain that ranks every
	// feasible node with it alone: exactly place.Select, the selection the
	// fragmentation experiments measure. local is only when it is
	// place.Local: its scores are kept on scoreboards.
	only  place.Scorer
	local place.Scorer
	// perSite is set when a scorer ranks sites (carbon): the candidates
	// then come from every site.
	perSite bool
}

func (c *Core) buildPipeline(names []string) (*pipeline, error) {
	if len(names) == 0 {
		names = DefaultPlacement
	}
	p := &pipeline{k: c.cfg.Candidates, names: names}
	if p.k == 0 {
		p.k = 8
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("placement stage %q: listed twice", n)
		}
		seen[n] = true
		st, err := c.newStage(n)
		if err != nil {
			return nil, err
		}
		switch st := st.(type) {
		case filter:
			if !slices.Contains(builtinFilters, n) {
				p.filters = append(p.filters, st)
			}
		case order:
			if p.order != nil {
				return nil, fmt.Errorf("placement: %q and %q both set the candidate order; choose one", p.order.name(), n)
			}
			p.order = st
			// The literature's best-fit scorer also ranks candidates when
			// every feasible node is ranked, so that policies compare like
			// for like.
			if n == "bestfit" && c.cfg.Candidates < 0 {
				if s, err := place.New(n, c.placeEnv()); err == nil {
					p.scorers = append(p.scorers, placeScorer{n, s})
				}
			}
		case scorer:
			p.scorers = append(p.scorers, st)
			if _, ok := st.(carbonScorer); ok {
				p.perSite = true
			}
		}
	}
	if p.order == nil {
		p.order = bestFit{}
	}
	if len(p.scorers) > maxScorers {
		names := make([]string, len(p.scorers))
		for i, s := range p.scorers {
			names[i] = s.name()
		}
		return nil, fmt.Errorf("placement: %d scorers (%s): the core weighs at most %d", len(p.scorers), strings.Join(names, ", "), maxScorers)
	}
	if len(p.scorers) == 1 && p.k < 0 {
		if ps, ok := p.scorers[0].(placeScorer); ok {
			p.only = ps.s
			if _, ok := ps.s.(place.Local); ok && !c.cfg.NoScoreboards {
				p.local = ps.s
			}
		}
	}
	return p, nil
}

func (c *Core) newStage(n string) (stage, error) {
	if mk, ok := stageKinds[n]; ok {
		return mk(c)
	}
	s, err := place.New(n, c.placeEnv())
	if err != nil {
		return nil, fmt.Errorf("placement stage %q: want one of %s", n, strings.Join(Stages(), ", "))
	}
	return placeScorer{n, s}, nil
}

func (c *Core) placeEnv() *place.Env {
	w := c.cfg.Workload
	if w == nil {
		w = &c.workload
	}
	return &place.Env{Nodes: c.idx.nodes, Workload: w, Rand: c.rng}
}

// The built-in filters. usable applies them inline, fused, because every
// candidate of every placement passes through them; these types name them
// in the chain and apply them one by one where a caller wants that.

type readyFilter struct{}

func (readyFilter) name() string { return "ready" }
func (readyFilter) feasible(t *try, n int, r *place.Request) bool {
	return t.c.idx.nodes[n].Schedulable
}

type accelFilter struct{}

func (accelFilter) name() string { return "accelerator" }
func (accelFilter) feasible(t *try, n int, r *place.Request) bool {
	return r.Accepts(t.c.idx.nodes[n].Accel)
}

type resourceFilter struct{}

func (resourceFilter) name() string { return "resources" }
func (resourceFilter) feasible(t *try, n int, r *place.Request) bool {
	return place.Fits(t.c.idx.nodes[n], r)
}

type reservationFilter struct{ c *Core }

func (reservationFilter) name() string { return "reservation" }
func (f reservationFilter) feasible(t *try, n int, r *place.Request) bool {
	c := f.c
	if c.nominated.has(n) {
		// Kept for a preemptor: only it may use the node, whatever holds.
		return c.nominee[n] == t.j
	}
	return !t.hold.blocks(t.j, c.now, n)
}

// bestFit tries the least free room that fits first.
type bestFit struct{}

func (bestFit) name() string          { return "bestfit" }
func (bestFit) rank(room int) float64 { return -float64(room) }
func (bestFit) partialFirst() bool    { return true }
func (bestFit) buckets(lo, hi int, visit func(int) bool) {
	for v := lo; v <= hi; v++ {
		if !visit(v) {
			return
		}
	}
}
func (bestFit) domains(tr *btree.BTreeG[domKey], need int32, visit func(domKey) bool) {
	tr.AscendGreaterOrEqual(domKey{fit: need}, visit)
}

// spread tries the most free room first.
type spread struct{}

func (spread) name() string          { return "spread" }
func (spread) rank(room int) float64 { return float64(room) }
func (spread) partialFirst() bool    { return false }
func (spread) buckets(lo, hi int, visit func(int) bool) {
	for v := hi; v >= lo; v-- {
		if !visit(v) {
			return
		}
	}
}
func (spread) domains(tr *btree.BTreeG[domKey], need int32, visit func(domKey) bool) {
	tr.Descend(func(k domKey) bool { return k.fit >= need && visit(k) })
}

// fragmentation prefers nodes in the fullest lowest-level domain (rack),
// so that empty racks stay whole for gangs.
type fragmentation struct{ c *Core }

func (fragmentation) name() string { return "fragmentation" }
func (f fragmentation) score(t *try, n int, r *place.Request, ch place.Choice) float64 {
	return -float64(f.c.rackFree(n))
}

// placeScorer is a scorer of package place, shared with the fragmentation
// experiments.
type placeScorer struct {
	n string
	s place.Scorer
}

func (p placeScorer) name() string { return p.n }
func (p placeScorer) score(t *try, n int, r *place.Request, ch place.Choice) float64 {
	return p.s.Score(t.c.idx.nodes[n], r, ch)
}
