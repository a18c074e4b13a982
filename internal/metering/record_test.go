package metering_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/metering"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

func TestRecord(t *testing.T) {
	closed := sched.Usage{Job: "train-7", Attempt: 2, Tenant: "acme", Queue: "acme-train", Kind: sched.FineTuning, Gang: 1, Replica: 3,
		Type: "h100", Tier: "spot", Node: "n1", Site: "eu/z1", Devices: []int{0, 2}, Milli: 1000, From: 1_796_083_200, To: 1_796_086_800, End: sched.EndPreempted}
	for name, tc := range map[string]struct {
		in   sched.Usage
		want ledger.Usage
		ok   bool
	}{
		"closed": {in: closed, ok: true, want: ledger.Usage{ID: "train-7/2/1/3@1796083200", Job: "train-7", Tenant: "acme", Queue: "acme-train",
			Kind: "fine-tuning", Type: "h100", Tier: "spot", Site: "eu/z1", Node: "n1", Gang: 1, Replica: 3, Devices: 2, Milli: 1000,
			DeviceMask: 0b101, FromMs: 1_796_083_200_000, ToMs: 1_796_086_800_000, End: "preempted"}},
		"open": {in: func() sched.Usage { u := closed; u.End, u.To = sched.EndOpen, 1_796_090_000; return u }(), ok: true,
			want: ledger.Usage{ID: "train-7/2/1/3@1796083200", Job: "train-7", Tenant: "acme", Queue: "acme-train", Kind: "fine-tuning",
				Type: "h100", Tier: "spot", Site: "eu/z1", Node: "n1", Gang: 1, Replica: 3, Devices: 2, Milli: 1000, DeviceMask: 0b101,
				FromMs: 1_796_083_200_000}},
		"an array job's unit is a replica of its job": {in: func() sched.Usage {
			u := closed
			u.Job, u.Gang, u.Replica, u.Tier = "sweep-3[12]", 0, 0, ""
			return u
		}(), ok: true, want: ledger.Usage{ID: "sweep-3[12]/2/0/0@1796083200", Job: "sweep-3", Tenant: "acme", Queue: "acme-train",
			Kind: "fine-tuning", Type: "h100", Site: "eu/z1", Node: "n1", Replica: 12, Devices: 2, Milli: 1000, DeviceMask: 0b101,
			FromMs: 1_796_083_200_000, ToMs: 1_796_086_800_000, End: "preempted"}},
		"a quarter device": {in: func() sched.Usage { u := closed; u.Devices, u.Milli, u.Tier = []int{5}, 250, "committed"; return u }(), ok: true,
			want: ledger.Usage{ID: "train-7/2/1/3@1796083200", Job: "train-7", Tenant: "acme", Queue: "acme-train", Kind: "fine-tuning",
				Type: "h100", Tier: "committed", Site: "eu/z1", Node: "n1", Gang: 1, Replica: 3, Devices: 1, Milli: 250, DeviceMask: 1 << 5,
				FromMs: 1_796_083_200_000, ToMs: 1_796_086_800_000, End: "preempted"}},
		"a tier the ledger does not know is the default tier": {in: func() sched.Usage { u := closed; u.Tier = "gold"; return u }(), ok: true,
			want: ledger.Usage{ID: "train-7/2/1/3@1796083200", Job: "train-7", Tenant: "acme", Queue: "acme-train", Kind: "fine-tuning",
				Type: "h100", Site: "eu/z1", Node: "n1", Gang: 1, Replica: 3, Devices: 2, Milli: 1000, DeviceMask: 0b101,
				FromMs: 1_796_083_200_000, ToMs: 1_796_086_800_000, End: "preempted"}},
		"no accelerator": {in: func() sched.Usage { u := closed; u.Type, u.Devices, u.Milli = "", nil, 0; return u }()},
		"devices past 63": {in: func() sched.Usage { u := closed; u.Devices = []int{1, 64}; return u }(), ok: true,
			want: ledger.Usage{ID: "train-7/2/1/3@1796083200", Job: "train-7", Tenant: "acme", Queue: "acme-train", Kind: "fine-tuning",
				Type: "h100", Tier: "spot", Site: "eu/z1", Node: "n1", Gang: 1, Replica: 3, Devices: 2, Milli: 1000,
				FromMs: 1_796_083_200_000, ToMs: 1_796_086_800_000, End: "preempted"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := metering.Record(&tc.in)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJobOf(t *testing.T) {
	for in, want := range map[sched.JobID]struct {
		job  string
		unit int
	}{
		"train-7": {"train-7", -1}, "sweep-3[12]": {"sweep-3", 12}, "sweep-3[x]": {"sweep-3[x]", -1}, "[3]": {"[3]", -1},
	} {
		job, unit := metering.JobOf(in)
		if job != want.job || unit != want.unit {
			t.Errorf("JobOf(%q) = %q, %d; want %q, %d", in, job, unit, want.job, want.unit)
		}
	}
}

func TestTenantsOf(t *testing.T) {
	specs := []quota.Spec{{Name: "acme"}, {Name: "acme-train", Parent: "acme"}, {Name: "acme-lab", Parent: "acme"},
		{Name: "acme-lab-a", Parent: "acme-lab"}, {Name: "solo"}}
	want := metering.Tenants{"acme": {"acme-train", "acme-lab-a"}, "solo": nil}
	if diff := cmp.Diff(want, metering.TenantsOf(specs)); diff != "" {
		t.Errorf("tenants (-want +got):\n%s", diff)
	}
}

// Overlay gives a tenant with commitments its committed-tier quota, no
// more, for their term; others keep theirs, and the specs given are not
// changed.
func TestOverlay(t *testing.T) {
	l, err := ledger.New(ledger.Config{DefaultSite: &ledger.Site{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []ledger.Commitment{
		{ID: "a", Tenant: "acme", Type: "h100", Count: 8, StartMs: 1000, EndMs: 5000, PricePerHour: 1},
		{ID: "b", Tenant: "acme", Type: "h100", Site: "eu", Count: 4, StartMs: 2000, EndMs: 3000, PricePerHour: 1},
		{ID: "c", Tenant: "globex", Type: "b200", Count: 2, StartMs: 9000, EndMs: 10000, PricePerHour: 1},
	} {
		if err := l.AddCommitment(c); err != nil {
			t.Fatal(err)
		}
	}
	specs := []quota.Spec{{Name: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 8000}}}, {Name: "acme-train", Parent: "acme"},
		{Name: "globex"}, {Name: "initech", Quotas: map[string]quota.Limits{"h100:committed": {Nominal: 3000}}}}
	zero := int64(0)
	for at, want := range map[int64][]quota.Spec{
		2500: {{Name: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 8000}, "h100:committed": {Nominal: 12000, Borrow: &zero}}},
			{Name: "acme-train", Parent: "acme"}, {Name: "globex", Quotas: map[string]quota.Limits{"b200:committed": {Borrow: &zero}}},
			{Name: "initech", Quotas: map[string]quota.Limits{"h100:committed": {Nominal: 3000}}}},
		6000: {{Name: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 8000}, "h100:committed": {Borrow: &zero}}},
			{Name: "acme-train", Parent: "acme"}, {Name: "globex", Quotas: map[string]quota.Limits{"b200:committed": {Borrow: &zero}}},
			{Name: "initech", Quotas: map[string]quota.Limits{"h100:committed": {Nominal: 3000}}}},
	} {
		if diff := cmp.Diff(want, metering.Overlay(specs, l, at)); diff != "" {
			t.Errorf("at %d (-want +got):\n%s", at, diff)
		}
	}
	if len(specs[0].Quotas) != 1 || specs[2].Quotas != nil {
		t.Errorf("Overlay changed its input: %+v", specs)
	}
}
