package autoscale_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/autoscale"
)

// TestPropertySetBounds: a policy whose bounds move mid-run decides
// within the new bounds from then on; bounds set to what they were, or
// refused as invalid, change none of its decisions (its history stays).
func TestPropertySetBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec := genSpec(t)
		name := rapid.SampledFrom([]string{"gpufleet", "kpa"}).Draw(t, "policy")
		obs := genObservations(t, rapid.IntRange(2, 150).Draw(t, "steps"))
		at := rapid.IntRange(1, len(obs)-1).Draw(t, "at")
		newMax := rapid.IntRange(1, 60).Draw(t, "newMax")
		newMin := rapid.IntRange(0, newMax).Draw(t, "newMin")
		run := func(change func(autoscale.Bounded)) []autoscale.Decision {
			p, err := autoscale.New(name, spec)
			if err != nil {
				t.Fatal(err)
			}
			b, ok := p.(autoscale.Bounded)
			if !ok {
				t.Fatalf("policy %s is not Bounded", name)
			}
			out := make([]autoscale.Decision, len(obs))
			for i, o := range obs {
				if i == at {
					change(b)
				}
				out[i] = p.Step(o)
			}
			return out
		}
		moved := run(func(b autoscale.Bounded) {
			if err := b.SetBounds(newMin, newMax); err != nil {
				t.Fatalf("SetBounds(%d, %d): %v", newMin, newMax, err)
			}
		})
		for i, d := range moved[at:] {
			if d.Desired < newMin || d.Desired > newMax {
				t.Fatalf("step %d after the change: desired %d outside [%d, %d]", at+i, d.Desired, newMin, newMax)
			}
		}
		plain := run(func(autoscale.Bounded) {})
		same := run(func(b autoscale.Bounded) {
			if err := b.SetBounds(spec.MinReplicas, spec.MaxReplicas); err != nil {
				t.Fatal(err)
			}
		})
		if diff := cmp.Diff(plain, same); diff != "" {
			t.Fatalf("bounds set to what they were changed decisions (-plain +same):\n%s", diff)
		}
		refused := run(func(b autoscale.Bounded) {
			if err := b.SetBounds(spec.MaxReplicas+1, spec.MaxReplicas); err == nil {
				t.Fatal("min above max accepted")
			}
			if err := b.SetBounds(0, 0); err == nil {
				t.Fatal("max 0 accepted")
			}
		})
		if diff := cmp.Diff(plain, refused); diff != "" {
			t.Fatalf("refused bounds changed decisions (-plain +refused):\n%s", diff)
		}
	})
}
