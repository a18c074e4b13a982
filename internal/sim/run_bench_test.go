package sim

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// benchFleet is racks of four 8-accelerator nodes, 25 racks to a block,
// nodes/100 blocks, in one region of three types like fleet-10k.yaml.
func benchFleet(b *testing.B, nodes int) *fleet.Fleet {
	b.Helper()
	blocks := max(nodes/100, 1)
	h100 := max(blocks/2, 1)
	f, err := spec.GenerateFleet(
		spec.Generator{Path: []string{"us-east", "z1"}, Per: []int{h100, 25}, Nodes: 4, Accel: "h100", Count: 8, CPUMilli: 192000, MemoryMiB: 2 << 20},
		spec.Generator{Path: []string{"eu-north", "z1"}, Per: []int{max(blocks-h100, 1), 25}, Nodes: 4, Accel: "h200", Count: 8, CPUMilli: 192000, MemoryMiB: 2 << 20},
	)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func benchWorkload(b *testing.B, f *fleet.Fleet, jobs int) (*Generator, []quota.Spec) {
	b.Helper()
	g, err := NewGenerator(GenConfig{Jobs: jobs, Seed: 1, Tenants: 8, Fleet: f})
	if err != nil {
		b.Fatal(err)
	}
	return g, g.Queues()
}

// BenchmarkRun replays generated workloads through the real core, with
// scheduling cycles once a virtual minute as on a large fleet.
func BenchmarkRun(b *testing.B) {
	for _, size := range []struct{ nodes, jobs int }{{1000, 5000}, {10000, 20000}} {
		b.Run(fmt.Sprintf("nodes=%d/jobs=%d", size.nodes, size.jobs), func(b *testing.B) {
			for b.Loop() {
				f := benchFleet(b, size.nodes)
				g, qs := benchWorkload(b, f, size.jobs)
				if _, err := Run(Config{CycleSec: 60}, f, qs, g); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(size.jobs), "ns/job")
		})
	}
}

// BenchmarkEngine measures the engine alone: the same workloads driven by
// greedyFit, a trivial stand-in for the core, so that the engine's own
// cost per job can be told apart from the core's.
func BenchmarkEngine(b *testing.B) {
	for _, size := range []struct{ nodes, jobs int }{{10000, 100000}} {
		b.Run(fmt.Sprintf("nodes=%d/jobs=%d", size.nodes, size.jobs), func(b *testing.B) {
			for b.Loop() {
				f := benchFleet(b, size.nodes)
				g, qs := benchWorkload(b, f, size.jobs)
				if _, err := runWith(Config{CycleSec: 60}, f, qs, newGreedyFit(f), g); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(size.jobs), "ns/job")
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	f := benchFleet(b, 10000)
	g, _ := benchWorkload(b, f, b.N)
	b.ResetTimer()
	for {
		if _, err := g.Next(); err == io.EOF {
			break
		}
	}
}

func BenchmarkTraceRead(b *testing.B) {
	f := benchFleet(b, 1000)
	g, _ := benchWorkload(b, f, 10000)
	var buf bytes.Buffer
	w := NewTraceWriter(&buf)
	for {
		j, err := g.Next()
		if err == io.EOF {
			break
		}
		if err := w.Job(&j); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r := NewTraceReader("bench", bytes.NewReader(data))
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// greedyFit is a deliberately simple scheduler for BenchmarkEngine: FIFO,
// each replica on the next node (round robin) with enough free milli, no
// quotas, topology or preemption. It is not gpufleet's policy.
type greedyFit struct {
	free    []int64 // milli per node
	names   []string
	cursor  int
	pending []sched.Job
	held    map[sched.JobID][][2]int64 // node, milli
	out     []sched.Action
}

func newGreedyFit(f *fleet.Fleet) *greedyFit {
	g := &greedyFit{held: map[sched.JobID][][2]int64{}}
	for _, n := range f.Nodes {
		g.free = append(g.free, int64(n.Count)*1000)
		g.names = append(g.names, n.Name)
	}
	return g
}

func (g *greedyFit) Apply(ev sched.Event) (sched.Ready, error) {
	switch e := ev.(type) {
	case sched.JobSubmitted:
		g.pending = append(g.pending, e.Job)
	case sched.JobFinished:
		g.release(e.ID)
	case sched.JobFailed:
		g.release(e.ID)
	}
	return sched.Ready{}, nil
}

func (g *greedyFit) release(id sched.JobID) {
	for _, h := range g.held[id] {
		g.free[h[0]] += h[1]
	}
	delete(g.held, id)
}

func (g *greedyFit) Schedule(int64) sched.Ready {
	acts := g.out[:0]
	for len(g.pending) > 0 {
		j := g.pending[0]
		var binds []sched.Action
		var held [][2]int64
		ok := true
		for gi, gang := range j.Gangs {
			m := gang.Shape.GPUMilli()
			for r := 0; r < gang.Replicas && ok; r++ {
				ok = false
				for k := 0; k < 64; k++ {
					n := (g.cursor + k) % len(g.free)
					if g.free[n] >= m {
						g.free[n] -= m
						held = append(held, [2]int64{int64(n), m})
						devs, milli := make([]int, max(1, gang.Shape.Devices)), int32(1000)
						if gang.Shape.Devices == 0 {
							milli = gang.Shape.Milli
						}
						binds = append(binds, sched.Bind{Job: j.ID, Gang: gi, Replica: r, Node: g.names[n], Devices: devs, Milli: milli})
						g.cursor = n + 1
						ok = true
						break
					}
				}
			}
		}
		if !ok {
			for _, h := range held {
				g.free[h[0]] += h[1]
			}
			break
		}
		g.held[j.ID] = held
		acts = append(acts, binds...)
		g.pending = g.pending[1:]
	}
	g.out = acts
	return sched.Ready{Actions: acts}
}
