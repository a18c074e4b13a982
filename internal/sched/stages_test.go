package sched

import (
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

func stageCore(t *testing.T, placement []string) (*Core, error) {
	t.Helper()
	var nodes []fleet.Node
	for _, n := range []string{"a", "b", "c"} {
		nodes = append(nodes, fleet.Node{Name: n, Path: []string{"r", "z", "b", "k"}, Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 19})
	}
	f, err := fleet.New(nil, nil, nodes)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quota.New([]quota.Spec{{Name: "t", Quotas: map[string]quota.Limits{"h100": {Nominal: 24000}}}, {Name: "q", Parent: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Placement: placement}, f, q)
}

func TestPlacementChainErrors(t *testing.T) {
	tests := map[string]struct {
		chain []string
		want  string
	}{
		"unknown stage":      {[]string{"bestfit", "carbon-magic"}, `placement stage "carbon-magic": want one of ready, accelerator, resources, reservation, bestfit, spread, fragmentation`},
		"two orders":         {[]string{"bestfit", "spread"}, `"bestfit" and "spread" both set the candidate order`},
		"listed twice":       {[]string{"fragmentation", "fragmentation"}, `"fragmentation": listed twice`},
		"too many scorers":   {[]string{"fragmentation", "fgd", "sfgd", "dotprod", "packing"}, "5 scorers (fragmentation, fgd, sfgd, dotprod, packing): the core weighs at most 4"},
		"four scorers is ok": {[]string{"fragmentation", "fgd", "sfgd", "dotprod"}, ""},
	}
	for name, tc := range tests {
		_, err := stageCore(t, tc.chain)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want it to contain %q", name, err, tc.want)
		}
	}
}

// notNode is a filter stage of a test: node b takes nothing.
type notNode struct{ node int }

func (notNode) name() string { return "not-b" }
func (f notNode) feasible(t *try, n int, r *place.Request) bool {
	return n != f.node
}

// A filter added to the chain by name rules nodes out without any change
// to admission: registering the stage is all it takes.
func TestAddedFilterStage(t *testing.T) {
	stageKinds["not-b"] = func(c *Core) (stage, error) {
		i, _ := c.fleet.NodeIndex("b")
		return notNode{i}, nil
	}
	defer delete(stageKinds, "not-b")
	c, err := stageCore(t, []string{"spread", "not-b"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 3 {
		job := Job{ID: JobID(string(rune('x' + i))), Queue: "q", Gangs: []Gang{{Replicas: 1, Shape: place.Request{Devices: 8}}}}
		if _, err := c.Apply(JobSubmitted{Job: job}); err != nil {
			t.Fatal(err)
		}
		for _, a := range c.Schedule(int64(i + 1)).Actions {
			if b, ok := a.(Bind); ok {
				got = append(got, b.Node)
			}
		}
	}
	if strings.Join(got, ",") != "a,c" {
		t.Errorf("bound on %v, want a and c only (b is filtered out; the third job waits)", got)
	}
	if err := c.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
