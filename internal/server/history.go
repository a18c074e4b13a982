package server

import (
	"net/http"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/store"
)

// sample takes one sample of the fleet and the queues (on the loop
// goroutine), keeps it for GET /v1/history and publishes it.
func (f *feed) sample(l *loop, now time.Time) {
	smp := api.Sample{Time: now.UTC(), Fleet: fleetSample(l), Queues: map[string]api.QueueSample{}}
	_, pending, running := l.held()
	qi := l.s.queues.Load()
	stats := queueStats(l.core.Queues())
	tree := l.core.Queues()
	for _, sp := range l.specs {
		q := tree.Queue(sp.Name)
		if q < 0 {
			continue
		}
		st := stats[sp.Name]
		qs := api.QueueSample{Share: round4(st.share), Entitlement: round4(st.entitlement),
			Pending: pending[sp.Name], Running: running[sp.Name]}
		for fi := range tree.Flavors() {
			qs.Usage += float64(tree.Usage(q, fi)) / 1000
		}
		for _, b := range st.borrowed {
			qs.Borrowed += float64(b) / 1000
		}
		smp.Queues[sp.Name] = qs
	}
	// A tenant's counts are its queues'.
	for _, sp := range l.specs {
		if t := qi.tenantOf[sp.Name]; t != sp.Name {
			ts := smp.Queues[t]
			ts.Pending += pending[sp.Name]
			ts.Running += running[sp.Name]
			smp.Queues[t] = ts
		}
	}
	smp.Fleet.Pending, smp.Fleet.Running = 0, 0
	for _, n := range pending {
		smp.Fleet.Pending += n
	}
	for _, n := range running {
		smp.Fleet.Running += n
	}
	f.mu.Lock()
	if len(f.history) == maxHistory {
		copy(f.history, f.history[1:])
		f.history = f.history[:maxHistory-1]
	}
	f.history = append(f.history, smp)
	f.mu.Unlock()
	f.publish(streamEvent{typ: api.StreamSample, sample: &smp})
}

// fleetSample is the fleet's allocation now: utilization over the nodes
// that are up, and fragmentation over the free capacity of the nodes that
// take work (ready ones), as the simulator measures it.
func fleetSample(l *loop) *api.FleetSample {
	alloc := map[string]int64{}
	l.lc.Jobs(func(j *store.Job) {
		if j.State != store.Running && j.State != store.Preempting && j.State != store.Cancelling {
			return
		}
		for i := range j.Replicas {
			if r := &j.Replicas[i]; !r.Shrunk {
				alloc[r.Node] += replicaMilli(r)
			}
		}
	})
	fs := &api.FleetSample{ByType: map[string]api.TypeSample{}}
	var capMilli, used, free, freeEmpty int64
	for name, n := range l.nodes {
		switch n.rec.State {
		case fleet.Down.String():
			fs.Down++
			continue
		case fleet.Draining.String():
			fs.Draining++
		default:
			fs.Ready++
		}
		c := int64(n.rec.Info.Count) * 1000
		a := min(alloc[name], c)
		capMilli += c
		used += a
		if n.rec.Info.Accel != "" && c > 0 {
			ts := fs.ByType[n.rec.Info.Accel]
			ts.Accelerators += float64(c) / 1000
			ts.Allocated += float64(a) / 1000
			fs.ByType[n.rec.Info.Accel] = ts
		}
		if n.rec.State == fleet.Ready.String() {
			free += c - a
			if a == 0 {
				freeEmpty += c
			}
		}
	}
	fs.Accelerators, fs.Allocated = float64(capMilli)/1000, float64(used)/1000
	if capMilli > 0 {
		fs.Utilization = round4(float64(used) / float64(capMilli))
	}
	if free > 0 {
		fs.Fragmentation = round4(1 - float64(freeEmpty)/float64(free))
	}
	if len(fs.ByType) == 0 {
		fs.ByType = nil
	}
	return fs
}

// sampleFor cuts a sample down to what p may see: a tenant sees its own
// queues, not the fleet's allocation (every tenant's together).
func (s *Server) sampleFor(smp api.Sample, p principal) api.Sample {
	if p.admin() {
		return smp
	}
	qi := s.queues.Load()
	out := api.Sample{Time: smp.Time, Queues: map[string]api.QueueSample{}}
	for name, q := range smp.Queues {
		if qi.tenantOf[name] == p.tenant {
			out.Queues[name] = q
		}
	}
	return out
}

// history is GET /v1/history.
func (s *Server) history(w http.ResponseWriter, r *http.Request, p principal) {
	s.feed.mu.Lock()
	samples := make([]api.Sample, len(s.feed.history))
	copy(samples, s.feed.history)
	s.feed.mu.Unlock()
	for i := range samples {
		samples[i] = s.sampleFor(samples[i], p)
	}
	writeJSON(w, http.StatusOK, api.History{IntervalSeconds: s.cfg.HistoryInterval.Seconds(), MaxSamples: maxHistory, Samples: samples})
}
