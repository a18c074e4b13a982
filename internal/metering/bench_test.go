package metering_test

import (
	"fmt"
	"testing"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/metering"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// BenchmarkMeterLive is the live server's metering of a busy fleet: 10,000
// nodes of 8 h100 with 80,000 one-device replicas running, 200 tenants, a
// grant each; one Meter a minute feeds every running replica (a duplicate
// after the first), meters them and steps the enforcer.
func BenchmarkMeterLive(b *testing.B) {
	const nodes, tenants = 10_000, 200
	var ns []fleet.Node
	for i := range nodes {
		ns = append(ns, fleet.Node{Name: fmt.Sprintf("n%05d", i), Path: []string{"eu", fmt.Sprintf("z%d", i%4), fmt.Sprintf("b%d", i/400), fmt.Sprintf("r%d", i/4)},
			Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 20, State: fleet.Ready})
	}
	f, err := fleet.New(nil, fleet.DefaultLevels[:4], ns)
	if err != nil {
		b.Fatal(err)
	}
	var specs []quota.Spec
	for t := range tenants {
		name := fmt.Sprintf("t%03d", t)
		specs = append(specs, quota.Spec{Name: name, Quotas: map[string]quota.Limits{"h100": {Nominal: 400_000}}},
			quota.Spec{Name: name + "-q", Parent: name})
	}
	tree, err := quota.New(specs)
	if err != nil {
		b.Fatal(err)
	}
	core, err := sched.New(sched.Config{}, f, tree)
	if err != nil {
		b.Fatal(err)
	}
	const t0 = 1_796_083_200
	if _, err := core.Apply(sched.TimeAdvanced{Now: t0}); err != nil {
		b.Fatal(err)
	}
	for i := range nodes * 8 {
		j := sched.Job{ID: sched.JobID(fmt.Sprintf("j%d", i)), Queue: fmt.Sprintf("t%03d-q", i%tenants),
			Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Accel: []string{"h100"}, Devices: 1}}}}
		if _, err := core.Apply(sched.JobSubmitted{Job: j}); err != nil {
			b.Fatal(err)
		}
	}
	r := core.Schedule(t0)
	if len(r.Actions) != nodes*8 {
		b.Fatalf("%d binds, want %d", len(r.Actions), nodes*8)
	}
	l, err := ledger.New(ledger.Config{DefaultSite: &ledger.Site{PUE: 1.2, CarbonGPerKWh: 300}, ExpectRecords: nodes * 8})
	if err != nil {
		b.Fatal(err)
	}
	for t := range tenants {
		if err := l.AddGrant(ledger.Grant{ID: fmt.Sprintf("g%d", t), Tenant: fmt.Sprintf("t%03d", t), Amount: 1_000_000 * ledger.Micro}); err != nil {
			b.Fatal(err)
		}
	}
	a := metering.New(l, 60_000)
	now := int64(t0) * 1000
	if _, err := a.Meter(core, specs, now); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		now += 60_000
		if _, err := a.Meter(core, specs, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nodes*8), "ns/replica")
}
