package autoscale

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// TestBudgetNeedMonotone: a window whose seconds carry more prompt tokens
// (prompts still short enough to meet the objective at all) never needs
// fewer replicas, and the need it finds is the fewest that keep the late
// requests within the budget.
func TestBudgetNeedMonotone(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec := Spec{MaxReplicas: 1000, TargetInFlight: 1, TargetTokensPerSecond: 5000, Latency: 2 * time.Second}
		lo, hi := NewGpufleet(spec), NewGpufleet(spec)
		for i := range rapid.IntRange(1, 300).Draw(t, "seconds") {
			reqs := float64(rapid.IntRange(0, 30).Draw(t, "reqs"))
			p := float64(rapid.IntRange(1, 9000).Draw(t, "prompt"))
			q := p + float64(rapid.IntRange(0, int(10000-p)).Draw(t, "more"))
			at := time.Duration(i+1) * time.Second
			lo.samples = append(lo.samples, arrivals{at: at, dt: time.Second, tokens: reqs * p, requests: reqs})
			hi.samples = append(hi.samples, arrivals{at: at, dt: time.Second, tokens: reqs * q, requests: reqs})
		}
		a, b := lo.budgetNeed(5000, 1), hi.budgetNeed(5000, 1)
		if b < a {
			t.Fatalf("more tokens need %g replicas, fewer need %g", b, a)
		}
		if a > 1 && lo.budgetNeed(5000, 1) != a {
			t.Fatal("not deterministic")
		}
	})
}

func TestNearestRank(t *testing.T) {
	tests := map[string]struct {
		q    float64
		n    int
		want int
	}{
		"p90 of 10":  {0.9, 10, 8},
		"p90 of 1":   {0.9, 1, 0},
		"p99 of 32":  {0.99, 32, 31},
		"p50 of 4":   {0.5, 4, 1},
		"p0 of 5":    {0, 5, 0},
		"p100 of 5":  {1, 5, 4},
		"p90 of 100": {0.9, 100, 89},
	}
	for name, tc := range tests {
		if got := nearestRank(tc.q, tc.n); got != tc.want {
			t.Errorf("%s: nearestRank(%g, %d) = %d, want %d", name, tc.q, tc.n, got, tc.want)
		}
	}
}

func TestColdStartEstimate(t *testing.T) {
	g := NewGpufleet(Spec{MaxReplicas: 4, TargetInFlight: 1, ColdStart: 40 * time.Second})
	if got := g.ColdStart(); got != 40*time.Second {
		t.Fatalf("before any measurement: %s, want the spec's 40s", got)
	}
	var got []time.Duration
	for i := 1; i <= 40; i++ {
		g.Step(Observation{Now: time.Duration(i) * time.Second, Concurrency: -1, ColdStarts: []time.Duration{time.Duration(i) * time.Second}})
		got = append(got, g.ColdStart())
	}
	// The 90th percentile of the last 32: after 10 samples (1..10 s) it
	// is 9 s; after 40 (the last 32 are 9..40 s) it is 37 s.
	if diff := cmp.Diff([]time.Duration{9 * time.Second, 37 * time.Second}, []time.Duration{got[9], got[39]}); diff != "" {
		t.Errorf("estimates (-want +got):\n%s", diff)
	}
}
