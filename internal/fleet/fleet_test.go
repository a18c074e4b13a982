package fleet

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func node(name, rack string, count int) Node {
	return Node{Name: name, Path: []string{"us", "z1", "b1", rack}, Accel: "h100", Count: count, CPUMilli: 1000, MemoryMiB: 1024}
}

func TestTopologyTree(t *testing.T) {
	f, err := New(nil, nil, []Node{node("a", "r1", 8), node("b", "r1", 8), node("c", "r2", 4)})
	if err != nil {
		t.Fatal(err)
	}
	// root, us, z1, b1, r1, r2
	if len(f.Domains) != 6 {
		t.Fatalf("%d domains, want 6", len(f.Domains))
	}
	rack, _ := f.LevelIndex("rack")
	if got, want := f.DomainPath(f.Ancestor(2, rack)), "us/z1/b1/r2"; got != want {
		t.Errorf("node c's rack = %s, want %s", got, want)
	}
	if f.Ancestor(0, rack) != f.Ancestor(1, rack) {
		t.Errorf("a and b should share a rack")
	}
	block, _ := f.LevelIndex("block")
	if f.Ancestor(0, block) != f.Ancestor(2, block) {
		t.Errorf("a and c should share a block")
	}
	if diff := cmp.Diff(map[string]int{"h100": 20}, f.Totals()); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if i, ok := f.NodeIndex("c"); !ok || i != 2 {
		t.Errorf("NodeIndex(c) = %d, %v", i, ok)
	}
}

func TestAddNodeErrors(t *testing.T) {
	tests := map[string]struct {
		n    Node
		want string
	}{
		"empty name":   {Node{Path: []string{"a", "b", "c", "d"}}, "name is empty"},
		"short path":   {Node{Name: "x", Path: []string{"a"}}, "path has 1 parts, want 4 (region/zone/block/rack)"},
		"unknown type": {Node{Name: "x", Path: []string{"a", "b", "c", "d"}, Accel: "h9000", Count: 1}, `accelerator type "h9000" is not in the catalog`},
		"too many":     {Node{Name: "x", Path: []string{"a", "b", "c", "d"}, Accel: "h100", Count: 17}, "above the limit of 16"},
		"empty level":  {Node{Name: "x", Path: []string{"a", "", "c", "d"}}, "zone name is empty"},
		"duplicate":    {node("a", "r1", 8), `node "a": defined twice`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, _ := New(nil, nil, []Node{node("a", "r1", 8)})
			_, err := f.AddNode(tc.n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestStatesAndLevels(t *testing.T) {
	for _, s := range []NodeState{Ready, Draining, Down} {
		got, err := ParseNodeState(s.String())
		if err != nil || got != s {
			t.Errorf("round trip of %v: %v, %v", s, got, err)
		}
	}
	if _, err := ParseNodeState("gone"); err == nil || !strings.Contains(err.Error(), "want one of ready, draining, down") {
		t.Errorf("bad state error: %v", err)
	}
	f, _ := New(nil, nil, nil)
	if _, err := f.LevelIndex("pod"); err == nil || !strings.Contains(err.Error(), "want one of region, zone, block, rack, node") {
		t.Errorf("bad level error: %v", err)
	}
}
