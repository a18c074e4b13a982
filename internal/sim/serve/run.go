package serve

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/autoscale"
)

// The policies Run knows beyond autoscale's controllers.
const (
	// PolicyStatic is the smallest fixed replica count that meets the
	// objective over the whole trace, found by binary search, every
	// replica warm from the start.
	PolicyStatic = "static"
	// PolicyOracle is the clairvoyant bound: each minute, the fewest
	// replicas with which that minute's requests meet the objective,
	// added and removed at the minute's start with no cold start.
	PolicyOracle = "oracle"
)

// Policies lists every policy Run accepts, sorted.
func Policies() []string {
	out := append(autoscale.Names(), PolicyStatic, PolicyOracle)
	slices.Sort(out)
	return out
}

// Config is one simulation of a service.
type Config struct {
	Profile Profile
	Spec    autoscale.Spec
	// Policy names the policy (see Policies).
	Policy string
	// SLO is the time-to-first-token objective: queueing, cold start and
	// prefill included.
	SLO time.Duration
	// Target is the share of requests (0..1) that must meet the SLO for
	// a run to meet the objective; static searches for it and the oracle
	// meets it every minute.
	Target float64
	// ColdStarts is the distribution each replica's cold start is drawn
	// from.
	ColdStarts ColdStarts
	// Seed drives the cold-start draws.
	Seed uint64
	// Interval is the autoscaler's observation period.
	Interval time.Duration
	// QueueTimeout drops a request that has waited this long for a
	// replica.
	QueueTimeout time.Duration
	// InitialReplicas are serving at the start, for the autoscaled
	// policies (the service is running when the trace begins).
	InitialReplicas int
}

// Defaults of a Config.
const (
	DefaultSLO          = 2 * time.Second
	DefaultTarget       = 0.99
	DefaultInterval     = time.Second
	DefaultQueueTimeout = 5 * time.Minute // Knative's default request timeout
	DefaultSeed         = 1
)

// Validate names the first field that is wrong.
func (c Config) Validate() error {
	if err := c.Profile.Validate(); err != nil {
		return err
	}
	if err := c.Spec.Validate(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if !slices.Contains(Policies(), c.Policy) {
		return fmt.Errorf("policy %q: want one of %s", c.Policy, strings.Join(Policies(), ", "))
	}
	switch {
	case c.SLO <= 0:
		return fmt.Errorf("SLO %s: want a positive duration", c.SLO)
	case !(c.Target > 0 && c.Target <= 1):
		return fmt.Errorf("target %g: want a share above 0 and at most 1", c.Target)
	case c.Interval < time.Millisecond || c.Interval > time.Minute:
		return fmt.Errorf("interval %s: want 1ms to 1m", c.Interval)
	case c.QueueTimeout <= 0:
		return fmt.Errorf("queue timeout %s: want a positive duration", c.QueueTimeout)
	case c.InitialReplicas < 0 || c.InitialReplicas > c.Spec.MaxReplicas:
		return fmt.Errorf("initial replicas %d: want 0 to maxReplicas (%d)", c.InitialReplicas, c.Spec.MaxReplicas)
	}
	return c.ColdStarts.Validate()
}

// Result is what one simulation measured.
type Result struct {
	Policy string
	// Requests is the trace's size; Met those whose first token came
	// within the SLO; Dropped those never served (larger than a replica's
	// KV cache, or waiting past the queue timeout).
	Requests, Met, Dropped int
	// TTFTp50 and TTFTp99 are over the requests served.
	TTFTp50, TTFTp99 time.Duration
	// GPUTime is accelerator time, every device of every replica from its
	// start to its stop (or the end); LoadingTime the part spent in cold
	// starts.
	GPUTime, LoadingTime time.Duration
	// ColdStarts counts replicas started cold; KilledStarting those
	// removed before they were ready. ColdStartP50/P99 are over the cold
	// starts that completed.
	ColdStarts, KilledStarting int
	ColdStartP50, ColdStartP99 time.Duration
	// PeakReplicas is the most replicas (serving and starting) at once.
	PeakReplicas int
	// Static is the chosen count of the static policy.
	Static int
	// ByMinute is the mean number of replicas alive in each minute.
	ByMinute []float64
	// Duration runs from the first arrival to the last request's end.
	Duration time.Duration
	// TargetMet says whether Met reaches Config.Target of Requests.
	TargetMet bool
}

// AttainmentPct is the share of requests that met the SLO, in percent.
func (r *Result) AttainmentPct() float64 {
	if r.Requests == 0 {
		return 100
	}
	return 100 * float64(r.Met) / float64(r.Requests)
}

// GPUHours is GPUTime in hours.
func (r *Result) GPUHours() float64 { return r.GPUTime.Hours() }

// Run simulates the trace under the configured policy.
func Run(reqs []Request, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("no requests")
	}
	var e *engine
	var peak, static int
	switch cfg.Policy {
	case PolicyStatic:
		e, static = runStatic(reqs, cfg)
		peak = static
	case PolicyOracle:
		e, peak = runOracle(reqs, cfg)
	default:
		pol, err := autoscale.New(cfg.Policy, cfg.Spec)
		if err != nil {
			return nil, err
		}
		e, peak = runAutoscaled(reqs, cfg, pol, cfg.InitialReplicas, false)
	}
	r := summarize(e, cfg)
	r.PeakReplicas, r.Static = peak, static
	return r, nil
}

// tick runs the engine one observation period: events up to t, then
// queue timeouts.
func tick(e *engine, t time.Duration, cfg Config) {
	e.advance(t)
	e.expire(cfg.QueueTimeout)
}

// runAutoscaled drives a controller once an interval until every request
// is done. warm makes new replicas ready at once.
func runAutoscaled(reqs []Request, cfg Config, pol autoscale.Policy, initial int, warm bool) (*engine, int) {
	e := newEngine(cfg.Profile, reqs, cfg.SLO, cfg.ColdStarts, cfg.Seed)
	e.scale(initial, autoscale.ReadyFirst, true)
	peak := initial
	for t := time.Duration(0); !e.done(); t += cfg.Interval {
		tick(e, t, cfg)
		if e.done() {
			break
		}
		d := pol.Step(e.observe(cfg.Interval))
		e.scale(d.Desired, d.Victims, warm)
		s, st := e.counts()
		peak = max(peak, s+st)
	}
	return e, peak
}

// met counts the requests of [lo, hi) whose first token came within the
// SLO, and whether all of them are resolved.
func (e *engine) met(lo, hi int) (n int, resolved bool) {
	resolved = true
	for i := lo; i < hi; i++ {
		switch {
		case e.dropped[i]:
		case e.ttft[i] < 0:
			resolved = false
		case e.ttft[i] <= e.slo:
			n++
		}
	}
	return n, resolved
}

func enough(met, n int, target float64) bool {
	return float64(met) >= target*float64(n)-1e-9
}

// runStatic finds the smallest fixed count that meets the target; more
// replicas never delay a first-come-first-served queue, so the search is
// a bisection.
func runStatic(reqs []Request, cfg Config) (*engine, int) {
	try := func(n int) *engine {
		e, _ := runAutoscaled(reqs, cfg, autoscale.Static{N: n}, n, true)
		return e
	}
	lo, hi := max(cfg.Spec.MinReplicas, 1), cfg.Spec.MaxReplicas
	best := try(hi)
	if m, _ := best.met(0, len(reqs)); !enough(m, len(reqs), cfg.Target) {
		return best, hi
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		e := try(mid)
		if m, _ := e.met(0, len(reqs)); enough(m, len(reqs), cfg.Target) {
			hi, best = mid, e
		} else {
			lo = mid + 1
		}
	}
	return best, hi
}

// runOracle sets the replica count minute by minute with hindsight: for
// each minute, the fewest warm replicas (bisection) with which the
// requests arriving in it meet the target, judged by running a copy of
// the service through the minute and on, without later arrivals, until
// each of them has its first token.
func runOracle(reqs []Request, cfg Config) (*engine, int) {
	e := newEngine(cfg.Profile, reqs, cfg.SLO, cfg.ColdStarts, cfg.Seed)
	last := reqs[len(reqs)-1].Arrival
	minutes := int(last/time.Minute) + 1
	peak := 0
	hi := 0
	// span runs e over [from, to) in observation ticks.
	span := func(e *engine, from, to time.Duration) {
		for t := from; t < to; t += cfg.Interval {
			tick(e, t, cfg)
		}
	}
	for m := range minutes {
		start, end := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute
		lo := hi
		for hi < len(reqs) && reqs[hi].Arrival < end {
			hi++
		}
		n := cfg.Spec.MinReplicas
		if hi > lo {
			try := func(k int) bool {
				c := e.clone()
				c.advance(start)
				c.scale(k, autoscale.ReadyFirst, true)
				span(c, start, end)
				c.arriveBefore = hi
				for t := end; ; t += cfg.Interval {
					got, resolved := c.met(lo, hi)
					if resolved || c.done() {
						return enough(got, hi-lo, cfg.Target)
					}
					tick(c, t, cfg)
				}
			}
			a, b := max(cfg.Spec.MinReplicas, 1), cfg.Spec.MaxReplicas
			for a < b {
				mid := a + (b-a)/2
				if try(mid) {
					b = mid
				} else {
					a = mid + 1
				}
			}
			n = a
		}
		e.advance(start)
		e.scale(n, autoscale.ReadyFirst, true)
		peak = max(peak, n)
		span(e, start, end)
	}
	for t := time.Duration(minutes) * time.Minute; !e.done(); t += cfg.Interval {
		tick(e, t, cfg)
	}
	return e, peak
}

func summarize(e *engine, cfg Config) *Result {
	r := &Result{Policy: cfg.Policy, Requests: len(e.reqs), Dropped: e.ndrop,
		ColdStarts: e.starts, KilledStarting: e.killedStarting, Duration: e.endAt}
	served := make([]time.Duration, 0, len(e.reqs))
	for i, t := range e.ttft {
		if e.dropped[i] || t < 0 {
			continue
		}
		served = append(served, t)
		if t <= cfg.SLO {
			r.Met++
		}
	}
	r.TTFTp50, r.TTFTp99 = quantile(served, 0.5), quantile(served, 0.99)
	r.ColdStartP50, r.ColdStartP99 = quantile(slices.Clone(e.loaded), 0.5), quantile(slices.Clone(e.loaded), 0.99)
	r.GPUTime, r.LoadingTime = e.gpuTime(e.endAt)
	r.TargetMet = enough(r.Met, r.Requests, cfg.Target)
	minutes := int(e.endAt/time.Minute) + 1
	r.ByMinute = make([]float64, minutes)
	for _, rp := range e.reps {
		stop := e.endAt
		if rp.state == stopped {
			stop = min(rp.stop, e.endAt)
		}
		for t := rp.start; t < stop; {
			m := int(t / time.Minute)
			next := min(time.Duration(m+1)*time.Minute, stop)
			r.ByMinute[m] += (next - t).Minutes()
			t = next
		}
	}
	for i := range r.ByMinute {
		r.ByMinute[i] = math.Round(r.ByMinute[i]*100) / 100
	}
	return r
}

// quantile is the nearest-rank quantile of d (sorted in place).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}
