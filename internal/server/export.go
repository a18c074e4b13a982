package server

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/store"
)

// export streams the fleet's recorded history between from and to as a
// native trace (docs/TRACE_FORMAT.md), the digital twin's input: the
// scheduler's configuration, the queue tree, the nodes (those registered
// by from are the fleet at the start, later ones are added when they
// registered), then every job submitted in the window as it was
// submitted, with its actual runtime as its duration and what happened
// to it as observed. Virtual second 0 is from. It reads the store
// directly, which is safe beside the loop, and streams: a long history
// is never held whole.
func (s *Server) export(w http.ResponseWriter, r *http.Request, _ principal) {
	now := s.cfg.Now()
	nodes, err := s.db.Nodes()
	if err != nil {
		writeErr(w, err)
		return
	}
	first, err := s.recordStart(nodes, now)
	if err != nil {
		writeErr(w, err)
		return
	}
	from, to, err := exportWindow(r, first, now)
	if err != nil {
		writeErr(w, err)
		return
	}
	specs, err := s.db.Queues()
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	rc := http.NewResponseController(w)
	// The answer is as long as the history: each chunk written gets its
	// own deadline, so a slow reader is still cut off.
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)) }
	extend()
	tw := sim.NewTraceWriter(w)
	x := exporter{from: from.UnixMilli(), to: to.UnixMilli(), end: min(to.UnixMilli(), now.UnixMilli()), cat: fleet.DefaultCatalog()}
	sched := s.cfg.Sched
	err = tw.Header(sim.Header{Source: fmt.Sprintf("gpufleet export --from %s --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339)),
		Origin: from.UTC().Format(time.RFC3339), Sched: &sched})
	for _, q := range specs {
		if err == nil {
			err = tw.Queue(q)
		}
	}
	if err == nil {
		err = x.nodes(tw, nodes)
	}
	n := 0
	if err == nil {
		err = s.db.Jobs(func(j *store.Job) bool {
			job, ok := x.job(j)
			if !ok {
				return true
			}
			if err = tw.Job(&job); err != nil {
				return false
			}
			if n++; n%1000 == 0 {
				if err = tw.Flush(); err != nil {
					return false
				}
				_ = rc.Flush()
				extend()
			}
			return true
		})
	}
	if err == nil {
		err = tw.Flush()
	}
	if err != nil {
		// The status is sent; the client sees a trace cut short, which
		// its strict reader reports.
		s.log.Warn("export cut short", "err", err)
	}
}

// recordStart is when the record begins: the first node's registration
// or the first job's submission, in whole seconds.
func (s *Server) recordStart(nodes []store.Node, now time.Time) (time.Time, error) {
	first := now.Unix()
	for _, n := range nodes {
		first = min(first, n.Registered)
	}
	err := s.db.Jobs(func(j *store.Job) bool {
		first = min(first, j.SubmittedMs/1000)
		return false // the first job submitted is the earliest
	})
	return time.Unix(first, 0).UTC(), err
}

// exportWindow reads from and to (RFC 3339; from defaults to the
// beginning of the record, to to now).
func exportWindow(r *http.Request, first, now time.Time) (from, to time.Time, err error) {
	q := r.URL.Query()
	from, to = first, now
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return from, to, api.Invalid("from", "%q: want a time in RFC 3339, such as 2026-12-01T00:00:00Z", v)
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse(time.RFC3339, v); err != nil {
			return from, to, api.Invalid("to", "%q: want a time in RFC 3339, such as 2026-12-08T00:00:00Z", v)
		}
	}
	if !to.After(from) {
		return from, to, api.Invalid("to", "%s is not after from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	return from, to, nil
}

// exporter turns store records into trace lines for one window.
type exporter struct {
	from, to int64 // Unix ms
	// end is what the record reaches: to, or now if sooner.
	end  int64
	cat  *fleet.Catalog
	last int64 // the last arrival written
}

// sec is a wall-clock time in Unix ms on the trace's clock: whole seconds
// since from, rounded down. Durations are differences of such seconds, so
// that a replay's starts, each a finish of one before, do not drift from
// the recorded ones by the accumulated rounding.
func (x *exporter) sec(ms int64) int64 { return int64(math.Floor(float64(ms-x.from) / 1000)) }

func (x *exporter) nodes(tw *sim.TraceWriter, nodes []store.Node) error {
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Registered < nodes[j].Registered })
	var events []sim.NodeEvent
	for _, n := range nodes {
		fn, err := fleetNode(n.Info)
		if err != nil {
			continue // a node the core never took
		}
		fn.State = fleet.Ready
		reg := n.Registered * 1000
		switch {
		case reg > x.to:
			continue
		case reg <= x.from:
			if err := tw.Node(fn); err != nil {
				return err
			}
		default:
			events = append(events, sim.NodeEvent{At: x.sec(reg), Kind: sim.NodeAdd, Node: fn})
		}
	}
	for _, ev := range events {
		if err := tw.NodeEvent(ev); err != nil {
			return err
		}
	}
	return nil
}

// outcome names a job's state at the end of the window.
func outcome(state string) string {
	switch state {
	case store.Succeeded, store.Failed, store.Cancelled:
		return state
	case store.Pending:
		return "pending"
	}
	return "running"
}

// job is a store record as a trace job, or false for one left out: not
// submitted in the window, or never started and without a runtime to
// give it (cancelled or refused before it ran, or pending without an
// estimate).
func (x *exporter) job(j *store.Job) (sim.Job, bool) {
	if j.SubmittedMs < x.from || j.SubmittedMs > x.to {
		return sim.Job{}, false
	}
	out := sim.Job{Job: j.Spec, Arrival: x.sec(j.SubmittedMs), Duration: sim.NoDuration}
	out.ID, out.Tenant, out.Queue = j.Spec.ID, j.Tenant, j.Queue
	// Concurrent submissions may commit a few milliseconds out of order:
	// a trace's arrivals do not go back in time.
	out.Arrival = max(out.Arrival, x.last)
	started := j.StartedMs > 0 && j.StartedMs <= x.to
	state := j.State
	if j.FinishedMs > x.to {
		state = store.Running // it was still running at the window's end
	}
	obs := &sim.Observed{Outcome: outcome(state), Attempts: j.Attempt}
	if !started {
		obs.Outcome, obs.Attempts = "pending", 0
	}
	switch {
	case started:
		start := x.sec(j.StartedMs)
		end := x.sec(x.end)
		if store.Terminal(state) && j.FinishedMs > 0 {
			end = x.sec(j.FinishedMs)
			obs.End = &end
		}
		obs.Start = &start
		if store.Terminal(state) || j.Spec.Kind.String() != "service" {
			// The runtime at relative speed 1.0: the time it ran, times
			// the speed of the accelerators it ran on.
			out.Duration = int64(math.Round(float64(end-start) * x.speed(j)))
		}
	case state == store.Pending && j.Spec.EstimatedSec > 0:
		out.Duration = j.Spec.EstimatedSec
	case state == store.Pending && j.Spec.MaxSec > 0:
		out.Duration = j.Spec.MaxSec
	case state == store.Pending && j.Spec.Kind.String() == "service":
	default:
		return sim.Job{}, false
	}
	out.Observed = obs
	x.last = out.Arrival
	return out, true
}

// speed is the relative speed of the slowest accelerator a job ran on
// (1 for CPU-only work), as the simulator runs a gang.
func (x *exporter) speed(j *store.Job) float64 {
	best := math.Inf(1)
	for _, r := range j.Replicas {
		if i := x.cat.Index(r.Accel); i >= 0 && x.cat.Types[i].RelSpeed > 0 {
			best = min(best, x.cat.Types[i].RelSpeed)
		}
	}
	if math.IsInf(best, 1) {
		return 1
	}
	return best
}
