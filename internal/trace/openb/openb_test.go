package openb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/place"
)

const fullHeader = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"

func TestReadTasks(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []Task
	}{
		"all columns": {
			in: fullHeader +
				"p0,8000,30517,0,0,,BE,Running,1,2,3\n" +
				"p1,4000,15258,1,220,,BE,Running,1,2,\n" +
				"p2,16000,32768,1,1000,V100M16|V100M32,LS,Running,9967058,9968575,9967063\n" +
				"p3,88000,327680,8,1000,nan,Burstable,Succeeded,9437497,10769854,9437497\n",
			want: []Task{
				{Name: "p0", Req: place.Request{CPUMilli: 8000, MemoryMiB: 30517}, QoS: "BE", Phase: "Running", Created: 1, Deleted: 2, Scheduled: 3, Line: 2},
				{Name: "p1", Req: place.Request{Milli: 220, CPUMilli: 4000, MemoryMiB: 15258}, QoS: "BE", Phase: "Running", Created: 1, Deleted: 2, Scheduled: -1, Line: 3},
				{Name: "p2", Req: place.Request{Accel: []string{"V100M16", "V100M32"}, Devices: 1, CPUMilli: 16000, MemoryMiB: 32768},
					QoS: "LS", Phase: "Running", Created: 9967058, Deleted: 9968575, Scheduled: 9967063, Line: 4},
				{Name: "p3", Req: place.Request{Devices: 8, CPUMilli: 88000, MemoryMiB: 327680},
					QoS: "Burstable", Phase: "Succeeded", Created: 9437497, Deleted: 10769854, Scheduled: 9437497, Line: 5},
			},
		},
		"five columns": {
			in: "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n" +
				"p0,12000,16384,1,1000\n" +
				"p1,6000,12288,1,460\n",
			want: []Task{
				{Name: "p0", Req: place.Request{Devices: 1, CPUMilli: 12000, MemoryMiB: 16384}, Created: -1, Deleted: -1, Scheduled: -1, Line: 2},
				{Name: "p1", Req: place.Request{Milli: 460, CPUMilli: 6000, MemoryMiB: 12288}, Created: -1, Deleted: -1, Scheduled: -1, Line: 3},
			},
		},
		"header only": {in: "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ReadTasks(strings.NewReader(tc.in), "t.csv")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ReadTasks (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadTasksErrors(t *testing.T) {
	short := "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
	tests := map[string]struct {
		in   string
		want Error // Err is compared by its message
		msg  string
	}{
		"empty":            {in: "", want: Error{File: "t.csv", Line: 1}, msg: "empty file"},
		"wrong header":     {in: "name,cpu,memory_mib,num_gpu,gpu_milli\n", want: Error{File: "t.csv", Line: 1}, msg: `header "name,cpu,memory_mib,num_gpu,gpu_milli"`},
		"too few columns":  {in: "name,cpu_milli,memory_mib,num_gpu\n", want: Error{File: "t.csv", Line: 1}, msg: "want the first 5 or more"},
		"cpu not a number": {in: short + "p0,8000,1,0,0\np1,eight,1,0,0\n", want: Error{File: "t.csv", Line: 3, Column: 2, Field: "cpu_milli"}, msg: `"eight": want an integer`},
		"negative memory":  {in: short + "p0,8000,-1,0,0\n", want: Error{File: "t.csv", Line: 2, Column: 3, Field: "memory_mib"}, msg: "want an integer in 0.."},
		"milli over 1000":  {in: short + "p0,8000,1,1,1001\n", want: Error{File: "t.csv", Line: 2, Column: 5, Field: "gpu_milli"}, msg: `"1001"`},
		"cpu task milli":   {in: short + "p0,8000,1,0,500\n", want: Error{File: "t.csv", Line: 2, Column: 5, Field: "gpu_milli"}, msg: "without GPUs asks 0 milli"},
		"shared multi gpu": {in: short + "p0,8000,1,2,500\n", want: Error{File: "t.csv", Line: 2, Column: 5, Field: "gpu_milli"}, msg: "asks whole ones"},
		"one gpu no milli": {in: short + "p0,8000,1,1,0\n", want: Error{File: "t.csv", Line: 2, Column: 5, Field: "gpu_milli"}, msg: "asks 1..1000 milli"},
		"too many gpus":    {in: short + "p0,8000,1,65,1000\n", want: Error{File: "t.csv", Line: 2, Column: 4, Field: "num_gpu"}, msg: "0..64"},
		"empty name":       {in: short + ",8000,1,0,0\n", want: Error{File: "t.csv", Line: 2, Column: 1, Field: "name"}, msg: "non-empty"},
		"short row":        {in: short + "p0,8000,1,0\n", want: Error{File: "t.csv", Line: 2, Column: 1, Field: "csv"}, msg: "wrong number of fields"},
		"bad spec":         {in: fullHeader + "p0,8000,1,1,1000,V100||T4,LS,Running,1,2,3\n", want: Error{File: "t.csv", Line: 2, Column: 6, Field: "gpu_spec"}, msg: "separated by '|'"},
		"spec on cpu task": {in: fullHeader + "p0,8000,1,0,0,T4,LS,Running,1,2,3\n", want: Error{File: "t.csv", Line: 2, Column: 6, Field: "gpu_spec"}, msg: "accepts no GPU type"},
		"bad time":         {in: fullHeader + "p0,8000,1,0,0,,LS,Running,1,soon,3\n", want: Error{File: "t.csv", Line: 2, Column: 10, Field: "deletion_time"}, msg: "want an integer, 0 or more, or nothing"},
		"empty qos":        {in: fullHeader + "p0,8000,1,0,0,,,Running,1,2,3\n", want: Error{File: "t.csv", Line: 2, Column: 7, Field: "qos"}, msg: "non-empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadTasks(strings.NewReader(tc.in), "t.csv")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ReadTasks error = %v, want an *Error", err)
			}
			got := *e
			got.Err, got.Char = nil, 0 // Char: see TestReadTimedTasksErrors
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error location (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestReadNodes(t *testing.T) {
	in := "sn,cpu_milli,memory_mib,gpu,model\n" +
		"openb-node-0000,64000,262144,2,P100\n" +
		"openb-node-0227,32000,262144,0,\n"
	got, err := ReadNodes(strings.NewReader(in), "n.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{
		{Name: "openb-node-0000", CPUMilli: 64000, MemoryMiB: 262144, GPUs: 2, Model: "P100"},
		{Name: "openb-node-0227", CPUMilli: 32000, MemoryMiB: 262144},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadNodes (-want +got):\n%s", diff)
	}
	wantNode := &place.Node{Index: 3, Accel: "P100", Free: []int32{1000, 1000},
		CPUCap: 64000, MemCap: 262144, CPUFree: 64000, MemFree: 262144, Schedulable: true}
	if diff := cmp.Diff(wantNode, got[0].Place(3)); diff != "" {
		t.Errorf("Place (-want +got):\n%s", diff)
	}
}

func TestReadNodesErrors(t *testing.T) {
	h := "sn,cpu_milli,memory_mib,gpu,model\n"
	tests := map[string]struct {
		in   string
		want Error
		msg  string
	}{
		"header":         {in: "sn,cpu_milli,memory_mib,gpu\n", want: Error{File: "n.csv", Line: 1}, msg: "want \"sn,cpu_milli,memory_mib,gpu,model\""},
		"gpus no model":  {in: h + "n0,1,1,2,\n", want: Error{File: "n.csv", Line: 2, Column: 5, Field: "model"}, msg: "needs a type"},
		"model no gpus":  {in: h + "n0,1,1,0,T4\n", want: Error{File: "n.csv", Line: 2, Column: 5, Field: "model"}, msg: "has no type"},
		"duplicate name": {in: h + "n0,1,1,1,T4\nn0,1,1,1,T4\n", want: Error{File: "n.csv", Line: 3, Column: 1, Field: "sn"}, msg: "also on line 2"},
		"bad cpu":        {in: h + "n0,1.5,1,1,T4\n", want: Error{File: "n.csv", Line: 2, Column: 2, Field: "cpu_milli"}, msg: `"1.5"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadNodes(strings.NewReader(tc.in), "n.csv")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ReadNodes error = %v, want an *Error", err)
			}
			got := *e
			got.Err, got.Char = nil, 0 // Char: see TestReadTimedTasksErrors
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error location (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

// The excerpts under testdata/openb are real trace rows; they must read.
func TestTestdata(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "testdata", "openb")
	nodes, err := LoadNodes(filepath.Join(dir, "nodes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	gpus := 0
	for _, n := range nodes {
		gpus += n.GPUs
	}
	for _, f := range []string{"tasks.csv", "tasks_multigpu.csv"} {
		tasks, err := LoadTasks(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		shapes := map[string]int{}
		for _, task := range tasks {
			if err := task.Req.Validate(); err != nil {
				t.Errorf("%s: task %s: %v", f, task.Name, err)
			}
			switch {
			case task.Req.Devices > 0:
				shapes["whole"]++
			case task.Req.Milli > 0:
				shapes["shared"]++
			default:
				shapes["cpu"]++
			}
		}
		if len(shapes) != 3 {
			t.Errorf("%s: shapes %v: want CPU-only, shared and whole-GPU tasks", f, shapes)
		}
	}
	if len(nodes) != 46 || gpus != 234 {
		t.Errorf("nodes.csv: %d nodes, %d GPUs; want 46 and 234", len(nodes), gpus)
	}
	if _, err := LoadTasks(filepath.Join(dir, "missing.csv")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadTasks(missing) = %v, want a not-exist error", err)
	}
}

func FuzzReadTasks(f *testing.F) {
	for _, name := range []string{"tasks.csv", "tasks_multigpu.csv"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "openb", name))
		if err != nil {
			f.Fatal(err)
		}
		lines := strings.SplitAfter(string(b), "\n")
		f.Add(strings.Join(lines[:min(6, len(lines))], ""))
	}
	f.Add(fullHeader + "p,1,1,1,999,A|B,LS,Running,,,\n")
	f.Add("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n\"p\n0\",1,1,0,0\n")
	f.Fuzz(func(t *testing.T, in string) {
		tasks, err := ReadTasks(strings.NewReader(in), "f.csv")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "f.csv" || e.Line < 1 {
				t.Fatalf("error %v does not locate the fault", err)
			}
			return
		}
		for _, task := range tasks {
			if task.Name == "" {
				t.Fatalf("task without a name: %+v", task)
			}
			if err := task.Req.Validate(); err != nil {
				t.Fatalf("task %q: %v", task.Name, err)
			}
			if task.Req.GPUMilli() == 0 && len(task.Req.Accel) > 0 {
				t.Fatalf("CPU-only task %q accepts GPU types %v", task.Name, task.Req.Accel)
			}
			for _, a := range task.Req.Accel {
				if !validType(a) {
					t.Fatalf("task %q: bad type %q", task.Name, a)
				}
			}
		}
	})
}

func TestReadTimedTasksErrors(t *testing.T) {
	tests := map[string]struct {
		in, want string
		char     int
	}{
		"five columns":  {"name,cpu_milli,memory_mib,num_gpu,gpu_milli\n", "time mode needs the columns", 0},
		"duplicate":     {fullHeader + "a,1,1,0,0,,BE,Running,1,2,1\na,1,1,0,0,,BE,Running,1,2,1\n", `"a" is already used on line 2`, 1},
		"unknown qos":   {fullHeader + "a,1,1,0,0,,Gold,Running,1,2,1\n", `"Gold", want LS, Guaranteed, Burstable or BE`, 12},
		"no creation":   {fullHeader + "a,1,1,0,0,,BE,Running,,2,1\n", `"", want an integer in 0..`, 23},
		"deleted early": {fullHeader + "a,1,1,0,0,,BE,Running,5,2,5\n", `"2", want an integer in 5..`, 25},
		"late start":    {fullHeader + "a,1,1,0,0,,BE,Running,10,20,30\n", `"30", want an integer in 10..20`, 29},
	}
	for name, tc := range tests {
		_, err := ReadTimedTasks(strings.NewReader(tc.in), "t.csv")
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) || e.Char != tc.char {
			t.Errorf("%s: error %v (char %d), want one with %q at char %d", name, err, e.charOf(), tc.want, tc.char)
		}
	}
	// A task never scheduled is kept, with Scheduled -1.
	ts, err := ReadTimedTasks(strings.NewReader(fullHeader+"a,1,1,0,0,,BE,Pending,7,,\n"), "t.csv")
	if err != nil || len(ts) != 1 || ts[0].Scheduled != -1 || ts[0].Created != 7 {
		t.Errorf("never-scheduled task: %+v, %v", ts, err)
	}
}

func (e *Error) charOf() int {
	if e == nil {
		return -1
	}
	return e.Char
}
