package sim

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/trace/openb"
)

// openbExcerpt loads the trace excerpt under testdata/openb.
func openbExcerpt(t testing.TB, tasksFile string) ([]*place.Node, []place.Request) {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "openb")
	ns, err := openb.LoadNodes(filepath.Join(dir, "nodes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := openb.LoadTasks(filepath.Join(dir, tasksFile))
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*place.Node, len(ns))
	for i := range ns {
		nodes[i] = ns[i].Place(i)
	}
	reqs := make([]place.Request, len(ts))
	for i := range ts {
		reqs[i] = ts[i].Req
	}
	return nodes, reqs
}

func TestFillIsDeterministic(t *testing.T) {
	nodes, tasks := openbExcerpt(t, "tasks.csv")
	for _, policy := range place.Names() {
		a, err := Fill(nodes, tasks, policy, 42, 1.3)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Fill(nodes, tasks, policy, 42, 1.3)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a.Curve, b.Curve); diff != "" {
			t.Errorf("%s: two runs with seed 42 differ (-first +second):\n%s", policy, diff)
		}
		if diff := cmp.Diff(a.Nodes, b.Nodes); diff != "" {
			t.Errorf("%s: two runs with seed 42 end in different states (-first +second):\n%s", policy, diff)
		}
	}
}

func TestFillSeedsAndPoliciesDiffer(t *testing.T) {
	nodes, tasks := openbExcerpt(t, "tasks.csv")
	curves := map[string][]FillPoint{}
	for _, run := range []struct {
		policy string
		seed   uint64
	}{{"fgd", 42}, {"fgd", 43}, {"random", 42}, {"bestfit", 42}, {"sfgd", 42}} {
		res, err := Fill(nodes, tasks, run.policy, run.seed, 1.3)
		if err != nil {
			t.Fatal(err)
		}
		curves[fmt.Sprintf("%s/%d", run.policy, run.seed)] = res.Curve
	}
	for a, ca := range curves {
		for b, cb := range curves {
			if a < b && cmp.Equal(ca, cb) {
				t.Errorf("%s and %s give the same curve", a, b)
			}
		}
	}
}

func TestFillInvariants(t *testing.T) {
	for _, file := range []string{"tasks.csv", "tasks_multigpu.csv"} {
		nodes, tasks := openbExcerpt(t, file)
		var capacity int64
		for _, n := range nodes {
			capacity += int64(len(n.Free)) * place.Whole
		}
		for _, policy := range place.Names() {
			res, err := Fill(nodes, tasks, policy, 7, 1.3)
			if err != nil {
				t.Fatal(err)
			}
			name := file + "/" + policy
			if res.TotalGPUMilli != capacity {
				t.Errorf("%s: total GPU milli %d, want %d", name, res.TotalGPUMilli, capacity)
			}
			if res.Placed+res.Failed != res.Arrivals || res.Failed == 0 || res.Placed == 0 {
				t.Errorf("%s: placed %d + failed %d of %d arrivals: want both, adding up", name, res.Placed, res.Failed, res.Arrivals)
			}
			var allocated int64
			for i, n := range res.Nodes {
				if n.Index != i {
					t.Errorf("%s: node at %d has index %d", name, i, n.Index)
				}
				for d, f := range n.Free {
					if f < 0 || f > place.Whole {
						t.Errorf("%s: node %d device %d has %d milli free", name, i, d, f)
					}
					allocated += int64(place.Whole - f)
				}
				if n.CPUFree < 0 || n.CPUFree > n.CPUCap || n.MemFree < 0 || n.MemFree > n.MemCap {
					t.Errorf("%s: node %d CPU %d/%d, memory %d/%d", name, i, n.CPUFree, n.CPUCap, n.MemFree, n.MemCap)
				}
			}
			if len(res.Curve) != FillPoints {
				t.Fatalf("%s: %d curve points, want %d", name, len(res.Curve), FillPoints)
			}
			for p, pt := range res.Curve {
				// Allocation never exceeds arrived demand (a bin's arrivals
				// round to p, so they lie below p+0.5, p+1.5 when borrowed
				// from a neighbour).
				if pt.ArrivedPct != p || pt.AllocatedPct < 0 || pt.AllocatedPct > float64(p)+1.5 {
					t.Errorf("%s: curve point %d = %+v", name, p, pt)
				}
			}
			if last := res.Curve[FillPoints-1].AllocatedPct; last > float64(allocated)*100/float64(capacity)+1e-9 {
				t.Errorf("%s: curve ends at %.2f%%, above the final allocation %.2f%%", name, last, float64(allocated)*100/float64(capacity))
			}
		}
	}
}

func TestFillLeavesInputAlone(t *testing.T) {
	nodes, tasks := openbExcerpt(t, "tasks.csv")
	before := make([]place.Node, len(nodes))
	for i, n := range nodes {
		before[i] = *n
		before[i].Free = append([]int32(nil), n.Free...)
	}
	if _, err := Fill(nodes, tasks, "sfgd", 1, 1.3); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if diff := cmp.Diff(before[i], *n); diff != "" {
			t.Errorf("node %d changed (-before +after):\n%s", i, diff)
		}
	}
}

func TestFillWorkload(t *testing.T) {
	tasks := []place.Request{
		{Devices: 1}, {Milli: 500}, {CPUMilli: 1000}, {Devices: 2},
	}
	tests := map[string]struct {
		capacity int64
		tune     float64
		keepAll  bool // every task of the list arrives at least once
	}{
		"extended": {capacity: 10000, tune: 1.3, keepAll: true},
		"thinned":  {capacity: 1000, tune: 1.3},
		"as is":    {capacity: 3500, tune: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			order := fillWorkload(tasks, tc.capacity, 9, tc.tune)
			var demand int64
			seen := map[int]bool{}
			for _, i := range order {
				demand += tasks[i].GPUMilli()
				seen[i] = true
			}
			target := tc.tune * float64(tc.capacity)
			if float64(demand) > target {
				t.Errorf("demand %d above the target %.0f", demand, target)
			}
			if tc.keepAll && len(seen) != len(tasks) {
				t.Errorf("only tasks %v arrive; an extension keeps the whole list", seen)
			}
			if tc.keepAll && float64(demand)+2000 <= target {
				t.Errorf("demand %d stops short of the target %.0f by more than the largest task", demand, target)
			}
			again := fillWorkload(tasks, tc.capacity, 9, tc.tune)
			if diff := cmp.Diff(order, again); diff != "" {
				t.Errorf("the same seed gives another order (-first +second):\n%s", diff)
			}
		})
	}
}

func TestFillErrors(t *testing.T) {
	nodes, tasks := openbExcerpt(t, "tasks.csv")
	tests := map[string]struct {
		nodes  []*place.Node
		tasks  []place.Request
		policy string
		tune   float64
		want   string
	}{
		"unknown policy": {nodes, tasks, "tetris", 1.3, "want one of bestfit, clustering, dotprod, fgd, packing, random, sfgd"},
		"no tasks":       {nodes, nil, "fgd", 1.3, "no tasks"},
		"bad tune":       {nodes, tasks, "fgd", 0, "tune 0: want a ratio above 0"},
		"no GPUs":        {[]*place.Node{{Schedulable: true, CPUCap: 1}}, tasks, "fgd", 1.3, "no GPUs"},
		"bad task":       {nodes, []place.Request{{Devices: 1, Milli: 500}}, "fgd", 1.3, "task 0: milli 500"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Fill(tc.nodes, tc.tasks, tc.policy, 1, tc.tune)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Fill error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
