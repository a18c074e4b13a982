package sim

import (
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// jobList is a Source over a slice.
type jobList []Job

func (l *jobList) Next() (Job, error) {
	if len(*l) == 0 {
		return Job{}, io.EOF
	}
	j := (*l)[0]
	*l = (*l)[1:]
	return j, nil
}

// testFleet builds n nodes of 8 accelerators of type accel in one rack.
func testFleet(t *testing.T, accel string, n int) *fleet.Fleet {
	t.Helper()
	accels := make([]string, n)
	for i := range accels {
		accels[i] = accel
	}
	return testFleetOf(t, accels...)
}

// testFleetOf builds one node of 8 accelerators per type given, in one rack.
func testFleetOf(t *testing.T, accels ...string) *fleet.Fleet {
	t.Helper()
	var nodes []fleet.Node
	for i, accel := range accels {
		nodes = append(nodes, fleet.Node{
			Name: fmt.Sprintf("n%d", i+1), Path: []string{"r", "z", "b", "rack1"},
			Accel: accel, Count: 8, CPUMilli: 64000, MemoryMiB: 512 << 10,
		})
	}
	f, err := fleet.New(nil, nil, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// testQueues is one tenant with one queue owning accels of type accel.
func testQueues(accel string, accels int64) []quota.Spec {
	return []quota.Spec{
		{Name: "acme", Quotas: map[string]quota.Limits{accel: {Nominal: accels * 1000}}},
		{Name: "acme-q", Parent: "acme"},
	}
}

// gpuJob is a job of replicas x count whole accelerators.
func gpuJob(id string, arrival, duration int64, replicas, count int) Job {
	return Job{Arrival: arrival, Duration: duration, Job: sched.Job{
		ID: sched.JobID(id), Queue: "acme-q", Kind: sched.Training,
		Gangs: []sched.Gang{{Replicas: replicas, Shape: place.Request{Devices: count}}},
	}}
}

func run(t *testing.T, cfg Config, f *fleet.Fleet, qs []quota.Spec, jobs ...Job) *Result {
	t.Helper()
	src := jobList(jobs)
	res, err := Run(cfg, f, qs, &src)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// timeline is the part of a job record the engine tests check.
type timeline struct {
	ID               string
	Start, End       int64
	Status           string
	Preemptions      int
	Requeues         int
	AccelHours, Lost float64
}

func timelines(res *Result) []timeline {
	var out []timeline
	for _, j := range res.Jobs {
		out = append(out, timeline{j.ID, j.Start, j.End, j.Status, j.Preemptions, j.Requeues, j.AccelHours, j.LostAccelHours})
	}
	return out
}

func TestRunJobsStartAndEndOnTheVirtualClock(t *testing.T) {
	tests := map[string]struct {
		accel string
		nodes int
		jobs  []Job
		want  []timeline
	}{
		"one job runs for its duration": {
			accel: "h100", nodes: 1,
			jobs: []Job{gpuJob("a", 10, 3600, 1, 8)},
			want: []timeline{{ID: "a", Start: 10, End: 3610, Status: StatusFinished, AccelHours: 8}},
		},
		"a faster accelerator shortens the run": {
			// b200 has relative speed 2.2: 2200 s of work take 1000 s.
			accel: "b200", nodes: 1,
			jobs: []Job{gpuJob("a", 0, 2200, 1, 4)},
			want: []timeline{{ID: "a", Start: 0, End: 1000, Status: StatusFinished, AccelHours: 4000.0 / 3600}},
		},
		"the second job waits for the first": {
			accel: "h100", nodes: 1,
			jobs: []Job{gpuJob("a", 0, 100, 1, 8), gpuJob("b", 5, 50, 1, 8)},
			want: []timeline{
				{ID: "a", Start: 0, End: 100, Status: StatusFinished, AccelHours: round6(800.0 / 3600)},
				{ID: "b", Start: 100, End: 150, Status: StatusFinished, AccelHours: round6(400.0 / 3600)},
			},
		},
		"a gang starts whole across nodes": {
			accel: "h100", nodes: 2,
			jobs: []Job{gpuJob("a", 0, 100, 1, 4), gpuJob("g", 1, 100, 2, 8)},
			want: []timeline{
				{ID: "a", Start: 0, End: 100, Status: StatusFinished, AccelHours: round6(400.0 / 3600)},
				{ID: "g", Start: 100, End: 200, Status: StatusFinished, AccelHours: round6(1600.0 / 3600)},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := run(t, Config{}, testFleet(t, tc.accel, tc.nodes), testQueues(tc.accel, int64(8*tc.nodes)), tc.jobs...)
			got := timelines(res)
			for i := range got {
				got[i].AccelHours = round6(got[i].AccelHours)
			}
			for i := range tc.want {
				tc.want[i].AccelHours = round6(tc.want[i].AccelHours)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunPreemptionLosesWorkSinceTheLastCheckpoint(t *testing.T) {
	low := gpuJob("low", 0, 1000, 2, 8)
	low.Preemptible, low.NoticeSec, low.CheckpointSec = true, 10, 30
	high := gpuJob("high", 100, 50, 2, 8)
	high.Priority = 100
	res := run(t, Config{}, testFleet(t, "h100", 2), testQueues("h100", 16), low, high)
	// high arrives at 100 and waits the core's 60 s for room before it
	// preempts at 160; low runs 0..170 (notice of 10 s); its checkpoints
	// every 30 s keep 150 s of work, so 20 s on 16 accelerators are lost.
	// high runs 170..220; low restarts at 220 with 850 s left: ends 1070.
	want := []timeline{
		{ID: "low", Start: 0, End: 1070, Status: StatusFinished, Preemptions: 1, Requeues: 1,
			AccelHours: round6(16 * (170 + 850) / 3600.0), Lost: round6(16 * 20 / 3600.0)},
		{ID: "high", Start: 170, End: 220, Status: StatusFinished, AccelHours: round6(16 * 50 / 3600.0)},
	}
	if diff := cmp.Diff(want, timelines(res)); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	s := res.Summary
	if s.Preemptions != 1 || s.LostAccelHoursPreemption != round6(320/3600.0) {
		t.Errorf("summary preemptions %d, lost %v; want 1 and %v", s.Preemptions, s.LostAccelHoursPreemption, round6(320/3600.0))
	}
}

func TestRunNodeFailureRequeues(t *testing.T) {
	a := gpuJob("a", 0, 1000, 1, 8)
	a.CheckpointSec = 100
	cfg := Config{Outages: []Outage{{Node: "n1", At: 250, Duration: 500}}}
	res := run(t, cfg, testFleet(t, "h100", 1), testQueues("h100", 8), a)
	// a checkpoints at 100 and 200; the node fails at 250 (50 s of work on
	// 8 accelerators lost) and returns at 750; a runs 800 s more.
	want := []timeline{{ID: "a", Start: 0, End: 1550, Status: StatusFinished, Requeues: 1,
		AccelHours: round6(8 * (250 + 800) / 3600.0), Lost: round6(8 * 50 / 3600.0)}}
	if diff := cmp.Diff(want, timelines(res)); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	s := res.Summary
	if s.NodeFailures != 1 || s.FailureRequeues != 1 || s.LostAccelHoursFailure != round6(400/3600.0) {
		t.Errorf("summary failures %d, requeues %d, lost %v", s.NodeFailures, s.FailureRequeues, s.LostAccelHoursFailure)
	}
}

func TestRunRejectsWhatNoNodeCanHold(t *testing.T) {
	res := run(t, Config{}, testFleet(t, "h100", 1), testQueues("h100", 8), gpuJob("big", 0, 10, 1, 16))
	if got := res.Jobs[0].Status; got != StatusRejected {
		t.Errorf("status %q, want %q", got, StatusRejected)
	}
}

func TestRunUnknownQueueIsAnError(t *testing.T) {
	j := gpuJob("a", 0, 10, 1, 1)
	j.Queue = "nowhere"
	src := jobList{j}
	_, err := Run(Config{}, testFleet(t, "h100", 1), testQueues("h100", 8), &src)
	if err == nil {
		t.Fatal("no error for a job in an unknown queue")
	}
}

func TestRunMaxSecStopsAJob(t *testing.T) {
	a := gpuJob("a", 0, 1000, 1, 8)
	a.MaxSec = 300
	res := run(t, Config{}, testFleet(t, "h100", 1), testQueues("h100", 8), a)
	if j := res.Jobs[0]; j.Status != StatusTimedOut || j.End != 300 {
		t.Errorf("job ended %q at %d, want %q at 300", j.Status, j.End, StatusTimedOut)
	}
}

func TestRunServiceRunsToTheEnd(t *testing.T) {
	svc := gpuJob("svc", 0, 0, 2, 1)
	svc.Kind, svc.Duration = sched.Service, NoDuration
	res := run(t, Config{}, testFleet(t, "h100", 1), testQueues("h100", 8), svc, gpuJob("b", 10, 500, 1, 4))
	if got := res.Jobs[0].Status; got != StatusRunning {
		t.Errorf("service status %q, want %q", got, StatusRunning)
	}
	if res.Summary.End != 510 || res.Summary.MakespanSec != 510 {
		t.Errorf("end %d, makespan %d; want 510 and 510", res.Summary.End, res.Summary.MakespanSec)
	}
	// 6 of 8 accelerators busy for 500 s, 2 for the first 10 s.
	wantUtil := round6((2*510 + 4*500) / (8 * 510.0))
	if res.Summary.Utilization != wantUtil {
		t.Errorf("utilization %v, want %v", res.Summary.Utilization, wantUtil)
	}
}

func TestRunElasticJobGrowsAndSpeedsUp(t *testing.T) {
	a := gpuJob("a", 0, 100, 1, 6)
	e := gpuJob("e", 1, 400, 4, 1)
	e.Kind, e.Preemptible = sched.FineTuning, true
	e.Gangs[0].MinReplicas = 2
	res := run(t, Config{}, testFleet(t, "h100", 1), testQueues("h100", 8), a, e)
	// e starts at 1 with 2 of 4 replicas, at half speed: 49.5 s of work
	// by t=100, when a ends and e grows to 4; the 350.5 s left take 351 s.
	want := []timeline{
		{ID: "a", Start: 0, End: 100, Status: StatusFinished, AccelHours: round6(600 / 3600.0)},
		{ID: "e", Start: 1, End: 451, Status: StatusFinished, AccelHours: round6((2*99 + 4*351) / 3600.0)},
	}
	if diff := cmp.Diff(want, timelines(res)); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
}

func TestRunElasticJobShrinksForHigherPriority(t *testing.T) {
	a := gpuJob("a", 0, 100, 1, 6)
	e := gpuJob("e", 1, 400, 4, 1)
	e.Kind, e.Preemptible = sched.FineTuning, true
	e.Gangs[0].MinReplicas = 2
	h := gpuJob("h", 200, 50, 1, 6)
	h.Priority = 100
	res := run(t, Config{}, testFleet(t, "h100", 1), testQueues("h100", 8), a, e, h)
	// As above until t=200, when h needs 6 of the 4 free accelerators; it
	// waits the core's 60 s for room, then e gives back 2 replicas at once
	// (no notice) and runs at half speed until h ends at 310, then grows
	// back. Work: 49.5 by 100, 209.5 by 260, 234.5 by 310; the 165.5 s
	// left take 166 s.
	want := []timeline{
		{ID: "a", Start: 0, End: 100, Status: StatusFinished, AccelHours: round6(600 / 3600.0)},
		{ID: "e", Start: 1, End: 476, Status: StatusFinished, AccelHours: round6((2*99 + 4*160 + 2*50 + 4*166) / 3600.0)},
		{ID: "h", Start: 260, End: 310, Status: StatusFinished, AccelHours: round6(300 / 3600.0)},
	}
	if diff := cmp.Diff(want, timelines(res)); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	if res.Summary.Shrinks != 1 || res.Summary.Preemptions != 0 {
		t.Errorf("shrinks %d, preemptions %d; want 1 and 0", res.Summary.Shrinks, res.Summary.Preemptions)
	}
}

func TestRunEndsWhenNothingCanStart(t *testing.T) {
	// The service holds one of two nodes for good; b needs both and can
	// never start. Nodes fail often and take days to repair, so a repair is
	// nearly always under way; the run must still end, some time after the
	// last progress.
	svc := gpuJob("svc", 0, 0, 1, 8)
	svc.Kind, svc.Duration, svc.Priority = sched.Service, NoDuration, 200
	cfg := Config{Seed: 3, FailuresPerNodeDay: 2, RepairMeanSec: 3 * 86400,
		Outages: []Outage{{Node: "n2", At: 5, Duration: 10 * 86400}}}
	res := run(t, cfg, testFleet(t, "h100", 2), testQueues("h100", 16), svc, gpuJob("b", 10, 100, 2, 8))
	if got := res.Jobs[1].Status; got != StatusPending {
		t.Errorf("b is %s at the end, want %s", got, StatusPending)
	}
	if s := res.Summary; s.NodeFailures == 0 || s.End > 200*86400 {
		t.Errorf("%d node failures, end at day %d; want failures and an end within 200 days", s.NodeFailures, s.End/86400)
	}
}

func TestRunUntil(t *testing.T) {
	res := run(t, Config{Until: 500}, testFleet(t, "h100", 1), testQueues("h100", 8), gpuJob("a", 0, 1000, 1, 8))
	if s := res.Summary; s.End != 500 || s.Jobs.RunningAtEnd != 1 || s.Utilization != 1 {
		t.Errorf("end %d, running %d, utilization %v; want 500, 1, 1", s.End, s.Jobs.RunningAtEnd, s.Utilization)
	}
}

// Utilization by type: work that names one type loads only that type, and
// the fleet's utilization is the types' weighted by their capacity.
func TestRunUtilizationByType(t *testing.T) {
	f := testFleetOf(t, "h100", "h100", "h100", "b200")
	qs := []quota.Spec{
		{Name: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 24000}, "b200": {Nominal: 8000}}},
		{Name: "acme-q", Parent: "acme"},
	}
	// One h100 node busy all the time: 2 jobs of 8 back to back.
	a, b := gpuJob("a", 0, 500, 1, 8), gpuJob("b", 0, 500, 1, 8)
	a.Gangs[0].Shape.Accel = []string{"h100"}
	b.Gangs[0].Shape.Accel = []string{"h100"}
	b.Arrival = 500
	res := run(t, Config{}, f, qs, a, b)
	by := res.Summary.UtilizationByType
	if len(by) != 2 || by["b200"] != 0 || math.Abs(by["h100"]-1.0/3) > 1e-6 {
		t.Fatalf("utilization by type %v, want h100 1/3 and b200 0", by)
	}
	if all := res.Summary.Utilization; math.Abs(all-(3*by["h100"]+by["b200"])/4) > 1e-6 {
		t.Errorf("utilization %v is not the types' weighted by capacity (%v)", all, by)
	}
}
