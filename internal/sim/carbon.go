package sim

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// The "ML jobs" experiment of Wiesner et al., "Let's Wait Awhile: How
// Temporal Workload Shifting Can Reduce Carbon Emissions in the Cloud"
// (Middleware '21), run through the scheduling core. Jobs arrive only on
// workdays, uniformly over them, at a start time uniform over the
// half hours from 09:00 to 16:30, and run for a duration uniform over the
// half hours from 4 h to 89.5 h; each holds one accelerator. The baseline
// runs every job at arrival. The shifted run gives each job the "next
// workday" deadline and lets the core's carbon rule plan it on a forecast:
// the true series plus Gaussian noise of a standard deviation of Error
// times the series' mean. Emissions are the true intensity times each
// job's power over the half hours of the period (2020 in the paper), from
// the core's usage records. Each repetition draws its own jobs and noise;
// the figures are means over the repetitions.
//
// The paper's capacity is unlimited: each site gets an accelerator per job
// unless Capacity says otherwise, and then jobs wait for room (and the
// waits say what shifting costs). With several sites the shifted run
// moves work in space and time; it is compared with the best single site.

// The experiment's forecasts are the carbon package's; it serves the core
// without either importing the other.
var _ sched.Forecast = (*carbon.Forecast)(nil)

// CarbonSite is one site of the experiment: a name and its grid's
// carbon-intensity series.
type CarbonSite struct {
	Name   string
	Series carbon.Series
}

// CarbonConfig describes one experiment.
type CarbonConfig struct {
	Sites []CarbonSite
	// Interruptible lets jobs run in any clean half hours before their
	// deadline.
	Interruptible bool
	// Error is the forecast noise's standard deviation as a share of each
	// series' mean (0.05 in the paper).
	Error float64
	Seed  uint64
	// Repetitions (10 in the paper) and Jobs a repetition (3,387 over a
	// whole year in the paper).
	Repetitions, Jobs int
	// Capacity is the accelerators of each site; 0 is one per job, so
	// that no job ever waits (the paper's unlimited capacity).
	Capacity int
	// From and To bound the arrivals and the emissions counted (Unix
	// seconds, UTC); zero means the first calendar year all the series
	// cover whole.
	From, To int64
	// Accel is the accelerator each job holds (its board power is the
	// job's draw); empty means h100.
	Accel string
	// Parallel bounds the runs at once; 0 means GOMAXPROCS.
	Parallel int
}

// CarbonDefaults are the paper's figures.
const (
	CarbonJobs        = 3387
	CarbonRepetitions = 10
	CarbonError       = 0.05
	carbonStep        = 1800
)

// WaitStats summarises jobs' waits (first start - arrival), in hours.
type WaitStats struct {
	MeanH float64 `json:"mean_h"`
	P95H  float64 `json:"p95_h"`
	MaxH  float64 `json:"max_h"`
}

// CarbonRun is one configuration's figures, means over the repetitions.
type CarbonRun struct {
	Kg              float64   `json:"kg"`
	DeadlinesMissed int       `json:"deadlines_missed"`
	Wait            WaitStats `json:"wait"`
	Suspensions     float64   `json:"suspensions,omitempty"`
}

// CarbonSiteResult is what one site does on its own.
type CarbonSiteResult struct {
	Site     string    `json:"site"`
	Baseline CarbonRun `json:"baseline"`
	Shifted  CarbonRun `json:"shifted"`
	// SavingPct is Shifted against Baseline.
	SavingPct float64 `json:"saving_pct"`
}

// CarbonResult is the outcome of an experiment. With one site, the
// baseline runs every job at arrival there and the shifted run shifts it
// in time. With several, the baseline is the best single site (the least
// emissions running at arrival) and the shifted run shifts in space and
// time over all of them; Sites gives every site on its own and Spatial
// the run that only picks the cleanest site at arrival.
type CarbonResult struct {
	Sites         []string `json:"sites"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	Jobs          int      `json:"jobs"`
	Repetitions   int      `json:"repetitions"`
	Interruptible bool     `json:"interruptible"`
	Error         float64  `json:"error"`
	// Capacity is the accelerators of each site; 0 when unlimited.
	Capacity        int     `json:"capacity"`
	BaselineKg      float64 `json:"baseline_kg"`
	ShiftedKg       float64 `json:"shifted_kg"`
	SavingPct       float64 `json:"saving_pct"`
	DeadlinesMissed int     `json:"deadlines_missed"`
	// BaselineDeadlinesMissed counts the baseline's jobs that end after
	// the deadline the shifted run gives them (waits for capacity).
	BaselineDeadlinesMissed int                `json:"baseline_deadlines_missed"`
	BaselineWait            WaitStats          `json:"baseline_wait"`
	ShiftedWait             WaitStats          `json:"shifted_wait"`
	Suspensions             float64            `json:"suspensions,omitempty"`
	BestSite                string             `json:"best_site,omitempty"`
	PerSite                 []CarbonSiteResult `json:"per_site,omitempty"`
	Spatial                 *CarbonRun         `json:"spatial,omitempty"`
	SpatialSavingPct        float64            `json:"spatial_saving_pct,omitempty"`
}

// NextWorkdayDeadline is the deadline the experiment gives a job that
// would finish at finish if run at once ("next workday"): a finish on a
// workday between 09:00 and 17:00 stands; on a Saturday the job must end by
// Monday 09:00; on a Sunday or after 17:00, by 09:00 the next day; before
// 09:00, by 09:00 that day. Times are UTC, as the series are.
func NextWorkdayDeadline(finish int64) int64 {
	t := time.Unix(finish, 0).UTC()
	nine := time.Date(t.Year(), t.Month(), t.Day(), 9, 0, 0, 0, time.UTC)
	hour := float64(t.Hour()) + float64(t.Minute())/60 + float64(t.Second())/3600
	switch {
	case t.Weekday() == time.Saturday:
		return nine.AddDate(0, 0, 2).Unix()
	case t.Weekday() == time.Sunday || hour > 17:
		return nine.AddDate(0, 0, 1).Unix()
	case hour < 9:
		return nine.Unix()
	}
	return finish
}

// CarbonJob is one job of the experiment.
type CarbonJob struct {
	Arrival, Duration, Deadline int64
}

// DrawCarbonJobs draws n jobs arriving on the workdays of [from, to), in
// arrival order (equal arrivals in the order drawn).
func DrawCarbonJobs(n int, from, to int64, seed uint64) []CarbonJob {
	r := rand.New(rand.NewPCG(seed, 0x6d6c2d6a6f6273))
	var days []int64
	for d := time.Unix(from, 0).UTC(); d.Unix() < to; d = d.AddDate(0, 0, 1) {
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			days = append(days, d.Unix())
		}
	}
	if len(days) == 0 {
		return nil
	}
	out := make([]CarbonJob, n)
	for i := range out {
		day := days[r.IntN(len(days))]
		start := day + 9*3600 + int64(r.IntN(16))*carbonStep // 09:00 .. 16:30
		dur := int64(8+r.IntN(172)) * carbonStep             // 4 h .. 89.5 h
		out[i] = CarbonJob{Arrival: start, Duration: dur, Deadline: NextWorkdayDeadline(start + dur)}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Arrival < out[b].Arrival })
	return out
}

// wholeYear finds the first calendar year every series covers.
func wholeYear(sites []CarbonSite) (int64, int64, error) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	for _, s := range sites {
		lo, hi = max(lo, s.Series.Start), min(hi, s.Series.End())
	}
	y := time.Unix(lo, 0).UTC()
	start := time.Date(y.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	if start.Unix() < lo {
		start = start.AddDate(1, 0, 0)
	}
	end := start.AddDate(1, 0, 0)
	if end.Unix() > hi {
		return 0, 0, fmt.Errorf("the series cover %s to %s together: no whole calendar year; give the period (from, to)",
			time.Unix(lo, 0).UTC().Format(time.DateOnly), time.Unix(hi, 0).UTC().Format(time.DateOnly))
	}
	return start.Unix(), end.Unix(), nil
}

// carbonRunKind is one of the runs a repetition makes.
type carbonRunKind struct {
	sites   []int // indices of CarbonConfig.Sites in the fleet
	shift   bool  // the carbon admission rule plans deferrable jobs
	spatial bool  // jobs run at arrival at the site cleanest then
}

// RunCarbon runs the experiment.
func RunCarbon(cfg CarbonConfig) (*CarbonResult, error) {
	if len(cfg.Sites) == 0 {
		return nil, fmt.Errorf("carbon: no site: give at least one carbon-intensity series")
	}
	names := map[string]bool{}
	for i, s := range cfg.Sites {
		if s.Name == "" || strings.ContainsAny(s.Name, "/ ") || names[s.Name] {
			return nil, fmt.Errorf("carbon: site %d: name %q is empty, holds / or a space, or is used twice", i, s.Name)
		}
		names[s.Name] = true
		if s.Series.Step != carbonStep || s.Series.IsConstant() {
			return nil, fmt.Errorf("carbon: site %s: want a series of %d-second steps", s.Name, carbonStep)
		}
	}
	if cfg.Repetitions <= 0 {
		cfg.Repetitions = CarbonRepetitions
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = CarbonJobs
	}
	if cfg.Error < 0 || math.IsNaN(cfg.Error) {
		return nil, fmt.Errorf("carbon: error %v: want a share of the series' mean, 0 or more", cfg.Error)
	}
	if cfg.Capacity < 0 {
		return nil, fmt.Errorf("carbon: capacity %d: want 0 (unlimited) or more", cfg.Capacity)
	}
	if cfg.Accel == "" {
		cfg.Accel = "h100"
	}
	cat := fleet.DefaultCatalog()
	ti := cat.Index(cfg.Accel)
	if ti < 0 {
		return nil, fmt.Errorf("carbon: accelerator %q: want one of %s", cfg.Accel, strings.Join(cat.Names(), ", "))
	}
	if cfg.From == 0 && cfg.To == 0 {
		var err error
		if cfg.From, cfg.To, err = wholeYear(cfg.Sites); err != nil {
			return nil, fmt.Errorf("carbon: %w", err)
		}
	}
	if cfg.To <= cfg.From {
		return nil, fmt.Errorf("carbon: the period ends before it starts")
	}
	for _, s := range cfg.Sites {
		if s.Series.Start > cfg.From || s.Series.End() < cfg.To {
			return nil, fmt.Errorf("carbon: site %s: its series (%s to %s) does not cover the period", s.Name,
				time.Unix(s.Series.Start, 0).UTC().Format(time.DateTime), time.Unix(s.Series.End(), 0).UTC().Format(time.DateTime))
		}
	}
	kw := cat.Types[ti].BoardPowerW / 1000

	// The runs of one repetition.
	var kinds []carbonRunKind
	all := make([]int, len(cfg.Sites))
	for i := range all {
		all[i] = i
	}
	for i := range cfg.Sites {
		kinds = append(kinds, carbonRunKind{sites: []int{i}}, carbonRunKind{sites: []int{i}, shift: true})
	}
	if len(cfg.Sites) > 1 {
		kinds = append(kinds, carbonRunKind{sites: all, spatial: true}, carbonRunKind{sites: all, shift: true})
	}
	type task struct{ rep, kind int }
	type outcome struct {
		kg          float64
		missed      int
		waits       []float64
		suspensions int64
		err         error
	}
	results := make([][]outcome, cfg.Repetitions)
	for r := range results {
		results[r] = make([]outcome, len(kinds))
	}
	par := cfg.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	tasks := make(chan task)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range tasks {
				o := &results[t.rep][t.kind]
				o.kg, o.missed, o.waits, o.suspensions, o.err = runCarbonOnce(cfg, kinds[t.kind], t.rep, kw)
			}
		}()
	}
	for r := range cfg.Repetitions {
		for k := range kinds {
			tasks <- task{r, k}
		}
	}
	close(tasks)
	wg.Wait()

	// Means over the repetitions, per run kind.
	runs := make([]CarbonRun, len(kinds))
	for k := range kinds {
		var waits []float64
		for r := range cfg.Repetitions {
			o := results[r][k]
			if o.err != nil {
				return nil, o.err
			}
			runs[k].Kg += o.kg / float64(cfg.Repetitions)
			runs[k].DeadlinesMissed += o.missed
			runs[k].Suspensions += float64(o.suspensions) / float64(cfg.Repetitions)
			waits = append(waits, o.waits...)
		}
		runs[k].Kg = round3(runs[k].Kg)
		runs[k].Wait = waitStats(waits)
	}
	res := &CarbonResult{
		From: time.Unix(cfg.From, 0).UTC().Format(time.DateTime), To: time.Unix(cfg.To, 0).UTC().Format(time.DateTime),
		Jobs: cfg.Jobs, Repetitions: cfg.Repetitions, Interruptible: cfg.Interruptible, Error: cfg.Error, Capacity: cfg.Capacity,
	}
	for _, s := range cfg.Sites {
		res.Sites = append(res.Sites, s.Name)
	}
	base, shifted := runs[0], runs[1]
	if len(cfg.Sites) > 1 {
		best := 0
		for i := range cfg.Sites {
			b, sh := runs[2*i], runs[2*i+1]
			res.PerSite = append(res.PerSite, CarbonSiteResult{Site: cfg.Sites[i].Name, Baseline: b, Shifted: sh, SavingPct: savingPct(b.Kg, sh.Kg)})
			if b.Kg < runs[2*best].Kg {
				best = i
			}
		}
		res.BestSite = cfg.Sites[best].Name
		base, shifted = runs[2*best], runs[len(runs)-1]
		sp := runs[len(runs)-2]
		res.Spatial = &sp
		res.SpatialSavingPct = savingPct(base.Kg, sp.Kg)
	}
	res.BaselineKg, res.ShiftedKg = base.Kg, shifted.Kg
	res.SavingPct = savingPct(base.Kg, shifted.Kg)
	res.DeadlinesMissed, res.BaselineDeadlinesMissed = shifted.DeadlinesMissed, base.DeadlinesMissed
	res.BaselineWait, res.ShiftedWait = base.Wait, shifted.Wait
	res.Suspensions = shifted.Suspensions
	return res, nil
}

func savingPct(base, x float64) float64 {
	if base <= 0 {
		return 0
	}
	return round3(100 * (1 - x/base))
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func waitStats(w []float64) WaitStats {
	if len(w) == 0 {
		return WaitStats{}
	}
	slices.Sort(w)
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	return WaitStats{MeanH: round3(sum / float64(len(w))), P95H: round3(Percentile(w, 95)), MaxH: round3(w[len(w)-1])}
}

// runCarbonOnce makes one run of one repetition and returns the kg of CO2
// its jobs emitted over the period, the deadlines missed, the waits
// (hours) and the suspensions.
func runCarbonOnce(cfg CarbonConfig, kind carbonRunKind, rep int, kw float64) (float64, int, []float64, int64, error) {
	seed := cfg.Seed*1_000_003 + uint64(rep)
	jobs := DrawCarbonJobs(cfg.Jobs, cfg.From, cfg.To, seed)
	capacity := cfg.Capacity
	if capacity == 0 {
		capacity = len(jobs)
	}
	// One zone per site in region "grid", racks of eight nodes of eight.
	var nodes []fleet.Node
	forecast, err := carbon.NewForecast(carbonStep)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	truth := map[string]carbon.Series{}
	for _, si := range kind.sites {
		s := cfg.Sites[si]
		path := "grid/" + s.Name
		truth[path] = s.Series
		for n := 0; n*8 < capacity; n++ {
			nodes = append(nodes, fleet.Node{Name: fmt.Sprintf("%s-n%d", s.Name, n+1), Path: []string{"grid", s.Name, "b1", fmt.Sprintf("r%d", n/8+1)},
				Accel: cfg.Accel, Count: min(8, capacity-n*8), CPUMilli: 64000, MemoryMiB: 512 << 10})
		}
		// The forecast: the series plus noise of a share of its mean
		// over the period and after, as the paper draws it.
		sd := cfg.Error * s.Series.Mean(cfg.From, s.Series.End())
		if err := forecast.Set(path, s.Series.WithNoise(sd, seed*31+uint64(si))); err != nil {
			return 0, 0, nil, 0, err
		}
	}
	f, err := fleet.New(nil, nil, nodes)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	// Quota is no limit: the fleet is.
	milli := int64(1) << 40
	specs := []quota.Spec{{Name: "ml", Quotas: map[string]quota.Limits{cfg.Accel: {Nominal: milli}}},
		{Name: "ml-jobs", Parent: "ml", Quotas: map[string]quota.Limits{cfg.Accel: {Nominal: milli}}}}
	sc := sched.Config{Seed: seed, NoPreemption: true}
	if kind.shift || kind.spatial {
		sc.Forecast = forecast
		sc.Placement = []string{"bestfit", "carbon"}
	}
	if kind.shift {
		sc.Admission = []string{"carbon"}
	}
	list := make([]Job, len(jobs))
	deadlines := map[string]int64{}
	for i, cj := range jobs {
		id := fmt.Sprintf("ml-%d", i+1)
		j := Job{Arrival: cj.Arrival, Duration: cj.Duration, Job: sched.Job{ID: sched.JobID(id), Tenant: "ml", Queue: "ml-jobs",
			Kind: sched.Training, EstimatedSec: cj.Duration, Deadline: cj.Deadline, Interruptible: cfg.Interruptible,
			Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Accel: []string{cfg.Accel}, Devices: 1, CPUMilli: 1000, MemoryMiB: 1024}}}}}
		list[i] = j
		deadlines[id] = cj.Deadline
	}
	grams := 0.0
	var meterErr error
	meter := func(u sched.Usage) {
		from, to := max(u.From, cfg.From), min(u.To, cfg.To)
		if to <= from || len(u.Devices) == 0 {
			return
		}
		s, ok := truth[u.Site]
		if !ok {
			meterErr = fmt.Errorf("carbon: a holding on site %q, which has no series", u.Site)
			return
		}
		x, ok := s.Integral(from, to)
		if !ok && meterErr == nil {
			meterErr = fmt.Errorf("carbon: site %s: the series does not cover %d..%d", u.Site, from, to)
		}
		grams += x / 3600 * kw * float64(len(u.Devices)) * float64(u.Milli) / 1000
	}
	res, err := Run(Config{Sched: sc, Seed: seed, SampleSec: 86400, Usage: meter}, f, specs, &listSource{jobs: list})
	if err != nil {
		return 0, 0, nil, 0, err
	}
	if meterErr != nil {
		return 0, 0, nil, 0, meterErr
	}
	missed := 0
	waits := make([]float64, 0, len(res.Jobs))
	for _, r := range res.Jobs {
		if r.Status != StatusFinished || r.End > deadlines[r.ID] {
			missed++
		}
		if r.Wait >= 0 {
			waits = append(waits, float64(r.Wait)/3600)
		}
	}
	return grams / 1000, missed, waits, res.Summary.Suspensions, nil
}

// listSource yields jobs from a slice.
type listSource struct {
	jobs []Job
	i    int
}

func (s *listSource) Next() (Job, error) {
	if s.i == len(s.jobs) {
		return Job{}, io.EOF
	}
	s.i++
	return s.jobs[s.i-1], nil
}
