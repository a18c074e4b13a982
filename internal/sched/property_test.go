package sched

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// world is a random fleet and queue tree for property tests.
type world struct {
	nodes []fleet.Node
	specs []quota.Spec
	cfg   Config
}

func genWorld(t *rapid.T) world {
	var w world
	types := []string{"h100", "h200"}
	for z := range rapid.IntRange(1, 2).Draw(t, "zones") {
		for b := range rapid.IntRange(1, 2).Draw(t, "blocks") {
			for r := range rapid.IntRange(1, 2).Draw(t, "racks") {
				nn := rapid.IntRange(1, 3).Draw(t, "nodes")
				for n := range nn {
					ty := rapid.SampledFrom(types).Draw(t, "type")
					w.nodes = append(w.nodes, fleet.Node{
						Name:  fmt.Sprintf("z%d-b%d-r%d-n%d", z, b, r, n),
						Path:  []string{"reg", fmt.Sprintf("z%d", z), fmt.Sprintf("z%d-b%d", z, b), fmt.Sprintf("z%d-b%d-r%d", z, b, r)},
						Accel: ty, Count: rapid.SampledFrom([]int{4, 8}).Draw(t, "count"),
						CPUMilli: 32000, MemoryMiB: 256 * 1024,
					})
				}
			}
		}
	}
	for ti := range 2 {
		tn := fmt.Sprintf("t%d", ti)
		w.specs = append(w.specs, quota.Spec{Name: tn})
		for qi := range 2 {
			l := map[string]quota.Limits{}
			for _, ty := range types {
				nom := int64(rapid.IntRange(0, 16).Draw(t, "nominal")) * 1000
				lim := quota.Limits{Nominal: nom}
				if rapid.Bool().Draw(t, "hasBorrow") {
					b := int64(rapid.IntRange(0, 16).Draw(t, "borrow")) * 1000
					lim.Borrow = &b
				}
				if rapid.Bool().Draw(t, "hasLend") {
					x := int64(rapid.IntRange(0, int(nom/1000)).Draw(t, "lend")) * 1000
					lim.Lend = &x
				}
				l[ty] = lim
			}
			w.specs = append(w.specs, quota.Spec{Name: fmt.Sprintf("%s-q%d", tn, qi), Parent: tn, Quotas: l,
				Weight: float64(rapid.IntRange(1, 3).Draw(t, "weight")), Strict: rapid.Bool().Draw(t, "strict")})
		}
	}
	w.cfg.Seed = rapid.Uint64().Draw(t, "seed")
	w.cfg.Placement = rapid.SampledFrom([][]string{nil, {"spread"}, {"bestfit"}}).Draw(t, "placement")
	return w
}

// script is a random sequence of events and cycles.
type step struct {
	kind string
	job  Job
	id   int
	arg  int
	flag bool
}

func genJob(t *rapid.T, i int) Job {
	j := Job{ID: JobID(fmt.Sprintf("j%d", i)), Queue: fmt.Sprintf("t%d-q%d", rapid.IntRange(0, 1).Draw(t, "tenant"), rapid.IntRange(0, 1).Draw(t, "queue")),
		Priority:      int32(rapid.IntRange(0, 3).Draw(t, "prio")),
		Preemptible:   rapid.Bool().Draw(t, "preemptible"),
		NoticeSec:     int64(rapid.SampledFrom([]int{0, 0, 10, 50}).Draw(t, "notice")),
		EstimatedSec:  int64(rapid.SampledFrom([]int{0, 30, 100, 500}).Draw(t, "est")),
		CheckpointSec: int64(rapid.SampledFrom([]int{0, 20}).Draw(t, "ckpt")),
	}
	for range rapid.IntRange(1, 2).Draw(t, "gangs") {
		g := Gang{Replicas: rapid.IntRange(1, 4).Draw(t, "replicas")}
		if rapid.IntRange(0, 4).Draw(t, "elastic") == 0 {
			g.MinReplicas = rapid.IntRange(1, g.Replicas).Draw(t, "min")
		}
		if rapid.IntRange(0, 3).Draw(t, "fraction") == 0 {
			g.Shape.Milli = int32(rapid.IntRange(1, 999).Draw(t, "milli"))
		} else {
			g.Shape.Devices = rapid.SampledFrom([]int{1, 2, 4, 8}).Draw(t, "devices")
		}
		g.Shape.CPUMilli = int64(rapid.IntRange(0, 16000).Draw(t, "cpu"))
		g.Shape.MemoryMiB = int64(rapid.IntRange(0, 64*1024).Draw(t, "mem"))
		g.Shape.Accel = rapid.SampledFrom([][]string{nil, {"h100"}, {"h200"}, {"h200", "h100"}}).Draw(t, "accel")
		j.Gangs = append(j.Gangs, g)
	}
	if rapid.Bool().Draw(t, "topo") {
		j.Topology.Level = rapid.SampledFrom([]string{"zone", "block", "rack"}).Draw(t, "level")
		j.Topology.Required = rapid.Bool().Draw(t, "required")
	}
	return j
}

func genScript(t *rapid.T, w world) []step {
	n := rapid.IntRange(5, 60).Draw(t, "steps")
	var out []step
	for i := range n {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0, 1, 2, 3:
			out = append(out, step{kind: "submit", job: genJob(t, i)})
		case 4:
			out = append(out, step{kind: "finish", id: rapid.IntRange(0, n).Draw(t, "id")})
		case 5:
			out = append(out, step{kind: "cancel", id: rapid.IntRange(0, n).Draw(t, "id")})
		case 6:
			out = append(out, step{kind: "fail", id: rapid.IntRange(0, n).Draw(t, "id"), flag: rapid.Bool().Draw(t, "requeue")})
		case 7:
			out = append(out, step{kind: rapid.SampledFrom([]string{"nodefail", "drain", "return"}).Draw(t, "nodeop"), arg: rapid.IntRange(0, len(w.nodes)-1).Draw(t, "node")})
		default:
			out = append(out, step{kind: "schedule", arg: rapid.IntRange(1, 120).Draw(t, "dt")})
		}
	}
	return append(out, step{kind: "schedule", arg: 1})
}

// play runs a script and returns the actions as text; it checks the core's
// invariants and the driver-visible ones after every cycle.
//
// With explain set it also asks Explain about every job after every cycle:
// Explain runs what-if probes on the live state and must leave every later
// decision unchanged.
func play(t *rapid.T, w world, script []step, explain bool) string {
	f, err := fleet.New(nil, nil, w.nodes)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quota.New(w.specs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(w.cfg, f, q)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	now := int64(0)
	bound := map[JobID]map[[2]int]Bind{} // the driver's view
	for _, s := range script {
		var err error
		switch s.kind {
		case "submit":
			err = c.Apply(JobSubmitted{Job: s.job})
		case "finish":
			err = c.Apply(JobFinished{ID: JobID(fmt.Sprintf("j%d", s.id))})
			if err == nil {
				delete(bound, JobID(fmt.Sprintf("j%d", s.id)))
			}
		case "cancel":
			err = c.Apply(JobCancelled{ID: JobID(fmt.Sprintf("j%d", s.id))})
			if err == nil {
				delete(bound, JobID(fmt.Sprintf("j%d", s.id)))
			}
		case "fail":
			err = c.Apply(JobFailed{ID: JobID(fmt.Sprintf("j%d", s.id)), Reason: "x", Requeue: s.flag})
			if err == nil {
				delete(bound, JobID(fmt.Sprintf("j%d", s.id)))
			}
		case "nodefail":
			err = c.Apply(NodeFailed{Node: w.nodes[s.arg].Name, Reason: "x"})
		case "drain":
			err = c.Apply(NodeDrained{Node: w.nodes[s.arg].Name})
		case "return":
			err = c.Apply(NodeReturned{Node: w.nodes[s.arg].Name})
		case "schedule":
			now += int64(s.arg)
			acts := c.Schedule(now)
			fresh := map[JobID]bool{}
			for _, a := range acts {
				fmt.Fprintln(&log, a)
				switch a := a.(type) {
				case Bind:
					if bound[a.Job] == nil {
						bound[a.Job] = map[[2]int]Bind{}
						fresh[a.Job] = true
					}
					bound[a.Job][[2]int{a.Gang, a.Replica}] = a
				case Requeue:
					delete(bound, a.Job)
				case Preempt:
					for _, r := range a.Replicas {
						delete(bound[a.Job], r) // counted as gone once the deadline passes; removing early is conservative for the overlap check below
					}
				}
			}
			// Gangs start whole: a job bound for the first time in this
			// cycle got at least its minimum in every gang.
			for id := range fresh {
				j := c.jobs[id]
				if j == nil || bound[id] == nil {
					continue
				}
				per := map[int]int{}
				for k := range bound[id] {
					per[k[0]]++
				}
				for g := range j.Gangs {
					if per[g] < j.Gangs[g].Min() {
						t.Fatalf("job %s gang %d started with %d replicas, minimum %d\n%s", id, g, per[g], j.Gangs[g].Min(), log.String())
					}
				}
			}
			if err := c.CheckInvariants(); err != nil {
				t.Fatalf("after cycle at t=%d: %v\nactions so far:\n%s", now, err, log.String())
			}
			if explain {
				ids := make([]string, 0, len(c.jobs))
				for id := range c.jobs {
					ids = append(ids, string(id))
				}
				sort.Strings(ids)
				for _, id := range ids {
					c.Explain(JobID(id))
				}
				if err := c.CheckInvariants(); err != nil {
					t.Fatalf("after Explain at t=%d: %v", now, err)
				}
			}
			continue
		}
		if err != nil {
			fmt.Fprintf(&log, "error: %v\n", err)
		}
		if err := c.CheckInvariants(); err != nil {
			t.Fatalf("after %s: %v", s.kind, err)
		}
	}
	// No device is bound twice in the driver's view: the binds it holds
	// never add up to more than a device.
	use := map[string]int32{}
	ids := make([]string, 0, len(bound))
	for id := range bound {
		ids = append(ids, string(id))
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, b := range bound[JobID(id)] {
			for _, d := range b.Devices {
				k := fmt.Sprintf("%s/%d", b.Node, d)
				use[k] += b.Milli
				if use[k] > place.Whole {
					t.Fatalf("device %s bound for %d milli", k, use[k])
				}
			}
		}
	}
	return log.String()
}

func TestPropertyInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t)
		play(t, w, genScript(t, w), false)
	})
}

func TestPropertyDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t)
		s := genScript(t, w)
		a, b := play(t, w, s, false), play(t, w, s, true)
		if a != b {
			t.Fatalf("same events, different actions (the second run also asked Explain about every job):\n%s\n---\n%s", a, b)
		}
	})
}
