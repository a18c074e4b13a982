package place

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestSFGDPreferences(t *testing.T) {
	// One class of 1-GPU tasks with 8 CPUs per GPU, and CPU-only work.
	strandWork := workload(
		Class{Req: Request{Devices: 1, CPUMilli: 8000}, Weight: 3},
		Class{Req: Request{CPUMilli: 24000}, Weight: 1},
	)
	strandNodes := func() []*Node {
		return []*Node{node(0, "G2", 40000, 1000, 1000, 1000, 1000), node(1, "G2", 40000, 0, 0, 0, 0)}
	}
	// T4-only and G2-only tasks in equal measure, more G2 than T4 in the
	// fleet: the T4s are the contested type.
	scarceWork := workload(
		Class{Req: Request{Accel: []string{"T4"}, Devices: 1, CPUMilli: 1000}, Weight: 1},
		Class{Req: Request{Accel: []string{"G2"}, Devices: 1, CPUMilli: 1000}, Weight: 1},
		Class{Req: whole(1), Weight: 2},
	)
	scarceNodes := func() []*Node {
		return []*Node{node(0, "T4", 96000, 1000, 1000), node(1, "G2", 96000, 1000, 1000), node(2, "G2", 96000, 0, 0)}
	}
	tests := map[string]struct {
		policy   string
		nodes    []*Node
		workload *Workload
		req      Request
		want     Choice
	}{
		"fgd lets CPU-only work eat the CPU that idle GPUs need": {
			policy: "fgd", nodes: strandNodes(), workload: strandWork,
			req:  Request{CPUMilli: 24000},
			want: Choice{Node: 0},
		},
		"sfgd puts it where no GPU is left to strand": {
			policy: "sfgd", nodes: strandNodes(), workload: strandWork,
			req:  Request{CPUMilli: 24000},
			want: Choice{Node: 1},
		},
		"fgd sees no difference between a contested and a plentiful type": {
			policy: "fgd", nodes: scarceNodes(), workload: scarceWork,
			req:  whole(1),
			want: Choice{Node: 0, Devices: []int{0}, Milli: Whole},
		},
		"sfgd leaves the contested type to the tasks that need it": {
			policy: "sfgd", nodes: scarceNodes(), workload: scarceWork,
			req:  whole(1),
			want: Choice{Node: 1, Devices: []int{0}, Milli: Whole},
		},
		"sfgd without a workload packs into nodes in use": {
			policy: "sfgd",
			nodes:  []*Node{node(0, "G2", 96000, 1000, 1000), node(1, "G2", 96000, 0, 1000)},
			req:    whole(1),
			want:   Choice{Node: 1, Devices: []int{1}, Milli: Whole},
		},
		"sfgd keeps FGD's device choice": {
			policy:   "sfgd",
			workload: workload(Class{Req: whole(1), Weight: 1}, Class{Req: share(500), Weight: 1}),
			nodes:    []*Node{node(0, "G2", 96000, 1000, 500, 1000)},
			req:      share(500),
			want:     Choice{Node: 0, Devices: []int{1}, Milli: 500},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := New(tc.policy, &Env{Nodes: tc.nodes, Workload: tc.workload})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := Select(tc.nodes, &tc.req, s, nil)
			if !ok {
				t.Fatal("Select found no node")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTypePressure(t *testing.T) {
	nodes := []*Node{
		node(0, "T4", 1, 1000, 1000),
		node(1, "G2", 1, 1000, 1000),
		node(2, "G2", 1, 1000, 1000),
		node(3, "", 1), // CPU-only nodes supply nothing
	}
	w := workload(
		Class{Req: Request{Accel: []string{"T4"}, Devices: 1}, Weight: 3},
		Class{Req: Request{Accel: []string{"G2"}, Devices: 1}, Weight: 1},
		Class{Req: Request{Accel: []string{"T4", "G2"}, Milli: 600}, Weight: 5}, // 3000 milli, a third of it on T4
		Class{Req: Request{Devices: 2}, Weight: 1},
		Class{Req: Request{CPUMilli: 4000}, Weight: 9},
	)
	// Demand 9000 milli against 6000 supplied: scale by 6/9. T4: 4000
	// constrained over 2000 supplied, capped at 1; G2: 3000 over 4000.
	want := map[string]float64{"T4": 1, "G2": 3000.0 / 9000 * 6000 / 4000}
	if diff := cmp.Diff(want, typePressure(w, nodes), cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("typePressure (-want +got):\n%s", diff)
	}
}
