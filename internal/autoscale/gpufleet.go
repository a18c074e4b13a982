package autoscale

import (
	"math"
	"slices"
	"time"
)

// Gpufleet is gpufleet's own policy. It sizes the service by prompt
// tokens where the service reports them (the prefill they need, and so
// the time to first token, grows with the prompt, not the request count),
// against the latency objective and its error budget; it looks ahead by
// the replica's measured cold start along the trend of the arrival rate;
// and it never lets go of capacity it will want back before a replica
// could start again. Each observation:
//
//  1. Cold start L: the 90th percentile of the last measured cold starts
//     (Spec.ColdStart until one is measured).
//  2. Trend: a least-squares line through the prompt-token rate of the
//     budget window in blocks of L (the time scale on which the policy
//     can act); when its slope is significant (|t| > 2) the growth g it
//     forecasts from now to L ahead scales the load; otherwise g = 1.
//  3. Need: the arrivals of the last BudgetWindow (5 minutes, the short
//     window of the SRE workbook's burn-rate alerts), each second's
//     tokens scaled by g, are replayed through N fluid replicas of
//     TargetTokensPerSecond each; a request is late when its wait behind
//     the backlog plus its own prefill exceeds Spec.Latency. The need is
//     the fewest N with at most 1 - LatencyQuantile of the window's
//     requests late: bursts that would spend more than the error budget
//     are provisioned for, a lone burst that the budget absorbs is not.
//     Without token reports the need is (in-flight + queued) /
//     TargetInFlight.
//  4. Hold: the desired count is the largest need of the last
//     max(ScaleDownGrace, L). A replica idle for less than a cold start
//     costs less to keep than to start again (the ski-rental argument), so
//     lulls shorter than L never cost a cold start; with MinReplicas 0 the
//     service goes to zero once that long passes without load (Mode
//     Idle).
//  5. Starting replicas are coming capacity: they count among the
//     replicas the service has, so nothing is started twice for one need,
//     and no count below Ready + starting is asked for while any is
//     starting, so none is ever killed for being slow to load (Victims:
//     ReadyFirst).
//
// Mode Panic marks a backlog that the serving replicas cannot clear within
// the objective.
type Gpufleet struct {
	spec Spec

	last    time.Duration
	started bool

	// samples of the recent arrivals, oldest first, for BudgetWindow.
	samples []arrivals
	// needs of the last maxHorizon, oldest first.
	needs []need
	// coldStarts are the last measured cold starts, oldest first.
	coldStarts []time.Duration
}

type arrivals struct {
	at, dt   time.Duration
	tokens   float64 // prompt tokens that arrived in (at-dt, at]
	requests float64
}

type need struct {
	at time.Duration
	n  int
}

// NewGpufleet builds the gpufleet policy for a service.
func NewGpufleet(s Spec) *Gpufleet { return &Gpufleet{spec: s} }

const (
	// BudgetWindow is the history over which the gpufleet policy spends
	// the error budget: the 5-minute short window of multiwindow
	// burn-rate alerting (Google's SRE workbook, "Alerting on SLOs").
	BudgetWindow = 5 * time.Minute
	// coldStartSamples is how many measured cold starts the estimate
	// keeps: enough for a 90th percentile, recent enough to follow a
	// model that changed.
	coldStartSamples  = 32
	coldStartQuantile = 0.9
	// trendT is the t statistic a slope must reach to count (about 95%
	// two-sided), so that noise is not taken for a trend.
	trendT = 2
	// maxHorizon bounds the cold-start estimate and so every window, so
	// that a wild measurement cannot make the policy hold capacity, or
	// history, without bound.
	maxHorizon = 30 * time.Minute
)

// ColdStart is the policy's current cold-start estimate.
func (g *Gpufleet) ColdStart() time.Duration {
	if len(g.coldStarts) == 0 {
		return min(g.spec.ColdStart, maxHorizon)
	}
	s := slices.Clone(g.coldStarts)
	slices.Sort(s)
	return min(s[nearestRank(coldStartQuantile, len(s))], maxHorizon)
}

// nearestRank is the index of the q quantile among n sorted values.
func nearestRank(q float64, n int) int {
	return min(max(int(math.Ceil(q*float64(n)))-1, 0), n-1)
}

// Step implements Policy.
func (g *Gpufleet) Step(o Observation) Decision {
	dt := DefaultInterval
	if g.started {
		dt = max(o.Now-g.last, 0)
	}
	g.started, g.last = true, o.Now
	for _, c := range o.ColdStarts {
		if c >= 0 {
			g.coldStarts = append(g.coldStarts, c)
		}
	}
	if n := len(g.coldStarts); n > coldStartSamples {
		g.coldStarts = slices.Delete(g.coldStarts, 0, n-coldStartSamples)
	}
	L := g.ColdStart()

	g.samples = append(g.samples, arrivals{at: o.Now, dt: dt, tokens: float64(max(o.PromptTokens, 0)), requests: float64(max(o.Arrivals, 0))})
	for len(g.samples) > 1 && g.samples[0].at <= o.Now-BudgetWindow {
		g.samples = g.samples[1:]
	}

	mode := Stable
	var n float64
	if T := g.spec.TargetTokensPerSecond; T > 0 {
		n = g.budgetNeed(T, g.growth(o.Now, L))
		if float64(o.QueuedPromptTokens) > float64(o.Ready)*T*g.spec.latency().Seconds() {
			mode = Panic
		}
	} else {
		n = o.concurrency() / g.spec.TargetInFlight
	}
	want := int(math.Ceil(n - 1e-9))
	if o.InFlight+o.Queued > 0 {
		want = max(want, 1)
	}

	// Needs are kept for the longest hold there can be, since a measured
	// cold start may lengthen the hold after the fact.
	hold := min(max(g.spec.ScaleDownGrace, L), maxHorizon)
	g.needs = append(g.needs, need{at: o.Now, n: want})
	for len(g.needs) > 1 && g.needs[0].at <= o.Now-max(g.spec.ScaleDownGrace, maxHorizon) {
		g.needs = g.needs[1:]
	}
	desired := 0
	for i := len(g.needs) - 1; i >= 0 && g.needs[i].at > o.Now-hold; i-- {
		desired = max(desired, g.needs[i].n)
	}
	switch {
	case len(o.Starting) > 0 && desired < o.Ready+len(o.Starting):
		desired, mode = o.Ready+len(o.Starting), Hold
	case desired > want:
		mode = Hold
	case desired == 0:
		mode = Idle
	}
	return Decision{Desired: g.spec.clamp(desired), Mode: mode, Victims: ReadyFirst}
}

// budgetNeed replays the window's arrivals, tokens scaled by growth,
// through N fluid replicas of T tokens/s and returns the fewest N that
// keep the share of late requests within the error budget. A second's
// requests wait behind the backlog left by the seconds before and half
// the other tokens of their own second (arrivals spread over it), then
// take their own prefill, the second's mean prompt at T.
func (g *Gpufleet) budgetNeed(T, growth float64) float64 {
	total := 0.0
	for _, s := range g.samples {
		total += s.requests
	}
	if total == 0 || growth <= 0 {
		return 0
	}
	budget := (1 - g.spec.quantile()) * total
	D := g.spec.latency().Seconds()
	late := func(n int) float64 {
		capacity := float64(n) * T
		backlog, missed := 0.0, 0.0
		for _, s := range g.samples {
			tokens := s.tokens * growth
			// A prompt whose prefill alone outlasts the objective is late
			// whatever N is; it spends budget but asks for nothing.
			if mean := s.tokens / max(s.requests, 1); s.requests > 0 && mean/T <= D {
				// Ahead of the second's middle request: half the others.
				ahead := max(tokens-mean, 0) / 2
				if (backlog+ahead)/capacity+mean/T > D {
					missed += s.requests
				}
			}
			backlog = max(0, backlog+tokens-capacity*s.dt.Seconds())
		}
		return missed
	}
	// Exponential then binary search: late falls as N grows.
	lo, hi := 1, 1
	for late(hi) > budget {
		if hi >= MaxReplicasLimit {
			return MaxReplicasLimit
		}
		lo, hi = hi+1, min(2*hi, MaxReplicasLimit)
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if late(mid) <= budget {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return float64(hi)
}

// growth fits a line to the prompt-token rate of the window in blocks of
// L and returns the ratio of its value L ahead to its value now, when the
// slope is significant; 1 otherwise.
func (g *Gpufleet) growth(now, L time.Duration) float64 {
	block := max(L, time.Second)
	if len(g.samples) == 0 {
		return 1
	}
	// Only whole blocks of the history there is: blocks before the first
	// observation would read as silence and make a trend of it.
	first := g.samples[0].at - g.samples[0].dt
	var xs, ys []float64
	i := len(g.samples) - 1
	for end := now; end-block >= max(first, now-BudgetWindow); end -= block {
		tokens := 0.0
		for ; i >= 0 && g.samples[i].at > end-block; i-- {
			tokens += g.samples[i].tokens
		}
		xs = append(xs, (end - block/2 - now).Seconds())
		ys = append(ys, tokens/block.Seconds())
	}
	slope, intercept, ok := fitLine(xs, ys)
	if !ok || intercept <= 0 {
		return 1
	}
	return max(intercept+slope*L.Seconds(), 0) / intercept
}

// fitLine is least squares y = intercept + slope x, ok when the slope's t
// statistic reaches trendT.
func fitLine(xs, ys []float64) (slope, intercept float64, ok bool) {
	n := float64(len(xs))
	if n < 3 {
		return 0, 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= n
	my /= n
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return 0, 0, false
	}
	slope = sxy / sxx
	intercept = my - slope*mx
	var sse float64
	for i := range xs {
		r := ys[i] - (intercept + slope*xs[i])
		sse += r * r
	}
	se := math.Sqrt(sse / (n - 2) / sxx)
	return slope, intercept, se > 0 && math.Abs(slope/se) >= trendT
}
