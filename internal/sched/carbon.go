package sched

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/google/btree"

	"github.com/gpufleet/gpufleet/internal/place"
)

// Carbon-aware shifting. A job with a deadline is deferrable: the
// admission rule "carbon" (Config.Admission) may move it to the cleanest
// window the carbon forecast (Config.Forecast) shows before its deadline,
// and to the cleanest site, within quota, capacity and power caps. The
// rule, for a job that fits now:
//
//  1. plan: for every site (the domains at Config.SiteLevel) the forecast
//     knows, the cheapest run of the job's runtime estimate (EstimatedSec,
//     else MaxSec) that ends by its deadline: the start, now or a later
//     step boundary, whose forecast integral is least (a later start wins
//     only when it is cleaner, beyond rounding); for an interruptible job,
//     the cleanest forecast steps until their time covers the estimate,
//     merged into runs (a gap no longer than its notice period is not
//     worth a suspension). This is the "Let's Wait Awhile" planner
//     (Wiesner et al., Middleware '21) made site-aware;
//  2. place: the sites in order of their plan's forecast intensity; the
//     first where the job fits now takes it;
//  3. hold: when the plan starts later, the job is admitted now and its
//     placement, quota and power are held for it until then: it never
//     misses a deadline that running at once would have met, because the
//     room it would have run in at once is the room it runs in later.
//     The price is capacity idle while it waits; `sim carbon --capacity`
//     measures it;
//  4. run: at each run's start the core binds the held placement; at the
//     end of every run but the last it suspends the job at a checkpoint
//     (a Preempt with Suspend set, then a Requeue that keeps the deadline)
//     and holds its capacity for the next run;
//  5. yield: held capacity is idle only while no work that cannot wait
//     wants it. In a cycle in which a job without a deadline fails for
//     want of capacity of a type, the jobs held on that type start at
//     once and run the rest of their plan in one piece, so they end sooner
//     and the waiting work gets its room sooner; their deadlines hold,
//     since they end no later than planned. Deferrable work waits: it is
//     planned when it fits.
//
// A job with no slack (now + estimate >= deadline), without an estimate,
// elastic, or one the forecast knows nothing about runs at once. A job
// that does not fit now waits like any other and is planned when it fits,
// over what is left of its window. Job.NotBefore keeps any job (carbon or
// not) from starting before its window opens. Planning costs O(window
// steps) per site (O(log) more for interruptible jobs), once per job; a
// held job's start and suspension are due entries in a tree: O(log n).

// maxPlanSteps bounds the forecast steps a plan reads (85 days of
// 30-minute steps): a deadline further away is planned over that horizon.
const maxPlanSteps = 4096

// span is [from, to) on the core's clock.
type span struct{ from, to int64 }

// shiftPlan is a deferrable job's planned runs on one site. The last run
// lasts until the job ends; cur is the run the job is in or waits for.
type shiftPlan struct {
	runs                 []span
	cur                  int
	dom                  int
	intensity, immediate float64
}

// dueKey is a held job's next start or a running job's next suspension.
type dueKey struct {
	t   int64
	seq uint64
	j   *job
}

func dueLess(a, b dueKey) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}

// initCarbon checks the carbon configuration.
func (c *Core) initCarbon() error {
	for _, r := range c.cfg.Admission {
		if !slices.Contains(AdmissionRules(), r) {
			return fmt.Errorf("admission rule %q: want one of %v", r, AdmissionRules())
		}
		if r == "carbon" {
			if c.cfg.Forecast == nil {
				return fmt.Errorf("admission rule carbon needs a carbon forecast (Config.Forecast)")
			}
			if c.cfg.Forecast.StepSec() <= 0 {
				return fmt.Errorf("admission rule carbon: the forecast's step is %d s, want a positive number", c.cfg.Forecast.StepSec())
			}
			c.shiftOn = true
		}
	}
	c.due = btree.NewG(8, dueLess)
	c.deferred = map[JobID]*job{}
	return nil
}

// runtime is the run length a plan is made for.
func (j *job) runtime() int64 {
	if j.EstimatedSec > 0 {
		return j.EstimatedSec
	}
	return j.MaxSec
}

// shiftable reports whether the carbon rule may plan j.
func (c *Core) shiftable(j *job) bool {
	if !c.shiftOn || j.Deadline <= 0 || c.isElastic(j) {
		return false
	}
	e := j.runtime()
	return e > 0 && c.now+e < j.Deadline
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// stepCurve answers integrals of a forecast: v[k] holds over
// [g0+k*step, g0+(k+1)*step).
type stepCurve struct {
	g0, step int64
	v        []float64
	pre      []float64 // pre[k]: the integral over the first k steps
}

func newCurve(g0, step int64, v []float64) *stepCurve {
	s := &stepCurve{g0: g0, step: step, v: v, pre: make([]float64, len(v)+1)}
	for k, x := range v {
		s.pre[k+1] = s.pre[k] + x*float64(step)
	}
	return s
}

func (s *stepCurve) end() int64 { return s.g0 + int64(len(s.v))*s.step }

// at is the integral from g0 to t (g0 <= t <= end).
func (s *stepCurve) at(t int64) float64 {
	k := (t - s.g0) / s.step
	if int(k) >= len(s.v) {
		return s.pre[len(s.v)]
	}
	return s.pre[k] + s.v[k]*float64(t-s.g0-k*s.step)
}

func (s *stepCurve) integral(a, b int64) float64 { return s.at(b) - s.at(a) }

// cleaner reports whether cost a beats cost b by more than rounding.
func cleaner(a, b float64) bool { return a < b-1e-9*math.Abs(b) }

// planStart is the cheapest start for a run of e seconds, now or at a
// step boundary no later than latest whose run the forecast covers. ok is
// false when the forecast does not cover a run started now.
func planStart(s *stepCurve, now, e, latest int64) (start int64, cost, costNow float64, ok bool) {
	if now+e > s.end() {
		return 0, 0, 0, false
	}
	start, cost = now, s.integral(now, now+e)
	costNow = cost
	for t := floorDiv(now, s.step)*s.step + s.step; t <= latest && t+e <= s.end(); t += s.step {
		if x := s.integral(t, t+e); cleaner(x, cost) {
			start, cost = t, x
		}
	}
	return start, cost, costNow, true
}

// planSlots picks the cleanest forecast steps in [now, deadline) until
// their time covers e, and returns them as runs in time order; ok is false
// when the forecast does not cover e before the deadline. Equal
// intensities go to the earlier step. A run no longer than the notice
// period is too short to checkpoint in: the job runs on through the gap
// after it, and the time it runs there counts towards e.
func planSlots(s *stepCurve, now, e, deadline, notice int64) (runs []span, cost float64, ok bool) {
	end := min(deadline, s.end())
	type slot struct {
		span
		v float64
	}
	var slots []slot
	for t := now; t < end; {
		next := min(floorDiv(t, s.step)*s.step+s.step, end)
		slots = append(slots, slot{span{t, next}, s.v[(t-s.g0)/s.step]})
		t = next
	}
	order := make([]int, len(slots))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return slots[order[a]].v < slots[order[b]].v })
	// The cleanest steps are used whole, the last one needed in part.
	use := make([]int64, len(slots))
	left := e
	for _, i := range order {
		if left <= 0 {
			break
		}
		use[i] = min(slots[i].to-slots[i].from, left)
		left -= use[i]
	}
	if left > 0 {
		return nil, 0, false
	}
	// The job runs them in time order (a step used in part from its
	// start) and ends once it has run e.
	left = e
	for i, sl := range slots {
		if use[i] == 0 || left <= 0 {
			continue
		}
		n := len(runs)
		if n > 0 && runs[n-1].to < sl.from && runs[n-1].to-runs[n-1].from <= notice {
			g := min(sl.from-runs[n-1].to, left)
			cost += s.integral(runs[n-1].to, runs[n-1].to+g)
			runs[n-1].to += g
			if left -= g; left <= 0 {
				break
			}
		}
		u := min(use[i], left)
		left -= u
		cost += sl.v * float64(u)
		if n > 0 && runs[n-1].to == sl.from {
			runs[n-1].to += u
			continue
		}
		runs = append(runs, span{sl.from, sl.from + u})
	}
	return runs, cost, true
}

// suspendAt is when a job told to suspend at the end of run k must hear
// it: its notice before the run ends, so that it has stopped by then.
func (p *shiftPlan) suspendAt(k int, notice int64) int64 {
	return max(p.runs[k].to-notice, p.runs[k].from)
}

// sitePlan plans j on site domain d; nil when the forecast does not know
// enough of the site.
func (c *Core) sitePlan(j *job, d int, e int64) *shiftPlan {
	f := c.cfg.Forecast
	step := f.StepSec()
	to := min(j.Deadline, c.now+maxPlanSteps*step)
	v := f.Intensity(c.fleet.DomainPath(d), c.now, to)
	if len(v) == 0 {
		return nil
	}
	s := newCurve(floorDiv(c.now, step)*step, step, v)
	p := &shiftPlan{dom: d}
	if now := c.now + e; now <= s.end() {
		p.immediate = s.integral(c.now, now) / float64(e)
	}
	if !j.Interruptible {
		start, cost, _, ok := planStart(s, c.now, e, j.Deadline-e)
		if !ok {
			return nil
		}
		p.runs, p.intensity = []span{{start, start + e}}, cost/float64(e)
		return p
	}
	runs, cost, ok := planSlots(s, c.now, e, j.Deadline, j.NoticeSec)
	if !ok {
		return nil
	}
	p.runs, p.intensity = runs, cost/float64(e)
	return p
}

// sitePlans plans j on every site the forecast knows, cleanest first
// (ties in site order).
func (c *Core) sitePlans(j *job, e int64) []*shiftPlan {
	var out []*shiftPlan
	for _, d := range c.idx.levelDoms[c.siteLevel] {
		if p := c.sitePlan(j, int(d), e); p != nil {
			out = append(out, p)
		}
	}
	// Sites compare by what a kWh of IT energy emits there: the grid's
	// intensity times the site's PUE.
	slices.SortStableFunc(out, func(a, b *shiftPlan) int {
		x, y := a.intensity*c.sitePUE(a.dom), b.intensity*c.sitePUE(b.dom)
		if cleaner(x, y) {
			return -1
		}
		if cleaner(y, x) {
			return 1
		}
		return cmp.Compare(a.dom, b.dom)
	})
	return out
}

// sitePUE is the PUE of domain d: that of the closest configured site at
// or above it (Config.Sites), 1 when none gives one.
func (c *Core) sitePUE(d int) float64 {
	if len(c.cfg.Sites) == 0 {
		return 1
	}
	if v, ok := c.pues[d]; ok {
		return v
	}
	pue := 1.0
	for x := d; x > 0; x = c.fleet.Domains[x].Parent {
		if p := c.configuredPUE(c.fleet.DomainPath(x)); p > 0 {
			pue = p
			break
		}
	}
	if c.pues == nil {
		c.pues = map[int]float64{}
	}
	c.pues[d] = pue
	return pue
}

func (c *Core) configuredPUE(path string) float64 {
	for _, s := range c.cfg.Sites {
		if s.Domain == path {
			return s.PUE
		}
	}
	return 0
}

// placedWithin reports whether every replica of a placement lies below
// domain d.
func (c *Core) placedWithin(o outcome, d int) bool {
	for _, r := range o.t.reps {
		if !c.inDomain(r.node, d) {
			return false
		}
	}
	return len(o.t.reps) > 0
}

// shift applies the carbon rule to j, which fits now as o shows. It
// reports whether it started or held j; when not, the returned outcome
// is the placement to commit now.
func (c *Core) shift(j *job, o outcome, res holds) (outcome, bool) {
	plans := c.sitePlans(j, j.runtime())
	for _, p := range plans {
		var at outcome
		switch {
		case o.t != nil && c.placedWithin(o, p.dom):
			at, o = o, outcome{}
		default:
			if o.t != nil {
				c.undo(o.t, 0)
				o = outcome{}
			}
			if at = c.planWithin(j, res, p.dom); !at.ok() {
				continue
			}
		}
		if p.runs[0].from <= c.now {
			c.commit(j, at)
			c.startPlan(j, p)
		} else {
			c.hold(j, at, p)
		}
		return outcome{}, true
	}
	if o.t == nil {
		// No site the forecast knows can take it: it runs where it fits.
		o = c.plan(j, res)
	}
	return o, false
}

// startPlan gives a job that has just started its plan: its suspension at
// the end of its first run, when another follows.
func (c *Core) startPlan(j *job, p *shiftPlan) {
	j.plan = p
	j.intensity = p.intensity
	if len(p.runs) > 1 {
		c.pushDue(j, p.suspendAt(0, j.NoticeSec))
	}
}

// hold admits j with its placement held for the plan's first run.
func (c *Core) hold(j *job, o outcome, p *shiftPlan) {
	c.unnominate(j)
	c.pending[j.queue].Delete(pendOf(j))
	j.nextRep = make([]int, len(j.Gangs))
	for g := range j.Gangs {
		j.nextRep[g] = j.Gangs[g].Min()
	}
	j.reps = append([]replica(nil), o.t.reps...)
	j.gangType, j.demand = o.types, o.demand
	c.queues.Add(j.queue, j.demand)
	for _, r := range j.reps {
		c.nodeJobs[r.node] = append(c.nodeJobs[r.node], j)
	}
	j.state = jHeld
	c.deferred[j.ID] = j
	j.plan = p
	j.intensity = p.intensity
	j.earliest = p.runs[0].from
	j.status = c.heldStatus(j, ShiftDeferred)
	c.pushDue(j, p.runs[0].from)
	c.setEnd(j, p.runs[len(p.runs)-1].to)
}

func (c *Core) heldStatus(j *job, kind Shift) Status {
	p := j.plan
	return Status{Code: Deferred, Shift: kind, At: p.runs[p.cur].from, Until: j.Deadline, Domain: c.fleet.DomainPath(p.dom),
		Count: len(p.runs) - p.cur, Intensity: round1(p.intensity), IntensityNow: round1(p.immediate)}
}

func (c *Core) pushDue(j *job, t int64) {
	c.dropDue(j)
	j.dueAt = t
	c.due.ReplaceOrInsert(dueKey{t: t, seq: j.seq, j: j})
}

func (c *Core) dropDue(j *job) {
	if j.dueAt != 0 {
		c.due.Delete(dueKey{t: j.dueAt, seq: j.seq, j: j})
		j.dueAt = 0
	}
}

// unshift forgets j's plan.
func (c *Core) unshift(j *job) {
	c.dropDue(j)
	j.plan = nil
	j.toHold = false
	delete(c.deferred, j.ID)
}

// shiftDue is the cycle's carbon phase: held jobs whose run starts are
// bound, running jobs whose run has ended are suspended.
func (c *Core) shiftDue() {
	for {
		k, ok := c.due.Min()
		if !ok || k.t > c.now {
			return
		}
		c.due.DeleteMin()
		j := k.j
		j.dueAt = 0
		switch j.state {
		case jHeld:
			if c.isPaused(j.queue) {
				// Its next run would be a new start in a paused queue:
				// it gives its capacity back and waits with the queue.
				c.unhold(j)
				continue
			}
			c.resumeRun(j)
		case jRunning:
			c.suspend(j)
		}
	}
}

// resumeRun binds a held job's placement for its next run.
func (c *Core) resumeRun(j *job) {
	delete(c.deferred, j.ID)
	j.attempt++
	for i := range j.reps {
		j.reps[i].since = c.now
		c.emit(c.bindAction(j, j.reps[i]))
	}
	c.ends.Delete(endKey{end: j.endAt, seq: j.seq, j: j})
	j.endAt = 0
	c.markRunning(j, c.now)
	if p := j.plan; p.cur+1 < len(p.runs) {
		c.pushDue(j, p.suspendAt(p.cur, j.NoticeSec))
	}
}

// suspend stops a running job at a checkpoint by the end of a clean run
// (its notice before it), keeping its capacity for its next run.
func (c *Core) suspend(j *job) {
	p := j.plan
	p.cur++
	deadline := c.now + j.NoticeSec
	reason := fmt.Sprintf("suspended at a checkpoint until t=%d, the next of its clean windows before its deadline t=%d", p.runs[p.cur].from, j.Deadline)
	c.emit(Preempt{Job: j.ID, Deadline: deadline, Reason: reason, Suspend: true})
	j.toHold = true
	if deadline <= c.now {
		c.closeRun(j)
		c.emit(Requeue{Job: j.ID, Reason: reason})
		return
	}
	c.setEnd(j, deadline)
	j.state = jPreempting
	j.deadline = deadline
	j.status = Status{Code: Preempting, Detail: reason, At: deadline}
	c.preempting[j.ID] = j
}

// closeRun ends a suspended job's run: its holdings close, its
// placement stays held for the next run.
func (c *Core) closeRun(j *job) {
	for i := range j.reps {
		r := &j.reps[i]
		to := c.now
		if j.state == jPreempting {
			to = min(to, j.deadline)
		}
		c.out.Usage = append(c.out.Usage, c.usage(j, r, max(to, r.since), EndSuspended))
		r.since = 0
	}
	delete(c.running, j.ID)
	c.pools[j.queue].remove(j)
	delete(c.preempting, j.ID)
	j.toHold = false
	j.state = jHeld
	c.deferred[j.ID] = j
	j.status = c.heldStatus(j, ShiftSuspended)
	c.pushDue(j, j.plan.runs[j.plan.cur].from)
	c.setEnd(j, j.plan.runs[len(j.plan.runs)-1].to)
}

// intensityAt is the forecast mean intensity at node n's site over the
// next e seconds (the step now when e is 0, or as far as the forecast
// reaches); NaN when the forecast knows nothing of the site, 0 when there
// is no forecast. Answers are kept for the cycle's time.
func (c *Core) intensityAt(n int, e int64) float64 {
	f := c.cfg.Forecast
	if f == nil {
		return 0
	}
	d := c.fleet.Ancestor(n, c.siteLevel)
	if c.carbonAt != c.now || c.carbonNow == nil {
		c.carbonAt, c.carbonNow = c.now, map[[2]int64]float64{}
	}
	e = max(e, 1)
	key := [2]int64{int64(d), e}
	if v, ok := c.carbonNow[key]; ok {
		return v
	}
	step := f.StepSec()
	v := math.NaN()
	if xs := f.Intensity(c.fleet.DomainPath(d), c.now, c.now+min(e, maxPlanSteps*step)); len(xs) > 0 {
		s := newCurve(floorDiv(c.now, step)*step, step, xs)
		to := min(c.now+e, s.end())
		v = s.integral(c.now, to) / float64(to-c.now)
	}
	c.carbonNow[key] = v
	return v
}

// carbonScorer prefers nodes on the site whose grid the forecast shows
// cleanest over the job's estimated run (the step now without an
// estimate), weighed by the site's PUE: spatial shifting of work that
// runs at once. Sites the forecast does not know come last.
type carbonScorer struct{ c *Core }

func (carbonScorer) name() string { return "carbon" }
func (s carbonScorer) score(t *try, n int, r *place.Request, ch place.Choice) float64 {
	v := s.c.intensityAt(n, t.j.runtime())
	if math.IsNaN(v) {
		return math.Inf(-1)
	}
	return -v * s.c.sitePUE(s.c.fleet.Ancestor(n, s.c.siteLevel))
}

// canWait reports whether a job kept out for want of capacity waits by
// its own terms: it has a deadline, so it is planned (or runs late) on its
// own account. Work without one is taken to want its room now, and makes
// held capacity start (see startHeld). Starting held jobs early for a
// deferrable job late for its deadline was measured on the ML-jobs
// experiment with 24 accelerators: it gave up 2.3 points of the saving
// and saved no deadline (the held jobs start, they do not give their room
// away), so it is not done.
func (c *Core) canWait(j *job) bool { return j.Deadline > 0 }

// startHeld starts now the held jobs on nodes of the marked types (all
// held jobs with all set): work failed for want of that capacity in this
// cycle, and capacity someone is waiting for is not left idle for a
// cleaner window. Each runs what is left of its plan in one piece, from
// now, so it ends no later than its plan did: its deadline still holds.
func (c *Core) startHeld(types []bool, all bool) {
	for _, j := range c.heldJobs(-1) {
		if !all && !c.touches(j, types) || c.isPaused(j.queue) {
			continue
		}
		p := j.plan
		var rest int64
		for _, r := range p.runs[p.cur:] {
			rest += r.to - r.from
		}
		p.runs = append(p.runs[:p.cur], span{c.now, c.now + rest})
		c.dropDue(j)
		c.resumeRun(j)
	}
}

// unholdPaused gives back the capacity held for jobs of paused queues
// that have not started on their plan (they wait, paused, like the rest of
// their queue), and with stop that of every such job, suspended ones and
// ones being suspended too: they are stopped work.
func (c *Core) unholdPaused(stop bool) {
	for _, j := range c.heldJobs(-1) {
		if !c.isPaused(j.queue) || !stop && j.plan.cur > 0 {
			continue
		}
		c.unhold(j)
	}
	if !stop {
		return
	}
	for _, j := range c.preempting {
		if j.toHold && c.isPaused(j.queue) {
			j.toHold, j.stopped = false, true
		}
	}
}

// unhold gives back the capacity held for j, a held job of a paused
// queue, and puts it back in its queue.
func (c *Core) unhold(j *job) {
	c.release(j, EndPreempted)
	j.status = Status{Code: Paused, Detail: c.pausedQ[j.queue]}
	c.enqueue(j)
}

// heldJobs lists the held jobs of queue q (every queue for -1) in
// submission order.
func (c *Core) heldJobs(q int) []*job {
	var out []*job
	for _, j := range c.deferred {
		if q < 0 || j.queue == q {
			out = append(out, j)
		}
	}
	sortJobs(out)
	return out
}
