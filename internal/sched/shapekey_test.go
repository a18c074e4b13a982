package sched

import (
	"fmt"
	"testing"

	"github.com/gpufleet/gpufleet/internal/place"
)

// fmtShapeKey is the key as fmt formats it, the text shapeKey must keep.
func fmtShapeKey(j *job) string {
	s := fmt.Sprintf("%s|%v|%s", j.Topology.Level, j.Topology.Required, j.Tier)
	for g := range j.Gangs {
		r := &j.Gangs[g].Shape
		s += fmt.Sprintf("|%d:%d:%d:%d:%d:%v:%v", j.Gangs[g].Min(), r.Devices, r.Milli, r.CPUMilli, r.MemoryMiB, r.Accel, j.Gangs[g].AnyType)
	}
	return s
}

func TestShapeKeyIsFmtsText(t *testing.T) {
	jobs := []Job{
		{},
		{Tier: TierSpot, Topology: Topology{Level: "rack", Required: true},
			Gangs: []Gang{{Replicas: 4, Shape: place.Request{Devices: 8, CPUMilli: 96000, MemoryMiB: 1 << 20, Accel: []string{"H100", "H200"}}}}},
		{Gangs: []Gang{
			{Replicas: 1, AnyType: true, Shape: place.Request{Milli: 250, CPUMilli: 4000, MemoryMiB: 8192}},
			{Replicas: 3, MinReplicas: 2, Shape: place.Request{Devices: 1, Accel: []string{"A100"}}},
		}},
	}
	for i := range jobs {
		j := &job{Job: jobs[i]}
		if got, want := shapeKey(j), fmtShapeKey(j); got != want {
			t.Errorf("job %d: shapeKey %q, want %q", i, got, want)
		}
	}
}
