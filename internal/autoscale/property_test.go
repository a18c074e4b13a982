package autoscale_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/autoscale"
)

func genSpec(t *rapid.T) autoscale.Spec {
	maxR := rapid.IntRange(1, 50).Draw(t, "max")
	return autoscale.Spec{
		MinReplicas:           rapid.IntRange(0, maxR).Draw(t, "min"),
		MaxReplicas:           maxR,
		TargetInFlight:        rapid.Float64Range(0.5, 64).Draw(t, "inflight"),
		TargetTokensPerSecond: rapid.SampledFrom([]float64{0, 1000, 5600, 20000}).Draw(t, "tokens"),
		Latency:               time.Duration(rapid.IntRange(0, 10).Draw(t, "latency")) * time.Second,
		ScaleDownGrace:        time.Duration(rapid.IntRange(0, 120).Draw(t, "grace")) * time.Second,
		ColdStart:             time.Duration(rapid.IntRange(0, 90).Draw(t, "cold")) * time.Second,
	}
}

func genObservations(t *rapid.T, n int) []autoscale.Observation {
	obs := make([]autoscale.Observation, n)
	now := time.Duration(0)
	for i := range obs {
		now += time.Duration(rapid.IntRange(0, 3).Draw(t, "dt")) * time.Second
		ready := rapid.IntRange(0, 40).Draw(t, "ready")
		var starting []time.Duration
		for range rapid.IntRange(0, 5).Draw(t, "starting") {
			starting = append(starting, now-time.Duration(rapid.IntRange(0, 100).Draw(t, "age"))*time.Second)
		}
		var cold []time.Duration
		if rapid.Bool().Draw(t, "measured") {
			cold = []time.Duration{time.Duration(rapid.IntRange(0, 120).Draw(t, "coldstart")) * time.Second}
		}
		arrivals := rapid.IntRange(0, 80).Draw(t, "arrivals")
		obs[i] = autoscale.Observation{
			Now: now, InFlight: rapid.IntRange(0, 300).Draw(t, "inflight"), Queued: rapid.IntRange(0, 300).Draw(t, "queued"),
			Concurrency: rapid.Float64Range(-1, 400).Draw(t, "conc"), Arrivals: arrivals,
			PromptTokens:       int64(arrivals) * int64(rapid.IntRange(1, 16000).Draw(t, "prompt")),
			QueuedPromptTokens: int64(rapid.IntRange(0, 1_000_000).Draw(t, "queuedtokens")),
			Ready:              ready, Starting: starting, ColdStarts: cold,
		}
	}
	return obs
}

// TestPropertyBounds: whatever the observations, every decision lies within
// the spec's bounds, gpufleet never asks for fewer than the replicas it has
// while any is starting (bounded by the ceiling), and a policy fed the same
// observations twice decides the same.
func TestPropertyBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec := genSpec(t)
		name := rapid.SampledFrom(autoscale.Names()).Draw(t, "policy")
		obs := genObservations(t, rapid.IntRange(1, 200).Draw(t, "steps"))
		run := func() []autoscale.Decision {
			p, err := autoscale.New(name, spec)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]autoscale.Decision, len(obs))
			for i, o := range obs {
				out[i] = p.Step(o)
			}
			return out
		}
		first := run()
		for i, d := range first {
			if d.Desired < spec.MinReplicas || d.Desired > spec.MaxReplicas {
				t.Fatalf("step %d: desired %d outside [%d, %d]", i, d.Desired, spec.MinReplicas, spec.MaxReplicas)
			}
			o := obs[i]
			if name == "gpufleet" && len(o.Starting) > 0 && d.Desired < min(o.Ready+len(o.Starting), spec.MaxReplicas) {
				t.Fatalf("step %d: desired %d below ready %d + starting %d", i, d.Desired, o.Ready, len(o.Starting))
			}
		}
		if diff := cmp.Diff(first, run()); diff != "" {
			t.Fatalf("same observations, different decisions (-first +second):\n%s", diff)
		}
	})
}
