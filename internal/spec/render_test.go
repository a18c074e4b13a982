package spec

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sched"
)

func genName(t *rapid.T, label string) string {
	return rapid.StringMatching(`[a-z0-9][a-zA-Z0-9._-]{0,20}`).Draw(t, label)
}

// noNUL draws strings a process can be started with: no NUL bytes.
var noNUL = rapid.Map(rapid.String(), func(s string) string { return strings.ReplaceAll(s, "\x00", "") })

func genDuration(t *rapid.T, label string) int64 {
	return rapid.OneOf(
		rapid.Just(int64(0)),
		rapid.Int64Range(0, 86400),
		rapid.Int64Range(0, maxDurationSec),
	).Draw(t, label)
}

// genJobSpec draws a JobSpec in the form ParseJob returns (defaults filled
// in, nil for absent lists and maps).
func genJobSpec(t *rapid.T) JobSpec {
	var js JobSpec
	j := &js.Job
	j.ID = sched.JobID(genName(t, "name"))
	if rapid.Bool().Draw(t, "hasTenant") {
		j.Tenant = genName(t, "tenant")
	}
	j.Queue = genName(t, "queue")
	j.Kind = sched.Kind(rapid.IntRange(0, len(sched.KindNames())-1).Draw(t, "kind"))
	if rapid.Bool().Draw(t, "classPriority") {
		j.Priority = PriorityClasses[rapid.IntRange(0, len(PriorityClasses)-1).Draw(t, "class")].Value
	} else {
		j.Priority = rapid.Int32Range(math.MinInt32, math.MaxInt32).Draw(t, "priority")
	}
	if rapid.Bool().Draw(t, "hasTier") {
		j.Tier = rapid.SampledFrom([]string{sched.TierCommitted, sched.TierSpot}).Draw(t, "tier")
	}
	j.Preemptible = rapid.Bool().Draw(t, "preemptible")
	j.NoticeSec = genDuration(t, "notice")
	j.CheckpointSec = genDuration(t, "checkpoint")
	j.EstimatedSec = genDuration(t, "estimated")
	j.MaxSec = genDuration(t, "max")
	if j.MaxSec > 0 && j.EstimatedSec > j.MaxSec {
		j.EstimatedSec, j.MaxSec = j.MaxSec, j.EstimatedSec
	}
	switch rapid.IntRange(0, 2).Draw(t, "deferral") {
	case 1:
		j.Deadline = rapid.Int64Range(1, 4102444800).Draw(t, "deadline")
	case 2:
		j.NotBefore = rapid.Int64Range(1, 4102444799).Draw(t, "notBefore")
		j.Deadline = rapid.Int64Range(j.NotBefore+1, 4102444800).Draw(t, "deadline")
	}
	j.Interruptible = rapid.Bool().Draw(t, "interruptible")
	if rapid.Bool().Draw(t, "hasTopology") {
		levels := append(append([]string(nil), fleet.DefaultLevels...), "node")
		j.Topology = sched.Topology{
			Level:    rapid.SampledFrom(levels).Draw(t, "level"),
			Required: rapid.Bool().Draw(t, "required"),
		}
	}
	types := fleet.DefaultCatalog().Names()
	names := map[string]bool{}
	for i := range rapid.IntRange(1, 3).Draw(t, "gangs") {
		var g sched.Gang
		if rapid.Bool().Draw(t, "gangNamed") {
			g.Name = genName(t, "gangName")
			if names[g.Name] {
				g.Name = fmt.Sprintf("%s-%d", g.Name, i)
			}
			names[g.Name] = true
		}
		g.Replicas = rapid.IntRange(1, maxReplicas).Draw(t, "replicas")
		if rapid.Bool().Draw(t, "elastic") {
			g.MinReplicas = rapid.IntRange(1, g.Replicas).Draw(t, "minReplicas")
		}
		r := &g.Shape
		switch rapid.IntRange(0, 2).Draw(t, "shape") {
		case 1:
			r.Devices = rapid.IntRange(1, fleet.MaxDevicesPerNode).Draw(t, "devices")
		case 2:
			r.Milli = rapid.Int32Range(1, 999).Draw(t, "milli")
		}
		if r.Devices > 0 || r.Milli > 0 {
			perm := rapid.Permutation(types).Draw(t, "types")
			if n := rapid.IntRange(0, len(perm)).Draw(t, "ntypes"); n > 0 {
				r.Accel = perm[:n]
			}
		}
		r.CPUMilli = rapid.Int64Range(0, 1_000_000).Draw(t, "cpu")
		r.MemoryMiB = rapid.Int64Range(0, 1<<32).Draw(t, "memory")
		j.Gangs = append(j.Gangs, g)
	}
	run := &js.Run
	if rapid.Bool().Draw(t, "hasCommand") {
		run.Command = rapid.SliceOfN(noNUL, 1, 6).Draw(t, "command")
		if run.Command[0] == "" {
			run.Command[0] = "run"
		}
	}
	if rapid.Bool().Draw(t, "hasEnv") {
		run.Env = rapid.MapOfN(rapid.StringMatching(`[A-Za-z_][A-Za-z0-9_]{0,10}`), noNUL, 1, 5).Draw(t, "env")
	}
	run.RestartPolicy = RestartNever
	if rapid.Bool().Draw(t, "gangRestart") {
		run.RestartPolicy = RestartGang
		run.MaxRestarts = rapid.IntRange(0, maxRestarts).Draw(t, "maxRestarts")
	}
	return js
}

func TestRenderJobRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := genJobSpec(t)
		out, err := RenderJob(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseJob("rendered.yaml", out)
		if err != nil {
			t.Fatalf("ParseJob of rendered job:\n%s\n%v", out, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s\nrendered:\n%s", diff, out)
		}
	})
}

func TestRenderJobsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 4).Draw(t, "jobs")
		var want []JobSpec
		for i := range n {
			js := genJobSpec(t)
			js.Job.ID = sched.JobID(fmt.Sprintf("job-%d", i))
			want = append(want, js)
		}
		out, err := RenderJobs(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseJobs("rendered.yaml", out)
		if err != nil {
			t.Fatalf("ParseJobs of rendered jobs:\n%s\n%v", out, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s\nrendered:\n%s", diff, out)
		}
	})
}

func TestRenderJobExample(t *testing.T) {
	js := JobSpec{
		Job: sched.Job{ID: "ft", Queue: "q", Kind: sched.FineTuning, Priority: 10000, Preemptible: true,
			NoticeSec: 90, Topology: sched.Topology{Level: "block"},
			Gangs: []sched.Gang{{Replicas: 4, MinReplicas: 1, Shape: place.Request{
				Accel: []string{"h200", "h100"}, Devices: 2, CPUMilli: 1500, MemoryMiB: 1536}}}},
		Run: RunSpec{Command: []string{"python", "ft.py", "true"}, Env: map[string]string{"B": "2", "A": ""}, RestartPolicy: RestartNever},
	}
	out, err := RenderJob(js)
	if err != nil {
		t.Fatal(err)
	}
	want := `name: ft
queue: q
kind: fine-tuning
priority: high
preemptible: true
noticePeriod: 1m30s
topology:
  preferred: block
gangs:
  - replicas: 4
    minReplicas: 1
    accelerators: [h200, h100]
    count: 2
    cpu: 1500m
    memory: 1536Mi
command:
  - python
  - ft.py
  - "true"
env:
  A: ""
  B: "2"
`
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("RenderJob (-want +got):\n%s", diff)
	}
}
