package plan

import (
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// fluid is a simulator for tests of the search alone: a job starts on
// arrival when its type's effective capacity at that moment is at least
// headroom times the work of its week, and never otherwise. Its answers
// follow from arithmetic, so a test can say what the plan must be.
type fluid struct {
	p        *Problem
	headroom float64
	trials   int
}

func (f *fluid) Replay(trials []Trial) ([]Run, error) {
	f.trials += len(trials)
	out := make([]Run, len(trials))
	for ti, t := range trials {
		// Work per class and week of the workload.
		work := map[string]map[int]float64{}
		for _, a := range t.Workload {
			c := f.p.Demand[a.Series].Key.Class()
			if work[c] == nil {
				work[c] = map[int]float64{}
			}
			acc := float64(a.Replicas*a.PerReplica) + float64(a.Milli)/1000
			work[c][a.Week] += acc * float64(a.Sec) / 3600
		}
		r := Run{Start: make([]int64, len(t.Workload)), End: t.End}
		for i, a := range t.Workload {
			c := f.p.Demand[a.Series].Key.Class()
			capNow := 0.0
			for _, n := range f.p.Fleet.Nodes {
				if n.Accel == c || c == AnyAccel {
					capNow += float64(n.Count) * f.p.speed(n.Accel)
				}
			}
			for _, ch := range t.Changes {
				if ch.At > a.At {
					break
				}
				if ch.Add != nil && (ch.Add.Accel == c || c == AnyAccel) {
					capNow += float64(ch.Add.Count) * f.p.speed(ch.Add.Accel)
				}
				if ch.Add == nil {
					n := f.p.Fleet.Nodes[mustIndex(f.p.Fleet, ch.Retire)]
					if n.Accel == c || c == AnyAccel {
						capNow -= float64(n.Count) * f.p.speed(n.Accel)
					}
				}
			}
			r.Start[i] = -1
			if a.At < t.End && capNow >= f.headroom*work[c][a.Week]/(WeekSec/3600) {
				r.Start[i] = a.At
			}
		}
		out[ti] = r
	}
	return out, nil
}

func mustIndex(f *fleet.Fleet, name string) int {
	i, ok := f.NodeIndex(name)
	if !ok {
		panic("no node " + name)
	}
	return i
}

// searchProblem: four nodes of 8 H100; demand of 16 accelerators busy in
// weeks 1-4, then 40 at p50 and 46 at p90; jobs of one node for an hour.
func searchProblem(t *testing.T, models []Model, sites []Site) *Problem {
	t.Helper()
	var nodes []fleet.Node
	for i := range 4 {
		nodes = append(nodes, fleet.Node{Name: fmt.Sprintf("n%d", i+1), Path: []string{"lab", "z1", "b1", "r1"}, Accel: "h100", Count: 8})
	}
	f, err := fleet.New(nil, nil, nodes)
	if err != nil {
		t.Fatal(err)
	}
	const H = 12
	d := Demand{Key: Key{Tenant: "acme", Kind: "batch", Accel: "h100"}, History: []float64{16 * 168, 16 * 168},
		Point: make([]float64, H), Lower: make([]float64, H), Upper: make([]float64, H), Committed: make([]float64, H),
		Shape: Shape{Accels: 8, Hours: 1}, Profile: []float64{1}}
	for w := range H {
		p50, p90 := 16.0, 16.0
		if w+1 >= 5 {
			p50, p90 = 40, 46
		}
		d.Point[w], d.Lower[w], d.Upper[w] = p50*168, p50*168, p90*168
	}
	return &Problem{Fleet: f, Catalog: &Catalog{Models: models, Sites: sites}, Demand: []Demand{d}, Horizon: H, Warmup: 1,
		Target: Target{Percentile: 95, WaitSec: 4 * 3600}, Scenario: P90, Jobs: WorkloadOptions{Seed: 1, MaxJobsPerWeek: 2000}}
}

var (
	fast = Model{Name: "fast", Accel: "h100", Count: 8, Price: 1000, PowerKW: 10, LeadWeeks: 2, Space: 1}
	slow = Model{Name: "slow", Accel: "h100", Count: 8, Price: 800, PowerKW: 10, LeadWeeks: 10, Space: 1}
)

func TestSearchPlans(t *testing.T) {
	// With the fluid simulator at headroom 1.25, a week keeps the target
	// when capacity >= 1.25 x demand: 16 busy needs 20 (4 nodes, 32, do);
	// 46 busy at p90 needs 57.5, 8 nodes (64); 40 at p50 needs 50, 7 nodes.
	tests := map[string]struct {
		models    []Model
		sites     []Site
		scenario  Scenario
		retire    []Retirement
		want      []Delivery
		orderWeek []int
		short     []Shortfall
	}{
		"the model that arrives in time, though dearer": {
			models: []Model{slow, fast}, sites: []Site{{Name: "lab/z1"}}, scenario: P90,
			want: []Delivery{{Model: "fast", Site: "lab/z1", Count: 4, Week: 5}}, orderWeek: []int{3},
		},
		"p50 demand needs fewer": {
			models: []Model{slow, fast}, sites: []Site{{Name: "lab/z1"}}, scenario: P50,
			want: []Delivery{{Model: "fast", Site: "lab/z1", Count: 3, Week: 5}}, orderWeek: []int{3},
		},
		"the cheaper model when both arrive in time": {
			models: []Model{fast, {Name: "cheap", Accel: "h100", Count: 8, Price: 900, PowerKW: 10, LeadWeeks: 3, Space: 1}},
			sites:  []Site{{Name: "lab/z1"}}, scenario: P90,
			want: []Delivery{{Model: "cheap", Site: "lab/z1", Count: 4, Week: 5}}, orderWeek: []int{2},
		},
		"a full site spills into the next": {
			// lab/z1 has 6 slots, 4 taken: 2 there, 2 in lab/z2.
			models: []Model{fast}, sites: []Site{{Name: "lab/z1", Space: 6}, {Name: "lab/z2", Space: 10}}, scenario: P90,
			want:      []Delivery{{Model: "fast", Site: "lab/z1", Count: 2, Week: 5}, {Model: "fast", Site: "lab/z2", Count: 2, Week: 5}},
			orderWeek: []int{3, 3},
		},
		"power bounds a site": {
			// 75 kW at 10 kW a node: 4 used, 3 more fit.
			models: []Model{fast}, sites: []Site{{Name: "lab/z1", PowerKW: 75}, {Name: "lab/z2"}}, scenario: P90,
			want:      []Delivery{{Model: "fast", Site: "lab/z1", Count: 3, Week: 5}, {Model: "fast", Site: "lab/z2", Count: 1, Week: 5}},
			orderWeek: []int{3, 3},
		},
		"a long lead time leaves a shortfall": {
			models: []Model{slow}, sites: []Site{{Name: "lab/z1"}}, scenario: P90,
			want: []Delivery{{Model: "slow", Site: "lab/z1", Count: 4, Week: 11}}, orderWeek: []int{1},
			short: []Shortfall{{Class: "h100", From: 5, To: 10, Why: "no capacity for h100 arrives before week 11 (slow: 10 weeks from order)"}},
		},
		"a retirement is replaced": {
			// n4 leaves in week 8: 7 nodes of capacity needed then, 3 + k.
			models: []Model{fast}, sites: []Site{{Name: "lab/z1"}}, scenario: P90, retire: []Retirement{{Node: "n4", Week: 8}},
			want: []Delivery{{Model: "fast", Site: "lab/z1", Count: 5, Week: 5}}, orderWeek: []int{3},
		},
		"no model of the type": {
			models: []Model{{Name: "b", Accel: "b200", Count: 8, Price: 1, PowerKW: 10, LeadWeeks: 1, Space: 1}}, sites: []Site{{Name: "lab/z1"}}, scenario: P90,
			short: []Shortfall{{Class: "h100", From: 5, To: 12, Why: "no model of the catalog has h100 accelerators"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := searchProblem(t, tc.models, tc.sites)
			p.Scenario = tc.scenario
			p.Catalog.Retire = tc.retire
			sim := &fluid{p: p, headroom: 1.25}
			res, err := Search(p, sim)
			if err != nil {
				t.Fatal(err)
			}
			var got []Delivery
			var weeks []int
			for _, o := range res.Orders {
				got = append(got, o.Delivery)
				weeks = append(weeks, o.OrderWeek)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("orders (-want +got):\n%s\nreasons: %v", diff, res.Orders)
			}
			if diff := cmp.Diff(tc.orderWeek, weeks); diff != "" {
				t.Errorf("order weeks (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.short, res.Shortfalls); diff != "" {
				t.Errorf("shortfalls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]RunOutWeeks{{Class: "h100", P50: 5, P90: 5}}, res.RunOut); diff != "" {
				t.Errorf("run-out (-want +got):\n%s", diff)
			}
			if res.Replays != sim.trials {
				t.Errorf("result counts %d replays, the simulator saw %d", res.Replays, sim.trials)
			}
			cost := 0.0
			for _, o := range res.Orders {
				m, _ := p.Catalog.model(o.Model)
				cost += float64(o.Count) * m.Price
			}
			if math.Abs(cost-res.Cost) > 1e-9 {
				t.Errorf("cost %v, orders add up to %v", res.Cost, cost)
			}
		})
	}
}

func TestSearchIsDeterministic(t *testing.T) {
	a := searchProblem(t, []Model{fast}, []Site{{Name: "lab/z1", Space: 6}, {Name: "lab/z2"}})
	b := searchProblem(t, []Model{fast}, []Site{{Name: "lab/z1", Space: 6}, {Name: "lab/z2"}})
	ra, err := Search(a, &fluid{p: a, headroom: 1.25})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Search(b, &fluid{p: b, headroom: 1.25})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ra, rb); diff != "" {
		t.Errorf("two searches differ (-first +second):\n%s", diff)
	}
}

func TestSearchBisectsWithFewReplays(t *testing.T) {
	// A big shortfall (64 nodes' worth) is sized by doubling and narrowing
	// in a handful of replays, not one per node.
	p := searchProblem(t, []Model{fast}, []Site{{Name: "lab/z1"}})
	for w := 4; w < p.Horizon; w++ {
		p.Demand[0].Point[w], p.Demand[0].Upper[w] = 400*168, 400*168
	}
	sim := &fluid{p: p, headroom: 1.25}
	res, err := Search(p, sim)
	if err != nil {
		t.Fatal(err)
	}
	// 1.25 x 400 = 500 effective accelerators: 63 nodes, 59 of them new.
	if len(res.Orders) != 1 || res.Orders[0].Count != 59 {
		t.Fatalf("orders %+v, want one of 59 nodes", res.Orders)
	}
	if res.Orders[0].Replays > 12 {
		t.Errorf("sizing took %d replays; doubling and narrowing should need at most 12", res.Orders[0].Replays)
	}
}
