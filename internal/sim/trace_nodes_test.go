package sim

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/sched"
)

const nodeTrace = `{"header":{"version":1,"origin":"2026-12-01T09:00:00Z","sched":{"preemptAfterSec":2}}}
{"queue":{"name":"acme","quotas":{"h100":{"nominal":16000}}}}
{"queue":{"name":"acme-q","parent":"acme"}}
{"node":{"name":"n1","path":["r","z","b","rack1"],"accel":"h100","count":8,"cpuMilli":64000,"memoryMiB":524288,"labels":{"pool":"train"}}}
{"node":{"at":100,"event":"add","name":"n2","path":["r","z","b","rack2"],"accel":"h100","count":8,"cpuMilli":64000,"memoryMiB":524288}}
{"node":{"at":500,"event":"retire","name":"n1"}}
{"job":{"id":"a","arrival":0,"duration":50,"queue":"acme-q","kind":"batch","gangs":[{"replicas":2,"count":8}],"waitForCapacity":true,"observed":{"start":100,"end":150,"outcome":"succeeded","attempts":1}}}
`

func TestTraceReadsNodesAndNodeEvents(t *testing.T) {
	r := NewTraceReader("n.jsonl", strings.NewReader(nodeTrace))
	h, _, err := r.Preamble()
	if err != nil {
		t.Fatal(err)
	}
	if h.Origin != "2026-12-01T09:00:00Z" || h.Sched == nil || h.Sched.PreemptAfterSec != 2 {
		t.Errorf("header = %+v", h)
	}
	n1 := fleet.Node{Name: "n1", Path: []string{"r", "z", "b", "rack1"}, Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 512 << 10,
		Labels: map[string]string{"pool": "train"}}
	if diff := cmp.Diff([]fleet.Node{n1}, r.Fleet()); diff != "" {
		t.Errorf("fleet (-want +got):\n%s", diff)
	}
	wantEv := []NodeEvent{
		{At: 100, Kind: NodeAdd, Node: fleet.Node{Name: "n2", Path: []string{"r", "z", "b", "rack2"}, Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 512 << 10}},
		{At: 500, Kind: NodeRetire, Node: fleet.Node{Name: "n1"}},
	}
	if diff := cmp.Diff(wantEv, r.NodeEvents()); diff != "" {
		t.Errorf("node events (-want +got):\n%s", diff)
	}
	j, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	start, end := int64(100), int64(150)
	if diff := cmp.Diff(&Observed{Start: &start, End: &end, Outcome: "succeeded", Attempts: 1}, j.Observed); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
	if !j.WaitForCapacity {
		t.Error("waitForCapacity was not read")
	}

	// The trace replays on its own fleet: the 16-accelerator gang waits
	// for n2 and starts at its delivery.
	f, err := fleet.New(nil, nil, r.Fleet())
	if err != nil {
		t.Fatal(err)
	}
	qs := testQueues("h100", 16)
	res := run(t, Config{NodeEvents: r.NodeEvents()}, f, qs, Job{Arrival: j.Arrival, Duration: j.Duration, Job: sched.Job{
		ID: "a", Queue: "acme-q", Kind: sched.Batch, WaitForCapacity: true, Gangs: j.Gangs}})
	if got := res.Jobs[0]; got.Start != 100 || got.End != 150 {
		t.Errorf("replay: a runs %d..%d, want 100..150 as observed", got.Start, got.End)
	}
}

func TestTraceNodeErrors(t *testing.T) {
	const n1 = `{"node":{"name":"n1","path":["r","z","b","k"],"accel":"h100","count":8}}` + "\n"
	const job = `{"job":{"id":"a","arrival":5,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}]}}` + "\n"
	tests := map[string]struct{ text, want string }{
		"bad event": {
			`{"node":{"at":1,"event":"explode","name":"n1"}}`,
			`w.jsonl:1:17: node.event: "explode": want add or retire`,
		},
		"retirement without a time": {
			`{"node":{"event":"retire","name":"n1"}}`,
			"w.jsonl:1:10: node.event: a retirement needs the time it happens at",
		},
		"retirement with a node description": {
			`{"node":{"at":1,"event":"retire","name":"n1","count":8}}`,
			"w.jsonl:1:46: node.count: a retirement names the node only (at, event, name)",
		},
		"no path": {
			`{"node":{"name":"n1","accel":"h100","count":8}}`,
			"w.jsonl:1:2: node.path: is required: the node's domain at every topology level, outermost first",
		},
		"accelerators without a type": {
			`{"node":{"name":"n1","path":["a"],"count":8}}`,
			"w.jsonl:1:2: node.accel: is required when count is given",
		},
		"too many accelerators": {
			`{"node":{"name":"n1","path":["a"],"accel":"h100","count":99}}`,
			"w.jsonl:1:50: node.count: 99, want 0..16",
		},
		"negative time": {
			`{"node":{"at":-5,"name":"n1","path":["a"]}}`,
			"w.jsonl:1:10: node.at: -5 must not be negative",
		},
		"added twice": {
			n1 + `{"node":{"at":1,"name":"n1","path":["a"]}}`,
			`w.jsonl:2:17: node.name: "n1" is already added on line 1`,
		},
		"events out of order": {
			`{"node":{"at":9,"name":"n2","path":["a"]}}` + "\n" + `{"node":{"at":3,"event":"retire","name":"n2"}}`,
			"w.jsonl:2:10: node.at: 3 is before the previous node event's 9; node events must be in time order",
		},
		"fleet node after an event": {
			`{"node":{"at":9,"name":"n2","path":["a"]}}` + "\n" + n1,
			"w.jsonl:2:2: the fleet's nodes (lines without at) must come before the node events",
		},
		"queue after a node": {
			n1 + `{"queue":{"name":"q"}}`,
			"w.jsonl:2:2: queue lines must come before the first node line",
		},
		"node after a job": {
			job + n1,
			"w.jsonl:2:2: node lines must come before the first job line",
		},
		"unknown node field": {
			`{"node":{"name":"n1","path":["a"],"gpus":1}}`,
			`w.jsonl:1:35: unknown field "gpus" (see docs/TRACE_FORMAT.md for the fields of each line)`,
		},
		"bad origin": {
			`{"header":{"version":1,"origin":"yesterday"}}`,
			`w.jsonl:1:24: header.origin: "yesterday": want a time in RFC 3339, such as 2026-12-01T09:00:00Z`,
		},
		"unknown sched field": {
			`{"header":{"version":1,"sched":{"policy":"x"}}}`,
			`w.jsonl:1:33: unknown field "policy" (see docs/TRACE_FORMAT.md for the fields of each line)`,
		},
		"bad outcome": {
			`{"job":{"id":"a","arrival":5,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}],"observed":{"outcome":"won"}}}`,
			`w.jsonl:1:107: job.observed.outcome: "won": want one of [succeeded failed cancelled running pending]`,
		},
		"observed end before start": {
			`{"job":{"id":"a","arrival":5,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}],"observed":{"start":9,"end":3,"outcome":"failed"}}}`,
			"w.jsonl:1:117: job.observed.end: 3 is before the start 9",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := readAll("w.jsonl", tc.text)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is a %T, want *LineError", err, err)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTraceWriterNodeOrder(t *testing.T) {
	var buf bytes.Buffer
	w := NewTraceWriter(&buf)
	n := fleet.Node{Name: "n1", Path: []string{"a"}}
	if err := w.Node(n); err != nil {
		t.Fatal(err)
	}
	if err := w.NodeEvent(NodeEvent{At: 5, Kind: NodeRetire, Node: n}); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"a fleet node after an event": w.Node(fleet.Node{Name: "n2", Path: []string{"a"}}),
		"an event back in time":       w.NodeEvent(NodeEvent{At: 4, Kind: NodeAdd, Node: fleet.Node{Name: "n3", Path: []string{"a"}}}),
		"a queue after nodes":         w.Queue(testQueues("h100", 1)[0]),
	} {
		if err == nil {
			t.Errorf("%s was written without error", what)
		}
	}
}

// checkNodeRoundTrip writes what a reader's preamble read and reads it
// back: the fleet and the node events must come back unchanged.
func checkNodeRoundTrip(t *testing.T, r *TraceReader) {
	t.Helper()
	var buf bytes.Buffer
	w := NewTraceWriter(&buf)
	for _, n := range r.Fleet() {
		if err := w.Node(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range r.NodeEvents() {
		if err := w.NodeEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r2 := NewTraceReader("rt.jsonl", &buf)
	if _, _, err := r2.Preamble(); err != nil {
		t.Fatalf("rereading the nodes written: %v", err)
	}
	if diff := cmp.Diff(r.Fleet(), r2.Fleet()); diff != "" {
		t.Fatalf("fleet changed by a round trip (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(r.NodeEvents(), r2.NodeEvents()); diff != "" {
		t.Fatalf("node events changed by a round trip (-first +second):\n%s", diff)
	}
}

func TestTraceNodeRoundTrip(t *testing.T) {
	r := NewTraceReader("n.jsonl", strings.NewReader(nodeTrace))
	if _, _, err := r.Preamble(); err != nil {
		t.Fatal(err)
	}
	checkNodeRoundTrip(t, r)
}
