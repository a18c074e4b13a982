package sched

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// Scoreboards (kept scores of a local scorer) and ranked keys (the random
// policy) answer exactly as the plain scan of every feasible node: the same
// events give the same actions with and without them, for every policy the
// fill experiment runs, with releases, node failures and returns, fractions,
// CPU-only work and type constraints mixed in.
func TestScoreboardsMatchTheScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		types := []string{"h100", "h200"}
		var nodes []fleet.Node
		for i := range rapid.IntRange(1, 12).Draw(t, "nodes") {
			n := fleet.Node{Name: fmt.Sprintf("n%02d", i), Path: []string{"c"},
				CPUMilli: int64(rapid.IntRange(1, 64).Draw(t, "cpu")) * 1000, MemoryMiB: int64(rapid.IntRange(1, 256).Draw(t, "mem")) * 1024}
			if rapid.IntRange(0, 5).Draw(t, "cpuonly") > 0 {
				n.Accel, n.Count = rapid.SampledFrom(types).Draw(t, "type"), rapid.SampledFrom([]int{1, 2, 4, 8}).Draw(t, "count")
			}
			if i > 0 && rapid.Bool().Draw(t, "twin") {
				// Nodes in the same state share their scores (stateOf).
				twin := nodes[rapid.IntRange(0, i-1).Draw(t, "of")]
				n.CPUMilli, n.MemoryMiB, n.Accel, n.Count = twin.CPUMilli, twin.MemoryMiB, twin.Accel, twin.Count
			}
			nodes = append(nodes, n)
		}
		cat, _ := fleet.NewCatalog([]fleet.AccelType{{Name: "h100"}, {Name: "h200"}})
		var tasks []place.Request
		for range rapid.IntRange(1, 6).Draw(t, "classes") {
			r := place.Request{CPUMilli: int64(rapid.IntRange(0, 16).Draw(t, "rcpu")) * 1000, MemoryMiB: int64(rapid.IntRange(0, 64).Draw(t, "rmem")) * 1024}
			switch rapid.IntRange(0, 2).Draw(t, "kind") {
			case 0:
				r.Devices = rapid.SampledFrom([]int{1, 2, 4, 8}).Draw(t, "devices")
			case 1:
				r.Milli = int32(rapid.IntRange(1, 999).Draw(t, "milli"))
			}
			if rapid.Bool().Draw(t, "constrained") && (r.Devices > 0 || r.Milli > 0) {
				r.Accel = []string{rapid.SampledFrom(types).Draw(t, "accel")}
			}
			tasks = append(tasks, r)
		}
		type step struct{ kind, a int }
		var steps []step
		for range rapid.IntRange(1, 80).Draw(t, "steps") {
			steps = append(steps, step{rapid.IntRange(0, 9).Draw(t, "op"), rapid.IntRange(0, 1000).Draw(t, "arg")})
		}
		play := func(policy string, off bool) string {
			f, err := fleet.New(cat, []string{"cluster"}, nodes)
			if err != nil {
				t.Fatal(err)
			}
			q, _ := quota.New([]quota.Spec{{Name: "fill", Quotas: map[string]quota.Limits{"h100": {Nominal: quota.Unlimited}, "h200": {Nominal: quota.Unlimited}}}})
			c, err := New(Config{Placement: []string{policy}, Candidates: -1, NoBackfill: true, NoPreemption: true, Seed: 7,
				Workload: place.NewWorkload(tasks), NoScoreboards: off}, f, q)
			if err != nil {
				t.Fatal(err)
			}
			var log strings.Builder
			var running []JobID
			for i, s := range steps {
				now := int64(i + 1)
				switch {
				case s.kind < 6: // a task arrives; dropped when it does not fit
					id := JobID(fmt.Sprint(i))
					r, _ := c.Apply(JobSubmitted{Job: Job{ID: id, Queue: "fill", Gangs: []Gang{{Replicas: 1, Shape: tasks[s.a%len(tasks)], AnyType: true}}}})
					acts := append(r.Actions, c.Schedule(now).Actions...)
					placed := false
					for _, a := range acts {
						fmt.Fprintln(&log, a)
						if _, ok := a.(Bind); ok {
							placed = true
						}
					}
					if placed {
						running = append(running, id)
					} else if _, pending := c.Explain(id); pending {
						_, _ = c.Apply(JobCancelled{ID: id})
					}
				case s.kind < 8 && len(running) > 0: // one ends
					k := s.a % len(running)
					_, _ = c.Apply(JobFinished{ID: running[k]})
					running = append(running[:k], running[k+1:]...)
				case s.kind == 8: // a node fails, its work requeued and dropped
					r, _ := c.Apply(NodeFailed{Node: nodes[s.a%len(nodes)].Name, Reason: "x"})
					for _, a := range r.Actions {
						fmt.Fprintln(&log, a)
						if rq, ok := a.(Requeue); ok {
							_, _ = c.Apply(JobCancelled{ID: rq.Job})
						}
					}
				default:
					_, _ = c.Apply(NodeReturned{Node: nodes[s.a%len(nodes)].Name})
				}
			}
			if err := c.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			return log.String()
		}
		for _, policy := range []string{"sfgd", "fgd", "bestfit", "packing", "clustering", "dotprod", "random"} {
			if with, without := play(policy, false), play(policy, true); with != without {
				t.Fatalf("policy %s: with scoreboards\n%s\nwithout\n%s", policy, with, without)
			}
		}
	})
}

// TestScoreboardsMatchTheScanAcrossFreshStarts runs the same property with
// the state numbering starting afresh every few states, so that boards
// forget what they knew in the middle of a run.
func TestScoreboardsMatchTheScanAcrossFreshStarts(t *testing.T) {
	defer func(n int) { maxStates = n }(maxStates)
	maxStates = 3
	TestScoreboardsMatchTheScan(t)
}
