package sim

import (
	"math"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/carbon"
)

func utc(s string) int64 {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t.Unix()
}

func TestNextWorkdayDeadline(t *testing.T) {
	// 2020-01-06 is a Monday.
	tests := map[string]struct{ finish, want string }{
		"workday afternoon stands": {"2020-01-08 13:30:00", "2020-01-08 13:30:00"},
		"09:00 stands":             {"2020-01-08 09:00:00", "2020-01-08 09:00:00"},
		"17:00 stands":             {"2020-01-08 17:00:00", "2020-01-08 17:00:00"},
		"after 17:00: next day":    {"2020-01-08 17:30:00", "2020-01-09 09:00:00"},
		"friday evening: saturday": {"2020-01-10 20:00:00", "2020-01-11 09:00:00"},
		"before 09:00: that day":   {"2020-01-08 03:00:00", "2020-01-08 09:00:00"},
		"saturday: monday":         {"2020-01-11 14:00:00", "2020-01-13 09:00:00"},
		"sunday: monday":           {"2020-01-12 05:00:00", "2020-01-13 09:00:00"},
		"new year's eve":           {"2020-12-31 23:30:00", "2021-01-01 09:00:00"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := time.Unix(NextWorkdayDeadline(utc(tc.finish)), 0).UTC().Format(time.DateTime)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("deadline (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDrawCarbonJobs(t *testing.T) {
	from, to := utc("2020-01-01 00:00:00"), utc("2021-01-01 00:00:00")
	jobs := DrawCarbonJobs(CarbonJobs, from, to, 7)
	if len(jobs) != CarbonJobs {
		t.Fatalf("%d jobs, want %d", len(jobs), CarbonJobs)
	}
	perWeekday := map[time.Weekday]int{}
	for i, j := range jobs {
		at := time.Unix(j.Arrival, 0).UTC()
		perWeekday[at.Weekday()]++
		mins := at.Hour()*60 + at.Minute()
		switch {
		case i > 0 && j.Arrival < jobs[i-1].Arrival:
			t.Fatalf("job %d arrives before job %d", i, i-1)
		case at.Weekday() == time.Saturday || at.Weekday() == time.Sunday:
			t.Fatalf("job %d arrives on a %s", i, at.Weekday())
		case mins < 9*60 || mins > 16*60+30 || mins%30 != 0:
			t.Fatalf("job %d arrives at %s, want a half hour 09:00..16:30", i, at.Format(time.TimeOnly))
		case j.Duration < 4*3600 || j.Duration >= 90*3600 || j.Duration%1800 != 0:
			t.Fatalf("job %d runs %d s, want half hours from 4 h to 89.5 h", i, j.Duration)
		case j.Deadline < j.Arrival+j.Duration:
			t.Fatalf("job %d's deadline is before it could finish", i)
		case j.Arrival < from || j.Arrival >= to:
			t.Fatalf("job %d arrives outside the year", i)
		}
	}
	// Uniform over the workdays: each weekday gets about a fifth.
	for wd, n := range perWeekday {
		if n < CarbonJobs/5-150 || n > CarbonJobs/5+150 {
			t.Errorf("%s: %d jobs, want about %d", wd, n, CarbonJobs/5)
		}
	}
	if diff := cmp.Diff(jobs, DrawCarbonJobs(CarbonJobs, from, to, 7)); diff != "" {
		t.Errorf("same seed, other jobs")
	}
}

func gbSlice(t *testing.T) carbon.Series {
	t.Helper()
	data, err := os.ReadFile("testdata/carbon/gb-2020-01.csv")
	if err != nil {
		t.Fatal(err)
	}
	s, err := carbon.ReadSeries(data, "gb-2020-01.csv", 1800)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// referenceKg computes the experiment's emissions straight from the
// paper's rules, with no scheduler: the baseline runs each job at
// arrival; shifted, a job starts at the half hour before its deadline
// whose forecast mean over its run is least, or (interruptible) runs in
// the half hours of least forecast before its deadline. Emissions count
// the true series over the half hours of [from, to).
func referenceKg(s carbon.Series, jobs []CarbonJob, forecast carbon.Series, interruptible bool, from, to int64, kw float64) (base, shifted float64) {
	idx := func(t int64) int { return int((t - s.Start) / 1800) }
	emit := func(step int) float64 {
		at := s.Start + int64(step)*1800
		if at < from || at >= to {
			return 0
		}
		return s.Values[step] * kw / 2 // g over half an hour
	}
	for _, j := range jobs {
		a, d, dl := idx(j.Arrival), int(j.Duration/1800), idx(j.Deadline)
		for k := a; k < a+d; k++ {
			base += emit(k)
		}
		if !interruptible {
			best, bestCost := a, 0.0
			for k := a; k < a+d; k++ {
				bestCost += forecast.Values[k]
			}
			for st := a + 1; st+d <= dl; st++ {
				c := 0.0
				for k := st; k < st+d; k++ {
					c += forecast.Values[k]
				}
				if c < bestCost-1e-9*math.Abs(bestCost) {
					best, bestCost = st, c
				}
			}
			for k := best; k < best+d; k++ {
				shifted += emit(k)
			}
			continue
		}
		steps := make([]int, 0, dl-a)
		for k := a; k < dl; k++ {
			steps = append(steps, k)
		}
		sort.SliceStable(steps, func(x, y int) bool { return forecast.Values[steps[x]] < forecast.Values[steps[y]] })
		for _, k := range steps[:d] {
			shifted += emit(k)
		}
	}
	return base / 1000, shifted / 1000
}

// The experiment through the core gives what the paper's rules give
// computed directly, on January 2020 of the Great Britain series, for both
// kinds of job, noise and all: the core implements the experiment
// faithfully. And it saves carbon, missing no deadline.
func TestCarbonFidelity(t *testing.T) {
	s := gbSlice(t)
	from, to := utc("2020-01-01 00:00:00"), utc("2020-02-01 00:00:00")
	const jobs, reps = 300, 3
	for _, interruptible := range []bool{false, true} {
		cfg := CarbonConfig{Sites: []CarbonSite{{Name: "gb", Series: s}}, Interruptible: interruptible, Error: CarbonError, Seed: 3,
			Repetitions: reps, Jobs: jobs, From: from, To: to, Parallel: 2}
		got, err := RunCarbon(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var base, shifted float64
		for rep := range reps {
			seed := cfg.Seed*1_000_003 + uint64(rep)
			js := DrawCarbonJobs(jobs, from, to, seed)
			noisy := s.WithNoise(CarbonError*s.Mean(from, s.End()), seed*31)
			b, sh := referenceKg(s, js, noisy, interruptible, from, to, 0.7)
			base += b / reps
			shifted += sh / reps
		}
		if math.Abs(got.BaselineKg-base) > 1e-3 || math.Abs(got.ShiftedKg-shifted) > 1e-3 {
			t.Errorf("interruptible=%v: through the core %.3f -> %.3f kg, by the paper's rules %.3f -> %.3f kg", interruptible, got.BaselineKg, got.ShiftedKg, base, shifted)
		}
		if got.SavingPct <= 1 || got.DeadlinesMissed != 0 || got.BaselineDeadlinesMissed != 0 {
			t.Errorf("interruptible=%v: saving %.2f%%, %d deadlines missed (baseline %d)", interruptible, got.SavingPct, got.DeadlinesMissed, got.BaselineDeadlinesMissed)
		}
		t.Logf("interruptible=%v: %.1f -> %.1f kg, %.2f%% saved", interruptible, got.BaselineKg, got.ShiftedKg, got.SavingPct)
	}
}

// A finite fleet: jobs wait for room, shifting still saves, the core keeps
// every deadline of the jobs it deferred, and a run repeats itself.
func TestCarbonCapacity(t *testing.T) {
	s := gbSlice(t)
	cfg := CarbonConfig{Sites: []CarbonSite{{Name: "gb", Series: s}}, Error: CarbonError, Seed: 1, Repetitions: 2, Jobs: 300,
		From: utc("2020-01-01 00:00:00"), To: utc("2020-02-01 00:00:00"), Capacity: 24}
	a, err := RunCarbon(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RunCarbon(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same experiment, other results (-first +second):\n%s", diff)
	}
	if a.BaselineWait.MeanH <= 0 || a.ShiftedWait.MeanH <= a.BaselineWait.MeanH {
		t.Errorf("waits %+v then %+v: want jobs to wait on 24 accelerators, and longer when shifted", a.BaselineWait, a.ShiftedWait)
	}
	if a.SavingPct <= 0 {
		t.Errorf("saving %.2f%% on a finite fleet", a.SavingPct)
	}
	t.Logf("capacity 24: %.2f%% saved, waits %+v -> %+v, deadlines missed %d (baseline %d)", a.SavingPct, a.BaselineWait, a.ShiftedWait, a.DeadlinesMissed, a.BaselineDeadlinesMissed)
}

// Two sites: each on its own, the site that only picks the cleanest grid
// at arrival, and both shifted in space and time, against the best single
// site.
func TestCarbonSites(t *testing.T) {
	s := gbSlice(t)
	// A second grid: the same one twelve hours later, as a region half a
	// world away would see its own day.
	other := s
	other.Values = append(append([]float64(nil), s.Values[24:]...), s.Values[:24]...)
	cfg := CarbonConfig{Sites: []CarbonSite{{Name: "gb", Series: s}, {Name: "east", Series: other}}, Error: CarbonError, Seed: 1,
		Repetitions: 2, Jobs: 200, From: utc("2020-01-01 00:00:00"), To: utc("2020-02-01 00:00:00")}
	r, err := RunCarbon(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.PerSite) != 2 || r.BestSite == "" || r.Spatial == nil {
		t.Fatalf("result %+v: want both sites, the best of them and the spatial run", r)
	}
	best := r.PerSite[0]
	if r.PerSite[1].Baseline.Kg < best.Baseline.Kg {
		best = r.PerSite[1]
	}
	if r.BaselineKg != best.Baseline.Kg || r.BestSite != best.Site {
		t.Errorf("baseline %.3f at %s, want the best single site %s's %.3f", r.BaselineKg, r.BestSite, best.Site, best.Baseline.Kg)
	}
	if r.ShiftedKg >= best.Shifted.Kg || r.Spatial.Kg >= r.BaselineKg {
		t.Errorf("space and time %.3f kg, time at the best site %.3f kg, space alone %.3f kg against %.3f: want each move to help", r.ShiftedKg, best.Shifted.Kg, r.Spatial.Kg, r.BaselineKg)
	}
	if r.DeadlinesMissed != 0 {
		t.Errorf("%d deadlines missed", r.DeadlinesMissed)
	}
}
