package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// testdata is the repository's shared spec testdata.
var testdata = filepath.Join("..", "..", "testdata", "spec")

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseJobGood(t *testing.T) {
	tests := map[string]JobSpec{
		"jobs/train.yaml": {
			Job: sched.Job{
				ID: "llm-pretrain-7b", Tenant: "frontier", Queue: "frontier-pretrain",
				Kind: sched.Training, Priority: 10000, Preemptible: true,
				NoticeSec: 300, CheckpointSec: 1800, EstimatedSec: 2 * 86400, MaxSec: 3*86400 + 12*3600,
				Topology: sched.Topology{Level: "rack", Required: true},
				Gangs: []sched.Gang{{Name: "workers", Replicas: 4, Shape: place.Request{
					Accel: []string{"h100", "h200"}, Devices: 8, CPUMilli: 96000, MemoryMiB: 1536 << 10,
				}}},
			},
			Run: RunSpec{
				Command:       []string{"torchrun", "--nproc-per-node", "8", "train.py", "--config", "configs/7b.yaml"},
				Env:           map[string]string{"NCCL_DEBUG": "WARN", "OMP_NUM_THREADS": "8"},
				RestartPolicy: RestartGang, MaxRestarts: 3,
			},
		},
		"jobs/deferrable.yaml": {
			Job: sched.Job{
				ID: "nightly-finetune", Queue: "acme-batch", Kind: sched.FineTuning, Priority: DefaultPriority,
				EstimatedSec: 6 * 3600, NoticeSec: 120, NotBefore: 1796148000, Deadline: 1796191200, Interruptible: true,
				Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Accel: []string{"h100"}, Devices: 4}}},
			},
			Run: RunSpec{Command: []string{"python", "finetune.py"}, RestartPolicy: RestartNever},
		},
		"jobs/batch.yaml": {
			Job: sched.Job{
				ID: "embed-corpus", Queue: "acme-batch", Kind: sched.Batch, Priority: 250,
				Gangs: []sched.Gang{{Replicas: 16, MinReplicas: 4, Shape: place.Request{
					Accel: []string{"h100"}, Milli: 250, CPUMilli: 2500, MemoryMiB: 32 << 10,
				}}},
			},
			Run: RunSpec{Command: []string{"python", "embed.py"}, RestartPolicy: RestartNever},
		},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseJob(name, readTestdata(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ParseJob(%s) (-want +got):\n%s", name, diff)
			}
		})
	}
}

func TestParseJobs(t *testing.T) {
	got, err := ParseJobs("jobs/multi.yaml", readTestdata(t, "jobs/multi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []JobSpec{
		{Job: sched.Job{ID: "eval-1", Queue: "acme-batch", Kind: sched.Batch, Priority: 1000,
			Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Accel: []string{"h100"}, Devices: 1}}}},
			Run: RunSpec{RestartPolicy: RestartNever}},
		{Job: sched.Job{ID: "eval-2", Queue: "acme-batch", Kind: sched.Batch, Priority: 100,
			Gangs: []sched.Gang{{Replicas: 2, Shape: place.Request{Devices: 1}}}},
			Run: RunSpec{RestartPolicy: RestartNever}},
		{Job: sched.Job{ID: "chat-svc", Queue: "acme-serve", Kind: sched.Service, Priority: 100000,
			Topology: sched.Topology{Level: "zone"},
			Gangs: []sched.Gang{{Name: "server", Replicas: 2, Shape: place.Request{
				Accel: []string{"h200"}, Devices: 2, CPUMilli: 16000, MemoryMiB: 128 << 10}}}},
			Run: RunSpec{RestartPolicy: RestartNever}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseJobs (-want +got):\n%s", diff)
	}
}

// job is a valid job to which test cases append or in which they replace
// lines.
const job = `name: j
queue: q
kind: batch
gangs:
  - replicas: 2
    count: 1
`

func TestParseJobErrors(t *testing.T) {
	tests := map[string]struct {
		src  string
		want string
	}{
		"deadline and window": {
			src:  job + "deadline: 2026-12-03T09:00:00Z\nwindow: {from: 2026-12-02T18:00:00Z, to: 2026-12-03T09:00:00Z}\n",
			want: "j.yaml:8:9: window: give deadline or window, not both (a window's to is its deadline)",
		},
		"deadline not a time": {
			src:  job + "deadline: tomorrow\n",
			want: `j.yaml:7:11: deadline: "tomorrow": want a time in RFC 3339, such as 2026-12-03T09:00:00Z`,
		},
		"deadline without zone": {
			src:  job + "deadline: 2026-12-03 09:00\n",
			want: `j.yaml:7:11: deadline: "2026-12-03 09:00": want a time in RFC 3339, such as 2026-12-03T09:00:00Z`,
		},
		"empty window": {
			src:  job + "window: {from: 2026-12-03T09:00:00Z, to: 2026-12-03T09:00:00Z}\n",
			want: "j.yaml:7:42: window.to: 2026-12-03T09:00:00Z is not after from 2026-12-03T09:00:00Z: the window would be empty",
		},
		"window without to": {
			src:  job + "window: {from: 2026-12-03T09:00:00Z}\n",
			want: "j.yaml:7:9: window.to: is required",
		},
		"window unknown field": {
			src:  job + "window: {from: 2026-12-03T09:00:00Z, until: 2026-12-04T09:00:00Z}\n",
			want: "j.yaml:7:9: window.to: is required\nj.yaml:7:38: window.until: unknown field (want one of from, to)",
		},
		"interruptible not a bool": {
			src:  job + "interruptible: sometimes\n",
			want: "j.yaml:7:16: interruptible: want true or false, got a string",
		},
		"unknown top-level field": {
			src:  job + "colour: red\n",
			want: `j.yaml:7:1: colour: unknown field (want one of name, tenant, queue, kind, priority, tier, preemptible, noticePeriod, checkpointEvery, gangs, topology, estimatedRuntime, maxRuntime, deadline, window, interruptible, command, env, restartPolicy, maxRestarts, resize, replicaPolicy, waitForCapacity, service)`,
		},
		"unknown gang field": {
			src:  job + "    gpus: 8\n",
			want: `j.yaml:7:5: gangs[0].gpus: unknown field (want one of name, replicas, minReplicas, accelerators, count, fraction, cpu, memory)`,
		},
		"type not in catalog": {
			src:  job + "    accelerators: [h100, h1000]\n",
			want: `j.yaml:7:26: gangs[0].accelerators[1]: type "h1000" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`,
		},
		"type listed twice": {
			src:  job + "    accelerators:\n      - h100\n      - h100\n",
			want: `j.yaml:9:9: gangs[0].accelerators[1]: type "h100" is listed twice`,
		},
		"count and fraction": {
			src:  job + "    fraction: 0.5\n",
			want: `j.yaml:7:15: gangs[0].fraction: give count (whole accelerators) or fraction (a share of one), not both`,
		},
		"fraction of one": {
			src:  strings.Replace(job, "count: 1", "fraction: 1", 1),
			want: `j.yaml:6:15: gangs[0].fraction: 1, want a share of one accelerator above 0 and below 1 (use count for whole accelerators)`,
		},
		"fraction too fine": {
			src:  strings.Replace(job, "count: 1", "fraction: 0.0005", 1),
			want: `j.yaml:6:15: gangs[0].fraction: 0.0005 has more than 3 decimals`,
		},
		"count above a node": {
			src:  strings.Replace(job, "count: 1", "count: 32", 1),
			want: `j.yaml:6:12: gangs[0].count: 32, want 1..16`,
		},
		"accelerators without a count": {
			src:  strings.Replace(job, "count: 1", "accelerators: h100", 1),
			want: `j.yaml:6:19: gangs[0].accelerators: names accelerator types but neither count nor fraction is given`,
		},
		"zero replicas": {
			src:  strings.Replace(job, "replicas: 2", "replicas: 0", 1),
			want: `j.yaml:5:15: gangs[0].replicas: 0, want 1..100000`,
		},
		"min above replicas": {
			src:  job + "    minReplicas: 3\n",
			want: `j.yaml:7:18: gangs[0].minReplicas: 3, want 1..2`,
		},
		"missing replicas": {
			src:  strings.Replace(job, "  - replicas: 2\n    count: 1\n", "  - count: 1\n", 1),
			want: `j.yaml:5:5: gangs[0].replicas: is required`,
		},
		"gang name twice": {
			src:  strings.Replace(job, "  - replicas: 2\n", "  - {name: a, replicas: 1}\n  - name: a\n    replicas: 2\n", 1),
			want: `j.yaml:6:11: gangs[1].name: gang "a" is defined twice`,
		},
		"no gangs": {
			src:  "name: j\nqueue: q\nkind: batch\ngangs: []\n",
			want: `j.yaml:4:8: gangs: a job needs at least one gang`,
		},
		"gangs not a list": {
			src:  "name: j\nqueue: q\nkind: batch\ngangs: {replicas: 1}\n",
			want: `j.yaml:4:8: gangs: want a list, got a mapping`,
		},
		"missing fields": {
			src: "gangs: [{replicas: 1}]\n",
			want: "j.yaml:1:1: name: is required\n" +
				"j.yaml:1:1: queue: is required\n" +
				"j.yaml:1:1: kind: is required (want one of training, fine-tuning, batch, service)",
		},
		"bad kind": {
			src:  strings.Replace(job, "kind: batch", "kind: inference", 1),
			want: `j.yaml:3:7: kind: "inference": want one of training, fine-tuning, batch, service`,
		},
		"bad priority class": {
			src:  job + "priority: urgent\n",
			want: `j.yaml:7:11: priority: "urgent": want an integer or one of low, normal, high, critical`,
		},
		"priority out of range": {
			src:  job + "priority: 3000000000\n",
			want: `j.yaml:7:11: priority: 3000000000, want -2147483648..2147483647`,
		},
		"bad duration": {
			src:  job + "noticePeriod: 5 minutes\n",
			want: `j.yaml:7:15: noticePeriod: "5 minutes": want a duration such as 30s, 5m, 4h, 2d or 1h30m`,
		},
		"duration units out of order": {
			src:  job + "estimatedRuntime: 30m1h\n",
			want: `j.yaml:7:19: estimatedRuntime: "30m1h": want a duration such as 30s, 5m, 4h, 2d or 1h30m`,
		},
		"max below estimate": {
			src:  job + "estimatedRuntime: 2h\nmaxRuntime: 90m\n",
			want: `j.yaml:8:13: maxRuntime: 1h30m is below estimatedRuntime 2h`,
		},
		"preemptible not a bool": {
			src:  job + "preemptible: yes\n",
			want: `j.yaml:7:14: preemptible: want true or false, got a string`,
		},
		"cpu": {
			src:  job + "    cpu: 2 cores\n",
			want: `j.yaml:7:10: gangs[0].cpu: "2 cores": want cores (32, 0.5) or millicores (500m)`,
		},
		"memory without unit": {
			src:  job + "    memory: 1024\n",
			want: `j.yaml:7:13: gangs[0].memory: "1024": want a size with a unit Mi, Gi, Ti or Pi, e.g. 256Gi`,
		},
		"memory not whole MiB": {
			src:  job + "    memory: 0.001Gi\n",
			want: `j.yaml:7:13: gangs[0].memory: 0.001Gi is not a whole number of Mi`,
		},
		"topology level": {
			src:  job + "topology: {required: pod}\n",
			want: `j.yaml:7:22: topology.required: level "pod": want one of region, zone, block, rack, node`,
		},
		"topology both": {
			src:  job + "topology:\n  required: rack\n  preferred: block\n",
			want: `j.yaml:9:14: topology.preferred: give required or preferred, not both`,
		},
		"restart policy": {
			src:  job + "restartPolicy: always\n",
			want: `j.yaml:7:16: restartPolicy: "always": want one of never, gang, onFailure`,
		},
		"restarts without policy": {
			src:  job + "maxRestarts: 2\n",
			want: `j.yaml:7:14: maxRestarts: 2 restarts need restartPolicy: gang or onFailure`,
		},
		"env name": {
			src:  job + "env: {2FAST: x}\n",
			want: `j.yaml:7:7: env.2FAST: key "2FAST": want letters, digits and '_', not starting with a digit`,
		},
		"env value a list": {
			src:  job + "env:\n  A: [1]\n",
			want: `j.yaml:8:6: env.A: want a string, got a list`,
		},
		"empty command": {
			src:  job + "command: []\n",
			want: `j.yaml:7:10: command: must not be empty; leave the field out instead`,
		},
		"null value": {
			src:  job + "tier:\n",
			want: `j.yaml:7:1: tier: want a string, got null`,
		},
		"bad name": {
			src:  strings.Replace(job, "name: j", "name: my job", 1),
			want: `j.yaml:1:7: name: "my job": want letters, digits, '-', '_' or '.', starting with a letter or digit`,
		},
		"tier": {
			src:  job + "tier: Spot\n",
			want: `j.yaml:7:7: tier: "Spot": want one of committed, on-demand, spot (on-demand when left out)`,
		},
		"unknown tier": {
			src:  job + "tier: gold\n",
			want: `j.yaml:7:7: tier: "gold": want one of committed, on-demand, spot (on-demand when left out)`,
		},
		"not a mapping": {
			src:  "- name: j\n",
			want: `j.yaml:1:1: want a mapping, got a list`,
		},
		"syntax": {
			src:  job + "command: [a, b\n",
			want: `j.yaml:7:10: YAML syntax: sequence end token ']' not found`,
		},
		"duplicate key": {
			src:  job + "name: k\n",
			want: `j.yaml:7:1: YAML syntax: mapping key "name" already defined at [1:1]`,
		},
		"merge key": {
			src:  job + "<<: {tier: spot}\n",
			want: `j.yaml:7:1: merge keys (<<) are not supported; write the fields out`,
		},
		"alias without anchor": {
			src:  job + "env: *common\n",
			want: `j.yaml:7:6: env: alias *common names no anchor before it`,
		},
		"error through an alias is placed at the alias": {
			src:  job + "command: &c [a]\nenv: *c\n",
			want: `j.yaml:8:6: env: want a mapping, got a list`,
		},
		"custom tag": {
			src:  job + "tier: !secret x\n",
			want: `j.yaml:7:7: tier: YAML tag !secret is not supported`,
		},
		"two documents": {
			src:  job + "---\n" + job,
			want: `j.yaml:7: holds 2 documents; want one job (several jobs are read with ParseJobs)`,
		},
		"empty": {
			src:  "# nothing\n",
			want: `j.yaml: holds no job`,
		},
		"NUL in the command": {
			src:  job + "command: [sh, \"-c\", \"echo \\0\"]\n",
			want: `j.yaml:7:21: command[2]: holds a NUL byte: a program's arguments cannot carry one`,
		},
		"NUL in an env value": {
			src:  job + "command: [x]\nenv:\n  A: \"x\\u0000y\"\n",
			want: `j.yaml:9:6: env.A: holds a NUL byte: an environment variable cannot carry one`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJob("j.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseJob succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJobAnchors(t *testing.T) {
	src := `name: j
queue: q
kind: training
gangs:
  - &worker {replicas: 2, count: 8, accelerators: h100, cpu: 64, memory: 512Gi}
  - *worker
`
	js, err := ParseJob("j.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	g := sched.Gang{Replicas: 2, Shape: place.Request{Accel: []string{"h100"}, Devices: 8, CPUMilli: 64000, MemoryMiB: 512 << 10}}
	if diff := cmp.Diff([]sched.Gang{g, g}, js.Job.Gangs); diff != "" {
		t.Errorf("gangs (-want +got):\n%s", diff)
	}
}

func TestParseJobsErrors(t *testing.T) {
	tests := map[string]struct {
		src  string
		want string
	}{
		"same name twice": {
			src:  job + "---\n" + job,
			want: `j.yaml:7: name: job "j" is already defined in the document at line 1`,
		},
		"error in the second document names its line": {
			src:  job + "---\n" + strings.Replace(strings.Replace(job, "count: 1", "count: 0", 1), "name: j", "name: k", 1),
			want: `j.yaml:13:12: gangs[0].count: 0, want 1..16`,
		},
		"errors of the first document name its lines": {
			src:  strings.Replace(job, "count: 1", "count: 0", 1) + "---\n" + strings.Replace(job, "name: j", "name: k", 1),
			want: `j.yaml:6:12: gangs[0].count: 0, want 1..16`,
		},
		"each document has its own anchors": {
			src:  job + "env: &e {A: x}\n---\n" + strings.Replace(job, "name: j", "name: k", 1) + "env: *e\n",
			want: `j.yaml:15:6: env: alias *e names no anchor before it`,
		},
		"document after an empty one is read": {
			src:  job + "---\n---\nname: k\nqueue: q\nkind: batch\n",
			want: `j.yaml:9:1: gangs: is required`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJobs("j.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseJobs succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJobWithFleetAndQueues(t *testing.T) {
	cat, err := fleet.NewCatalog([]fleet.AccelType{{Name: "tpu-v5p", MemoryGiB: 95, BoardPowerW: 450, RelSpeed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleet.New(cat, []string{"site", "pod"}, []fleet.Node{{Name: "n1", Path: []string{"s", "p"}, Accel: "tpu-v5p", Count: 4}})
	if err != nil {
		t.Fatal(err)
	}
	queues := []quota.Spec{{Name: "acme"}, {Name: "acme-train", Parent: "acme"}, {Name: "beta"}}
	good := "name: j\ntenant: acme\nqueue: acme-train\nkind: training\ntopology: {required: pod}\ngangs: [{replicas: 1, count: 4, accelerators: tpu-v5p}]\n"
	if _, err := ParseJob("j.yaml", []byte(good), WithFleet(f), WithQueues(queues)); err != nil {
		t.Errorf("ParseJob: %v", err)
	}
	tests := map[string]struct {
		src  string
		want string
	}{
		"type of another catalog": {
			src:  strings.Replace(good, "tpu-v5p", "h100", 1),
			want: `j.yaml:6:47: gangs[0].accelerators: type "h100" is not in the catalog (want one of tpu-v5p)`,
		},
		"level of another fleet": {
			src:  strings.Replace(good, "pod", "rack", 1),
			want: `j.yaml:5:22: topology.required: level "rack": want one of site, pod, node`,
		},
		"inner queue": {
			src:  strings.Replace(good, "queue: acme-train", "queue: acme", 1),
			want: `j.yaml:3:8: queue: "acme" is not a leaf queue (want one of acme-train, beta)`,
		},
		"unknown queue": {
			src:  strings.Replace(good, "queue: acme-train", "queue: gamma", 1),
			want: `j.yaml:3:8: queue: "gamma" is not a queue (want one of acme-train, beta)`,
		},
		"tenant of another queue": {
			src:  strings.Replace(good, "tenant: acme", "tenant: beta", 1),
			want: `j.yaml:2:9: tenant: "beta", but queue "acme-train" belongs to tenant "acme"`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJob("j.yaml", []byte(tt.src), WithFleet(f), WithQueues(queues))
			if err == nil {
				t.Fatalf("ParseJob succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJobErrorLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(job)
	for i := range 30 {
		fmt.Fprintf(&b, "extra%d: 1\n", i)
	}
	_, err := ParseJob("j.yaml", []byte(b.String()))
	var problems Errors
	if !errors.As(err, &problems) {
		t.Fatalf("error %v is not Errors", err)
	}
	if got := len(problems); got != maxErrors+1 {
		t.Errorf("%d problems reported, want %d and a note", got, maxErrors+1)
	}
	if got, want := problems[len(problems)-1].Error(), "j.yaml: more than 20 problems; the rest are left out"; got != want {
		t.Errorf("last = %q, want %q", got, want)
	}
	if got := problems[0]; got.Line != 7 || got.Path != "extra0" {
		t.Errorf("first problem = %v, want line 7, extra0", got)
	}
}

// TestReportAt checks how errors of sched.Job.Validate, which the parser's
// own checks normally pre-empt, are mapped to the spec's field paths.
func TestReportAt(t *testing.T) {
	d := newDecoder("j.yaml")
	docs := d.documents([]byte(job), MaxJobBytes)
	v := docs[0].root()
	fs, _ := v.fields(jobFields...)
	reportAt(v, fs, "gangs[0].shape: milli 1500: want 1..999")
	reportAt(v, fs, "id: must not be empty")
	reportAt(v, fs, "noticeSec, checkpointSec and maxSec must not be negative")
	want := "j.yaml:1:1: noticeSec, checkpointSec and maxSec must not be negative\n" +
		"j.yaml:1:7: name: must not be empty\n" +
		"j.yaml:5:5: gangs[0]: milli 1500: want 1..999"
	if diff := cmp.Diff(want, d.err().Error()); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
