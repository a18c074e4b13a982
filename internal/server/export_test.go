package server

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/sim"
)

// The OpenAPI checker of the tests' client reads the export's JSON Lines
// as the text the document says it is.
func init() {
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
}

const oneNodeJob = `name: one
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sleep, "60"]
`

// TestExportWritesTheRecordAsATrace records a small history on a fake
// clock: n1 from the start, a job that runs 60 s on it, n2 registering at
// 100 s, a gang that runs from then on, one that waits without an
// estimate (left out) and one that waits with one. The export reads back
// as a trace with each of them where it belongs.
func TestExportWritesTheRecordAsATrace(t *testing.T) {
	// Heartbeats are not what this is about: nodes stay up between them.
	h := start(t, "", func(c *Config) { c.Sched.PreemptAfterSec = 7; c.HeartbeatTimeout = time.Hour })
	t0 := h.clock.Now()
	acme := h.client("acme")
	h.node("n1")
	h.clock.Advance(10 * time.Second)
	a := h.submit(acme, oneNodeJob)
	h.sync()
	h.beat("n1", running(api.ReplicaKey{Job: a.ID, Attempt: 1}))
	h.clock.Advance(60 * time.Second)
	h.beat("n1", exited(api.ReplicaKey{Job: a.ID, Attempt: 1}, 0, ""))
	h.sync()
	h.clock.Advance(30 * time.Second)
	h.node("n2")
	h.sync()
	gang := strings.Replace(strings.Replace(oneNodeJob, "replicas: 1", "replicas: 2", 1), "name: one", "name: gang", 1)
	b := h.submit(acme, gang)
	c := h.submit(acme, strings.Replace(gang, "name: gang", "name: waits", 1))
	d := h.submit(acme, strings.Replace(gang, "name: gang", "name: estimated", 1)+"estimatedRuntime: 2h\n")
	h.sync()
	h.beat("n1", running(api.ReplicaKey{Job: b.ID, Attempt: 1}))
	h.beat("n2", running(api.ReplicaKey{Job: b.ID, Attempt: 1, Replica: 1}))
	if j := h.job(b.ID); j.State != "running" {
		t.Fatalf("gang: %s (%s), want running", j.State, j.Reason)
	}
	h.clock.Advance(50 * time.Second)

	var buf bytes.Buffer
	if err := h.admin.Export(h.ctx(), t0, t0.Add(time.Hour), &buf); err != nil {
		t.Fatal(err)
	}
	r := sim.NewTraceReader("export.jsonl", &buf)
	hd, queues, err := r.Preamble()
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if hd.Origin != t0.UTC().Format(time.RFC3339) || hd.Sched == nil || hd.Sched.PreemptAfterSec != 7 {
		t.Errorf("header %+v: want the origin and the server's scheduler", hd)
	}
	if len(queues) != len(testQueues()) {
		t.Errorf("%d queues, want %d", len(queues), len(testQueues()))
	}
	path := []string{"default", "default", "default", "r1"}
	n := func(name string) fleet.Node {
		return fleet.Node{Name: name, Path: path, Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 512 << 10}
	}
	if diff := cmp.Diff([]fleet.Node{n("n1")}, r.Fleet()); diff != "" {
		t.Errorf("fleet (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]sim.NodeEvent{{At: 100, Kind: sim.NodeAdd, Node: n("n2")}}, r.NodeEvents()); diff != "" {
		t.Errorf("node events (-want +got):\n%s", diff)
	}
	var got []sim.Job
	for {
		j, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, j)
	}
	type row struct {
		ID                string
		Arrival, Duration int64
		Outcome           string
		Start, End        int64
		Attempts          int
	}
	rows := func(js []sim.Job) []row {
		var out []row
		for _, j := range js {
			r := row{ID: string(j.ID), Arrival: j.Arrival, Duration: j.Duration, Outcome: j.Observed.Outcome, Start: -1, End: -1, Attempts: j.Observed.Attempts}
			if j.Observed.Start != nil {
				r.Start = *j.Observed.Start
			}
			if j.Observed.End != nil {
				r.End = *j.Observed.End
			}
			out = append(out, r)
		}
		return out
	}
	want := []row{
		{ID: a.ID, Arrival: 10, Duration: 60, Outcome: "succeeded", Start: 10, End: 70, Attempts: 1},
		{ID: b.ID, Arrival: 100, Duration: 50, Outcome: "running", Start: 100, End: -1, Attempts: 1},
		{ID: d.ID, Arrival: 100, Duration: 7200, Outcome: "pending", Start: -1, End: -1},
	}
	if diff := cmp.Diff(want, rows(got)); diff != "" {
		t.Errorf("jobs (-want +got):\n%s\n%s", diff, buf.String())
	}
	for _, j := range got {
		if string(j.ID) == c.ID {
			t.Errorf("job %s waits without an estimate: its runtime is unknown, it should be left out", c.ID)
		}
	}
	if len(got) > 0 && (got[0].Queue != "acme-train" || got[0].Tenant != "acme" || got[0].Gangs[0].Shape.Devices != 8) {
		t.Errorf("job a as submitted: %+v", got[0].Job)
	}

	// A window that starts later: a and n1's registration are before it.
	buf.Reset()
	if err := h.admin.Export(h.ctx(), t0.Add(50*time.Second), time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	r = sim.NewTraceReader("later.jsonl", &buf)
	if _, _, err := r.Preamble(); err != nil {
		t.Fatal(err)
	}
	if len(r.Fleet()) != 1 || len(r.NodeEvents()) != 1 || r.NodeEvents()[0].At != 50 {
		t.Errorf("later window: fleet %v, events %v; want n1 at the start and n2 at 50", r.Fleet(), r.NodeEvents())
	}
	if j, err := r.Next(); err != nil || string(j.ID) != b.ID {
		t.Errorf("later window: first job %v, %v; want %s", j.ID, err, b.ID)
	}

	// Bad windows are refused, naming the parameter.
	if err := h.admin.Export(h.ctx(), t0, t0.Add(-time.Hour), io.Discard); apiStatus(err) != 422 || !strings.Contains(err.Error(), "is not after from") {
		t.Errorf("a window that ends before it starts: %v, want a 422", err)
	}
	req, _ := http.NewRequest("GET", h.url+"/v1/export?from=yesterday", nil)
	req.Header.Set("Authorization", "Bearer "+h.s.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 || !strings.Contains(string(body), `"field": "from"`) {
		t.Errorf("from=yesterday: %d %s, want a 422 naming from", resp.StatusCode, body)
	}
}
