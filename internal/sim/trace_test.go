package sim

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// readAll reads a whole trace, for tests.
func readAll(name, text string) (Header, []quota.Spec, []Job, error) {
	r := NewTraceReader(name, strings.NewReader(text))
	h, qs, err := r.Preamble()
	if err != nil {
		return h, qs, nil, err
	}
	var jobs []Job
	for {
		j, err := r.Next()
		if err == io.EOF {
			return h, qs, jobs, nil
		}
		if err != nil {
			return h, qs, jobs, err
		}
		jobs = append(jobs, j)
	}
}

func TestTraceReadsEveryField(t *testing.T) {
	text := `{"header":{"version":1,"source":"hand-written"}}
{"queue":{"name":"acme","weight":2,"quotas":{"h100":{"nominal":16000,"borrowingLimit":8000}}}}
{"queue":{"name":"acme-train","parent":"acme"}}

{"job":{"id":"t1","arrival":10,"duration":3600,"tenant":"acme","queue":"acme-train","kind":"training","priority":100,"preemptible":true,"noticeSec":60,"checkpointSec":600,"gangs":[{"name":"w","replicas":4,"minReplicas":2,"accel":["h100","h200"],"count":8,"cpuMilli":96000,"memoryMiB":512000}],"topology":{"level":"rack","required":true},"estimatedSec":4000,"maxSec":8000}}
{"job":{"id":"s1","arrival":10,"queue":"acme-train","kind":"service","gangs":[{"replicas":2,"milli":250}]}}
{"job":{"id":"d1","arrival":20,"duration":600,"queue":"acme-train","kind":"batch","gangs":[{"replicas":1,"count":1}],"estimatedSec":600,"deadline":9000,"notBefore":300,"interruptible":true}}
`
	h, qs, jobs, err := readAll("t.jsonl", text)
	if err != nil {
		t.Fatal(err)
	}
	borrow := int64(8000)
	wantQ := []quota.Spec{
		{Name: "acme", Weight: 2, Quotas: map[string]quota.Limits{"h100": {Nominal: 16000, Borrow: &borrow}}},
		{Name: "acme-train", Parent: "acme"},
	}
	wantJ := []Job{
		{Arrival: 10, Duration: 3600, Job: sched.Job{
			ID: "t1", Tenant: "acme", Queue: "acme-train", Kind: sched.Training, Priority: 100, Preemptible: true,
			NoticeSec: 60, CheckpointSec: 600, EstimatedSec: 4000, MaxSec: 8000,
			Topology: sched.Topology{Level: "rack", Required: true},
			Gangs: []sched.Gang{{Name: "w", Replicas: 4, MinReplicas: 2, Shape: place.Request{
				Accel: []string{"h100", "h200"}, Devices: 8, CPUMilli: 96000, MemoryMiB: 512000}}},
		}},
		{Arrival: 10, Duration: NoDuration, Job: sched.Job{
			ID: "s1", Queue: "acme-train", Kind: sched.Service,
			Gangs: []sched.Gang{{Replicas: 2, Shape: place.Request{Milli: 250}}},
		}},
		{Arrival: 20, Duration: 600, Job: sched.Job{
			ID: "d1", Queue: "acme-train", Kind: sched.Batch, EstimatedSec: 600, Deadline: 9000, NotBefore: 300, Interruptible: true,
			Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Devices: 1}}},
		}},
	}
	if diff := cmp.Diff(Header{Version: 1, Source: "hand-written"}, h); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantQ, qs, cmp.AllowUnexported(quota.Spec{})); diff != "" {
		t.Errorf("queues (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantJ, jobs); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
}

func TestTraceErrorsNameLineAndColumn(t *testing.T) {
	const ok = `{"job":{"id":"a","arrival":5,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1,"count":1}]}}` + "\n"
	tests := map[string]struct {
		text string
		want string
	}{
		"syntax error": {
			text: ok + `{"job":{"id":"b",,}}`,
			want: "w.jsonl:2:18: invalid JSON: invalid character ',' looking for beginning of object key string",
		},
		"truncated line": {
			text: ok + `{"job":{"id":"b"`,
			want: "w.jsonl:2:17: invalid JSON: the line ends inside a value",
		},
		"unknown top-level field": {
			text: `{"jobs":{}}`,
			want: `w.jsonl:1:2: unknown field "jobs" (see docs/TRACE_FORMAT.md for the fields of each line)`,
		},
		"unknown field in a gang, after a known field of the same name elsewhere": {
			text: `{"job":{"id":"b","arrival":1,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1},{"replicas":1,"gpus":2}]}}`,
			want: `w.jsonl:1:108: unknown field "gpus" (see docs/TRACE_FORMAT.md for the fields of each line)`,
		},
		"wrong type": {
			text: `{"job":{"id":"b","arrival":"soon"}}`,
			want: "w.jsonl:1:28: job.arrival: a JSON string, want int64",
		},
		"bad kind": {
			text: `{"job":{"id":"b","arrival":1,"duration":1,"queue":"q","kind":"sleep","gangs":[{"replicas":1}]}}`,
			want: `w.jsonl:1:55: job.kind: kind "sleep": want one of training, fine-tuning, batch, service`,
		},
		"second gang has no replicas": {
			text: `{"job":{"id":"b","arrival":1,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1},{"count":2}]}}`,
			want: "w.jsonl:1:94: job.gangs[1].replicas: 0, want at least 1",
		},
		"fraction out of range": {
			text: `{"job":{"id":"b","arrival":1,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1,"milli":1500}]}}`,
			want: "w.jsonl:1:93: job.gangs[0].milli: 1500, want 1..999 thousandths of one accelerator",
		},
		"missing duration": {
			text: `{"job":{"id":"b","arrival":1,"queue":"q","kind":"training","gangs":[{"replicas":1}]}}`,
			want: "w.jsonl:1:2: job.duration: is required for kind training (only a service may run until the end)",
		},
		"out of order": {
			text: ok + `{"job":{"id":"b","arrival":4,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}]}}`,
			want: "w.jsonl:2:18: job.arrival: 4 is before the previous job's 5; jobs must be in arrival order",
		},
		"duplicate id": {
			text: ok + "\n" + `{"job":{"id":"a","arrival":5,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}]}}`,
			want: `w.jsonl:3:9: job.id: "a" is already used on line 1`,
		},
		"queue after jobs": {
			text: ok + `{"queue":{"name":"late"}}`,
			want: "w.jsonl:2:2: queue lines must come before the first job line",
		},
		"two records on one line": {
			text: `{"queue":{"name":"a"},"job":{"id":"b"}}`,
			want: "w.jsonl:1:1: a line holds exactly one of header, queue, node or job",
		},
		"two objects on one line": {
			text: `{"queue":{"name":"a"}} {"queue":{"name":"b"}}`,
			want: "w.jsonl:1:24: unexpected data after the object; a line holds one JSON object",
		},
		"header not first": {
			text: `{"queue":{"name":"a"}}` + "\n" + `{"header":{"version":1}}`,
			want: "w.jsonl:2:2: the header must be the first line",
		},
		"negative deadline": {
			text: `{"job":{"id":"b","arrival":1,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}],"deadline":-5}}`,
			want: "w.jsonl:1:95: job.deadline: -5 must not be negative",
		},
		"empty window": {
			text: `{"job":{"id":"b","arrival":1,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}],"deadline":50,"notBefore":50}}`,
			want: "w.jsonl:1:109: job.notBefore: 50 is not before the deadline 50: the window would be empty",
		},
		"deadline before arrival": {
			text: `{"job":{"id":"b","arrival":100,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1}],"deadline":50}}`,
			want: "w.jsonl:1:97: job.deadline: 50 is before the arrival 100",
		},
		"future version": {
			text: `{"header":{"version":7}}`,
			want: "w.jsonl:1:12: 7, want 1",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := readAll("w.jsonl", tc.text)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
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

func TestTraceLongLine(t *testing.T) {
	long := `{"job":{"id":"` + strings.Repeat("x", MaxLineBytes+10) + `"}}`
	_, _, _, err := readAll("big.jsonl", long)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 1 {
		t.Fatalf("error %v, want a LineError on line 1", err)
	}
}

func TestTraceRoundTrip(t *testing.T) {
	jobs := []Job{
		{Arrival: 0, Duration: 60, Job: sched.Job{ID: "a", Queue: "q", Kind: sched.Batch,
			Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Milli: 500}}}}},
		{Arrival: 7, Duration: NoDuration, Job: sched.Job{ID: "b", Tenant: "t", Queue: "q", Kind: sched.Service, Priority: 200,
			Gangs:    []sched.Gang{{Name: "srv", Replicas: 3, Shape: place.Request{Accel: []string{"l40s"}, Devices: 1, CPUMilli: 8000, MemoryMiB: 65536}}},
			Topology: sched.Topology{Level: "zone"}}},
	}
	var buf bytes.Buffer
	w := NewTraceWriter(&buf)
	if err := w.Header(Header{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Queue(quota.Spec{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	for i := range jobs {
		if err := w.Job(&jobs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Queue(quota.Spec{Name: "late"}); err == nil {
		t.Error("a queue after jobs was written without error")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h, qs, got, err := readAll("rt.jsonl", buf.String())
	if err != nil {
		t.Fatal(err)
	}
	if h.Source != "test" || len(qs) != 1 || qs[0].Name != "q" {
		t.Errorf("preamble = %+v %+v", h, qs)
	}
	if diff := cmp.Diff(jobs, got); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
}

// FuzzTraceReader feeds the reader arbitrary text: it must never panic,
// every error must be a LineError, and whatever it accepts must survive a
// write and a second read unchanged.
func FuzzTraceReader(f *testing.F) {
	f.Add(`{"header":{"version":1}}` + "\n" + `{"queue":{"name":"q","quotas":{"h100":{"nominal":1000}}}}` + "\n" +
		`{"job":{"id":"a","arrival":1,"duration":5,"queue":"q","kind":"batch","gangs":[{"replicas":1,"milli":300}]}}`)
	f.Add(`{"job":{"id":"s","arrival":0,"queue":"q","kind":"service","gangs":[{"replicas":2,"count":1,"accel":["h100"]}],"topology":{"level":"rack"}}}`)
	f.Add(`{"job":{"id":"b","arrival":1,"duration":1,"queue":"q","kind":"batch","gangs":[{"replicas":1},{"replicas":1,"gpus":2}]}}`)
	f.Add("{\"job\":{\"id\":\"b\",,}}\r\n\n")
	f.Add(`{"job":{"id":"d","arrival":5,"duration":60,"queue":"q","kind":"batch","gangs":[{"replicas":1,"count":1}],"deadline":900,"notBefore":10,"interruptible":true}}`)
	f.Add(`{"queue":{"name":"q","quotas":{}}}` + "\n" + `{"joB":{"id":"0","queue":"0","kind":"service","gAngs":[{"repliCAs":1,"ACCel":[]}]}}`)
	f.Add(nodeTrace)
	f.Add(`{"header":{"version":1,"origin":"2026-12-01T00:00:00Z","sched":{"placement":["bestfit"],"preemptAfterSec":2}}}` + "\n" +
		`{"node":{"name":"n","path":["a","b","c","d"]}}` + "\n" + `{"node":{"at":3,"event":"retire","name":"n"}}` + "\n" +
		`{"job":{"id":"a","arrival":1,"duration":5,"queue":"q","kind":"batch","waitForCapacity":true,"gangs":[{"replicas":1}],"observed":{"start":2,"end":7,"outcome":"succeeded","attempts":1}}}`)
	f.Fuzz(func(t *testing.T, text string) {
		r := NewTraceReader("f.jsonl", strings.NewReader(text))
		if _, _, err := r.Preamble(); err == nil {
			// Nodes and node events survive a write and a read too.
			checkNodeRoundTrip(t, r)
		}
		h, qs, jobs, err := readAll("f.jsonl", text)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is a %T, want *LineError", err, err)
			}
			if le.Line < 1 || le.Column < 1 {
				t.Fatalf("error %v: line and column must be positive", err)
			}
			return
		}
		var buf bytes.Buffer
		w := NewTraceWriter(&buf)
		if err := w.Header(h); err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if err := w.Queue(q); err != nil {
				t.Fatal(err)
			}
		}
		for i := range jobs {
			if err := w.Job(&jobs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		h2, qs2, jobs2, err := readAll("f2.jsonl", buf.String())
		if err != nil {
			t.Fatalf("rereading what was written: %v\n%s", err, buf.String())
		}
		if diff := cmp.Diff(h, h2); diff != "" {
			t.Fatalf("header changed by a round trip (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(jobs, jobs2); diff != "" {
			t.Fatalf("jobs changed by a round trip (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(qs, qs2); diff != "" {
			t.Fatalf("queues changed by a round trip (-first +second):\n%s", diff)
		}
	})
}
