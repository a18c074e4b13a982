package lifecycle

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// TestServiceScaleProperties drives one service through random decisions,
// placements, readiness reports, exits and crashes, standing in for the
// core and the agents, and checks after every step:
//
//   - a Scale leaves no more replicas (waiting, starting, ready) than the
//     count it was given, clamped to the bounds, and exactly that many
//     unless the crash back-off holds new ones back;
//   - a starting replica is stopped by a Scale only when the count is
//     below the starting replicas (plus one serving replica kept), or in
//     kpa's order; never for being slow (the start timeout is out of
//     reach here);
//   - a draining replica is stopped only by a call that reads 0 requests
//     in flight on it, after the call that took it out of routing, or
//     once its drain time is up;
//   - routes are ready replicas with a port, and every replica's identity
//     (gang, replica, attempt) is unique;
//   - new bounds (SetBounds) leave no more replicas than the last count
//     clamped to them, stop no draining replica with requests in flight,
//     and clamp every later decision.
func TestServiceScaleProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := New(Config{StopGraceMs: 1000, Node: func(n string) (string, string, bool) { return n, "h100", true }})
		members := rapid.IntRange(1, 2).Draw(t, "members")
		maxR := rapid.IntRange(1, 5).Draw(t, "max")
		minR := rapid.IntRange(0, maxR).Draw(t, "min")
		j := &Job{ID: "s", Seq: 1, Name: "s", Tenant: "t", Queue: "q", Run: Run{Command: []string{"serve"}},
			Spec: sched.Job{ID: "s", Queue: "q", Kind: sched.Service, Gangs: []sched.Gang{{Name: "replica", Replicas: members,
				Shape: place.Request{Devices: 1}}}},
			Service: &Service{Spec: ServiceSpec{MinReplicas: minR, MaxReplicas: maxR, TargetInFlight: 1, ReadinessPath: "/h",
				DrainTimeoutMs: 30_000}}}
		m.Submitted(j)
		now := int64(0)
		port := 30000
		inCore := map[string]bool{} // core jobs the stand-in core holds, pending or bound
		apply := func(o Out) {
			for _, ev := range o.Core {
				switch e := ev.(type) {
				case sched.JobSubmitted:
					if inCore[string(e.Job.ID)] {
						t.Fatalf("unit %s submitted twice", e.Job.ID)
					}
					inCore[string(e.Job.ID)] = true
				case sched.JobCancelled:
					delete(inCore, string(e.ID))
				case sched.JobFailed:
					if e.Requeue {
						continue
					}
					delete(inCore, string(e.ID))
				}
			}
		}
		peakMax := maxR
		for step := 0; step < 60; step++ {
			now += int64(rapid.IntRange(100, 20_000).Draw(t, "dt"))
			switch rapid.IntRange(0, 6).Draw(t, "op") {
			case 0, 1: // an autoscaler decision
				before := phases(j)
				inflight := map[int]int{}
				for u := range j.Units {
					inflight[u] = rapid.IntRange(0, 2).Draw(t, "inflight")
				}
				s := Scale{Desired: rapid.IntRange(0, maxR+1).Draw(t, "desired"), StartingFirst: rapid.Bool().Draw(t, "kpa"),
					InFlight: inflight}
				c0 := j.Counts()
				apply(m.Scale("s", s, now))
				want := min(max(s.Desired, minR), maxR)
				c := j.Counts()
				live := c.Waiting + c.Starting + c.Ready
				if live > want || (live < want && now >= j.Service.RetryMs && len(j.Units) < slotsPerReplica*maxR) {
					t.Fatalf("after Scale(%d): %d live (%+v), want %d", s.Desired, live, c, want)
				}
				for u, ph := range before {
					after := j.Phase(u)
					if ph == PhaseStarting && after == PhaseStopping && !s.StartingFirst {
						keepReady := 0
						if c0.Ready > 0 && want > 0 {
							keepReady = 1
						}
						if want >= c0.Starting+keepReady {
							t.Fatalf("replica %d stopped while starting, count %d covers %d starting + %d ready kept", u, want, c0.Starting, keepReady)
						}
					}
					if ph == PhaseDraining && after == PhaseStopping {
						un := &j.Units[u]
						if inflight[u] != 0 && now < un.DrainMs+30_000 {
							t.Fatalf("replica %d stopped with %d in flight, %dms into its drain", u, inflight[u], now-un.DrainMs)
						}
					}
				}
			case 2: // the core places waiting replicas
				for u := range j.Units {
					if j.Phase(u) != PhaseWaiting || !rapid.Bool().Draw(t, "place") {
						continue
					}
					var r sched.Ready
					for g := range members {
						r.Actions = append(r.Actions, sched.Bind{Job: sched.JobID(j.Units[u].Core), Gang: 0, Replica: g,
							Node: fmt.Sprintf("n%d", g), Devices: []int{u}, Milli: 1000})
					}
					apply(m.Take(r, now))
				}
				for g := range members {
					_, out := m.Desired(fmt.Sprintf("n%d", g), now)
					apply(out)
				}
			case 3, 4: // agents report: ready, running, or exits of stopping replicas
				for g := range members {
					node := fmt.Sprintf("n%d", g)
					var reps []api.ReplicaStatus
					for i := range j.Replicas {
						r := &j.Replicas[i]
						if r.Node != node || r.Gone() || !r.Sent {
							continue
						}
						st := api.ReplicaStatus{ReplicaKey: api.ReplicaKey{Job: "s", Gang: r.Gang, Replica: r.Replica, Attempt: r.Attempt},
							State: api.ReplicaRunning, Port: r.Port}
						if st.Port == 0 {
							port++
							st.Port = port
						}
						switch {
						case r.StopMs > 0 && rapid.Bool().Draw(t, "gone"):
							st.State, st.ExitCode = api.ReplicaExited, 0
						case rapid.IntRange(0, 9).Draw(t, "crash") == 0:
							st.State, st.ExitCode = api.ReplicaExited, 1
						default:
							st.Ready = rapid.IntRange(0, 3).Draw(t, "ready") > 0
						}
						reps = append(reps, st)
					}
					apply(m.Heartbeat(node, reps, now))
				}
			case 6: // an operator changes the bounds
				before := phases(j)
				inflight := map[int]int{}
				for u := range j.Units {
					inflight[u] = rapid.IntRange(0, 2).Draw(t, "inflight")
				}
				maxR = rapid.IntRange(1, 5).Draw(t, "newMax")
				minR = rapid.IntRange(0, maxR).Draw(t, "newMin")
				peakMax = max(peakMax, maxR)
				want := min(max(j.Service.Desired, minR), maxR)
				out, err := m.SetBounds("s", minR, maxR, Scale{InFlight: inflight}, now)
				if err != nil {
					t.Fatalf("SetBounds(%d, %d): %v", minR, maxR, err)
				}
				apply(out)
				c := j.Counts()
				if live := c.Waiting + c.Starting + c.Ready; live > want || j.Service.Desired != want {
					t.Fatalf("after SetBounds(%d, %d): %d live (%+v), desired %d, want %d; events %+v units %+v", minR, maxR, live, c, j.Service.Desired, want, j.Events, j.Units)
				}
				for u, ph := range before {
					if ph == PhaseDraining && j.Phase(u) == PhaseStopping && inflight[u] != 0 && now < j.Units[u].DrainMs+30_000 {
						t.Fatalf("replica %d stopped by new bounds with %d in flight", u, inflight[u])
					}
				}
			case 5: // the core preempts a bound replica
				for u := range j.Units {
					if j.Units[u].State == Running && rapid.IntRange(0, 4).Draw(t, "preempt") == 0 {
						apply(m.Take(sched.Ready{Actions: []sched.Action{sched.Preempt{Job: sched.JobID(j.Units[u].Core), Deadline: now/1000 + 5}}}, now))
					}
				}
			}
			checkService(t, j, peakMax)
		}
	})
}

func phases(j *Job) map[int]UnitPhase {
	out := map[int]UnitPhase{}
	for u := range j.Units {
		out[u] = j.Phase(u)
	}
	return out
}

// checkService checks a service's invariants; peakMax is the highest
// ceiling it has had (slots opened under it stay).
func checkService(t *rapid.T, j *Job, peakMax int) {
	seen := map[[3]int]bool{}
	for _, list := range [][]Replica{j.Replicas, j.Stale} {
		for _, r := range list {
			k := [3]int{r.Gang, r.Replica, r.Attempt}
			if seen[k] {
				t.Fatalf("replica identity %v twice", k)
			}
			seen[k] = true
		}
	}
	for _, rt := range j.Routes() {
		if j.Phase(rt.Unit) != PhaseReady || rt.Port == 0 {
			t.Fatalf("route to unit %d in phase %s, port %d", rt.Unit, j.Phase(rt.Unit), rt.Port)
		}
	}
	if len(j.Units) > slotsPerReplica*peakMax {
		t.Fatalf("%d slots for at most %d replicas", len(j.Units), peakMax)
	}
	if j.State != Running {
		t.Fatalf("service %s", j.State)
	}
}
