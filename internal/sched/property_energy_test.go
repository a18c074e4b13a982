package sched

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// capView is one capped site as a step left it.
type capView struct {
	kw, capKW, busyKW, stoppingKW, idleKW float64
	// fixedKW is the busy power of devices held apart for processes the
	// core did not place (DevicesHeld): no cap cut stops them.
	fixedKW float64
}

// capState reads every capped site's draw, its busy part and the busy
// power of the work already told to stop (and not to keep its capacity).
func (c *Core) capState() map[string]capView {
	if c.power == nil {
		return nil
	}
	out := map[string]capView{}
	for _, s := range c.power.sites {
		v := capView{kw: s.kw(c.fleet.Catalog), capKW: s.capKW}
		for t := range s.busy {
			v.busyKW += s.busyKW(c.fleet.Catalog, t, s.busy[t])
		}
		v.idleKW = v.kw - v.busyKW
		for _, j := range c.preempting {
			if j.state == jPreempting && !j.toHold {
				v.stoppingKW += c.jobKW(j, s)
			}
		}
		for _, h := range c.held {
			if ti := c.idx.nodeType[h.node]; ti >= 0 && c.inDomain(h.node, s.dom) {
				v.fixedKW += s.busyKW(c.fleet.Catalog, ti, int64(len(h.choice.Devices))*int64(h.choice.Milli))
			}
		}
		out[s.path] = v
	}
	return out
}

// checkCaps is the power property: a step that commits more power to a
// site leaves it within its cap (no admission takes a site over it), and
// a cap cut leaves the site within its new cap once the work told to stop
// is gone, or has stopped everything there.
func (d *driver) checkCaps(c *Core, before map[string]capView, kind, capped string) {
	for site, v := range c.capState() {
		if v.capKW <= 0 {
			continue
		}
		b, seen := before[site]
		if seen && v.busyKW > b.busyKW+capSlack && v.kw > v.capKW+capSlack {
			d.fail("after %s: site %s draws %.3f kW of its cap %.3f, and the step committed %.3f kW more", kind, site, v.kw, v.capKW, v.busyKW-b.busyKW)
		}
		if kind == "cap" && site == capped && v.kw-v.stoppingKW > v.capKW+capSlack && v.busyKW-v.stoppingKW-v.fixedKW > capSlack {
			d.fail("after a cap cut: site %s will draw %.3f kW of its cap %.3f once the stopped work is gone, and %.3f kW of work goes on", site, v.kw-v.stoppingKW, v.capKW, v.busyKW-v.stoppingKW)
		}
	}
}

// zones lists the zone paths of a world's nodes.
func (w world) zones() []string {
	var out []string
	for _, n := range w.nodes {
		if z := n.Path[0] + "/" + n.Path[1]; !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	return out
}

// genForecast draws a forecast of steps of step seconds for every zone.
func genForecast(t *rapid.T, zones []string, step int64, steps int) *carbon.Forecast {
	f, err := carbon.NewForecast(step)
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range zones {
		s := carbon.Series{Start: 0, Step: step}
		for range steps {
			s.Values = append(s.Values, float64(rapid.IntRange(0, 10).Draw(t, "ci")*50))
		}
		if err := f.Set(z, s); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// genEnergyWorld adds power caps, a forecast and the carbon rules to a
// random world.
func genEnergyWorld(t *rapid.T) world {
	w := genWorld(t)
	zones := w.zones()
	for _, z := range append([]string{"reg"}, zones...) {
		if !rapid.Bool().Draw(t, "capped") {
			continue
		}
		w.cfg.Sites = append(w.cfg.Sites, Site{Domain: z, PowerCapKW: float64(rapid.IntRange(0, 120).Draw(t, "capKW")) / 4,
			PUE: rapid.SampledFrom([]float64{0, 1.2, 1.5}).Draw(t, "pue"), ITCap: rapid.Bool().Draw(t, "itCap")})
	}
	if rapid.IntRange(0, 3).Draw(t, "forecast") > 0 {
		w.cfg.Forecast = genForecast(t, zones, 100, rapid.IntRange(5, 100).Draw(t, "steps"))
		if rapid.IntRange(0, 3).Draw(t, "carbon") > 0 {
			w.cfg.Admission = []string{"carbon"}
		}
		if rapid.Bool().Draw(t, "carbonStage") {
			w.cfg.Placement = append(slices.Clone(w.cfg.Placement), "carbon")
		}
	}
	return w
}

// genEnergyScript is a random script whose jobs may have deadlines,
// windows and be interruptible, with power cap changes among its steps.
func genEnergyScript(t *rapid.T, w world) []step {
	script := genScript(t, w)
	zones := append([]string{"reg"}, w.zones()...)
	var out []step
	now := int64(0)
	for _, s := range script {
		if s.kind == "schedule" {
			now += int64(s.arg)
		}
		if s.kind == "submit" {
			j := &s.job
			if rapid.Bool().Draw(t, "deferrable") {
				j.EstimatedSec = int64(rapid.IntRange(1, 600).Draw(t, "est"))
				j.Deadline = now + j.EstimatedSec + int64(rapid.IntRange(-100, 2000).Draw(t, "slack"))
				j.Deadline = max(j.Deadline, 1)
				j.Interruptible = rapid.Bool().Draw(t, "interruptible")
			}
			if rapid.IntRange(0, 4).Draw(t, "window") == 0 {
				j.NotBefore = now + int64(rapid.IntRange(1, 300).Draw(t, "notBefore"))
				if j.Deadline > 0 && j.NotBefore >= j.Deadline {
					j.NotBefore = 0
				}
			}
		}
		out = append(out, s)
		if rapid.IntRange(0, 9).Draw(t, "capStep") == 0 {
			out = append(out, step{kind: "cap", cap: SitePowerCapped{Site: rapid.SampledFrom(zones).Draw(t, "site"),
				KW: float64(rapid.IntRange(0, 120).Draw(t, "kw")) / 4}})
		}
	}
	return out
}

// The invariants of TestPropertyInvariants, and the power property, hold
// with caps, cap cuts, forecasts and deferrable jobs among the events.
func TestPropertyEnergy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genEnergyWorld(t)
		play(t, w, genEnergyScript(t, w), false)
	})
}

func TestPropertyEnergyDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genEnergyWorld(t)
		s := genEnergyScript(t, w)
		a, b := play(t, w, s, false), play(t, w, s, true)
		if a != b {
			t.Fatalf("same events, different actions (the second run also asked Explain and EarliestStart):\n%s\n---\n%s", a, b)
		}
	})
}

// simJob is a job of the deadline property's small driver.
type dlJob struct {
	Job
	arrival, dur int64
	ran          int64 // seconds run so far
	since        int64 // start of the current run, -1 when not running
	stopAt       int64 // deadline of a suspension or preemption, -1 when none
	end          int64
	admitted     bool // admitted (started or held) in the first cycle it could start in
	firstChecked bool
	rejected     bool
}

// TestPropertyDeadlines drives the core as the simulator does, cycles at
// every event and wake, jobs running for their estimate: a deferrable job
// admitted in the first cycle its window allowed, whose deadline running
// at once would have met, meets it; no job starts before its window; and
// the carbon rule never starts a job later than running at once would
// have, plus the slack its deadline gives.
func TestPropertyDeadlines(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var nodes []fleet.Node
		zones := rapid.IntRange(1, 2).Draw(t, "zones")
		for z := range zones {
			for n := range rapid.IntRange(1, 3).Draw(t, "nodes") {
				nodes = append(nodes, fleet.Node{Name: fmt.Sprintf("z%d-n%d", z, n), Path: []string{"reg", fmt.Sprintf("z%d", z), "b", fmt.Sprintf("z%d-r", z)},
					Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 20})
			}
		}
		var zoneNames []string
		for z := range zones {
			zoneNames = append(zoneNames, fmt.Sprintf("reg/z%d", z))
		}
		cfg := Config{Admission: []string{"carbon"}, Forecast: genForecast(t, zoneNames, 60, 400), Seed: 1, PreemptAfterSec: -1}
		for _, z := range zoneNames {
			if rapid.Bool().Draw(t, "capped") {
				cfg.Sites = append(cfg.Sites, Site{Domain: z, PowerCapKW: float64(rapid.IntRange(4, 40).Draw(t, "capKW")) / 2})
			}
		}
		f, err := fleet.New(nil, nil, nodes)
		if err != nil {
			t.Fatal(err)
		}
		q, err := quota.New([]quota.Spec{{Name: "a"}, {Name: "a-q", Parent: "a", Quotas: map[string]quota.Limits{"h100": {Nominal: 1 << 40}}}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(cfg, f, q)
		if err != nil {
			t.Fatal(err)
		}
		var jobs []*dlJob
		for i := range rapid.IntRange(1, 14).Draw(t, "jobs") {
			dur := int64(rapid.IntRange(1, 40).Draw(t, "dur")) * 30
			arr := int64(rapid.IntRange(0, 60).Draw(t, "arrival")) * 30
			j := &dlJob{arrival: arr, dur: dur, since: -1, stopAt: -1, end: -1}
			j.Job = Job{ID: JobID(fmt.Sprintf("j%d", i)), Queue: "a-q", EstimatedSec: dur, NoticeSec: int64(rapid.SampledFrom([]int{0, 0, 20}).Draw(t, "notice")),
				Interruptible: rapid.Bool().Draw(t, "interruptible"),
				Gangs:         []Gang{{Replicas: rapid.IntRange(1, 2).Draw(t, "replicas"), Shape: placeShape(rapid.SampledFrom([]int{1, 2, 4, 8}).Draw(t, "gpus"))}}}
			if rapid.IntRange(0, 4).Draw(t, "noDeadline") > 0 {
				j.Deadline = max(1, arr+dur+int64(rapid.IntRange(-60, 4000).Draw(t, "slack")))
			}
			if rapid.IntRange(0, 3).Draw(t, "window") == 0 {
				j.NotBefore = arr + int64(rapid.IntRange(1, 600).Draw(t, "notBefore"))
				if j.Deadline > 0 && j.NotBefore >= j.Deadline {
					j.NotBefore = 0
				}
			}
			jobs = append(jobs, j)
		}
		sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].arrival < jobs[b].arrival })
		byID := map[JobID]*dlJob{}
		for _, j := range jobs {
			byID[j.ID] = j
		}
		var log strings.Builder
		fail := func(format string, args ...any) {
			t.Fatalf(format+"\n%s", append(args, log.String())...)
		}
		// advance brings every running job's run time up to now.
		advance := func(now int64) {
			for _, j := range jobs {
				if j.since >= 0 {
					j.ran += now - j.since
					j.since = now
				}
			}
		}
		take := func(r Ready, now int64) {
			for _, a := range r.Actions {
				fmt.Fprintf(&log, "t=%d %v\n", now, a)
				switch a := a.(type) {
				case Bind:
					j := byID[a.Job]
					if j.NotBefore > now {
						fail("job %s bound at t=%d, before its window opens at t=%d", j.ID, now, j.NotBefore)
					}
					if j.since < 0 {
						j.since = now
					}
				case Preempt:
					byID[a.Job].stopAt = a.Deadline
				case Requeue:
					j := byID[a.Job]
					if j.since >= 0 {
						j.ran += now - j.since
					}
					j.since, j.stopAt = -1, -1
				case Reject:
					// The fleet could never hold it: it is out.
					byID[a.Job].rejected = true
				}
			}
		}
		next := 0
		now := int64(0)
		for steps := 0; steps < 10000; steps++ {
			// The next event: an arrival, a finish, a stop, a wake.
			at := int64(math.MaxInt64)
			if next < len(jobs) {
				at = jobs[next].arrival
			}
			for _, j := range jobs {
				if j.since >= 0 && j.end < 0 {
					at = min(at, j.since+j.dur-j.ran)
				}
				if j.stopAt >= 0 && j.since >= 0 {
					at = min(at, j.stopAt)
				}
			}
			if w := c.Wake(); w > now {
				at = min(at, w)
			}
			if at == math.MaxInt64 {
				break
			}
			now = max(now, at)
			advance(now)
			for _, j := range jobs {
				if j.since >= 0 && j.end < 0 && j.ran >= j.dur {
					j.end, j.since = now, -1
					r, err := c.Apply(JobFinished{ID: j.ID})
					if err != nil {
						fail("finish %s: %v", j.ID, err)
					}
					take(r, now)
				}
			}
			for _, j := range jobs {
				if j.since >= 0 && j.stopAt >= 0 && j.stopAt <= now {
					j.since, j.stopAt = -1, -1
					r, err := c.Apply(JobFailed{ID: j.ID, Reason: "stopped", Requeue: true})
					if err != nil {
						fail("stop %s: %v", j.ID, err)
					}
					take(r, now)
				}
			}
			for next < len(jobs) && jobs[next].arrival == now {
				r, err := c.Apply(JobSubmitted{Job: jobs[next].Job})
				if err != nil {
					fail("submit: %v", err)
				}
				take(r, now)
				next++
			}
			take(c.Schedule(now), now)
			if err := c.CheckInvariants(); err != nil {
				fail("t=%d: %v", now, err)
			}
			for _, j := range jobs {
				if j.firstChecked || j.rejected || j.arrival > now || j.NotBefore > now {
					continue
				}
				j.firstChecked = true
				ex, ok := c.Explain(j.ID)
				j.admitted = !ok || ex.State == StateRunning || ex.Status.Code == Deferred && ex.Status.Shift != ShiftWindow
				if j.Deadline > 0 && j.admitted && ok && ex.State == StatePending && ex.EarliestStart > max(j.Deadline-j.dur, now) {
					fail("job %s held to start at t=%d, after its latest start t=%d", j.ID, ex.EarliestStart, j.Deadline-j.dur)
				}
			}
		}
		for _, j := range jobs {
			if j.end < 0 && j.admitted {
				fail("job %s was admitted and never finished", j.ID)
			}
			open := max(j.arrival, j.NotBefore)
			if j.Deadline > 0 && j.admitted && open+j.dur <= j.Deadline && j.end > j.Deadline {
				fail("job %s, admitted at t=%d when running at once would end by t=%d, ended at t=%d past its deadline t=%d", j.ID, open, open+j.dur, j.end, j.Deadline)
			}
		}
	})
}

func placeShape(gpus int) place.Request {
	return place.Request{Devices: gpus, CPUMilli: 1000, MemoryMiB: 1024}
}
