package sim

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/trace/openb"
)

func TestReadOpenbTasks(t *testing.T) {
	fh, err := os.Open("../../testdata/sim/openb-tasks.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tr, err := ReadOpenbTasks("openb-tasks.csv", fh, "q")
	if err != nil {
		t.Fatal(err)
	}
	one := func(id string, arrival, duration int64, kind sched.Kind, prio int32, pre bool, req place.Request) Job {
		return Job{Arrival: arrival, Duration: duration, Job: sched.Job{ID: sched.JobID(id), Queue: "q", Kind: kind,
			Priority: prio, Preemptible: pre, Gangs: []sched.Gang{{Replicas: 1, Shape: req}}}}
	}
	want := []Job{
		one("task-b", 50, 990, sched.Service, 200, false, place.Request{Devices: 2, Accel: []string{"V100M16", "V100M32"}, CPUMilli: 16000, MemoryMiB: 65536}),
		one("task-c", 70, 100, sched.Batch, 50, false, place.Request{CPUMilli: 4000, MemoryMiB: 8192}),
		one("task-a", 100, 300, sched.Batch, 10, true, place.Request{Milli: 500, CPUMilli: 8000, MemoryMiB: 30517}),
		one("task-e", 100, 50, sched.Batch, 100, false, place.Request{Devices: 1, CPUMilli: 12000, MemoryMiB: 65536}),
	}
	if diff := cmp.Diff(want, tr.Jobs); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	if tr.NeverRan != 1 {
		t.Errorf("never ran: %d, want 1 (task-d)", tr.NeverRan)
	}
}

func TestReadOpenbTasksErrors(t *testing.T) {
	const header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
	tests := map[string]struct{ text, want string }{
		"no time columns":       {"name,cpu_milli,memory_mib,num_gpu,gpu_milli\n", "t.csv:1:1: header"},
		"bad qos":               {header + "a,1,1,0,0,,Gold,Running,1,2,1\n", `t.csv:2:12: qos: "Gold", want LS, Guaranteed, Burstable or BE`},
		"ends before it starts": {header + "a,1,1,0,0,,BE,Running,10,20,30\n", `t.csv:2:29: scheduled_time: "30", want an integer in 10..20`},
		"fraction of many":      {header + "a,1,1,2,500,,BE,Running,1,2,1\n", "t.csv:2:9: gpu_milli: 500: a task with 2 GPUs asks whole ones (1000 milli)"},
		"duplicate":             {header + "a,1,1,0,0,,BE,Running,1,2,1\na,1,1,0,0,,BE,Running,1,2,1\n", `t.csv:3:1: name: "a" is already used on line 2`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadOpenbTasks("t.csv", strings.NewReader(tc.text), "q")
			var le *LineError
			if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}

func TestOpenbReplay(t *testing.T) {
	fh, err := os.Open("../../testdata/sim/openb-nodes.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	nodes, err := openb.ReadNodes(fh, "openb-nodes.csv")
	if err != nil {
		t.Fatal(err)
	}
	f, err := OpenbFleet(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Totals(); !cmp.Equal(got, map[string]int{"V100M32": 8, "P100": 2, "V100M16": 4}) {
		t.Errorf("fleet totals %v", got)
	}
	tasks, err := os.Open("../../testdata/sim/openb-tasks.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer tasks.Close()
	tr, err := ReadOpenbTasks("openb-tasks.csv", tasks, "openb-q")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(Config{}, f, OpenbQueues(f, "openb-q"), tr)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Summary.Jobs; s.Finished != 4 {
		t.Errorf("jobs %+v, want 4 finished", s)
	}
}
