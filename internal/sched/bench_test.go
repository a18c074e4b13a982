package sched

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// benchFleet builds n nodes of 8 accelerators in 4 regions, racks of 8
// nodes, 16 racks a block; the three types split the fleet by zone.
func benchFleet(n int) []fleet.Node {
	types := []string{"h100", "h200", "b200"}
	nodes := make([]fleet.Node, 0, n)
	perRegion := n / 4
	zones := max(1, perRegion/2048) // up to 2048 nodes a zone
	for i := range n {
		r := i / perRegion
		k := i % perRegion
		rack := k / 8
		block := rack / 16
		zone := min(block*16*8/max(1, perRegion/zones), zones-1)
		nodes = append(nodes, fleet.Node{
			Name:  fmt.Sprintf("r%d-n%d", r, k),
			Path:  []string{fmt.Sprintf("r%d", r), fmt.Sprintf("r%d-z%d", r, zone), fmt.Sprintf("r%d-b%d", r, block), fmt.Sprintf("r%d-k%d", r, rack)},
			Accel: types[(r+zone)%3], Count: 8, CPUMilli: 192000, MemoryMiB: 2 << 20,
		})
	}
	return nodes
}

// benchQueues: 100 tenants of 10 queues, nominal shares that add up to the
// fleet, unlimited borrowing.
func benchQueues(n int) []quota.Spec {
	var specs []quota.Spec
	per := int64(n) * 8 * 1000 / 1000 // milli per queue per type (fleet/1000 queues)
	for t := range 100 {
		specs = append(specs, quota.Spec{Name: fmt.Sprintf("t%d", t)})
		for q := range 10 {
			specs = append(specs, quota.Spec{Name: fmt.Sprintf("t%d-q%d", t, q), Parent: fmt.Sprintf("t%d", t),
				Quotas: map[string]quota.Limits{"h100": {Nominal: per}, "h200": {Nominal: per}, "b200": {Nominal: per}}})
		}
	}
	return specs
}

// benchJob draws a job from the mix: fractional and 1-GPU jobs most of
// all, single-node multi-GPU jobs, multi-node gangs with preferred
// topology, and large gangs (up to 512 accelerators) that require a block.
func benchJob(rng *rand.Rand, i int) Job {
	types := [][]string{{"h100"}, {"h200"}, {"b200"}, {"h200", "h100"}, nil}
	j := Job{ID: JobID(fmt.Sprintf("j%d", i)), Queue: fmt.Sprintf("t%d-q%d", rng.IntN(100), rng.IntN(10)),
		Priority: int32(rng.IntN(3)), EstimatedSec: int64(600 + rng.IntN(36000))}
	g := Gang{Replicas: 1}
	g.Shape.Accel = types[rng.IntN(len(types))]
	g.Shape.CPUMilli, g.Shape.MemoryMiB = 4000, 16<<10
	switch p := rng.IntN(100); {
	case p < 35:
		g.Shape.Milli = int32(100 + 100*rng.IntN(9))
	case p < 70:
		g.Shape.Devices = 1
	case p < 88:
		g.Shape.Devices = []int{2, 4, 8}[rng.IntN(3)]
	case p < 97:
		g.Shape.Devices = 8
		g.Replicas = 2 + rng.IntN(7)
		j.Topology = Topology{Level: "rack"}
	default:
		g.Shape.Devices = 8
		g.Replicas = []int{16, 32, 64}[rng.IntN(3)]
		j.Topology = Topology{Level: "block", Required: true}
	}
	j.Gangs = []Gang{g}
	return j
}

func benchCore(b *testing.B, nodes, maxBinds int, noBackfill bool, energy ...func(*Config, *fleet.Fleet)) *Core {
	f, err := fleet.New(nil, nil, benchFleet(nodes))
	if err != nil {
		b.Fatal(err)
	}
	q, err := quota.New(benchQueues(nodes))
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{MaxBindsPerCycle: maxBinds, Seed: 1, NoBackfill: noBackfill}
	for _, e := range energy {
		e(&cfg, f)
	}
	c, err := New(cfg, f, q)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// benchCaps caps every region and zone high enough never to bind: the
// cost of the power check on every candidate.
func benchCaps(cfg *Config, f *fleet.Fleet) {
	for d := 1; d < len(f.Domains); d++ {
		if f.Domains[d].Level <= 1 {
			cfg.Sites = append(cfg.Sites, Site{Domain: f.DomainPath(d), PowerCapKW: 1e6, PUE: 1.2})
		}
	}
}

// benchForecast is a diurnal forecast for every zone (its phase by zone),
// 30-minute steps over 90 days.
type benchForecast struct{}

func (benchForecast) StepSec() int64 { return 1800 }
func (benchForecast) Intensity(site string, from, to int64) []float64 {
	phase := float64(len(site) % 7)
	first := from - from%1800
	out := make([]float64, 0, (to-first)/1800+1)
	for t := first; t < to && len(out) < 90*48; t += 1800 {
		out = append(out, 250+100*math.Sin(2*math.Pi*(float64(t)/86400+phase/7)))
	}
	return out
}

func benchCarbon(cfg *Config, f *fleet.Fleet) {
	cfg.Forecast = benchForecast{}
	cfg.Admission = []string{"carbon"}
}

// benchShift measures the carbon rule's cost: with the fleet 70% full,
// submit a deferrable job (deadline 12 hours past its estimate, half of
// them interruptible), run a cycle (it plans every zone and is held or
// starts), and cancel it.
func benchShift(b *testing.B, nodes int) {
	c := benchCore(b, nodes, 0, true, benchCarbon)
	rng := rand.New(rand.NewPCG(3, 4))
	next := 0
	used, now := 0, int64(0)
	for used < nodes*8*7/10 && next <= 10*nodes {
		j := benchJob(rng, next)
		next++
		if _, err := c.Apply(JobSubmitted{Job: j}); err != nil {
			b.Fatal(err)
		}
		now++
		for _, a := range c.Schedule(now).Actions {
			if bd, ok := a.(Bind); ok {
				used += len(bd.Devices)
			}
		}
	}
	held := 0
	b.ResetTimer()
	for b.Loop() {
		j := benchJob(rng, next)
		next++
		j.Deadline = now + j.EstimatedSec + 12*3600
		j.Interruptible = next%2 == 0
		if _, err := c.Apply(JobSubmitted{Job: j}); err != nil {
			b.Fatal(err)
		}
		now++
		c.Schedule(now)
		if ex, _ := c.Explain(j.ID); ex.Status.Code == Deferred {
			held++
		}
		if _, err := c.Apply(JobCancelled{ID: j.ID}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(held)/float64(b.N), "held-fraction")
}

// benchSchedule measures throughput with 100,000 jobs pending: each
// iteration starts from an empty fleet and runs scheduling cycles of up to
// 1,000 admissions until a cycle admits nothing (the fleet is full or the
// jobs are all placed); placed jobs are replaced by new submissions so that
// 100,000 stay pending. Only Schedule is timed.
func benchSchedule(b *testing.B, nodes int) {
	c := benchCore(b, nodes, 1000, false)
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	submit := func() {
		if _, err := c.Apply(JobSubmitted{Job: benchJob(rng, next)}); err != nil {
			b.Fatal(err)
		}
		next++
	}
	for range 100_000 {
		submit()
	}
	var cycles []time.Duration
	var placed, mallocs uint64
	var ms runtime.MemStats
	now := int64(0)
	var running []JobID
	b.ResetTimer()
	for b.Loop() {
		for {
			now++
			runtime.ReadMemStats(&ms)
			before := ms.Mallocs
			start := time.Now()
			acts := c.Schedule(now).Actions
			d := time.Since(start)
			runtime.ReadMemStats(&ms)
			mallocs += ms.Mallocs - before
			cycles = append(cycles, d)
			b.StopTimer()
			n := 0
			for _, a := range acts {
				if bd, ok := a.(Bind); ok && bd.Replica == 0 && bd.Gang == 0 {
					n++
					running = append(running, bd.Job)
					submit()
				}
			}
			placed += uint64(n)
			b.StartTimer()
			if n == 0 {
				break
			}
		}
		b.StopTimer()
		for _, id := range running {
			if _, err := c.Apply(JobFinished{ID: id}); err != nil {
				b.Fatal(err)
			}
		}
		running = running[:0]
		b.StartTimer()
	}
	b.StopTimer()
	var total time.Duration
	for _, d := range cycles {
		total += d
	}
	slices.Sort(cycles)
	if placed > 0 {
		b.ReportMetric(float64(placed)/total.Seconds(), "placements/s")
		b.ReportMetric(float64(total.Nanoseconds())/float64(placed), "ns/placement")
		b.ReportMetric(float64(mallocs)/float64(placed), "allocs/placement")
	}
	b.ReportMetric(float64(cycles[len(cycles)/2].Microseconds())/1000, "p50-cycle-ms")
	b.ReportMetric(float64(cycles[len(cycles)*99/100].Microseconds())/1000, "p99-cycle-ms")
}

// benchPlace measures the cost of one placement with a fleet that is
// already 70% allocated and few jobs pending: submit one job, run a cycle,
// finish it. This isolates how placement cost grows with the fleet, so
// backfill reservations (a cost of failing, not of placing) are off.
func benchPlace(b *testing.B, nodes int, energy ...func(*Config, *fleet.Fleet)) {
	c := benchCore(b, nodes, 0, true, energy...)
	rng := rand.New(rand.NewPCG(3, 4))
	next := 0
	total := nodes * 8
	used := 0
	now := int64(0)
	for used < total*7/10 {
		j := benchJob(rng, next)
		next++
		if _, err := c.Apply(JobSubmitted{Job: j}); err != nil {
			b.Fatal(err)
		}
		now++
		for _, a := range c.Schedule(now).Actions {
			if bd, ok := a.(Bind); ok {
				used += len(bd.Devices)
			}
		}
		if next > 10*nodes {
			break
		}
	}
	var placed int
	b.ResetTimer()
	for b.Loop() {
		j := benchJob(rng, next)
		next++
		if _, err := c.Apply(JobSubmitted{Job: j}); err != nil {
			b.Fatal(err)
		}
		now++
		acts := c.Schedule(now).Actions
		if len(acts) > 0 {
			placed++
			if _, err := c.Apply(JobFinished{ID: j.ID}); err != nil {
				b.Fatal(err)
			}
		} else if _, err := c.Apply(JobCancelled{ID: j.ID}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(placed)/float64(b.N), "placed-fraction")
}

func BenchmarkSchedule1kNodes(b *testing.B)   { benchSchedule(b, 1_000) }
func BenchmarkSchedule10kNodes(b *testing.B)  { benchSchedule(b, 10_000) }
func BenchmarkSchedule100kNodes(b *testing.B) { benchSchedule(b, 100_000) }

func BenchmarkPlace10kNodesCapped(b *testing.B) { benchPlace(b, 10_000, benchCaps) }
func BenchmarkShift1kNodes(b *testing.B)        { benchShift(b, 1_000) }
func BenchmarkShift10kNodes(b *testing.B)       { benchShift(b, 10_000) }

func BenchmarkPlace1kNodes(b *testing.B)   { benchPlace(b, 1_000) }
func BenchmarkPlace10kNodes(b *testing.B)  { benchPlace(b, 10_000) }
func BenchmarkPlace100kNodes(b *testing.B) { benchPlace(b, 100_000) }
