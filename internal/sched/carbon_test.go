package sched

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func TestPlanStart(t *testing.T) {
	tests := map[string]struct {
		v                 []float64
		now, e, latest    int64
		wantStart         int64
		wantCost, wantNow float64
		ok                bool
	}{
		"cleanest later":     {v: []float64{5, 4, 1, 1, 3}, now: 0, e: 200, latest: 300, wantStart: 200, wantCost: 200, wantNow: 900, ok: true},
		"latest start bound": {v: []float64{5, 4, 3, 1, 1}, now: 0, e: 200, latest: 100, wantStart: 100, wantCost: 700, wantNow: 900, ok: true},
		"constant: now":      {v: []float64{2, 2, 2, 2}, now: 0, e: 100, latest: 300, wantStart: 0, wantCost: 200, wantNow: 200, ok: true},
		"now between steps":  {v: []float64{9, 1, 9}, now: 50, e: 100, latest: 200, wantStart: 100, wantCost: 100, wantNow: 500, ok: true},
		"forecast too short": {v: []float64{1}, now: 0, e: 200, latest: 0, ok: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newCurve(0, 100, tc.v)
			start, cost, costNow, ok := planStart(s, tc.now, tc.e, tc.latest)
			got := []any{start, cost, costNow, ok}
			want := []any{tc.wantStart, tc.wantCost, tc.wantNow, tc.ok}
			if !tc.ok {
				got, want = []any{ok}, []any{false}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("planStart (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanSlots(t *testing.T) {
	tests := map[string]struct {
		v                  []float64
		now, e, dl, notice int64
		want               []span
		wantCost           float64
	}{
		"two clean steps":       {v: []float64{9, 1, 9, 2, 9}, now: 0, e: 200, dl: 500, want: []span{{100, 200}, {300, 400}}, wantCost: 300},
		"adjacent merge":        {v: []float64{9, 1, 2, 9}, now: 0, e: 200, dl: 400, want: []span{{100, 300}}, wantCost: 300},
		"partial last":          {v: []float64{1, 9, 2, 9}, now: 0, e: 150, dl: 400, want: []span{{0, 100}, {200, 250}}, wantCost: 200},
		"short run runs on":     {v: []float64{9, 1, 9, 2, 9}, now: 0, e: 200, dl: 500, notice: 100, want: []span{{100, 300}}, wantCost: 1000},
		"now between steps":     {v: []float64{1, 9, 2}, now: 50, e: 100, dl: 300, want: []span{{50, 100}, {200, 250}}, wantCost: 150},
		"deadline inside step":  {v: []float64{9, 1, 1}, now: 0, e: 150, dl: 250, want: []span{{100, 250}}, wantCost: 150},
		"equal: earliest first": {v: []float64{3, 3, 3}, now: 0, e: 100, dl: 300, want: []span{{0, 100}}, wantCost: 300},
		// The step needed only in part is the dearest one chosen, not the
		// last in time: the clean ones run whole.
		"part of the dearest": {v: []float64{1, 0, 0, 1}, now: 50, e: 210, dl: 310, want: []span{{50, 60}, {100, 300}}, wantCost: 10},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			runs, cost, ok := planSlots(newCurve(0, 100, tc.v), tc.now, tc.e, tc.dl, tc.notice)
			if !ok {
				t.Fatal("no plan")
			}
			if diff := cmp.Diff(tc.want, runs, cmp.AllowUnexported(span{})); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
			if cost != tc.wantCost {
				t.Errorf("cost %v, want %v", cost, tc.wantCost)
			}
		})
	}
}

// The planners against brute force: a start is the cheapest of every
// start the rule allows (later ones only when cleaner), and slots cover
// the run before the deadline at no more cost than any contiguous run.
func TestPlannerProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		step := int64(rapid.SampledFrom([]int{1, 10, 100}).Draw(t, "step"))
		n := rapid.IntRange(1, 30).Draw(t, "steps")
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(rapid.IntRange(0, 20).Draw(t, "v"))
		}
		s := newCurve(0, step, v)
		now := rapid.Int64Range(0, s.end()-1).Draw(t, "now")
		e := rapid.Int64Range(1, s.end()-now).Draw(t, "e")
		latest := rapid.Int64Range(now, s.end()-e).Draw(t, "latest")
		start, cost, costNow, ok := planStart(s, now, e, latest)
		if !ok {
			t.Fatalf("no plan for a run the forecast covers")
		}
		if start < now || start > latest || start != now && start%step != 0 {
			t.Fatalf("start %d outside now %d..latest %d or off the grid", start, now, latest)
		}
		sum := func(a, b int64) float64 {
			x := 0.0
			for t := a; t < b; t++ {
				x += v[t/step]
			}
			return x
		}
		if math.Abs(costNow-sum(now, now+e)) > 1e-6 || math.Abs(cost-sum(start, start+e)) > 1e-6 {
			t.Fatalf("costs %v %v, brute force %v %v", cost, costNow, sum(start, start+e), sum(now, now+e))
		}
		for b := (now/step + 1) * step; b <= latest; b += step {
			if sum(b, b+e) < cost-1e-6 {
				t.Fatalf("start %d costs %v, %d costs %v", start, cost, b, sum(b, b+e))
			}
		}
		deadline := rapid.Int64Range(now+e, s.end()).Draw(t, "deadline")
		runs, scost, ok := planSlots(s, now, e, deadline, 0)
		if !ok {
			t.Fatalf("no slots")
		}
		var total int64
		for i, r := range runs {
			if r.from < now || r.to > deadline || r.to <= r.from || i > 0 && r.from <= runs[i-1].to {
				t.Fatalf("runs %v outside [%d, %d) or not apart", runs, now, deadline)
			}
			total += r.to - r.from
			if math.Abs(sum(r.from, r.to)) < 0 {
				t.Fatal("unreachable")
			}
		}
		if total != e {
			t.Fatalf("runs %v cover %d s, want %d", runs, total, e)
		}
		got := 0.0
		for _, r := range runs {
			got += sum(r.from, r.to)
		}
		if math.Abs(got-scost) > 1e-6 {
			t.Fatalf("slots cost %v, brute force %v", scost, got)
		}
		for a := now; a+e <= deadline; a++ {
			if sum(a, a+e) < scost-1e-6 && (a == now || a%step == 0) {
				t.Fatalf("slots %v cost %v, the run from %d costs %v", runs, scost, a, sum(a, a+e))
			}
		}
	})
}
