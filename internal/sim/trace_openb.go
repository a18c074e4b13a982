package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/trace/openb"
)

// The openb task lists of the Alibaba GPU trace (cluster-trace-gpu-v2023)
// in time mode: each task arrives at its creation_time and runs from its
// scheduled_time to its deletion_time. The fill experiment reads the same
// files without times (package openb).

var openbColumns = []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli",
	"gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time"}

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

// ReadOpenbTasks reads an openb task list with its time columns. Every task
// becomes a one-replica job in queue, sorted by creation time: QoS LS
// (latency-sensitive) tasks are services at priority 200, Guaranteed tasks
// batch at 100, Burstable at 50, BE (best-effort) tasks preemptible batch
// at 10. The runtime,
// deletion_time - scheduled_time, is taken as the duration at relative
// speed 1.0. The file is small (thousands of rows) and is read whole,
// since its rows are not in time order.
func ReadOpenbTasks(name string, r io.Reader, queue string) (*OpenbTrace, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, openbErr(name, cr, err)
	}
	if len(header) != len(openbColumns) || strings.Join(header, ",") != strings.Join(openbColumns, ",") {
		return nil, &LineError{File: name, Line: 1, Column: 1, Msg: fmt.Sprintf("header %q: time mode needs the columns %s", strings.Join(header, ","), strings.Join(openbColumns, ","))}
	}
	out := &OpenbTrace{}
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, openbErr(name, cr, err)
		}
		line, _ := cr.FieldPos(0)
		fail := func(col int, format string, args ...any) error {
			l, c := cr.FieldPos(col)
			return &LineError{File: name, Line: l, Column: c, Msg: openbColumns[col] + ": " + fmt.Sprintf(format, args...)}
		}
		num := func(col int, lo, hi int64) (int64, error) {
			v, err := strconv.ParseInt(rec[col], 10, 64)
			if err != nil || v < lo || v > hi {
				return 0, fail(col, "%q, want an integer in %d..%d", rec[col], lo, hi)
			}
			return v, nil
		}
		id := rec[0]
		if id == "" {
			return nil, fail(0, "must not be empty")
		}
		if first, dup := seen[id]; dup {
			return nil, fail(0, "%q is already used on line %d", id, first)
		}
		seen[id] = line
		var vals [5]int64
		for i, c := range []struct {
			col    int
			lo, hi int64
		}{{1, 0, 1 << 40}, {2, 0, 1 << 40}, {3, 0, openb.MaxGPUs}, {4, 0, place.Whole}, {8, 0, 1 << 40}} {
			if vals[i], err = num(c.col, c.lo, c.hi); err != nil {
				return nil, err
			}
		}
		cpu, mem, gpus, milli, created := vals[0], vals[1], vals[2], vals[3], vals[4]
		if rec[10] == "" {
			out.NeverRan++
			continue
		}
		deleted, err := num(9, created, 1<<40)
		if err != nil {
			return nil, err
		}
		started, err := num(10, created, deleted)
		if err != nil {
			return nil, err
		}
		req := place.Request{CPUMilli: cpu, MemoryMiB: mem}
		switch {
		case gpus == 0 && milli != 0:
			return nil, fail(4, "%d: a task without GPUs asks 0 milli", milli)
		case gpus == 1 && milli == 0:
			return nil, fail(4, "0: a task with one GPU asks 1..1000 milli")
		case gpus > 1 && milli != place.Whole:
			return nil, fail(4, "%d: a task with %d GPUs asks whole ones (1000 milli)", milli, gpus)
		case gpus == 1 && milli < place.Whole:
			req.Milli = int32(milli)
		default:
			req.Devices = int(gpus)
		}
		if s := rec[5]; s != "" && s != "nan" {
			if gpus == 0 {
				return nil, fail(5, "%q: a task without GPUs accepts no GPU type", s)
			}
			req.Accel = strings.Split(s, "|")
		}
		j := Job{Arrival: created, Duration: deleted - started, Job: sched.Job{
			ID: sched.JobID(id), Queue: queue, Kind: sched.Batch,
			Gangs: []sched.Gang{{Replicas: 1, Shape: req}},
		}}
		switch rec[6] {
		case "LS":
			j.Kind, j.Priority = sched.Service, 200
		case "Guaranteed":
			j.Priority = 100
		case "Burstable":
			j.Priority = 50
		case "BE":
			j.Priority, j.Preemptible = 10, true
		default:
			return nil, fail(6, "%q, want LS, Guaranteed, Burstable or BE", rec[6])
		}
		out.Jobs = append(out.Jobs, j)
	}
	sort.SliceStable(out.Jobs, func(a, b int) bool { return out.Jobs[a].Arrival < out.Jobs[b].Arrival })
	return out, nil
}

func openbErr(name string, cr *csv.Reader, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &LineError{File: name, Line: pe.Line, Column: pe.Column, Msg: pe.Err.Error()}
	}
	if err == io.EOF {
		return &LineError{File: name, Line: 1, Column: 1, Msg: "the file is empty"}
	}
	return fmt.Errorf("read %s: %w", name, err)
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
