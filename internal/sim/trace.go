// Package sim replays workloads through the scheduling core on a virtual
// clock: a discrete-event engine that feeds the core arrivals, completions,
// preemption deadlines and node failures and carries out its actions, the
// native trace format it reads, a synthetic workload generator, and the
// metrics a run produces. It holds no scheduling logic of its own.
package sim

import (
	"fmt"
	"time"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// TraceVersion is the native trace format's version (docs/TRACE_FORMAT.md).
const TraceVersion = 1

// record is one line of a native trace: exactly one field is set.
type record struct {
	Header *Header     `json:"header,omitempty"`
	Queue  *quota.Spec `json:"queue,omitempty"`
	Node   *traceNode  `json:"node,omitempty"`
	Job    *traceJob   `json:"job,omitempty"`
}

// Header is the optional first line of a trace.
type Header struct {
	Version int `json:"version"`
	// Source says how the trace was made (a command line, a cluster name).
	Source string `json:"source,omitempty"`
	// Origin is the wall-clock time of virtual second 0, in RFC 3339, for
	// a trace recorded on a live fleet.
	Origin string `json:"origin,omitempty"`
	// Sched is the scheduling core's configuration the trace was recorded
	// under; a replay uses it unless told otherwise.
	Sched *sched.Config `json:"sched,omitempty"`
}

// traceJob is a job line as written on the wire.
type traceJob struct {
	ID      string `json:"id"`
	Arrival int64  `json:"arrival"`
	// Duration is the runtime at relative speed 1.0; nil for a service that
	// runs until the end of the simulation.
	Duration      *int64      `json:"duration,omitempty"`
	Tenant        string      `json:"tenant,omitempty"`
	Queue         string      `json:"queue"`
	Kind          string      `json:"kind"`
	Priority      int32       `json:"priority,omitempty"`
	Tier          string      `json:"tier,omitempty"`
	Preemptible   bool        `json:"preemptible,omitempty"`
	NoticeSec     int64       `json:"noticeSec,omitempty"`
	CheckpointSec int64       `json:"checkpointSec,omitempty"`
	Gangs         []traceGang `json:"gangs"`
	Topology      *traceTopo  `json:"topology,omitempty"`
	EstimatedSec  int64       `json:"estimatedSec,omitempty"`
	MaxSec        int64       `json:"maxSec,omitempty"`
	Deadline      int64       `json:"deadline,omitempty"`
	NotBefore     int64       `json:"notBefore,omitempty"`
	Interruptible bool        `json:"interruptible,omitempty"`
	// WaitForCapacity keeps a job the fleet cannot hold yet waiting for
	// nodes to come instead of rejecting it.
	WaitForCapacity bool      `json:"waitForCapacity,omitempty"`
	Observed        *Observed `json:"observed,omitempty"`
}

// Observed is what happened to a job where the trace was recorded (a live
// fleet): a replay ignores it, and a comparison reads it. Times are on the
// trace's virtual clock.
type Observed struct {
	// Start is when the job's last attempt started; nil if it never did.
	Start *int64 `json:"start,omitempty"`
	// End is when it ended; nil while it had not.
	End *int64 `json:"end,omitempty"`
	// Outcome is the job's state at the end of the recording (ObservedOutcomes).
	Outcome string `json:"outcome"`
	// Attempts counts its starts.
	Attempts int `json:"attempts,omitempty"`
}

// ObservedOutcomes are the outcomes an observed job may have.
var ObservedOutcomes = []string{"succeeded", "failed", "cancelled", "running", "pending"}

// traceNode is a node line: a node of the fleet at the start (no At), or
// a node event at At.
type traceNode struct {
	At        *int64            `json:"at,omitempty"`
	Event     string            `json:"event,omitempty"`
	Name      string            `json:"name"`
	Path      []string          `json:"path,omitempty"`
	Accel     string            `json:"accel,omitempty"`
	Count     int               `json:"count,omitempty"`
	CPUMilli  int64             `json:"cpuMilli,omitempty"`
	MemoryMiB int64             `json:"memoryMiB,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

type traceGang struct {
	Name        string   `json:"name,omitempty"`
	Replicas    int      `json:"replicas"`
	MinReplicas int      `json:"minReplicas,omitempty"`
	Accel       []string `json:"accel,omitempty"`
	Count       int      `json:"count,omitempty"`
	Milli       int32    `json:"milli,omitempty"`
	CPUMilli    int64    `json:"cpuMilli,omitempty"`
	MemoryMiB   int64    `json:"memoryMiB,omitempty"`
}

type traceTopo struct {
	Level    string `json:"level"`
	Required bool   `json:"required,omitempty"`
}

// Job is one job of a workload: the core's job and what only the simulator
// knows, when it arrives and how long it really runs.
type Job struct {
	sched.Job
	// Arrival is the virtual time of submission, in seconds.
	Arrival int64
	// Duration is the runtime at relative speed 1.0 with every replica
	// running; NoDuration for a service that runs until the end.
	Duration int64
	// Observed is what happened to the job where the trace was recorded;
	// nil for a workload that was not recorded. The engine ignores it.
	Observed *Observed
}

// NoDuration marks a job that runs until the simulation ends.
const NoDuration int64 = -1

func (j *Job) wire() traceJob {
	w := traceJob{
		ID:            string(j.ID),
		Arrival:       j.Arrival,
		Tenant:        j.Tenant,
		Queue:         j.Queue,
		Kind:          j.Kind.String(),
		Priority:      j.Priority,
		Tier:          j.Tier,
		Preemptible:   j.Preemptible,
		NoticeSec:     j.NoticeSec,
		CheckpointSec: j.CheckpointSec,
		EstimatedSec:  j.EstimatedSec,
		MaxSec:        j.MaxSec,
		Deadline:      j.Deadline,
		NotBefore:     j.NotBefore,
		Interruptible: j.Interruptible,
		Gangs:         make([]traceGang, len(j.Gangs)),

		WaitForCapacity: j.WaitForCapacity,
		Observed:        j.Observed,
	}
	if j.Duration != NoDuration {
		d := j.Duration
		w.Duration = &d
	}
	if j.Topology.Level != "" {
		w.Topology = &traceTopo{Level: j.Topology.Level, Required: j.Topology.Required}
	}
	for i, g := range j.Gangs {
		w.Gangs[i] = traceGang{
			Name: g.Name, Replicas: g.Replicas, MinReplicas: g.MinReplicas,
			Accel: g.Shape.Accel, Count: g.Shape.Devices, Milli: g.Shape.Milli,
			CPUMilli: g.Shape.CPUMilli, MemoryMiB: g.Shape.MemoryMiB,
		}
	}
	return w
}

// fieldError is a semantic error in one field of a line; path locates the
// field so that the reader can report its column.
type fieldError struct {
	path []any // string keys and int indices, from the line's top
	msg  string
}

func (e *fieldError) Error() string { return pathText(e.path) + ": " + e.msg }

func pathText(path []any) string {
	s := ""
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if s != "" {
				s += "."
			}
			s += p
		case int:
			s += fmt.Sprintf("[%d]", p)
		}
	}
	return s
}

func ferr(msg string, path ...any) *fieldError { return &fieldError{path: path, msg: msg} }

// job converts a wire job and checks what the core's Validate does not
// cover (kind, durations, arrival), naming the field at fault.
func (w *traceJob) job() (Job, error) {
	j := Job{
		Arrival:  w.Arrival,
		Duration: NoDuration,
		Job: sched.Job{
			ID:            sched.JobID(w.ID),
			Tenant:        w.Tenant,
			Queue:         w.Queue,
			Priority:      w.Priority,
			Tier:          w.Tier,
			Preemptible:   w.Preemptible,
			NoticeSec:     w.NoticeSec,
			CheckpointSec: w.CheckpointSec,
			EstimatedSec:  w.EstimatedSec,
			MaxSec:        w.MaxSec,

			WaitForCapacity: w.WaitForCapacity,
			Deadline:        w.Deadline,
			NotBefore:       w.NotBefore,
			Interruptible:   w.Interruptible,
		},
		Observed: w.Observed,
	}
	if w.ID == "" {
		return j, ferr("must not be empty", "job", "id")
	}
	if w.Queue == "" {
		return j, ferr("must not be empty", "job", "queue")
	}
	k, err := sched.ParseKind(w.Kind)
	if err != nil {
		return j, ferr(err.Error(), "job", "kind")
	}
	j.Kind = k
	if w.Arrival < 0 {
		return j, ferr(fmt.Sprintf("%d must not be negative", w.Arrival), "job", "arrival")
	}
	switch {
	case w.Duration != nil && *w.Duration < 0:
		return j, ferr(fmt.Sprintf("%d must not be negative", *w.Duration), "job", "duration")
	case w.Duration != nil:
		j.Duration = *w.Duration
	case k != sched.Service:
		return j, ferr("is required for kind "+k.String()+" (only a service may run until the end)", "job", "duration")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"noticeSec", w.NoticeSec}, {"checkpointSec", w.CheckpointSec}, {"estimatedSec", w.EstimatedSec}, {"maxSec", w.MaxSec},
		{"deadline", w.Deadline}, {"notBefore", w.NotBefore}} {
		if f.v < 0 {
			return j, ferr(fmt.Sprintf("%d must not be negative", f.v), "job", f.name)
		}
	}
	if w.Deadline > 0 && w.NotBefore >= w.Deadline {
		return j, ferr(fmt.Sprintf("%d is not before the deadline %d: the window would be empty", w.NotBefore, w.Deadline), "job", "notBefore")
	}
	if w.Deadline > 0 && w.Deadline < w.Arrival {
		return j, ferr(fmt.Sprintf("%d is before the arrival %d", w.Deadline, w.Arrival), "job", "deadline")
	}
	if len(w.Gangs) == 0 {
		return j, ferr("a job needs at least one gang", "job", "gangs")
	}
	j.Gangs = make([]sched.Gang, len(w.Gangs))
	for i, g := range w.Gangs {
		if g.Replicas < 1 {
			return j, ferr(fmt.Sprintf("%d, want at least 1", g.Replicas), "job", "gangs", i, "replicas")
		}
		if g.MinReplicas < 0 || g.MinReplicas > g.Replicas {
			return j, ferr(fmt.Sprintf("%d, want 0..%d", g.MinReplicas, g.Replicas), "job", "gangs", i, "minReplicas")
		}
		if g.Count < 0 {
			return j, ferr(fmt.Sprintf("%d must not be negative", g.Count), "job", "gangs", i, "count")
		}
		if g.Count > 0 && g.Milli != 0 {
			return j, ferr(fmt.Sprintf("%d: give either count (whole accelerators) or milli (a share of one), not both", g.Milli), "job", "gangs", i, "milli")
		}
		if g.Milli < 0 || g.Milli >= place.Whole {
			return j, ferr(fmt.Sprintf("%d, want 1..999 thousandths of one accelerator", g.Milli), "job", "gangs", i, "milli")
		}
		if g.CPUMilli < 0 {
			return j, ferr(fmt.Sprintf("%d must not be negative", g.CPUMilli), "job", "gangs", i, "cpuMilli")
		}
		if g.MemoryMiB < 0 {
			return j, ferr(fmt.Sprintf("%d must not be negative", g.MemoryMiB), "job", "gangs", i, "memoryMiB")
		}
		for a, name := range g.Accel {
			if name == "" {
				return j, ferr("must not be empty", "job", "gangs", i, "accel", a)
			}
		}
		accel := g.Accel
		if len(accel) == 0 {
			accel = nil
		}
		j.Gangs[i] = sched.Gang{
			Name: g.Name, Replicas: g.Replicas, MinReplicas: g.MinReplicas,
			Shape: place.Request{Accel: accel, Devices: g.Count, Milli: g.Milli, CPUMilli: g.CPUMilli, MemoryMiB: g.MemoryMiB},
		}
	}
	if w.Topology != nil {
		if w.Topology.Level == "" {
			return j, ferr("must not be empty when topology is given", "job", "topology", "level")
		}
		j.Topology = sched.Topology{Level: w.Topology.Level, Required: w.Topology.Required}
	}
	if err := j.Validate(); err != nil {
		return j, ferr(err.Error(), "job")
	}
	if o := w.Observed; o != nil {
		if err := o.check(); err != nil {
			return j, err
		}
	}
	return j, nil
}

func (o *Observed) check() error {
	known := false
	for _, s := range ObservedOutcomes {
		known = known || s == o.Outcome
	}
	switch {
	case !known:
		return ferr(fmt.Sprintf("%q: want one of %v", o.Outcome, ObservedOutcomes), "job", "observed", "outcome")
	case o.Start != nil && *o.Start < 0:
		return ferr(fmt.Sprintf("%d must not be negative", *o.Start), "job", "observed", "start")
	case o.End != nil && o.Start == nil:
		return ferr("an end needs a start", "job", "observed", "end")
	case o.End != nil && *o.End < *o.Start:
		return ferr(fmt.Sprintf("%d is before the start %d", *o.End, *o.Start), "job", "observed", "end")
	case o.Attempts < 0:
		return ferr(fmt.Sprintf("%d must not be negative", o.Attempts), "job", "observed", "attempts")
	}
	return nil
}

// node converts a node line: a node of the initial fleet (at nil) or an
// event.
func (w *traceNode) node() (ev NodeEvent, initial bool, err error) {
	ev.Kind = NodeAdd
	switch w.Event {
	case "", "add":
	case "retire":
		ev.Kind = NodeRetire
	default:
		return ev, false, ferr(fmt.Sprintf("%q: want add or retire", w.Event), "node", "event")
	}
	if w.Name == "" {
		return ev, false, ferr("must not be empty", "node", "name")
	}
	ev.Node.Name = w.Name
	if w.At == nil {
		if ev.Kind == NodeRetire {
			return ev, false, ferr("a retirement needs the time it happens at", "node", "event")
		}
		initial = true
	} else if ev.At = *w.At; ev.At < 0 {
		return ev, false, ferr(fmt.Sprintf("%d must not be negative", ev.At), "node", "at")
	}
	if ev.Kind == NodeRetire {
		for _, f := range []struct {
			name string
			set  bool
		}{{"path", w.Path != nil}, {"accel", w.Accel != ""}, {"count", w.Count != 0}, {"cpuMilli", w.CPUMilli != 0},
			{"memoryMiB", w.MemoryMiB != 0}, {"labels", w.Labels != nil}} {
			if f.set {
				return ev, false, ferr("a retirement names the node only (at, event, name)", "node", f.name)
			}
		}
		return ev, false, nil
	}
	if len(w.Path) == 0 {
		return ev, false, ferr("is required: the node's domain at every topology level, outermost first", "node", "path")
	}
	for i, p := range w.Path {
		if p == "" {
			return ev, false, ferr("must not be empty", "node", "path", i)
		}
	}
	switch {
	case w.Count < 0 || w.Count > fleet.MaxDevicesPerNode:
		return ev, false, ferr(fmt.Sprintf("%d, want 0..%d", w.Count, fleet.MaxDevicesPerNode), "node", "count")
	case w.Count > 0 && w.Accel == "":
		return ev, false, ferr("is required when count is given", "node", "accel")
	case w.Count == 0 && w.Accel != "":
		return ev, false, ferr("is required when accel is given (a node without accelerators names no type)", "node", "count")
	case w.CPUMilli < 0:
		return ev, false, ferr(fmt.Sprintf("%d must not be negative", w.CPUMilli), "node", "cpuMilli")
	case w.MemoryMiB < 0:
		return ev, false, ferr(fmt.Sprintf("%d must not be negative", w.MemoryMiB), "node", "memoryMiB")
	}
	ev.Node = fleet.Node{Name: w.Name, Path: w.Path, Accel: w.Accel, Count: w.Count, CPUMilli: w.CPUMilli,
		MemoryMiB: w.MemoryMiB, Labels: w.Labels}
	if len(ev.Node.Labels) == 0 {
		ev.Node.Labels = nil
	}
	return ev, initial, nil
}

// wireNode is a node line for an initial node (initial) or an event.
func wireNode(ev NodeEvent, initial bool) traceNode {
	w := traceNode{Name: ev.Node.Name}
	if !initial {
		at := ev.At
		w.At, w.Event = &at, ev.Kind.String()
	}
	if ev.Kind == NodeRetire {
		return w
	}
	n := ev.Node
	w.Path, w.Accel, w.Count, w.CPUMilli, w.MemoryMiB = n.Path, n.Accel, n.Count, n.CPUMilli, n.MemoryMiB
	if len(n.Labels) > 0 {
		w.Labels = n.Labels
	}
	return w
}

// checkOrigin reads a header's origin.
func checkOrigin(s string) error {
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return fmt.Errorf("%q: want a time in RFC 3339, such as 2026-12-01T09:00:00Z", s)
	}
	return nil
}
