package plan

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

func TestFromUsage(t *testing.T) {
	const h = 3_600_000 // an hour in ms
	us := []ledger.Usage{
		// A gang of two replicas of 8 for two hours, the second replica
		// preempted after one hour and back for the second.
		{ID: "1", Job: "train", Tenant: "acme", Kind: "training", Type: "h100", Replica: 0, Devices: 8, Milli: 1000, FromMs: 10 * h, ToMs: 12 * h, End: "finished"},
		{ID: "2", Job: "train", Tenant: "acme", Kind: "training", Type: "h100", Replica: 1, Devices: 8, Milli: 1000, FromMs: 10 * h, ToMs: 11 * h, End: "preempted"},
		{ID: "3", Job: "train", Tenant: "acme", Kind: "training", Type: "h100", Replica: 1, Devices: 8, Milli: 1000, FromMs: 11 * h, ToMs: 12 * h, End: "finished"},
		// A quarter of an accelerator, still open at 14h.
		{ID: "4", Job: "infer", Tenant: "globex", Kind: "service", Type: "l40s", Devices: 1, Milli: 250, FromMs: 12 * h},
		// CPU only: left out.
		{ID: "5", Job: "etl", Tenant: "acme", Kind: "batch", Devices: 0, FromMs: 10 * h, ToMs: 11 * h},
	}
	got := FromUsage(us, 14*h)
	want := []JobDemand{
		{Key: Key{"acme", "training", "h100"}, Arrival: 36000, Accels: 16, Hours: 2},
		{Key: Key{"globex", "service", "l40s"}, Arrival: 43200, Accels: 0.25, Hours: 2},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	// Into a history at hourly steps: the gang's 32 accelerator-hours in
	// its first hour, the service's half in the third.
	a := NewAggregator(3600, 36000)
	for _, j := range got {
		a.Add(j)
	}
	hist := a.History()
	if len(hist.Series) != 2 || math.Abs(hist.Series[0].Values[0]-32) > 1e-9 || math.Abs(hist.Series[1].Values[2]-0.5) > 1e-9 {
		t.Errorf("history %+v", hist)
	}
}
