package sim

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

func node8(name, accel string) fleet.Node {
	return fleet.Node{Name: name, Path: []string{"r", "z", "b", "rack2"}, Accel: accel, Count: 8, CPUMilli: 64000, MemoryMiB: 512 << 10}
}

func TestRunDeliveredNodeTakesTheWaitingJob(t *testing.T) {
	// One 8-accelerator node; a 16-accelerator gang cannot start until a
	// second node is delivered at 1000, and waits for it rather than being
	// rejected. The run does not give up on the job before the delivery
	// although nothing happens in between.
	f := testFleet(t, "h100", 1)
	big := gpuJob("big", 10, 100, 2, 8)
	big.WaitForCapacity = true
	cfg := Config{NodeEvents: []NodeEvent{{At: 40 * 86400, Kind: NodeAdd, Node: node8("n2", "h100")}}}
	res := run(t, cfg, f, testQueues("h100", 16), big, gpuJob("small", 20, 50, 1, 8))
	want := []timeline{
		{ID: "big", Start: 40 * 86400, End: 40*86400 + 100, Status: StatusFinished, AccelHours: round6(16 * 100.0 / 3600)},
		{ID: "small", Start: 20, End: 70, Status: StatusFinished, AccelHours: round6(8 * 50.0 / 3600)},
	}
	if diff := cmp.Diff(want, timelines(res)); diff != "" {
		t.Errorf("timelines (-want +got):\n%s", diff)
	}
	if res.Summary.Nodes != 2 || res.Summary.Accelerators["h100"] != 16 {
		t.Errorf("summary counts %d nodes, %v; want 2 nodes, 16 h100", res.Summary.Nodes, res.Summary.Accelerators)
	}
}

func TestRunRetiredNodeFinishesItsWorkThenLeaves(t *testing.T) {
	// n1 is retired at 50 while "a" runs on it until 100: "a" finishes
	// there; "b", arriving at 60, must wait for n2, busy until 200.
	f := testFleet(t, "h100", 2)
	cfg := Config{SampleSec: 100, NodeEvents: []NodeEvent{{At: 50, Kind: NodeRetire, Node: fleet.Node{Name: "n1"}}}}
	res := run(t, cfg, f, testQueues("h100", 16),
		gpuJob("a", 0, 100, 1, 8), gpuJob("c", 0, 200, 1, 8), gpuJob("b", 60, 10, 1, 8))
	got := map[string]timeline{}
	for _, tl := range timelines(res) {
		got[tl.ID] = tl
	}
	if got["a"].End != 100 || got["b"].Start != 200 || got["c"].End != 200 {
		t.Errorf("a ends %d (want 100), b starts %d (want 200 on n2), c ends %d (want 200)", got["a"].End, got["b"].Start, got["c"].End)
	}
	// Capacity: 16 accelerators until n1 empties at 100, then 8.
	var caps []float64
	for _, s := range res.Samples {
		caps = append(caps, s.CapacityAccels)
	}
	if diff := cmp.Diff([]float64{16, 8, 8}, caps); diff != "" {
		t.Errorf("capacity per sample (-want +got):\n%s", diff)
	}
}

func TestRunRetiredNodeStaysOutAfterARepair(t *testing.T) {
	// n1 fails at 10 for 100 s and is retired at 50 while down: the
	// repair must not bring it back, so "late" waits for n2.
	f := testFleet(t, "h100", 2)
	cfg := Config{
		Outages:    []Outage{{Node: "n1", At: 10, Duration: 100}},
		NodeEvents: []NodeEvent{{At: 50, Kind: NodeRetire, Node: fleet.Node{Name: "n1"}}},
	}
	res := run(t, cfg, f, testQueues("h100", 16), gpuJob("long", 0, 1000, 1, 8), gpuJob("late", 200, 10, 1, 8))
	got := map[string]JobRecord{}
	for _, j := range res.Jobs {
		got[j.ID] = j
	}
	if got["late"].Start != got["long"].End {
		t.Errorf("late starts at %d, want %d (when long ends on n2): the retired node came back", got["late"].Start, got["long"].End)
	}
}

func TestRunNodeEventErrors(t *testing.T) {
	tests := map[string]struct {
		ev   NodeEvent
		want string
	}{
		"retire unknown": {NodeEvent{At: 5, Kind: NodeRetire, Node: fleet.Node{Name: "nope"}},
			"node events[0] (retire nope at 5): the node is not in the fleet"},
		"add twice": {NodeEvent{At: 5, Kind: NodeAdd, Node: node8("n1", "h100")},
			`node events[0] (add n1 at 5): node "n1": defined twice`},
		"unknown type": {NodeEvent{At: 5, Kind: NodeAdd, Node: node8("n9", "tpu9")},
			`node events[0] (add n9 at 5): node "n9": accelerator type "tpu9" is not in the catalog`},
		"negative time": {NodeEvent{At: -1, Kind: NodeAdd, Node: node8("n9", "h100")},
			"node events[0] (add n9): at -1 must not be negative"},
		"no kind": {NodeEvent{At: 1, Node: node8("n9", "h100")},
			"node events[0] (n9): kind NodeEventKind(0), want add or retire"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := jobList{gpuJob("a", 0, 100, 1, 8)}
			_, err := Run(Config{NodeEvents: []NodeEvent{tc.ev}}, testFleet(t, "h100", 1), testQueues("h100", 8), &src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRunWithoutNodeEventsIsUnchangedByAnEmptyList(t *testing.T) {
	f1, f2 := testFleet(t, "h100", 2), testFleet(t, "h100", 2)
	jobs := []Job{gpuJob("a", 0, 100, 1, 8), gpuJob("b", 5, 300, 2, 8), gpuJob("c", 7, 50, 1, 4)}
	r1 := run(t, Config{Seed: 3, FailuresPerNodeDay: 5}, f1, testQueues("h100", 16), jobs...)
	r2 := run(t, Config{Seed: 3, FailuresPerNodeDay: 5, NodeEvents: []NodeEvent{}}, f2, testQueues("h100", 16), jobs...)
	if diff := cmp.Diff(r1.Summary, r2.Summary); diff != "" {
		t.Errorf("summary (-nil +empty):\n%s", diff)
	}
}

func TestRunAbandonsJobsThatWaitTooLong(t *testing.T) {
	// "long" holds the only node until 1000; "impatient" gives up at
	// 10+300 without starting; "later", arriving at 800, starts at 1000,
	// before its own time to give up (1100).
	cfg := Config{AbandonAfterSec: 300}
	res := run(t, cfg, testFleet(t, "h100", 1), testQueues("h100", 8),
		gpuJob("long", 0, 1000, 1, 8), gpuJob("impatient", 10, 50, 1, 8), gpuJob("later", 800, 50, 1, 8))
	got := map[string]JobRecord{}
	for _, j := range res.Jobs {
		got[j.ID] = j
	}
	if j := got["impatient"]; j.Status != StatusAbandoned || j.Start != -1 || j.End != 310 {
		t.Errorf("impatient: %s, start %d, end %d; want abandoned at 310 without a start", j.Status, j.Start, j.End)
	}
	if j := got["later"]; j.Status != StatusFinished || j.Start != 1000 {
		t.Errorf("later: %s from %d; want finished, started at 1000", j.Status, j.Start)
	}
	if res.Summary.Jobs.Abandoned != 1 {
		t.Errorf("summary counts %d abandoned, want 1", res.Summary.Jobs.Abandoned)
	}
}
