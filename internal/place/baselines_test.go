package place

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// used marks devices of n as taken by replicas of shape r, as Apply would.
func used(n *Node, r Request, devs ...int) *Node {
	c := Choice{Node: n.Index, Devices: devs, Milli: r.Milli}
	if r.Devices > 0 {
		c.Milli = Whole
	}
	Apply(n, &r, c, +1)
	return n
}

var (
	share = func(m int32) Request { return Request{Milli: m, CPUMilli: 1000} }
	whole = func(k int) Request { return Request{Devices: k, CPUMilli: 1000} }
)

// workload builds a target workload from requests and weights.
func workload(classes ...Class) *Workload { return &Workload{Classes: classes} }

func TestPolicyPreferences(t *testing.T) {
	tests := map[string]struct {
		policy   string
		nodes    []*Node
		workload *Workload
		req      Request
		want     Choice
	}{
		"dotprod: the node whose free GPU aligns least with the request": {
			policy: "dotprod",
			nodes:  []*Node{node(0, "G2", 96000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000), node(1, "T4", 96000, 1000, 1000)},
			req:    whole(1),
			want:   Choice{Node: 1, Devices: []int{0}, Milli: Whole},
		},
		"dotprod: CPU-only work to the node with least free CPU": {
			policy: "dotprod",
			nodes:  []*Node{node(0, "T4", 96000, 1000), node(1, "T4", 16000, 1000)},
			req:    Request{CPUMilli: 8000},
			want:   Choice{Node: 1},
		},
		"dotprod: best-fit device within the node": {
			policy: "dotprod",
			nodes:  []*Node{node(0, "T4", 96000, 1000, 300, 600)},
			req:    share(250),
			want:   Choice{Node: 0, Devices: []int{1}, Milli: 250},
		},
		"clustering: a node running only this shape first": {
			policy: "clustering",
			nodes: []*Node{
				node(0, "G2", 96000, 1000, 1000, 1000, 1000),
				used(node(1, "G2", 96000, 1000, 1000, 1000, 1000), whole(1), 0),
				used(node(2, "G2", 96000, 1000, 1000, 1000, 1000), share(500), 0),
			},
			req:  share(200),
			want: Choice{Node: 2, Devices: []int{0}, Milli: 200},
		},
		"clustering: an idle node before one running other shapes": {
			policy: "clustering",
			nodes: []*Node{
				used(node(0, "G2", 96000, 1000, 1000, 1000, 1000), whole(1), 0),
				node(1, "G2", 96000, 1000, 1000, 1000, 1000),
			},
			req:  share(200),
			want: Choice{Node: 1, Devices: []int{0}, Milli: 200},
		},
		"packing: a partly used device first": {
			policy: "packing",
			nodes: []*Node{
				node(0, "G2", 96000, 1000, 1000, 1000, 1000),
				node(1, "G2", 96000, 0, 1000, 1000, 1000),
				node(2, "G2", 96000, 1000, 600, 1000, 1000),
			},
			req:  share(300),
			want: Choice{Node: 2, Devices: []int{1}, Milli: 300},
		},
		"packing: then a free device on a used node, before an idle node": {
			policy: "packing",
			nodes: []*Node{
				node(0, "G2", 96000, 1000, 1000, 1000, 1000),
				node(1, "G2", 96000, 0, 1000, 1000, 1000),
			},
			req:  share(300),
			want: Choice{Node: 1, Devices: []int{1}, Milli: 300},
		},
		"packing: among idle nodes, the smallest": {
			policy: "packing",
			nodes: []*Node{
				node(0, "G2", 96000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000),
				node(1, "T4", 96000, 1000, 1000),
			},
			req:  whole(1),
			want: Choice{Node: 1, Devices: []int{0}, Milli: Whole},
		},
		"bestfit: the node left with the least": {
			policy: "bestfit",
			nodes: []*Node{
				node(0, "G2", 96000, 1000, 1000, 1000, 1000),
				node(1, "G2", 96000, 0, 0, 0, 1000),
			},
			req:  whole(1),
			want: Choice{Node: 1, Devices: []int{3}, Milli: Whole},
		},
		"fgd: fill the device that only a shared task can use": {
			policy:   "fgd",
			workload: workload(Class{Req: whole(1), Weight: 1}, Class{Req: share(500), Weight: 1}),
			nodes: []*Node{
				node(0, "G2", 96000, 1000, 1000),
				node(1, "G2", 96000, 1000, 500),
			},
			req:  share(500),
			want: Choice{Node: 1, Devices: []int{1}, Milli: 500},
		},
		"fgd: leave whole devices whole when the workload needs them": {
			policy:   "fgd",
			workload: workload(Class{Req: whole(2), Weight: 1}, Class{Req: share(300), Weight: 1}),
			nodes: []*Node{
				node(0, "G2", 96000, 1000, 1000),
				node(1, "G2", 96000, 1000, 1000, 1000, 700),
			},
			req:  share(300),
			want: Choice{Node: 1, Devices: []int{3}, Milli: 300},
		},
		"fgd: CPU-only work where it strands no GPU class": {
			policy:   "fgd",
			workload: workload(Class{Req: Request{Devices: 1, CPUMilli: 8000}, Weight: 1}),
			nodes: []*Node{
				node(0, "G2", 20000, 1000, 1000),
				node(1, "G2", 20000, 0, 0),
			},
			req:  Request{CPUMilli: 16000},
			want: Choice{Node: 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := New(tc.policy, &Env{Nodes: tc.nodes, Workload: tc.workload, Rand: rand.New(rand.NewPCG(1, 2))})
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

// random draws a fresh node for every decision, uniformly among those that
// fit, and a shared device uniformly among the devices that fit.
func TestRandomSpreads(t *testing.T) {
	nodes := []*Node{
		node(0, "G2", 96000, 300, 1000, 1000, 1000),
		node(1, "G2", 96000, 1000),
		node(2, "G2", 96000, 1000),
	}
	s, err := New("random", &Env{Nodes: nodes, Rand: rand.New(rand.NewPCG(7, 7))})
	if err != nil {
		t.Fatal(err)
	}
	r := share(200)
	perNode := map[int]int{}
	freeDevice := 0
	const n = 3000
	for range n {
		c, _ := Select(nodes, &r, s, nil)
		perNode[c.Node]++
		if c.Node == 0 && c.Devices[0] != 0 {
			freeDevice++
		}
	}
	for i := range nodes {
		if perNode[i] < n/3-150 || perNode[i] > n/3+150 {
			t.Errorf("node %d chosen %d times of %d, want about a third", i, perNode[i], n)
		}
	}
	// Three of node 0's four devices have 1000 free.
	if f := float64(freeDevice) / float64(perNode[0]); f < 0.68 || f > 0.82 {
		t.Errorf("on node 0 a full device was taken %.2f of the time, want about 0.75", f)
	}
}

func TestPoliciesAreRegistered(t *testing.T) {
	want := []string{"bestfit", "clustering", "dotprod", "fgd", "packing", "random", "sfgd"}
	var got []string
	for _, n := range Names() {
		for _, w := range want {
			if n == w {
				got = append(got, n)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registered policies (-want +got):\n%s", diff)
	}
	if _, err := New("tetris", &Env{}); err == nil {
		t.Error(`New("tetris") = nil error, want an unknown-policy error`)
	}
}
