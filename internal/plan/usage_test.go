package plan

import (
	"math"
	"strings"
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

// Metered usage as a history: each record's accelerator-hours in the
// hours it held them, clipped to the window; an open record up to its end.
func TestMeteredHistory(t *testing.T) {
	const h = 3_600_000
	us := []ledger.Usage{
		// 8 h100 from 9:30 to 11:00: 4 in the window's first hour (9-10)
		// before 9:30 is outside it, since the window starts at 10.
		{ID: "1", Job: "train", Tenant: "acme", Kind: "training", Type: "h100", Devices: 8, Milli: 1000, FromMs: 9*h + h/2, ToMs: 11 * h, End: "finished"},
		// A quarter of an l40s from 10:30, still open: the window ends at 13.
		{ID: "2", Job: "infer", Tenant: "globex", Kind: "service", Type: "l40s", Devices: 1, Milli: 250, FromMs: 10*h + h/2},
		// Outside the window, and CPU only: left out.
		{ID: "3", Job: "old", Tenant: "acme", Kind: "batch", Type: "h100", Devices: 1, Milli: 1000, FromMs: 1 * h, ToMs: 2 * h, End: "finished"},
		{ID: "4", Job: "etl", Tenant: "acme", Kind: "batch", FromMs: 10 * h, ToMs: 11 * h},
	}
	// To 13:20: the last partial hour is left out.
	got, err := MeteredHistory(us, 3600, 10*h, 13*h+h/3)
	if err != nil {
		t.Fatal(err)
	}
	want := History{StepSec: 3600, Series: []Series{
		{Key: Key{"acme", "training", "h100"}, Values: []float64{8, 0, 0}, Jobs: 1, Shape: Shape{Accels: 8, Hours: 1}},
		{Key: Key{"globex", "service", "l40s"}, Values: []float64{0.125, 0.25, 0.25}, Jobs: 1, Shape: Shape{Accels: 0.25, Hours: 2.5}},
	}}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	for name, c := range map[string]struct {
		step, from, to int64
		want           string
	}{
		"step":   {step: 5 * 3600, from: 0, to: 100 * h, want: "step 18000s: want a whole number of seconds that divides a week"},
		"window": {step: 3600, from: 10 * h, to: 10*h + h/2, want: "shorter than one step of 3600s"},
	} {
		if _, err := MeteredHistory(us, c.step, c.from, c.to); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
}
