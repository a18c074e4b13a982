package plan

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// Change is one change of the fleet during a replay: a node delivered
// (Add) or retired (Retire names it), at virtual time At.
type Change struct {
	At     int64
	Add    *fleet.Node
	Retire string
}

// weekStart is the virtual time horizon week w (1-based) starts at; the
// warm-up weeks come before week 1.
func (p *Problem) weekStart(w int) int64 { return int64(p.Warmup+w-1) * WeekSec }

// deliveredNodes names and places the nodes of delivery i: in the site's
// domain, below it in domains of their own (one rack of up to
// nodesPerRack nodes after another), so that they never share a rack with
// older nodes.
func (p *Problem) deliveredNodes(i int, d Delivery) ([]fleet.Node, error) {
	m, ok := p.Catalog.model(d.Model)
	if !ok {
		return nil, fmt.Errorf("delivery %d: model %q is not in the catalog", i, d.Model)
	}
	site := strings.Split(d.Site, "/")
	levels := len(p.Fleet.Levels)
	if len(site) > levels {
		return nil, fmt.Errorf("delivery %d: site %q is deeper than the fleet's %d levels", i, d.Site, levels)
	}
	prefix := strings.Join(site, "-") + "-d" + strconv.Itoa(i+1)
	out := make([]fleet.Node, d.Count)
	for k := range out {
		path := append([]string(nil), site...)
		for len(path) < levels-1 {
			path = append(path, "new")
		}
		if len(path) < levels {
			path = append(path, "d"+strconv.Itoa(i+1)+"r"+strconv.Itoa(k/nodesPerRack+1))
		}
		out[k] = fleet.Node{Name: prefix + "-n" + strconv.Itoa(k+1), Path: path, Accel: m.Accel, Count: m.Count,
			CPUMilli: m.CPUMilli, MemoryMiB: m.MemoryMiB}
	}
	return out, nil
}

// nodesPerRack is how many delivered nodes share a rack.
const nodesPerRack = 8

// Changes are the fleet's changes in a replay with these deliveries: the
// catalog's retirements and the deliveries, each at the start of its
// week, in time order (retirements first within a week).
func (p *Problem) Changes(deliveries []Delivery) ([]Change, error) {
	var out []Change
	for w := 1; w <= p.Horizon; w++ {
		for _, r := range p.Catalog.Retire {
			if r.Week != w {
				continue
			}
			for _, i := range retiredBy(p.Fleet, r) {
				out = append(out, Change{At: p.weekStart(w), Retire: p.Fleet.Nodes[i].Name})
			}
		}
		for i, d := range deliveries {
			if d.Week != w {
				continue
			}
			nodes, err := p.deliveredNodes(i, d)
			if err != nil {
				return nil, err
			}
			for k := range nodes {
				out = append(out, Change{At: p.weekStart(w), Add: &nodes[k]})
			}
		}
	}
	return dedupRetire(out), nil
}

// dedupRetire keeps the first retirement of a node that two entries name.
func dedupRetire(cs []Change) []Change {
	seen := map[string]bool{}
	out := cs[:0]
	for _, c := range cs {
		if c.Add == nil {
			if seen[c.Retire] {
				continue
			}
			seen[c.Retire] = true
		}
		out = append(out, c)
	}
	return out
}

// retireWeek is the week a fleet node retires, or 0.
func (p *Problem) retireWeek(node int) int {
	best := 0
	for _, r := range p.Catalog.Retire {
		for _, i := range retiredBy(p.Fleet, r) {
			if i == node && (best == 0 || r.Week < best) {
				best = r.Week
			}
		}
	}
	return best
}

// speed is an accelerator type's relative speed.
func (p *Problem) speed(accel string) float64 {
	if i := p.Fleet.Catalog.Index(accel); i >= 0 && p.Fleet.Catalog.Types[i].RelSpeed > 0 {
		return p.Fleet.Catalog.Types[i].RelSpeed
	}
	return 1
}

// Capacity is the effective accelerators (count x relative speed) of each
// type at the start of every horizon week (index w-1), with the
// deliveries; the "*" entry sums all types.
func (p *Problem) Capacity(deliveries []Delivery) map[string][]float64 {
	out := map[string][]float64{}
	add := func(accel string, from, to int, n float64) {
		for _, k := range []string{accel, AnyAccel} {
			v := out[k]
			if v == nil {
				v = make([]float64, p.Horizon)
				out[k] = v
			}
			for w := from; w <= to && w <= p.Horizon; w++ {
				v[w-1] += n
			}
		}
	}
	for i := range p.Fleet.Nodes {
		n := &p.Fleet.Nodes[i]
		if n.Count == 0 || n.State == fleet.Down {
			continue
		}
		to := p.Horizon
		if r := p.retireWeek(i); r > 0 {
			to = r - 1
		}
		add(n.Accel, 1, to, float64(n.Count)*p.speed(n.Accel))
	}
	for _, d := range deliveries {
		if m, ok := p.Catalog.model(d.Model); ok {
			add(m.Accel, d.Week, p.Horizon, float64(d.Count*m.Count)*p.speed(m.Accel))
		}
	}
	return out
}

// limit is a bound on a domain: its power or its slots.
type limit struct {
	path  []string
	power bool
	max   float64
}

func (l limit) String() string {
	if l.power {
		return fmt.Sprintf("%s power %.0f kW", strings.Join(l.path, "/"), l.max)
	}
	return fmt.Sprintf("%s space %.0f slots", strings.Join(l.path, "/"), l.max)
}

func (l limit) holds(path []string) bool { return Site{Name: strings.Join(l.path, "/")}.contains(path) }

// limits lists the power and space bounds that apply: each catalog site's
// power (or the fleet file's power cap of that domain) and space, and the
// power caps of other domains of the fleet file.
func (p *Problem) limits() []limit {
	var out []limit
	seen := map[string]bool{}
	for _, s := range p.Catalog.Sites {
		kw := s.PowerKW
		if kw == 0 {
			kw = p.PowerCaps[s.Name]
		}
		if kw > 0 {
			out = append(out, limit{path: s.Path(), power: true, max: kw})
			seen[s.Name] = true
		}
		if s.Space > 0 {
			out = append(out, limit{path: s.Path(), max: float64(s.Space)})
		}
	}
	for _, name := range sortedKeys(p.PowerCaps) {
		if !seen[name] && p.PowerCaps[name] > 0 {
			out = append(out, limit{path: strings.Split(name, "/"), power: true, max: p.PowerCaps[name]})
		}
	}
	return out
}

// nodePower is a fleet node's power at full load: that of the catalog
// model with its accelerators, else its accelerators' board power.
func (p *Problem) nodePower(n *fleet.Node) float64 {
	for _, m := range p.Catalog.Models {
		if m.Accel == n.Accel && m.Count == n.Count {
			return m.PowerKW
		}
	}
	if i := p.Fleet.Catalog.Index(n.Accel); i >= 0 {
		return float64(n.Count) * p.Fleet.Catalog.Types[i].BoardPowerW / 1000
	}
	return 0
}

// usage is what each limit has taken in every horizon week (index w-1)
// with the deliveries.
func (p *Problem) usage(ls []limit, deliveries []Delivery) [][]float64 {
	out := make([][]float64, len(ls))
	for i := range out {
		out[i] = make([]float64, p.Horizon)
	}
	take := func(path []string, from, to int, power, slots float64) {
		for i, l := range ls {
			if !l.holds(path) {
				continue
			}
			x := slots
			if l.power {
				x = power
			}
			for w := max(from, 1); w <= to && w <= p.Horizon; w++ {
				out[i][w-1] += x
			}
		}
	}
	for i := range p.Fleet.Nodes {
		n := &p.Fleet.Nodes[i]
		to := p.Horizon
		if r := p.retireWeek(i); r > 0 {
			to = r - 1
		}
		take(n.Path, 1, to, p.nodePower(n), 1)
	}
	for _, d := range deliveries {
		m, ok := p.Catalog.model(d.Model)
		if !ok {
			continue
		}
		take(strings.Split(d.Site, "/"), d.Week, p.Horizon, float64(d.Count)*m.PowerKW, float64(d.Count*m.Space))
	}
	return out
}

// room is how many nodes of model m fit in site s from week w to the end
// of the horizon, beside the deliveries; which limit binds; and
// math.MaxInt when none does.
func (p *Problem) room(m *Model, s *Site, w int, deliveries []Delivery) (int, string) {
	ls := p.limits()
	use := p.usage(ls, deliveries)
	best, why := math.MaxInt, ""
	for i, l := range ls {
		if !l.holds(s.Path()) {
			continue
		}
		per := float64(m.Space)
		if l.power {
			per = m.PowerKW
		}
		for wk := w; wk <= p.Horizon; wk++ {
			n := int(math.Floor((l.max - use[i][wk-1]) / per * (1 + 1e-12)))
			if n < best {
				best, why = max(n, 0), l.String()
			}
		}
	}
	return best, why
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// SiteUse is what the plan leaves of one limit: the most it uses in any
// week of the horizon against its bound.
type SiteUse struct {
	Domain string  `json:"domain"`
	What   string  `json:"what"` // "power (kW)" or "space (slots)"
	Peak   float64 `json:"peak"`
	Limit  float64 `json:"limit"`
}

// SiteUses lists every limit's peak use with the deliveries.
func (p *Problem) SiteUses(deliveries []Delivery) []SiteUse {
	ls := p.limits()
	use := p.usage(ls, deliveries)
	out := make([]SiteUse, len(ls))
	for i, l := range ls {
		what := "space (slots)"
		if l.power {
			what = "power (kW)"
		}
		out[i] = SiteUse{Domain: strings.Join(l.path, "/"), What: what, Peak: slices.Max(use[i]), Limit: l.max}
	}
	return out
}
