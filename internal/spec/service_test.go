package spec

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sched"
)

func TestParseService(t *testing.T) {
	got, err := ParseJob("jobs/service.yaml", readTestdata(t, "jobs/service.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := JobSpec{
		Job: sched.Job{ID: "big-model", Queue: "acme-serve", Kind: sched.Service, Priority: 10000,
			// tier: on-demand is the default tier, whose quota flavor is
			// the bare accelerator type: Tier "".
			Gangs: []sched.Gang{{Name: "replica", Replicas: 2, Shape: place.Request{
				Accel: []string{"h100", "h200"}, Devices: 8, CPUMilli: 64000, MemoryMiB: 1 << 20}}}},
		Run: RunSpec{Command: []string{"python", "serve.py"}, RestartPolicy: RestartNever},
		Service: &ServiceSpec{MinReplicas: 0, MaxReplicas: 3, TargetInFlight: 16, TargetTokensPerSecond: 11000,
			MaxInFlight: 64, Latency: 1500 * time.Millisecond, Quantile: 0.95, ReadinessPath: "/v1/models", ReadinessPort: 8081,
			ScaleDownGrace: 2 * time.Minute, DrainTimeout: 90 * time.Second, StartTimeout: 45 * time.Minute,
			ColdStart: 3 * time.Minute, Policy: "kpa", QueueLimit: 500, QueueTimeout: 4 * time.Minute},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseJob (-want +got):\n%s", diff)
	}
	// It renders back to the same value.
	out, err := RenderJob(got)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseJob("rendered.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("round trip (-parsed +rendered):\n%s\n%s", diff, out)
	}
}

// svc is a minimal valid service; cases append to it or replace lines.
const svc = `name: s
queue: q
kind: service
service:
  replica:
    count: 1
  maxReplicas: 4
  target:
    inFlight: 8
command: [serve]
`

func TestParseServiceDefaults(t *testing.T) {
	got, err := ParseJob("s.yaml", []byte(svc))
	if err != nil {
		t.Fatal(err)
	}
	want := &ServiceSpec{MinReplicas: 1, MaxReplicas: 4, TargetInFlight: 8, ReadinessPath: "/health",
		ScaleDownGrace: 30 * time.Second, DrainTimeout: 5 * time.Minute, Policy: "gpufleet", QueueLimit: 100,
		QueueTimeout: 2 * time.Minute}
	if diff := cmp.Diff(want, got.Service); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]sched.Gang{{Name: "replica", Replicas: 1, Shape: place.Request{Devices: 1}}}, got.Job.Gangs); diff != "" {
		t.Errorf("gang of one replica (-want +got):\n%s", diff)
	}
	// A service of one replica at most has a floor of one.
	one, err := ParseJob("s.yaml", []byte(strings.Replace(svc, "maxReplicas: 4", "maxReplicas: 1", 1)))
	if err != nil || one.Service.MinReplicas != 1 {
		t.Errorf("maxReplicas 1: min %d, %v", one.Service.MinReplicas, err)
	}
}

func TestParseServiceErrors(t *testing.T) {
	tests := map[string]struct {
		src  string
		want string
	}{
		"gangs beside a service": {
			src:  svc + "gangs: [{replicas: 1}]\n",
			want: `s.yaml:11:8: gangs: a service's replica is service.replica (members, accelerators, count, cpu, memory); leave gangs out`,
		},
		"a service with a deadline": {
			src:  svc + "deadline: 2026-12-03T09:00:00Z\n",
			want: `s.yaml:11:11: deadline: a service runs until it is cancelled and starts replicas when its load needs them: its capacity is not deferred or suspended; leave deadline out`,
		},
		"an interruptible service": {
			src:  svc + "interruptible: true\n",
			want: `s.yaml:11:16: interruptible: a service runs until it is cancelled and starts replicas when its load needs them: its capacity is not deferred or suspended; leave interruptible out`,
		},
		"a batch job with a service section": {
			src:  strings.Replace(svc, "kind: service", "kind: batch", 1),
			want: `s.yaml:5:3: service: only a job of kind: service has a service section (kind is batch)`,
		},
		"no replica": {
			src:  strings.Replace(svc, "  replica:\n    count: 1\n", "", 1),
			want: `s.yaml:5:3: service.replica: is required`,
		},
		"unknown service field": {
			src:  svc + "  # indent\n",
			want: "",
		},
		"unknown replica field": {
			src:  strings.Replace(svc, "    count: 1\n", "    count: 1\n    replicas: 3\n", 1),
			want: `s.yaml:7:5: service.replica.replicas: unknown field (want one of members, accelerators, count, fraction, cpu, memory)`,
		},
		"too many members": {
			src:  strings.Replace(svc, "    count: 1\n", "    count: 1\n    members: 33\n", 1),
			want: `s.yaml:7:14: service.replica.members: 33, want 1..32`,
		},
		"min above max": {
			src:  strings.Replace(svc, "  maxReplicas: 4\n", "  maxReplicas: 4\n  minReplicas: 5\n", 1),
			want: `s.yaml:8:16: service.minReplicas: 5, want 0..4`,
		},
		"no target": {
			src:  strings.Replace(svc, "  target:\n    inFlight: 8\n", "", 1),
			want: `s.yaml:5:3: service.target: is required`,
		},
		"negative target": {
			src:  strings.Replace(svc, "inFlight: 8", "inFlight: -2", 1),
			want: `s.yaml:9:15: service.target.inFlight: -2: want a number above 0 and at most 1e+06`,
		},
		"unknown policy": {
			src:  strings.Replace(svc, "command:", "  policy: hpa\ncommand:", 1),
			want: `s.yaml:10:11: service.policy: "hpa": want one of gpufleet, kpa, static`,
		},
		"start timeout too short": {
			src:  strings.Replace(svc, "command:", "  startTimeout: 20s\ncommand:", 1),
			want: `s.yaml:10:17: service.startTimeout: 20s: want 1m to 1d`,
		},
		"bad readiness path": {
			src:  strings.Replace(svc, "command:", "  readiness:\n    path: health\ncommand:", 1),
			want: `s.yaml:11:11: service.readiness.path: "health": want an absolute path such as /health`,
		},
		"bad duration": {
			src:  strings.Replace(svc, "command:", "  drainTimeout: soon\ncommand:", 1),
			want: `s.yaml:10:17: service.drainTimeout: "soon": want a duration such as 500ms, 30s, 5m or 1h30m`,
		},
		"quantile of one": {
			src:  strings.Replace(svc, "command:", "  objective: {ttft: 2s, quantile: 1}\ncommand:", 1),
			want: `s.yaml:10:35: service.objective.quantile: 1: want a share above 0 and below 1, such as 0.99`,
		},
		"restart policy": {
			src:  svc + "restartPolicy: onFailure\n",
			want: `s.yaml:11:16: restartPolicy: does not apply to a service: a replica that exits or fails is replaced by a new one; leave restartPolicy out`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJob("s.yaml", []byte(tt.src))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
