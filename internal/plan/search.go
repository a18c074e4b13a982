package plan

import (
	"fmt"
	"math"
	"sort"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// Problem is a capacity plan to make: the fleet today, what can be bought,
// the demand over the horizon and the wait to keep.
type Problem struct {
	Fleet   *fleet.Fleet
	Catalog *Catalog
	// PowerCaps are the fleet file's power caps by domain path (kW); a
	// catalog site without powerKW takes its domain's.
	PowerCaps map[string]float64
	Demand    []Demand
	// Horizon is the weeks planned; Warmup the weeks of history replayed
	// before them so that the replay starts with a busy fleet.
	Horizon, Warmup int
	Target          Target
	// Scenario is the demand the buy plan keeps the target for.
	Scenario Scenario
	// ReviewWeeks is how long each order keeps the target from its
	// delivery on, the time until the next order is reviewed (0: 13, a
	// quarter).
	ReviewWeeks int
	// Jobs shapes the synthetic jobs (its Scenario is set per replay).
	Jobs WorkloadOptions
}

// DefaultReviewWeeks is how long an order keeps the target: a quarter.
const DefaultReviewWeeks = 13

// Trial is one replay to make: a workload on the fleet with its changes,
// up to End.
type Trial struct {
	Workload []Arrival
	Changes  []Change
	End      int64
}

// Simulator replays trials: the Problem's fleet with the trial's
// changes, the workload's jobs (each of its series' tenant, kind and
// type), up to the trial's end, and says when each job first started.
// internal/plan/replay runs the scheduling core's simulator; the trials
// of one call may run at once.
type Simulator interface {
	Replay(trials []Trial) ([]Run, error)
}

// Order is one purchase of a plan: Count nodes of Model for Site,
// ordered in OrderWeek and delivered at the start of Week.
type Order struct {
	Delivery
	OrderWeek int     `json:"orderWeek"`
	Cost      float64 `json:"cost"`
	// Class is the demand it is for; Reason says why this model, site,
	// week and count.
	Class  string `json:"class"`
	Reason string `json:"reason"`
	// Replays counts the replays that sized it.
	Replays int `json:"replays"`
}

// Shortfall is weeks in which the plan cannot keep the target for a
// class, and why.
type Shortfall struct {
	Class string `json:"class"`
	From  int    `json:"from"`
	To    int    `json:"to"`
	Why   string `json:"why"`
}

// RunOutWeeks are the weeks a class first breaks the target without
// purchases, at P50 and at P90 demand; 0 when it keeps it through the
// horizon.
type RunOutWeeks struct {
	Class string `json:"class"`
	P50   int    `json:"p50"`
	P90   int    `json:"p90"`
}

// Result is a capacity plan.
type Result struct {
	Target   Target        `json:"target"`
	Scenario string        `json:"scenario"`
	Horizon  int           `json:"horizon"`
	RunOut   []RunOutWeeks `json:"runOut"`
	Orders   []Order       `json:"orders"`
	Cost     float64       `json:"cost"`
	// Shortfalls are the weeks the plan breaks the target anyway.
	Shortfalls []Shortfall `json:"shortfalls"`
	// Base are the weekly figures per class without purchases, per
	// scenario; Final those of the plan's scenario with its orders.
	Base  map[string]map[string][]WeekStat `json:"base"`
	Final map[string][]WeekStat            `json:"final"`
	// Capacity is the effective accelerators per type and week with the
	// plan (FinalCapacity) and without (BaseCapacity).
	BaseCapacity  map[string][]float64 `json:"baseCapacity"`
	FinalCapacity map[string][]float64 `json:"finalCapacity"`
	// Sites are the power and space the plan takes at its peak.
	Sites []SiteUse `json:"sites"`
	// Replays counts the simulator's replays the plan took.
	Replays int `json:"replays"`
}

// maxOrders bounds the orders of one plan.
const maxOrders = 100

// Search makes the plan. First it replays the workload of both scenarios
// with only the nodes on order: the first week each class breaks the
// target is its run-out week at P50 and P90. Then, greedy in time, on the
// plan's scenario: take the earliest week w a class breaks the target;
// pick the cheapest capacity for the class (price per effective
// accelerator) that can be delivered by w, or else the one delivered
// soonest, in the first site (catalog order) with room for it from its
// delivery through the horizon (power and space, every limit that holds
// the site); deliver it at w, or as soon as its lead time allows (the
// weeks between are an unavoidable shortfall), ordered lead-time weeks
// before. Its size is the fewest nodes that keep the class's target from
// the delivery through the review period: a first guess from the work
// that exceeds the capacity, doubled until a replay keeps the target
// (coarse), then bisected (fine). Replays of a sizing run only to the end
// of the review period; one replay of the whole horizon then finds the
// next week the target breaks. A site whose room runs out gets what fits
// and the next round looks further.
func Search(p *Problem, sim Simulator) (*Result, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	res := &Result{Target: p.Target, Scenario: p.Scenario.String(), Horizon: p.Horizon, Base: map[string]map[string][]WeekStat{}}
	wl := map[Scenario][]Arrival{}
	for _, sc := range []Scenario{P50, P90} {
		o := p.Jobs
		o.Scenario = sc
		wl[sc] = p.Workload(o)
	}
	s := &searcher{p: p, sim: sim, res: res, wl: wl, accepted: map[string]map[int]bool{}}
	fixed := append([]Delivery(nil), p.Catalog.OnOrder...)
	base, err := s.replay([]Scenario{P50, P90}, [][]Delivery{fixed, fixed}, []int{p.Horizon, p.Horizon})
	if err != nil {
		return nil, err
	}
	res.Base[P50.String()], res.Base[P90.String()] = base[0], base[1]
	for _, c := range p.Classes() {
		res.RunOut = append(res.RunOut, RunOutWeeks{Class: c, P50: RunOut(base[0][c]), P90: RunOut(base[1][c])})
	}
	res.BaseCapacity = p.Capacity(fixed)
	cur := base[0]
	if p.Scenario == P90 {
		cur = base[1]
	}
	if err := s.plan(cur); err != nil {
		return nil, err
	}
	return res, nil
}

type searcher struct {
	p        *Problem
	sim      Simulator
	res      *Result
	wl       map[Scenario][]Arrival
	accepted map[string]map[int]bool
	orders   []Order
}

func (s *searcher) deliveries(extra ...Delivery) []Delivery {
	out := append([]Delivery(nil), s.p.Catalog.OnOrder...)
	for _, o := range s.orders {
		out = append(out, o.Delivery)
	}
	return append(out, extra...)
}

// replay runs trials of scenarios with deliveries through the given
// weeks, and measures them.
func (s *searcher) replay(scs []Scenario, ds [][]Delivery, until []int) ([]map[string][]WeekStat, error) {
	trials := make([]Trial, len(scs))
	for i := range scs {
		cs, err := s.p.Changes(ds[i])
		if err != nil {
			return nil, err
		}
		trials[i] = Trial{Workload: s.wl[scs[i]], Changes: cs, End: s.p.weekStart(until[i]+1) + s.p.Target.WaitSec + 1}
	}
	runs, err := s.sim.Replay(trials)
	if err != nil {
		return nil, err
	}
	if len(runs) != len(trials) {
		return nil, fmt.Errorf("simulator answered %d replays for %d", len(runs), len(trials))
	}
	s.res.Replays += len(trials)
	out := make([]map[string][]WeekStat, len(runs))
	for i, r := range runs {
		if len(r.Start) != len(trials[i].Workload) {
			return nil, fmt.Errorf("simulator answered %d starts for %d jobs", len(r.Start), len(trials[i].Workload))
		}
		out[i] = s.p.Measure(trials[i].Workload, r, scs[i], until[i], ds[i])
	}
	return out, nil
}

func (s *searcher) accept(class string, from, to int, why string) {
	if s.accepted[class] == nil {
		s.accepted[class] = map[int]bool{}
	}
	for w := from; w <= to; w++ {
		s.accepted[class][w] = true
	}
	s.res.Shortfalls = append(s.res.Shortfalls, Shortfall{Class: class, From: from, To: to, Why: why})
}

// earliest is the first week some class breaks the target, and the class.
func (s *searcher) earliest(cur map[string][]WeekStat) (int, string) {
	best, class := 0, ""
	for _, c := range s.p.Classes() {
		if w := firstBroken(cur[c], 1, s.accepted[c]); w > 0 && (best == 0 || w < best) {
			best, class = w, c
		}
	}
	return best, class
}

func (s *searcher) plan(cur map[string][]WeekStat) error {
	p := s.p
	review := p.ReviewWeeks
	if review <= 0 {
		review = DefaultReviewWeeks
	}
	for len(s.orders) < maxOrders {
		w, c := s.earliest(cur)
		if w == 0 {
			break
		}
		pick, why := s.choose(c, w)
		if pick == nil {
			s.accept(c, w, p.Horizon, why)
			continue
		}
		d := pick.week
		if d > p.Horizon {
			s.accept(c, w, p.Horizon, fmt.Sprintf("the earliest delivery of %s, %s after its order, is past the horizon", pick.m.Name, count(pick.m.LeadWeeks, "week")))
			continue
		}
		if d > w {
			s.accept(c, w, d-1, fmt.Sprintf("no capacity for %s arrives before week %d (%s: %s from order)", c, d, pick.m.Name, count(pick.m.LeadWeeks, "week")))
			if firstBroken(cur[c], d, s.accepted[c]) == 0 {
				continue // from the delivery on, the target holds already
			}
		}
		check := min(p.Horizon, d+review-1)
		k, ok, probes, err := s.size(c, pick, check)
		if err != nil {
			return err
		}
		reason := fmt.Sprintf("%s breaks %s in week %d; %s is the cheapest %s capacity arriving by week %d (%.0f per effective accelerator, %s from order) with room in %s; with %s the target holds through week %d",
			c, p.Target, w, pick.m.Name, c, d, pick.costPer, count(pick.m.LeadWeeks, "week"), pick.site.Name, count(k, "node"), check)
		if !ok {
			reason = fmt.Sprintf("%s breaks %s in week %d; %s in %s fills the site (%s; %s) without keeping the target through week %d",
				c, p.Target, w, pick.m.Name, pick.site.Name, count(k, "node"), pick.limit, check)
		}
		s.orders = append(s.orders, Order{Delivery: Delivery{Model: pick.m.Name, Site: pick.site.Name, Count: k, Week: d},
			OrderWeek: d - pick.m.LeadWeeks, Cost: float64(k) * pick.m.Price, Class: c, Reason: reason, Replays: probes})
		full, err := s.replay([]Scenario{p.Scenario}, [][]Delivery{s.deliveries()}, []int{p.Horizon})
		if err != nil {
			return err
		}
		cur = full[0]
	}
	s.res.Orders = s.orders
	for _, o := range s.orders {
		s.res.Cost += o.Cost
	}
	s.res.Final = cur
	s.res.FinalCapacity = p.Capacity(s.deliveries())
	s.res.Sites = p.SiteUses(s.deliveries())
	// Weeks still broken that no rule accepted: the order limit ran out.
	for _, c := range p.Classes() {
		for w := firstBroken(cur[c], 1, s.accepted[c]); w > 0; w = firstBroken(cur[c], w+1, s.accepted[c]) {
			s.res.Shortfalls = append(s.res.Shortfalls, Shortfall{Class: c, From: w, To: w, Why: "still broken with the plan"})
		}
	}
	sort.SliceStable(s.res.Shortfalls, func(i, j int) bool {
		a, b := s.res.Shortfalls[i], s.res.Shortfalls[j]
		if a.Class != b.Class {
			return a.Class < b.Class
		}
		return a.From < b.From
	})
	return nil
}

type pick struct {
	m       *Model
	site    *Site
	week    int // delivery
	room    int
	limit   string
	costPer float64
}

// choose picks what to buy for a class that breaks the target in week w:
// a model of its type (any model for "*"), delivered by w if any can be,
// cheapest per effective accelerator, in the first site with room.
func (s *searcher) choose(class string, w int) (*pick, string) {
	p := s.p
	var best *pick
	better := func(a, b *pick) bool {
		lateA, lateB := a.week > w, b.week > w
		switch {
		case lateA != lateB:
			return !lateA
		case lateA && a.week != b.week:
			return a.week < b.week
		case a.costPer != b.costPer:
			return a.costPer < b.costPer
		}
		return a.week < b.week
	}
	serves, roomless := false, ""
	for i := range p.Catalog.Models {
		m := &p.Catalog.Models[i]
		if class != AnyAccel && m.Accel != class {
			continue
		}
		serves = true
		d := max(w, 1+m.LeadWeeks)
		for j := range p.Catalog.Sites {
			site := &p.Catalog.Sites[j]
			if !site.Allows(m.Name) {
				continue
			}
			room, lim := p.room(m, site, min(d, p.Horizon), s.deliveries())
			if room < 1 {
				roomless = lim
				continue
			}
			c := &pick{m: m, site: site, week: d, room: room, limit: lim, costPer: m.Price / (float64(m.Count) * p.speed(m.Accel))}
			if best == nil || better(c, best) {
				best = c
			}
			break // the first site with room, in catalog order
		}
	}
	switch {
	case best != nil:
		return best, ""
	case !serves:
		return nil, fmt.Sprintf("no model of the catalog has %s accelerators", class)
	}
	return nil, "no site has room for a model of " + class + " (" + roomless + ")"
}

// size finds the fewest nodes of the pick that keep the class's target
// from the delivery through week check: a first guess, doubled until a
// replay keeps it (coarse), then narrowed (fine). Each step replays two
// counts at once, which a simulator may run side by side: the guess and
// twice it, then the thirds of the interval left. ok is false when even
// the room of the site does not keep the target.
func (s *searcher) size(class string, pk *pick, check int) (k int, ok bool, probes int, err error) {
	p := s.p
	pass := func(ns ...int) ([]bool, error) {
		probes += len(ns)
		scs := make([]Scenario, len(ns))
		ds := make([][]Delivery, len(ns))
		until := make([]int, len(ns))
		for i, n := range ns {
			scs[i], until[i] = p.Scenario, check
			ds[i] = s.deliveries(Delivery{Model: pk.m.Name, Site: pk.site.Name, Count: n, Week: pk.week})
		}
		st, err := s.replay(scs, ds, until)
		if err != nil {
			return nil, err
		}
		out := make([]bool, len(ns))
		for i := range ns {
			out[i] = firstBroken(st[i][class], pk.week, s.accepted[class]) == 0
		}
		return out, nil
	}
	guess := s.guess(class, pk, check)
	limit := pk.room
	if limit == math.MaxInt {
		limit = max(64, 8*guess)
	}
	lo, hi := 0, -1 // lo fails (without the order the target broke), hi keeps it
	for n := min(max(guess, 1), limit); hi < 0; {
		ns := []int{n}
		if n < limit {
			ns = append(ns, min(2*n, limit))
		}
		good, err := pass(ns...)
		if err != nil {
			return 0, false, probes, err
		}
		switch {
		case good[0]:
			hi = n
		case len(ns) == 2 && good[1]:
			lo, hi = n, ns[1]
		case ns[len(ns)-1] == limit:
			return limit, false, probes, nil
		default:
			lo, n = ns[1], min(4*n, limit)
		}
	}
	for hi-lo > 1 {
		a, b := lo+(hi-lo)/3, lo+2*(hi-lo)/3
		if a == lo {
			a = lo + 1
		}
		ns := []int{a}
		if b > a && b < hi {
			ns = append(ns, b)
		}
		good, err := pass(ns...)
		if err != nil {
			return 0, false, probes, err
		}
		switch {
		case good[0]:
			hi = a
		case len(ns) == 2 && good[1]:
			lo, hi = a, b
		default:
			lo = ns[len(ns)-1]
		}
	}
	return hi, true, probes, nil
}

// guess is the nodes that would bring the class's capacity up to its
// peak demand from the delivery through week check: a lower bound, since
// a fleet run at full use has no room for a job to start on arrival.
func (s *searcher) guess(class string, pk *pick, check int) int {
	p := s.p
	caps := p.Capacity(s.deliveries())
	per := float64(pk.m.Count) * p.speed(pk.m.Accel)
	need := 0.0
	for w := pk.week; w <= check; w++ {
		demand := 0.0
		for i := range p.Demand {
			if class == AnyAccel || p.Demand[i].Key.Class() == class {
				demand += p.Demand[i].Week(p.Scenario, w) / (WeekSec / 3600)
			}
		}
		need = max(need, demand-caps[class][w-1])
	}
	return int(math.Ceil(need / per))
}

func (p *Problem) check() error {
	switch {
	case p.Fleet == nil || p.Catalog == nil:
		return fmt.Errorf("a plan needs a fleet and a catalog")
	case p.Horizon < 1:
		return fmt.Errorf("horizon %d: want at least one week", p.Horizon)
	case p.Warmup < 0:
		return fmt.Errorf("warm-up %d: must not be negative", p.Warmup)
	case !(p.Target.Percentile > 0 && p.Target.Percentile <= 100):
		return fmt.Errorf("target percentile %v: want above 0 and at most 100", p.Target.Percentile)
	case len(p.Demand) == 0:
		return fmt.Errorf("no demand to plan for")
	}
	for i := range p.Demand {
		d := &p.Demand[i]
		if len(d.Point) != p.Horizon || len(d.Upper) != p.Horizon {
			return fmt.Errorf("demand %s: %d weeks of forecast for a horizon of %d", d.Key, len(d.Point), p.Horizon)
		}
	}
	return p.Catalog.Check(p.Fleet)
}

// count writes n things: "1 node", "3 nodes".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
