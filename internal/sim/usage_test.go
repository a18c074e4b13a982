package sim

import (
	"testing"

	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// The core's usage stream, summed over a run, is exactly the
// accelerator-time the simulator measures from the actions it carries out:
// per tenant, to the milli-second, with preemptions, elastic shrinks and
// node failures in the run.
func TestUsageStreamEqualsMeasuredAccelTime(t *testing.T) {
	for _, cycle := range []int64{0, 60} {
		fs := spec.DefaultFleetSpec()
		g, err := NewGenerator(GenConfig{Jobs: 3000, Seed: 5, Fleet: fs.Fleet, Tenants: 4, Load: 1.5})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(Config{Seed: 5, CycleSec: cycle, FailuresPerNodeDay: 0.2, Sched: sched.Config{Seed: 5}}, fs.Fleet, g.Queues(), g)
		if err != nil {
			t.Fatal(err)
		}
		s := res.Summary
		if s.Preemptions < 10 || s.NodeFailures == 0 || s.FailureRequeues == 0 {
			t.Fatalf("cycle %d: the run must preempt and lose nodes to test anything: %d preemptions, %d shrinks, %d node failures, %d failure requeues",
				cycle, s.Preemptions, s.Shrinks, s.NodeFailures, s.FailureRequeues)
		}
		t.Logf("cycle %d: %d preemptions, %d shrinks, %d node failures, %d failure requeues", cycle, s.Preemptions, s.Shrinks, s.NodeFailures, s.FailureRequeues)
		var total int64
		for tenant, want := range res.measured {
			if got := res.metered[tenant]; float64(got) != want {
				t.Errorf("cycle %d, tenant %s: usage records sum to %d accelerator milli-seconds, the simulator measured %.0f", cycle, tenant, got, want)
			}
			total += res.metered[tenant]
		}
		if len(res.metered) != len(res.measured) || total == 0 {
			t.Errorf("cycle %d: usage for %d tenants (total %d), measured for %d", cycle, len(res.metered), total, len(res.measured))
		}
	}
}

// An elastic job that shrinks with a notice is charged up to the notice's
// end, when the simulator takes its replicas back, also when the cycle that
// notices comes later.
func TestUsageStreamOfShrinks(t *testing.T) {
	for _, cycle := range []int64{0, 60} {
		f := testFleet(t, "h100", 2)
		ft := gpuJob("ft", 0, 5000, 4, 4)
		ft.Gangs[0].MinReplicas = 1
		ft.Preemptible, ft.NoticeSec, ft.Kind = true, 30, sched.FineTuning
		hi := gpuJob("hi", 100, 500, 1, 8)
		hi.Priority = 5
		res := run(t, Config{CycleSec: cycle, Sched: sched.Config{PreemptAfterSec: -1}}, f, testQueues("h100", 16), ft, hi)
		if res.Summary.Shrinks == 0 {
			t.Fatalf("cycle %d: no shrink", cycle)
		}
		for tenant, want := range res.measured {
			if got := res.metered[tenant]; float64(got) != want {
				t.Errorf("cycle %d, tenant %s: usage records sum to %d accelerator milli-seconds, the simulator measured %.0f", cycle, tenant, got, want)
			}
		}
	}
}
