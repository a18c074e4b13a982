package sim

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/trace/openb"
)

// The openb task lists of the Alibaba GPU trace (cluster-trace-gpu-v2023)
// in time mode: each task arrives at its creation_time and runs from its
// scheduled_time to its deletion_time. The fill experiment reads the same
// files without times (package openb).

// OpenbTrace is an openb task list read in time mode.
type OpenbTrace struct {
	Jobs []Job
	// NeverRan counts tasks without a scheduled_time: they never ran, so
	// their runtime is unknown and they are left out.
	NeverRan int
}

// Next makes an OpenbTrace a Source; it hands out Jobs in order.
func (t *OpenbTrace) Next() (Job, error) {
	if len(t.Jobs) == 0 {
		return Job{}, io.EOF
	}
	j := t.Jobs[0]
	t.Jobs = t.Jobs[1:]
	return j, nil
}

// ReadOpenbTasks reads an openb task list with its time columns
// (openb.ReadTimedTasks: the trace's one parser). Every task becomes a
// one-replica job in queue, sorted by creation time: QoS LS
// (latency-sensitive) tasks are services at priority 200, Guaranteed tasks
// batch at 100, Burstable at 50, BE (best-effort) tasks preemptible batch
// at 10. The runtime, deletion_time - scheduled_time, is taken as the
// duration at relative speed 1.0. Tasks that were never scheduled are left
// out (NeverRan counts them): their runtime is unknown. The file is small
// (thousands of rows) and is read whole, since its rows are not in time
// order.
func ReadOpenbTasks(name string, r io.Reader, queue string) (*OpenbTrace, error) {
	tasks, err := openb.ReadTimedTasks(r, name)
	if err != nil {
		var oe *openb.Error
		if errors.As(err, &oe) {
			le := &LineError{File: oe.File, Line: oe.Line, Column: max(oe.Char, 1), Msg: oe.Err.Error()}
			if oe.Field != "" && oe.Field != "csv" {
				le.Msg = oe.Field + ": " + le.Msg
			}
			return nil, le
		}
		return nil, err
	}
	out := &OpenbTrace{}
	for _, t := range tasks {
		if t.Scheduled < 0 {
			out.NeverRan++
			continue
		}
		j := Job{Arrival: t.Created, Duration: t.Deleted - t.Scheduled, Job: sched.Job{
			ID: sched.JobID(t.Name), Queue: queue, Kind: sched.Batch,
			Gangs: []sched.Gang{{Replicas: 1, Shape: t.Req}},
		}}
		switch t.QoS {
		case "LS":
			j.Kind, j.Priority = sched.Service, 200
		case "Guaranteed":
			j.Priority = 100
		case "Burstable":
			j.Priority = 50
		case "BE":
			j.Priority, j.Preemptible = 10, true
		}
		out.Jobs = append(out.Jobs, j)
	}
	sort.SliceStable(out.Jobs, func(a, b int) bool { return out.Jobs[a].Arrival < out.Jobs[b].Arrival })
	return out, nil
}

// Catalog figures for the openb trace's GPU types, which the trace does not
// give: relative speed 1 and the board and idle power of a typical data
// centre GPU of that generation. They matter for energy only.
var openbPower = map[string][2]float64{
	"T4": {70, 10}, "P100": {250, 30}, "V100M16": {300, 40}, "V100M32": {300, 40}, "A10": {150, 20},
}

// OpenbFleet builds a fleet from an openb node list. The trace gives no
// topology: nodes go eight to a rack, 32 racks to a block, in file order,
// under region "openb" and zone "z1". GPU types missing from the default
// catalog are added with relative speed 1 and the power figures above (400
// W board, 50 W idle for the undisclosed G1, G2 and G3).
func OpenbFleet(nodes []openb.Node) (*fleet.Fleet, error) {
	cat := fleet.DefaultCatalog()
	types := append([]fleet.AccelType(nil), cat.Types...)
	known := map[string]bool{}
	for _, t := range types {
		known[t.Name] = true
	}
	var fn []fleet.Node
	for i, n := range nodes {
		if n.GPUs > fleet.MaxDevicesPerNode {
			return nil, fmt.Errorf("node %s: %d GPUs, at most %d per node", n.Name, n.GPUs, fleet.MaxDevicesPerNode)
		}
		if n.GPUs > 0 && !known[n.Model] {
			p, ok := openbPower[n.Model]
			if !ok {
				p = [2]float64{400, 50}
			}
			types = append(types, fleet.AccelType{Name: n.Model, BoardPowerW: p[0], IdlePowerW: p[1], RelSpeed: 1})
			known[n.Model] = true
		}
		fn = append(fn, fleet.Node{
			Name: n.Name, Path: []string{"openb", "z1", fmt.Sprintf("b%d", i/256+1), fmt.Sprintf("r%d", i/8+1)},
			Accel: n.Model, Count: n.GPUs, CPUMilli: n.CPUMilli, MemoryMiB: n.MemoryMiB,
		})
	}
	c, err := fleet.NewCatalog(types)
	if err != nil {
		return nil, err
	}
	return fleet.New(c, nil, fn)
}

// OpenbQueues is one tenant, "openb", with one queue (named anything but
// "openb") whose nominal quota is the whole fleet.
func OpenbQueues(f *fleet.Fleet, queue string) []quota.Spec {
	q := map[string]quota.Limits{}
	for t, n := range f.Totals() {
		q[t] = quota.Limits{Nominal: int64(n) * 1000}
	}
	return []quota.Spec{{Name: "openb", Quotas: q}, {Name: queue, Parent: "openb"}}
}
