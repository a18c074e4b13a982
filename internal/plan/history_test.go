package plan

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/forecast"
)

func TestParseKey(t *testing.T) {
	tests := map[string]struct {
		in   string
		want Key
		err  string
	}{
		"typed":      {in: "acme/training/h100", want: Key{"acme", "training", "h100"}},
		"any type":   {in: "acme/batch/*", want: Key{"acme", "batch", "*"}},
		"two parts":  {in: "acme/h100", err: `"acme/h100": want tenant/kind/accelerator, such as acme/training/h100 (* for any type)`},
		"bad kind":   {in: "acme/sleep/h100", err: `"acme/sleep/h100": kind "sleep": want one of training, fine-tuning, batch, service`},
		"no tenant":  {in: "/batch/h100", err: `"/batch/h100": tenant and accelerator must not be empty (* for any type)`},
		"empty type": {in: "acme/batch/", err: `"acme/batch/": tenant and accelerator must not be empty (* for any type)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || got.String() != tc.in {
				t.Errorf("ParseKey(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := map[string]struct {
		want Target
		err  bool
	}{
		"p95=4h":    {want: Target{95, 4 * 3600}},
		"p99.9=30m": {want: Target{99.9, 1800}},
		"p50=2d":    {want: Target{50, 2 * 86400}},
		"p100=0s":   {want: Target{100, 0}},
		"95=4h":     {err: true},
		"p0=4h":     {err: true},
		"p101=4h":   {err: true},
		"p95":       {err: true},
		"p95=soon":  {err: true},
		"p95=-1h":   {err: true},
	}
	for in, tc := range tests {
		got, err := ParseTarget(in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseTarget(%q) = %v, %v", in, got, err)
		}
		if err == nil && got.String() != in && in != "p95=4h" && in != "p99.9=30m" {
			continue
		}
	}
	if s := (Target{95, 4 * 3600}).String(); s != "p95=4h" {
		t.Errorf("String = %q", s)
	}
}

func TestAggregatorSumsWorkAtArrival(t *testing.T) {
	a := NewAggregator(3600, 1000)
	k := Key{"acme", "training", "h100"}
	for _, j := range []JobDemand{
		{Key: k, Arrival: 1000, Accels: 8, Hours: 2},   // step 0: 16
		{Key: k, Arrival: 4599, Accels: 16, Hours: 1},  // step 0: 16
		{Key: k, Arrival: 4600, Accels: 8, Hours: 0.5}, // step 1: 4
		{Key: Key{"acme", "batch", "*"}, Arrival: 1000 + 3*3600, Accels: 0.5, Hours: 4},
	} {
		if !a.Add(j) {
			t.Fatalf("job %+v left out", j)
		}
	}
	for _, j := range []JobDemand{{Key: k, Arrival: 999, Accels: 8, Hours: 1}, {Key: k, Arrival: 2000, Accels: 0, Hours: 1}, {Key: k, Arrival: 2000, Accels: 8, Hours: math.NaN()}} {
		if a.Add(j) {
			t.Errorf("job %+v counted", j)
		}
	}
	want := History{StepSec: 3600, Series: []Series{
		{Key: Key{"acme", "batch", "*"}, Values: []float64{0, 0, 0, 2}, Shape: Shape{Accels: 0.5, Hours: 4}, Jobs: 1},
		{Key: k, Values: []float64{32, 4, 0, 0}, Shape: Shape{Accels: 8, Hours: 1}, Jobs: 3},
	}}
	if diff := cmp.Diff(want, a.History()); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func TestWeeklySumsFullWeeksAndTheirProfile(t *testing.T) {
	// Hourly history of two and a half weeks: 10 in the first hour of
	// each week, 1 in every other hour.
	v := make([]float64, 2*168+84)
	for i := range v {
		v[i] = 1
		if i%168 == 0 {
			v[i] = 10
		}
	}
	h := History{StepSec: 3600, Series: []Series{{Key: Key{"a", "batch", "h100"}, Values: v}}}
	ws, dropped, err := h.Weekly()
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 84 {
		t.Errorf("dropped %d steps, want 84", dropped)
	}
	w := ws[0]
	if diff := cmp.Diff([]float64{177, 177}, w.Weeks); diff != "" {
		t.Errorf("weeks (-want +got):\n%s", diff)
	}
	if len(w.Profile) != 168 || math.Abs(w.Profile[0]-10.0/177) > 1e-12 || math.Abs(w.Profile[1]-1.0/177) > 1e-12 {
		t.Errorf("profile: %d slots, first %v, second %v", len(w.Profile), w.Profile[0], w.Profile[1])
	}
	// Daily history: 7 slots; a week's step: one.
	for _, step := range []int64{86400, WeekSec} {
		n := int(3 * WeekSec / step)
		hd := History{StepSec: step, Series: []Series{{Key: Key{"a", "batch", "h100"}, Values: make([]float64, n)}}}
		ws, _, err := hd.Weekly()
		if err != nil {
			t.Fatal(err)
		}
		if want := int(WeekSec / step); len(ws[0].Profile) != want {
			t.Errorf("step %d: %d slots, want %d", step, len(ws[0].Profile), want)
		}
	}
	if _, _, err := (History{StepSec: 5 * 3600, Series: h.Series}).Weekly(); err == nil {
		t.Error("a step of 5 hours, which does not divide a week, was taken")
	}
	short := History{StepSec: 86400, Series: []Series{{Key: Key{"a", "batch", "h100"}, Values: make([]float64, 10)}}}
	if _, _, err := short.Weekly(); err == nil || err.Error() != "series a/batch/h100: the history covers 1 full week; a plan needs at least 2" {
		t.Errorf("short history: %v", err)
	}
}

func TestParseJobsCSV(t *testing.T) {
	// The header of `sim run --report`'s jobs.csv (internal/report).
	const head = "id,tenant,queue,kind,accels,arrival,start,end,wait,status,preemptions,requeues,accel_hours,lost_accel_hours,reason\n"
	data := head +
		"a,acme,acme-q,training,16,100,100,3700,0,finished,0,0,16,0,\n" +
		"b,acme,acme-q,training,16,200,3700,7300,3500,finished,1,1,20,4,preempted\n" +
		"c,globex,g-q,batch,0.5,300,-1,-1,-1,pending,0,0,0,0,\n"
	got, err := ParseJobsCSV([]byte(data), "jobs.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := JobsCSV{Origin: 100, NeverRan: 1, Jobs: []JobDemand{
		{Key: Key{"acme", "training", AnyAccel}, Arrival: 100, Accels: 16, Hours: 1},
		{Key: Key{"acme", "training", AnyAccel}, Arrival: 200, Accels: 16, Hours: 1},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	typed, err := ParseJobsCSV([]byte("tenant,kind,accels,arrival,accel_hours,accel\nacme,batch,1,5,2,h200\n"), "j.csv")
	if err != nil || typed.Jobs[0].Key.Accel != "h200" {
		t.Errorf("accel column: %+v, %v", typed, err)
	}
	for name, tc := range map[string]struct{ data, want string }{
		"empty":          {"", "jobs.csv:1: empty file: want a header line naming the columns (tenant, kind, accels, arrival, accel_hours, ...)"},
		"missing column": {"tenant,kind,accels,arrival\n", `jobs.csv:1:1: no column "accel_hours": a jobs file needs tenant, kind, accels, arrival, accel_hours (the jobs.csv of sim run --report)`},
		"bad kind":       {head + "a,acme,q,sleep,1,0,0,1,0,finished,0,0,1,0,\n", `jobs.csv:2:10: kind: kind "sleep": want one of training, fine-tuning, batch, service`},
		"bad arrival":    {head + "a,acme,q,batch,1,-5,0,1,0,finished,0,0,1,0,\n", `jobs.csv:2:18: arrival: "-5": want whole seconds, 0 or more`},
		"bad hours":      {head + "a,acme,q,batch,1,5,0,1,0,finished,0,0,NaN,0,\n", `jobs.csv:2:39: accel_hours: "NaN": want a number, 0 or more`},
		"no jobs":        {head, "jobs.csv:2: no jobs after the header"},
		"ragged":         {head + "a,acme\n", "jobs.csv:2:1: wrong number of fields"},
	} {
		_, err := ParseJobsCSV([]byte(tc.data), "jobs.csv")
		var je *JobsCSVError
		if !errors.As(err, &je) || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestFromSeries(t *testing.T) {
	h, err := FromSeries([]forecast.Series{{ID: "b/batch/*", Values: []float64{1, 2}}, {ID: "a/training/h100", Values: []float64{5, 6, 7}}}, 86400)
	if err != nil {
		t.Fatal(err)
	}
	want := History{StepSec: 86400, Series: []Series{
		{Key: Key{"a", "training", "h100"}, Values: []float64{5, 6, 7}},
		{Key: Key{"b", "batch", "*"}, Values: []float64{0, 1, 2}},
	}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	for _, bad := range [][]forecast.Series{
		{{ID: "nope", Values: []float64{1}}},
		{{ID: "a/batch/h100", Values: []float64{1, -1}}},
		{{ID: "a/batch/h100", Values: []float64{1}}, {ID: "a/batch/h100", Values: []float64{2}}},
	} {
		if _, err := FromSeries(bad, 3600); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func TestRetypeGivesAnyToTheOnlyType(t *testing.T) {
	h := History{StepSec: 3600, Series: []Series{
		{Key: Key{"a", "batch", "*"}, Values: []float64{1, 2}, Jobs: 5, Shape: Shape{Accels: 1, Hours: 1}},
		{Key: Key{"a", "batch", "h100"}, Values: []float64{10, 20}, Jobs: 2, Shape: Shape{Accels: 8, Hours: 2}},
	}}
	got := h.Retype([]string{"h100"})
	want := History{StepSec: 3600, Series: []Series{{Key: Key{"a", "batch", "h100"}, Values: []float64{11, 22}, Jobs: 7, Shape: Shape{Accels: 1, Hours: 1}}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("retyped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(h, h.Retype([]string{"h100", "h200"})); diff != "" {
		t.Errorf("two types: changed (-want +got):\n%s", diff)
	}
	if h.Series[0].Values[0] != 1 {
		t.Error("Retype changed its input")
	}
}

func TestForecastAddsCommitments(t *testing.T) {
	ws := []Weekly{{Key: Key{"a", "training", "h100"}, Weeks: []float64{1000, 1000, 1000, 1000, 1000, 1000}, Profile: []float64{1}, Shape: Shape{Accels: 8, Hours: 2}}}
	cs := []Commitment{
		{Key: Key{"a", "training", "h100"}, Accels: 10, From: 2, To: 3},
		{Key: Key{"z", "batch", "*"}, Accels: 1, From: 4},
	}
	ds, err := Forecast(ws, cs, ForecastOptions{Horizon: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Key.Tenant != "a" || ds[1].Key.Tenant != "z" {
		t.Fatalf("series %+v", ds)
	}
	approx := cmpopts.EquateApprox(0, 1e-6)
	if diff := cmp.Diff([]float64{1000, 2680, 2680, 1000, 1000}, ds[0].Point, approx); diff != "" {
		t.Errorf("point with commitment (-want +got):\n%s", diff)
	}
	for w := range 5 {
		if !(ds[0].Lower[w] <= ds[0].Point[w] && ds[0].Point[w] <= ds[0].Upper[w]) {
			t.Errorf("week %d: interval %v..%v does not hold %v", w+1, ds[0].Lower[w], ds[0].Upper[w], ds[0].Point[w])
		}
	}
	if diff := cmp.Diff([]float64{0, 0, 0, 168, 168}, ds[1].Upper, approx); diff != "" {
		t.Errorf("commitment alone (-want +got):\n%s", diff)
	}
	if ds[1].Shape != DefaultShape {
		t.Errorf("a committed series without history has shape %v, want the default", ds[1].Shape)
	}
}

// workloadProblem is a problem with one series, for the workload's tests.
func workloadProblem(t *testing.T, shape Shape, weekly []float64, profile []float64) *Problem {
	f, err := fleet.New(nil, nil, []fleet.Node{{Name: "n1", Path: []string{"a", "b", "c", "d"}, Accel: "h100", Count: 8}})
	if err != nil {
		t.Fatal(err)
	}
	d := Demand{Key: Key{"a", "batch", "h100"}, History: []float64{weekly[0], weekly[0]}, Point: weekly, Upper: weekly, Lower: weekly,
		Committed: make([]float64, len(weekly)), Shape: shape, Profile: profile}
	return &Problem{Fleet: f, Catalog: &Catalog{}, Demand: []Demand{d}, Horizon: len(weekly), Warmup: 1}
}

func workPerWeek(p *Problem, ws []Arrival) map[int]float64 {
	out := map[int]float64{}
	for _, a := range ws {
		accels := float64(a.Replicas*a.PerReplica) + float64(a.Milli)/1000
		out[a.Week] += accels * float64(a.Sec) / 3600
	}
	return out
}

func TestWorkloadKeepsTheWork(t *testing.T) {
	p := workloadProblem(t, Shape{Accels: 8, Hours: 2}, []float64{160, 168 * 8, 0, 50}, []float64{0.5, 0.5})
	ws := p.Workload(WorkloadOptions{Seed: 3, MaxJobsPerWeek: 1000})
	got := workPerWeek(p, ws)
	// 16 accelerator-hours a job; each week's work carries its last
	// fraction of a job to the next: 160 -> 10 jobs; 1344 -> 84; 0 -> 0;
	// 50 -> 3 (48), 2 carried past the horizon.
	want := map[int]float64{0: 160, 1: 160, 2: 1344, 4: 48}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("work per week (-want +got):\n%s", diff)
	}
	for i, a := range ws {
		if start := int64(p.Warmup+a.Week-1) * WeekSec; a.Week > 0 && (a.At < start || a.At >= start+WeekSec) {
			t.Errorf("job %d of week %d arrives at %d, outside its week", i, a.Week, a.At)
		}
		if i > 0 && a.At < ws[i-1].At {
			t.Errorf("jobs out of order at %d", i)
		}
	}
}

func TestWorkloadShapes(t *testing.T) {
	tests := map[string]struct {
		shape               Shape
		replicas, per       int
		milli               int32
		jobsInWeek1, budget int
	}{
		"a share of one": {shape: Shape{Accels: 0.25, Hours: 1}, replicas: 1, milli: 250, jobsInWeek1: 640, budget: 1000},
		"one node":       {shape: Shape{Accels: 8, Hours: 1}, replicas: 1, per: 8, jobsInWeek1: 20, budget: 1000},
		// 21 accelerators a job (3 x 7): 7 jobs in the warm-up week, 13
		// carried, 8 in week 1.
		"spread over nodes":    {shape: Shape{Accels: 20, Hours: 1}, replicas: 3, per: 7, jobsInWeek1: 8, budget: 1000},
		"more than the budget": {shape: Shape{Accels: 1, Hours: 1}, replicas: 1, per: 1, jobsInWeek1: 20, budget: 20},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := workloadProblem(t, tc.shape, []float64{160, 160}, []float64{1})
			ws := p.Workload(WorkloadOptions{Seed: 1, MaxJobsPerWeek: tc.budget})
			n := 0
			for _, a := range ws {
				if a.Week != 1 {
					continue
				}
				n++
				if a.Replicas != tc.replicas || a.PerReplica != tc.per || a.Milli != tc.milli {
					t.Fatalf("job %+v, want %d x %d (milli %d)", a, tc.replicas, tc.per, tc.milli)
				}
			}
			if n != tc.jobsInWeek1 {
				t.Errorf("%d jobs in week 1, want %d", n, tc.jobsInWeek1)
			}
			job := float64(tc.replicas*tc.per) + float64(tc.milli)/1000
			if w := workPerWeek(p, ws)[1]; math.Abs(w-160) > job*8+1e-9 {
				t.Errorf("week 1 work %v, want 160 within a job", w)
			}
		})
	}
}

func TestWorkloadFollowsTheProfileAndTheSeed(t *testing.T) {
	// All the work in the second day of the week.
	profile := []float64{0, 1, 0, 0, 0, 0, 0}
	p := workloadProblem(t, Shape{Accels: 1, Hours: 1}, []float64{100, 100}, profile)
	for _, even := range []bool{false, true} {
		ws := p.Workload(WorkloadOptions{Seed: 9, Even: even})
		for _, a := range ws {
			if in := (a.At % WeekSec) / 86400; a.Week > 0 && in != 1 {
				t.Fatalf("even=%v: a job arrives on day %d of its week", even, in)
			}
		}
		if even {
			// 100 jobs in 86400 s: one every 864 s, at the middle of each share.
			if d := ws[len(ws)-1].At - ws[len(ws)-2].At; d != 864 {
				t.Errorf("even arrivals %d s apart, want 864", d)
			}
		}
	}
	a := p.Workload(WorkloadOptions{Seed: 9})
	b := p.Workload(WorkloadOptions{Seed: 9})
	c := p.Workload(WorkloadOptions{Seed: 10})
	if !cmp.Equal(a, b) {
		t.Error("the same seed gave different workloads")
	}
	if cmp.Equal(a, c) {
		t.Error("another seed gave the same workload")
	}
}

// The work of a workload is the demand's, short of less than a job at the
// end: no work is lost or made up, whatever the shape and the budget.
func TestWorkloadWorkProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		weeks := rapid.SliceOfN(rapid.Float64Range(0, 5000), 2, 8).Draw(t, "weeks")
		shape := Shape{Accels: rapid.Float64Range(0.1, 40).Draw(t, "accels"), Hours: rapid.Float64Range(0.1, 24).Draw(t, "hours")}
		budget := rapid.IntRange(1, 300).Draw(t, "budget")
		f, _ := fleet.New(nil, nil, []fleet.Node{{Name: "n1", Path: []string{"a", "b", "c", "d"}, Accel: "h100", Count: 8}})
		d := Demand{Key: Key{"a", "batch", "h100"}, History: weeks, Point: weeks, Upper: weeks, Lower: weeks, Shape: shape, Profile: []float64{1}}
		p := &Problem{Fleet: f, Catalog: &Catalog{}, Demand: []Demand{d}, Horizon: len(weeks), Warmup: 0}
		ws := p.Workload(WorkloadOptions{Seed: 1, MaxJobsPerWeek: budget})
		total, made := 0.0, 0.0
		for _, v := range weeks {
			total += v
		}
		longest := 0.0
		for _, a := range ws {
			accels := float64(a.Replicas*a.PerReplica) + float64(a.Milli)/1000
			w := accels * float64(a.Sec) / 3600
			made += w
			longest = max(longest, w)
		}
		// Rounding each runtime to a second moves the work by at most a
		// second's worth per job.
		slack := max(longest, shape.Work()*2) + float64(len(ws))*shape.Accels*2/3600 + 1e-6
		if made > total+slack || made < total-slack {
			t.Fatalf("workload carries %v accelerator-hours of %v (slack %v, %d jobs)", made, total, slack, len(ws))
		}
	})
}
