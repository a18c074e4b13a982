// Package replay runs a capacity plan's trials through the simulator:
// the plan's fleet with the trial's deliveries and retirements as node
// events, its synthetic jobs submitted to the same scheduling core the
// live plane runs, on a virtual clock. It is the driver plan.Search asks
// for waits; the planning rules stay in the pure plan package.
package replay

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/plan"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/sim"
)

// Config tunes the replays.
type Config struct {
	// Sched configures the scheduling core.
	Sched sched.Config
	// CycleSec, when positive, runs scheduling cycles only at multiples
	// of it; 0 runs one at every event, as the live loop does. A node
	// freed between periodic cycles idles until the next, which lengthens
	// every job by up to a cycle: a 15-minute cycle made hour-long jobs
	// take 75 minutes of a node, and a plan buy a fifth more than it
	// needs. At a few hundred jobs a week, a cycle at every event costs no
	// more than one every 15 minutes.
	CycleSec int64
	// Parallel bounds the trials replayed at once (0: GOMAXPROCS).
	Parallel int
}

// Simulator replays a plan's trials; it implements plan.Simulator.
type Simulator struct {
	p      *plan.Problem
	cfg    Config
	queues []quota.Spec
	leaf   map[string]string // tenant -> its queue
}

// New prepares replays of p's trials. Each tenant of the demand gets a
// queue whose quota is unbounded: a plan asks whether the fleet can serve
// the demand, not how quotas would ration it.
func New(p *plan.Problem, cfg Config) (*Simulator, error) {
	if cfg.Parallel <= 0 {
		cfg.Parallel = runtime.GOMAXPROCS(0)
	}
	s := &Simulator{p: p, cfg: cfg, leaf: map[string]string{}}
	unbounded := map[string]quota.Limits{}
	for _, t := range p.Fleet.Catalog.Names() {
		// A billion accelerators a tenant: no limit, and sums of them
		// stay far from overflowing.
		unbounded[t] = quota.Limits{Nominal: 1 << 40}
	}
	for _, d := range p.Demand {
		t := d.Key.Tenant
		if _, ok := s.leaf[t]; ok {
			continue
		}
		if t == quota.RootName {
			return nil, fmt.Errorf("tenant %q: the name is the queue tree's root; rename the tenant in the history", t)
		}
		s.leaf[t] = t + "/plan"
		s.queues = append(s.queues, quota.Spec{Name: t, Quotas: unbounded}, quota.Spec{Name: t + "/plan", Parent: t})
	}
	return s, nil
}

// Replay implements plan.Simulator: the trials run at once, up to
// Parallel of them, each on its own copy of the fleet.
func (s *Simulator) Replay(trials []plan.Trial) ([]plan.Run, error) {
	runs := make([]plan.Run, len(trials))
	errs := make([]error, len(trials))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(s.cfg.Parallel, len(trials)) {
		wg.Go(func() {
			for i := range next {
				runs[i], errs[i] = s.replay(trials[i])
			}
		})
	}
	for i := range trials {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return runs, nil
}

func (s *Simulator) replay(t plan.Trial) (plan.Run, error) {
	nodes := append([]fleet.Node(nil), s.p.Fleet.Nodes...)
	f, err := fleet.New(s.p.Fleet.Catalog, s.p.Fleet.Levels, nodes)
	if err != nil {
		return plan.Run{}, err
	}
	cfg := sim.Config{Sched: s.cfg.Sched, CycleSec: s.cfg.CycleSec, Until: t.End, SampleSec: plan.WeekSec, Seed: s.cfg.Sched.Seed,
		AbandonAfterSec: max(1, plan.AbandonFactor*s.p.Target.WaitSec)}
	for _, c := range t.Changes {
		if c.Add != nil {
			cfg.NodeEvents = append(cfg.NodeEvents, sim.NodeEvent{At: c.At, Kind: sim.NodeAdd, Node: *c.Add})
		} else {
			cfg.NodeEvents = append(cfg.NodeEvents, sim.NodeEvent{At: c.At, Kind: sim.NodeRetire, Node: fleet.Node{Name: c.Retire}})
		}
	}
	res, err := sim.Run(cfg, f, s.queues, &source{s: s, ws: t.Workload})
	if err != nil {
		return plan.Run{}, err
	}
	r := plan.Run{Start: make([]int64, len(t.Workload)), Gone: make([]int64, len(t.Workload)), End: res.Summary.End}
	for i := range r.Start {
		r.Start[i], r.Gone[i] = -1, -1
	}
	for _, j := range res.Jobs {
		i, err := strconv.Atoi(j.ID[1:])
		if err != nil || i < 0 || i >= len(r.Start) {
			return plan.Run{}, fmt.Errorf("replay returned job %q, not one of the workload's", j.ID)
		}
		r.Start[i] = j.Start
		if j.Status == sim.StatusAbandoned {
			r.Gone[i] = j.End
		}
	}
	// The run ends at Until, or earlier when all work is done: a job that
	// had not started had waited until Until.
	r.End = max(r.End, t.End)
	return r, nil
}

// source turns a plan's arrivals into the simulator's jobs, one at a time.
type source struct {
	s  *Simulator
	ws []plan.Arrival
	i  int
}

func (src *source) Next() (sim.Job, error) {
	if src.i >= len(src.ws) {
		return sim.Job{}, io.EOF
	}
	i := src.i
	src.i++
	return src.s.job(i, src.ws[i]), nil
}

func (s *Simulator) job(i int, a plan.Arrival) sim.Job {
	key := s.p.Demand[a.Series].Key
	kind, _ := sched.ParseKind(key.Kind)
	shape := place.Request{Devices: a.PerReplica, Milli: a.Milli}
	if key.Accel != plan.AnyAccel {
		shape.Accel = []string{key.Accel}
	}
	return sim.Job{Arrival: a.At, Duration: a.Sec, Job: sched.Job{
		ID: sched.JobID("j" + strconv.Itoa(i)), Tenant: key.Tenant, Queue: s.leaf[key.Tenant], Kind: kind,
		Gangs: []sched.Gang{{Replicas: a.Replicas, Shape: shape}}, WaitForCapacity: true,
	}}
}
