package sim

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// A metered run: two jobs of one h100 each (700 W at full use) on two
// sites, one for an hour on a grid of 100 g/kWh at PUE 1.5, one for two
// hours on 300 g/kWh at PUE 1.2: the ledger's figures are the arithmetic.
func TestRunMetered(t *testing.T) {
	nodes := []fleet.Node{
		{Name: "a1", Path: []string{"r", "za", "b", "k"}, Accel: "h100", Count: 1, CPUMilli: 8000, MemoryMiB: 8192},
		{Name: "b1", Path: []string{"r", "zb", "b", "k"}, Accel: "h100", Count: 1, CPUMilli: 8000, MemoryMiB: 8192},
	}
	f, err := fleet.New(nil, nil, nodes)
	if err != nil {
		t.Fatal(err)
	}
	specs := []quota.Spec{{Name: "t", Quotas: map[string]quota.Limits{"h100": {Nominal: 2000}}}, {Name: "q", Parent: "t", Quotas: map[string]quota.Limits{"h100": {Nominal: 2000}}}}
	job := func(id string, dur int64) Job {
		return Job{Arrival: 86400, Duration: dur, Job: sched.Job{ID: sched.JobID(id), Queue: "q", Kind: sched.Batch,
			Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Devices: 1, CPUMilli: 1000, MemoryMiB: 1024}}}}}
	}
	lc := ledger.Config{Sites: map[string]ledger.Site{"r/za": {PUE: 1.5, CarbonGPerKWh: 100}, "r/zb": {PUE: 1.2, CarbonGPerKWh: 300}}}
	res, err := RunMetered(Config{}, lc, f, specs, &listSource{jobs: []Job{job("one", 3600), job("two", 7200)}})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Summary.Carbon
	if c == nil {
		t.Fatal("no carbon summary")
	}
	bySite := map[string]CarbonTotals{}
	for _, l := range c.BySite {
		bySite[l.Name] = l.CarbonTotals
	}
	// Bestfit puts the first job on a1 (za): one hour there, two on zb.
	want := map[string]CarbonTotals{
		"r/za": {CarbonKg: 0.105, EnergyKWh: 0.7, FacilityKWh: 1.05},
		"r/zb": {CarbonKg: 0.504, EnergyKWh: 1.4, FacilityKWh: 1.68},
	}
	if diff := cmp.Diff(want, bySite); diff != "" {
		t.Errorf("by site (-want +got):\n%s", diff)
	}
	if c.CarbonKg != 0.609 || len(c.ByTenant) != 1 || c.ByTenant[0].CarbonKg != 0.609 {
		t.Errorf("totals %+v, by tenant %+v", c.CarbonTotals, c.ByTenant)
	}
	if len(c.Daily) != 1 || c.Daily[0].Day != "1970-01-02" || c.Daily[0].BySite["r/zb"] != 0.504 {
		t.Errorf("daily %+v", c.Daily)
	}
}
