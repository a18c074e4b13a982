package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sched"
)

func genStrings(max int) *rapid.Generator[[]string] {
	return rapid.SliceOfN(rapid.StringMatching(`[a-z0-9-]{1,8}`), 0, max)
}

func genEnv() *rapid.Generator[map[string]string] {
	return rapid.MapOfN(rapid.StringMatching(`[A-Z_]{1,6}`), rapid.String(), 0, 3)
}

func genStopping(t *rapid.T, label string) *Stopping {
	if !rapid.Bool().Draw(t, label) {
		return nil
	}
	return &Stopping{Reason: rapid.String().Draw(t, label+".reason"), Requeue: rapid.Bool().Draw(t, label+".requeue"),
		Preempted: rapid.Bool().Draw(t, label+".preempted"), Cancelled: rapid.Bool().Draw(t, label+".cancelled")}
}

func genReplicas(t *rapid.T, label string) []Replica {
	n := rapid.IntRange(-1, 3).Draw(t, label)
	if n < 0 {
		return nil
	}
	out := make([]Replica, n)
	for i := range out {
		out[i] = Replica{Unit: rapid.IntRange(0, 3).Draw(t, "unit"), Gang: rapid.IntRange(0, 2).Draw(t, "gang"),
			Replica: rapid.IntRange(0, 9).Draw(t, "replica"), Attempt: rapid.IntRange(0, 5).Draw(t, "attempt"),
			Rank: rapid.IntRange(0, 9).Draw(t, "rank"), Node: rapid.StringMatching(`n[0-9]`).Draw(t, "node"),
			Accel: rapid.SampledFrom([]string{"", "h100"}).Draw(t, "accel"), Devices: rapid.SliceOfN(rapid.IntRange(0, 7), 0, 8).Draw(t, "devices"),
			Milli: rapid.Int32Range(0, 1000).Draw(t, "milli"), Env: genEnv().Draw(t, "env"),
			State: rapid.SampledFrom([]string{ReplicaStarting, ReplicaRunning, ReplicaExited, ReplicaLost, ReplicaSkipped}).Draw(t, "state"),
			Exit:  rapid.IntRange(-1, 255).Draw(t, "exit"), Signal: rapid.SampledFrom([]string{"", "SIGKILL"}).Draw(t, "signal"),
			BoundMs: rapid.Int64().Draw(t, "bound"), StopMs: rapid.Int64().Draw(t, "stop"), Shrunk: rapid.Bool().Draw(t, "shrunk"),
			Sent: rapid.Bool().Draw(t, "sent"), Held: rapid.Bool().Draw(t, "held")}
	}
	return out
}

func genJob(t *rapid.T) Job {
	var gangs []sched.Gang
	for range rapid.IntRange(0, 3).Draw(t, "gangs") {
		gangs = append(gangs, sched.Gang{Name: rapid.String().Draw(t, "gang.name"), Replicas: rapid.IntRange(0, 64).Draw(t, "gang.replicas"),
			MinReplicas: rapid.IntRange(0, 64).Draw(t, "gang.min"), AnyType: rapid.Bool().Draw(t, "gang.any"),
			Shape: place.Request{Accel: genStrings(3).Draw(t, "accel"), Devices: rapid.IntRange(0, 8).Draw(t, "devices"),
				Milli: rapid.Int32Range(0, 1000).Draw(t, "milli"), CPUMilli: rapid.Int64Range(0, 1<<20).Draw(t, "cpu"),
				MemoryMiB: rapid.Int64Range(0, 1<<30).Draw(t, "mem")}})
	}
	var units []Unit
	for range rapid.IntRange(0, 3).Draw(t, "units") {
		units = append(units, Unit{Core: rapid.String().Draw(t, "core"), State: rapid.SampledFrom(States).Draw(t, "unit.state"),
			Reason: rapid.String().Draw(t, "unit.reason"), Attempt: rapid.IntRange(0, 9).Draw(t, "unit.attempt"),
			Restarts: rapid.IntRange(0, 9).Draw(t, "unit.restarts"), Stopping: genStopping(t, "unit.stopping"),
			StartedMs: rapid.Int64().Draw(t, "unit.started"), FinishedMs: rapid.Int64().Draw(t, "unit.finished")})
	}
	var events []lifecycle.Event
	for range rapid.IntRange(0, 3).Draw(t, "events") {
		events = append(events, lifecycle.Event{AtMs: rapid.Int64().Draw(t, "at"), Kind: rapid.String().Draw(t, "kind"), Detail: rapid.String().Draw(t, "detail")})
	}
	id := rapid.StringMatching(`[a-z]{1,5}-[0-9]{1,4}`).Draw(t, "id")
	return Job{ID: id, Seq: rapid.Uint64().Draw(t, "seq"), Name: rapid.String().Draw(t, "name"), Tenant: rapid.String().Draw(t, "tenant"),
		Queue: rapid.String().Draw(t, "queue"),
		Spec: sched.Job{ID: sched.JobID(id), Tenant: rapid.String().Draw(t, "spec.tenant"), Queue: rapid.String().Draw(t, "spec.queue"),
			Kind: sched.Kind(rapid.IntRange(0, 3).Draw(t, "kind")), Priority: rapid.Int32().Draw(t, "priority"),
			Tier: rapid.SampledFrom([]string{"", "spot", "committed"}).Draw(t, "tier"), Preemptible: rapid.Bool().Draw(t, "preemptible"),
			NoticeSec: rapid.Int64().Draw(t, "notice"), CheckpointSec: rapid.Int64().Draw(t, "checkpoint"), Gangs: gangs,
			Topology:     sched.Topology{Level: rapid.SampledFrom([]string{"", "rack"}).Draw(t, "level"), Required: rapid.Bool().Draw(t, "required")},
			EstimatedSec: rapid.Int64().Draw(t, "est"), MaxSec: rapid.Int64().Draw(t, "max"), WaitForCapacity: rapid.Bool().Draw(t, "wait")},
		Run: Run{Command: genStrings(3).Draw(t, "command"), Env: genEnv().Draw(t, "run.env"),
			RestartPolicy: rapid.SampledFrom([]string{"", "never", "gang"}).Draw(t, "restart"), MaxRestarts: rapid.IntRange(0, 9).Draw(t, "maxRestarts"),
			Resize: rapid.SampledFrom([]string{"", "notify"}).Draw(t, "resize"), Replicas: rapid.SampledFrom([]string{"", "independent"}).Draw(t, "replicas")},
		IdempotencyKey: rapid.String().Draw(t, "key"), State: rapid.SampledFrom(States).Draw(t, "state"), Reason: rapid.String().Draw(t, "reason"),
		SubmittedMs: rapid.Int64().Draw(t, "submitted"), StartedMs: rapid.Int64().Draw(t, "started"), FinishedMs: rapid.Int64().Draw(t, "finished"),
		Attempt: rapid.IntRange(0, 9).Draw(t, "attempt"), Restarts: rapid.IntRange(0, 9).Draw(t, "restarts"), MasterPort: rapid.IntRange(0, 65535).Draw(t, "port"),
		Replicas: genReplicas(t, "replicas"), Stale: genReplicas(t, "stale"), Stopping: genStopping(t, "stopping"), Units: units,
		Generation: rapid.IntRange(0, 9).Draw(t, "generation"), Events: events}
}

// Every field of a job survives the store's record: what the server
// writes, it reads back equal.
func TestJobRecordRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		j := genJob(t)
		data, err := EncodeJob(&j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeJob(data)
		if err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if diff := cmp.Diff(j, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

// The record is the store's own: a change to the lifecycle's or the core's
// JSON tags does not change it. The golden record pins its field names.
func TestJobRecordLayout(t *testing.T) {
	j := Job{ID: "train-7", Seq: 7, Name: "train", Tenant: "acme", Queue: "acme-a", State: Running, SubmittedMs: 1,
		Spec: sched.Job{ID: "train-7", Tenant: "acme", Queue: "acme-a", Kind: sched.FineTuning,
			Gangs: []sched.Gang{{Replicas: 2, Shape: place.Request{Accel: []string{"h100"}, Devices: 8}}}},
		Run: Run{Command: []string{"sleep", "1"}}}
	data, err := EncodeJob(&j)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"id":"train-7","seq":7,"name":"train","tenant":"acme","queue":"acme-a","spec":{"id":"train-7","tenant":"acme","queue":"acme-a","kind":"fine-tuning","gangs":[{"replicas":2,"shape":{"accel":["h100"],"devices":8}}]},"run":{"command":["sleep","1"]},"state":"running","submittedMs":1,"attempt":0}`
	if diff := cmp.Diff(want, string(data)); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

// FuzzDecodeJob: no record, however damaged, crashes the reader, and what
// it accepts it writes back in a form that reads the same.
func FuzzDecodeJob(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "v0", "records.json"))
	if err != nil {
		f.Fatal(err)
	}
	var recs struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(data, &recs); err != nil {
		f.Fatal(err)
	}
	for _, r := range recs.Jobs {
		f.Add([]byte(r))
		if j, err := DecodeJob(r); err == nil {
			v1, _ := EncodeJob(&j)
			f.Add(v1)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := DecodeJob(data)
		if err != nil {
			return
		}
		again, err := EncodeJob(&j)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeJob(again)
		if err != nil {
			t.Fatalf("re-read: %v\n%s", err, again)
		}
		if diff := cmp.Diff(j, back); diff != "" {
			t.Fatalf("re-read (-first +second):\n%s", diff)
		}
	})
}

// fill sets every exported field reachable from v to a value that is not
// its zero (slices and maps of one element, pointers to filled values),
// so that a field the record does not carry shows as a difference.
func fill(t *testing.T, v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), depth+1)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), depth+1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0), depth+1)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, depth+1)
		fill(t, e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1) // 1 is a kind the record names (sched.Kind)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	default:
		t.Fatalf("fill: a field of kind %s: teach the test about it", v.Kind())
	}
}

// Every field of the server's job, its core spec, replicas, units, stop
// orders, events and service is in the record: a field added to one of
// those types and not to the store's schema fails here, instead of being
// lost at the next restart.
func TestJobRecordCarriesEveryField(t *testing.T) {
	var j Job
	fill(t, reflect.ValueOf(&j).Elem(), 0)
	data, err := EncodeJob(&j)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeJob(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j, got); diff != "" {
		t.Errorf("fields the record loses (-want +got):\n%s", diff)
	}
}
