package place

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// node builds an empty-but-for-free node for tests.
func node(i int, accel string, cpu int64, free ...int32) *Node {
	return &Node{Index: i, Accel: accel, Free: free, CPUCap: cpu, CPUFree: cpu,
		MemCap: 1 << 20, MemFree: 1 << 20, Schedulable: true}
}

// scoreFunc adapts a function to Scorer.
type scoreFunc func(n *Node, r *Request, c Choice) float64

func (f scoreFunc) Score(n *Node, r *Request, c Choice) float64 { return f(n, r, c) }

func TestSelect(t *testing.T) {
	flat := scoreFunc(func(*Node, *Request, Choice) float64 { return 1 })
	mostFree := scoreFunc(func(n *Node, _ *Request, c Choice) float64 {
		if len(c.Devices) == 0 {
			return 0
		}
		return float64(n.Free[c.Devices[0]])
	})
	tests := map[string]struct {
		nodes  []*Node
		req    Request
		scorer Scorer
		want   Choice
		ok     bool
	}{
		"ties go to the lowest node index, whatever the slice order": {
			nodes:  []*Node{node(5, "T4", 8000, 1000), node(2, "T4", 8000, 1000), node(7, "T4", 8000, 1000)},
			req:    Request{Devices: 1, CPUMilli: 1000},
			scorer: flat,
			want:   Choice{Node: 2, Devices: []int{0}, Milli: Whole}, ok: true,
		},
		"then to the lowest device": {
			nodes:  []*Node{node(0, "T4", 8000, 200, 700, 700, 1000)},
			req:    Request{Milli: 300},
			scorer: flat,
			want:   Choice{Node: 0, Devices: []int{1}, Milli: 300}, ok: true,
		},
		"the highest score wins": {
			nodes:  []*Node{node(0, "T4", 8000, 400, 1000), node(1, "T4", 8000, 600, 500)},
			req:    Request{Milli: 300},
			scorer: mostFree,
			want:   Choice{Node: 0, Devices: []int{1}, Milli: 300}, ok: true,
		},
		"nodes that do not fit are skipped": {
			nodes: []*Node{
				node(0, "T4", 500, 1000),    // too little CPU
				node(1, "G2", 8000, 1000),   // type not accepted
				node(2, "T4", 8000, 0, 999), // no whole device
				node(3, "T4", 8000, 0, 1000),
			},
			req:    Request{Accel: []string{"T4"}, Devices: 1, CPUMilli: 1000},
			scorer: flat,
			want:   Choice{Node: 3, Devices: []int{1}, Milli: Whole}, ok: true,
		},
		"CPU-only work takes no device": {
			nodes:  []*Node{node(0, "", 8000), node(1, "T4", 8000, 1000)},
			req:    Request{CPUMilli: 1000},
			scorer: flat,
			want:   Choice{Node: 0}, ok: true,
		},
		"nothing fits": {
			nodes:  []*Node{node(0, "T4", 8000, 1000, 1000)},
			req:    Request{Devices: 4},
			scorer: flat,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := Select(tc.nodes, &tc.req, tc.scorer, nil)
			if ok != tc.ok {
				t.Fatalf("Select ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
		})
	}
}

type preparing struct {
	prepared []Request
}

func (p *preparing) Prepare(r *Request)                    { p.prepared = append(p.prepared, *r) }
func (p *preparing) Score(*Node, *Request, Choice) float64 { return 0 }

func TestSelectPreparesOncePerDecision(t *testing.T) {
	s := &preparing{}
	nodes := []*Node{node(0, "T4", 8000, 1000), node(1, "T4", 8000, 1000)}
	r := Request{Milli: 100}
	Select(nodes, &r, s, nil)
	if diff := cmp.Diff([]Request{r}, s.prepared); diff != "" {
		t.Errorf("Prepare calls (-want +got):\n%s", diff)
	}
}

// Select's own enumeration must list exactly what Choices lists, also when
// handed a dirty buffer, and must return a choice that owns its devices.
func TestSelectEnumeratesChoices(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		devs := rapid.IntRange(0, 8).Draw(t, "devices")
		n := node(rapid.IntRange(0, 3).Draw(t, "index"), "T4", 8000)
		for range devs {
			n.Free = append(n.Free, int32(rapid.SampledFrom([]int{0, 250, 500, 750, 1000}).Draw(t, "free")))
		}
		r := Request{CPUMilli: 1000}
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 1:
			r.Milli = int32(rapid.SampledFrom([]int{100, 250, 500, 999}).Draw(t, "milli"))
		case 2:
			r.Devices = rapid.IntRange(1, 4).Draw(t, "want")
		}
		dirty := []Choice{{Node: 9, Devices: []int{7, 7, 7}, Milli: 1}, {Node: 9, Devices: []int{7}}}
		got := appendChoices(n, &r, dirty[:0])
		want := Choices(n, &r, nil)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("appendChoices (-Choices +got):\n%s", diff)
		}
		buf := make([]Choice, 0, 4)
		c, ok := Select([]*Node{n}, &r, scoreFunc(func(*Node, *Request, Choice) float64 { return 0 }), buf)
		if ok != (len(want) > 0) {
			t.Fatalf("Select ok = %v with %d choices", ok, len(want))
		}
		if ok {
			before := append([]int(nil), c.Devices...)
			Select([]*Node{n}, &r, scoreFunc(func(*Node, *Request, Choice) float64 { return 0 }), buf)
			if !cmp.Equal(before, append([]int(nil), c.Devices...)) {
				t.Fatalf("a later Select changed an earlier result's devices")
			}
		}
	})
}
