package replay

import (
	"fmt"
	"testing"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/plan"
)

// benchProblem is a year's plan for a fleet of 32 nodes of 8 H100 and 16
// of 8 H200 in two zones, whose demand grows from half its capacity to
// twice it: two series of training (whole nodes for 6 hours) and two of
// batch (one accelerator for an hour), and one that takes any type.
func benchProblem(b testing.TB) *plan.Problem {
	var nodes []fleet.Node
	for i := range 48 {
		accel, zone := "h100", "z1"
		if i >= 32 {
			accel, zone = "h200", "z2"
		}
		nodes = append(nodes, fleet.Node{Name: fmt.Sprintf("n%d", i+1), Path: []string{"lab", zone, "b1", fmt.Sprintf("r%d", i/8+1)},
			Accel: accel, Count: 8, CPUMilli: 192000, MemoryMiB: 2 << 20})
	}
	f, err := fleet.New(nil, nil, nodes)
	if err != nil {
		b.Fatal(err)
	}
	const H = 52
	ramp := func(accels float64, share float64) []float64 {
		v := make([]float64, H)
		for w := range v {
			v[w] = accels * share * (0.5 + 1.5*float64(w)/float64(H-1)) * 168
		}
		return v
	}
	series := func(tenant, kind, accel string, accels, share, size, hours float64) plan.Demand {
		pt := ramp(accels, share)
		up := make([]float64, H)
		for w := range up {
			up[w] = pt[w] * (1.1 + 0.004*float64(w))
		}
		return plan.Demand{Key: plan.Key{Tenant: tenant, Kind: kind, Accel: accel}, History: []float64{pt[0], pt[0]},
			Point: pt, Upper: up, Lower: pt, Committed: make([]float64, H), Shape: plan.Shape{Accels: size, Hours: hours}, Profile: []float64{1}}
	}
	cat := &plan.Catalog{
		Models: []plan.Model{
			{Name: "hgx-h100", Accel: "h100", Count: 8, Price: 280000, PowerKW: 10.2, LeadWeeks: 8, Space: 1},
			{Name: "hgx-h200", Accel: "h200", Count: 8, Price: 330000, PowerKW: 10.2, LeadWeeks: 12, Space: 1},
		},
		Sites: []plan.Site{{Name: "lab/z1", Space: 96, PowerKW: 900}, {Name: "lab/z2", Space: 64}},
	}
	return &plan.Problem{Fleet: f, Catalog: cat, Horizon: H, Warmup: 1,
		Target: plan.Target{Percentile: 95, WaitSec: 4 * 3600}, Scenario: plan.P90, Jobs: plan.WorkloadOptions{Seed: 1},
		Demand: []plan.Demand{
			series("acme", "training", "h100", 256, 0.6, 16, 6),
			series("acme", "batch", "h100", 256, 0.3, 1, 1),
			series("globex", "training", "h200", 128, 0.7, 8, 6),
			series("globex", "batch", "h200", 128, 0.2, 1, 1),
			series("initech", "batch", plan.AnyAccel, 384, 0.05, 2, 2),
		}}
}

// BenchmarkPlan52Weeks makes a year's buy plan: the run-out replays and
// the search with its replays, on all the cores the process may use.
func BenchmarkPlan52Weeks(b *testing.B) {
	for b.Loop() {
		p := benchProblem(b)
		s, err := New(p, Config{})
		if err != nil {
			b.Fatal(err)
		}
		res, err := plan.Search(p, s)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Replays), "replays")
		b.ReportMetric(float64(len(res.Orders)), "orders")
	}
}
