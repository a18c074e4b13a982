// Package lifecycle is the live control plane's job lifecycle: a pure state
// machine, like the scheduling core, for what happens to a job between the
// core's decisions and the processes the node agents run. The core says
// bind, preempt, shrink, reject, requeue; agents report processes running
// and exiting; users cancel; nodes go down and come back. The machine keeps
// every live job's state (pending, running, preempting, cancelling, then
// succeeded, failed or cancelled), its attempts and replicas, the stop
// orders each node must carry out, and which devices stay held by processes
// that outlive what the core holds; it returns the core events the driver
// must apply and the jobs it must persist. It does no I/O, reads no clock
// (times come in, as Unix milliseconds) and starts no goroutine.
package lifecycle

import (
	"github.com/gpufleet/gpufleet/internal/sched"
)

// Job states.
const (
	Pending    = "pending"
	Running    = "running"
	Preempting = "preempting"
	// Cancelling: a user cancelled the job; its processes are stopping and
	// it keeps its accelerators until they are gone.
	Cancelling = "cancelling"
	Succeeded  = "succeeded"
	Failed     = "failed"
	Cancelled  = "cancelled"
)

// States lists every job state, in the order a job passes them.
var States = []string{Pending, Running, Preempting, Cancelling, Succeeded, Failed, Cancelled}

// Terminal reports whether a job state is final.
func Terminal(state string) bool {
	return state == Succeeded || state == Failed || state == Cancelled
}

// Restart policies of Run.RestartPolicy.
const (
	RestartNever = "never"
	// RestartGang restarts the whole gang (a new attempt) when a replica
	// fails, up to MaxRestarts times; for an array job, the failed replica
	// alone. RestartOnFailure says the same in words that fit both.
	RestartGang      = "gang"
	RestartOnFailure = "onFailure"
)

// Resize policies of Run.Resize: how the replicas of an elastic job learn
// that the gang grew or shrank (a running process cannot see a new
// WORLD_SIZE).
const (
	// ResizeNotify keeps the running replicas and tells them: every
	// replica's membership (the live replicas with their ranks and nodes,
	// and a generation that grows with each change) is in its assignment,
	// and the agent keeps it in the file GPUFLEET_MEMBERSHIP_FILE names.
	ResizeNotify = "notify"
	// ResizeRestart restarts the gang at its new size: a new attempt,
	// through the scheduling core, each time its membership changes.
	ResizeRestart = "restart"
)

// Replica policies of Run.Replicas.
const (
	// ReplicasGang: the replicas start together and end together (one
	// failure fails or restarts the gang).
	ReplicasGang = "gang"
	// ReplicasIndependent: an array job (as Slurm's job arrays): each
	// replica is admitted, runs, succeeds, fails and is retried on its own;
	// the job succeeds when every replica has.
	ReplicasIndependent = "independent"
)

// Run is what the node agents execute for each replica of a job.
type Run struct {
	Command       []string          `json:"command"`
	Env           map[string]string `json:"env,omitempty"`
	RestartPolicy string            `json:"restartPolicy,omitempty"` // "never" or "gang"
	MaxRestarts   int               `json:"maxRestarts,omitempty"`
	Resize        string            `json:"resize,omitempty"`   // "notify" (default) or "restart"
	Replicas      string            `json:"replicas,omitempty"` // "gang" (default) or "independent"
}

// Independent reports whether the job is an array of independent replicas.
func (r *Run) Independent() bool { return r.Replicas == ReplicasIndependent }

// Replica states.
const (
	ReplicaStarting = "starting"
	ReplicaRunning  = "running"
	ReplicaExited   = "exited"
	// ReplicaLost is a replica whose node went down before it reported an
	// exit.
	ReplicaLost = "lost"
	// ReplicaSkipped is a replica stopped before any agent was told to
	// start it.
	ReplicaSkipped = "skipped"
)

// Replica is one bound replica of one attempt of a job.
type Replica struct {
	// Unit is the index in Job.Units of what the replica belongs to: 0
	// for a gang job, its array index for an array job.
	Unit    int    `json:"unit,omitempty"`
	Gang    int    `json:"gang"`
	Replica int    `json:"replica"`
	Attempt int    `json:"attempt"`
	Rank    int    `json:"rank"`
	Node    string `json:"node"`
	// Accel is the accelerator type granted: the node's.
	Accel   string            `json:"accel,omitempty"`
	Devices []int             `json:"devices,omitempty"`
	Milli   int32             `json:"milli,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	State   string            `json:"state"`
	Exit    int               `json:"exitCode,omitempty"`
	Signal  string            `json:"signal,omitempty"`
	// BoundMs is when the core bound the replica.
	BoundMs int64 `json:"boundMs,omitempty"`
	// StopMs is the kill deadline (Unix ms) once the replica was asked to
	// stop; 0 while it should run.
	StopMs int64 `json:"stopMs,omitempty"`
	// Shrunk marks a replica an elastic job gave back.
	Shrunk bool `json:"shrunk,omitempty"`
	// Sent is set once a heartbeat answer told the node to run it.
	Sent bool `json:"sent,omitempty"`
	// Held is set while the core no longer holds the replica's devices
	// but its process has not been seen to end: the devices are held
	// apart (sched.DevicesHeld) until it has.
	Held bool `json:"held,omitempty"`
	// Port is a service replica's port (the agent's choice), Ready whether
	// its readiness path answers now and ReadyMs when it first did.
	Port    int   `json:"port,omitempty"`
	Ready   bool  `json:"ready,omitempty"`
	ReadyMs int64 `json:"readyMs,omitempty"`
}

// Gone reports whether the replica's process is known to be over.
func (r *Replica) Gone() bool {
	return r.State == ReplicaExited || r.State == ReplicaLost || r.State == ReplicaSkipped
}

// Succeeded reports whether the replica's process exited with status 0.
func (r *Replica) Succeeded() bool { return r.State == ReplicaExited && r.Exit == 0 && r.Signal == "" }

// Stopping records why the driver is stopping a unit's current attempt and
// what it tells the core once every process is gone.
type Stopping struct {
	Reason string `json:"reason"`
	// Requeue sends the unit back to pending; otherwise it fails.
	Requeue bool `json:"requeue"`
	// Preempted marks a stop the core asked for.
	Preempted bool `json:"preempted,omitempty"`
	// Cancelled marks a stop a user asked for: the job ends cancelled.
	Cancelled bool `json:"cancelled,omitempty"`
}

// Unit is what the scheduling core admits as one job: the whole job (all
// its gangs) for a gang job, one replica for an array job.
type Unit struct {
	// Core is the core's job ID for the unit.
	Core       string    `json:"core"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	Attempt    int       `json:"attempt,omitempty"`
	Restarts   int       `json:"restarts,omitempty"`
	Stopping   *Stopping `json:"stopping,omitempty"`
	StartedMs  int64     `json:"startedMs,omitempty"`
	FinishedMs int64     `json:"finishedMs,omitempty"`
	// DrainMs is when a service's replica was taken out of routing to be
	// stopped once its requests are done; 0 while it is routed.
	DrainMs int64 `json:"drainMs,omitempty"`
}

// Event is one entry of a job's history.
type Event struct {
	AtMs   int64  `json:"atMs"`
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
}

// Event kinds.
const (
	EventSubmitted = "submitted"
	EventAdmitted  = "admitted"
	EventGrown     = "grown"
	EventShrunk    = "shrunk"
	EventPreempted = "preempted"
	EventRequeued  = "requeued"
	EventRestarted = "restarted"
	EventCancelled = "cancelled"
	EventSucceeded = "succeeded"
	EventFailed    = "failed"
	EventRejected  = "rejected"
)

// maxEvents bounds a job's history (the first events and the latest are
// kept: a job preempted a thousand times does not grow without bound).
const maxEvents = 64

// Job is a submitted job with everything the control plane knows of it.
// State, Reason, Attempt, Restarts and the times sum up its units: for a
// gang job they are its one unit's; for an array job, running while any
// replica is, terminal once every replica is (succeeded if all did).
type Job struct {
	ID             string    `json:"id"`
	Seq            uint64    `json:"seq"`
	Name           string    `json:"name"`
	Tenant         string    `json:"tenant"`
	Queue          string    `json:"queue"`
	Spec           sched.Job `json:"spec"`
	Run            Run       `json:"run"`
	IdempotencyKey string    `json:"idempotencyKey,omitempty"`
	State          string    `json:"state"`
	Reason         string    `json:"reason,omitempty"`
	SubmittedMs    int64     `json:"submittedMs"`
	StartedMs      int64     `json:"startedMs,omitempty"`
	FinishedMs     int64     `json:"finishedMs,omitempty"`
	Attempt        int       `json:"attempt"`
	Restarts       int       `json:"restarts,omitempty"`
	MasterPort     int       `json:"masterPort,omitempty"`
	Replicas       []Replica `json:"replicas,omitempty"`
	// Stale holds replicas of earlier attempts whose processes have not
	// been seen to exit yet; agents are told to stop them.
	Stale    []Replica `json:"stale,omitempty"`
	Stopping *Stopping `json:"stopping,omitempty"`
	// Units are what the core admits: one for a gang job, one per replica
	// for an array job. A record from before units existed has none; Load
	// makes its one unit from the job's own fields.
	Units []Unit `json:"units,omitempty"`
	// Generation counts the membership changes of the current attempt
	// (ResizeNotify).
	Generation int     `json:"generation,omitempty"`
	Events     []Event `json:"events,omitempty"`
	// Service is set for an inference service: its units are its
	// replicas (see service.go).
	Service *Service `json:"service,omitempty"`
}

// Size is the number of replicas the job asks for over all gangs.
func (j *Job) Size() int {
	n := 0
	for _, g := range j.Spec.Gangs {
		n += g.Replicas
	}
	return n
}

// Normalize fills in what a record from before units existed lacks: its
// one unit, from the job's own state.
func (j *Job) Normalize() {
	if len(j.Units) > 0 || j.Service != nil {
		return
	}
	if j.Run.Independent() {
		for i := range j.Size() {
			j.Units = append(j.Units, Unit{Core: ArrayCoreID(j.ID, i), State: Pending})
		}
		return
	}
	j.Units = []Unit{{Core: j.ID, State: j.State, Reason: j.Reason, Attempt: j.Attempt, Restarts: j.Restarts,
		Stopping: j.Stopping, StartedMs: j.StartedMs, FinishedMs: j.FinishedMs}}
}

// ArrayCoreID is the core's job ID of replica i of array job id.
func ArrayCoreID(id string, i int) string { return id + "[" + itoa(i) + "]" }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}

// CoreJobs are the jobs the core schedules for j: j itself for a gang job;
// for an array job one job of one replica per element not yet over.
func (j *Job) CoreJobs() []sched.Job {
	if j.Service != nil {
		return j.serviceCoreJobs()
	}
	if !j.Run.Independent() {
		return []sched.Job{j.Spec}
	}
	var out []sched.Job
	i := 0
	for g, gang := range j.Spec.Gangs {
		for range gang.Replicas {
			one := j.Spec
			one.ID = sched.JobID(ArrayCoreID(j.ID, i))
			one.Gangs = []sched.Gang{{Name: gang.Name, Replicas: 1, Shape: gang.Shape, AnyType: gang.AnyType}}
			_ = g
			out = append(out, one)
			i++
		}
	}
	return out
}

// addEvent records an event, keeping the first half of the history and the
// latest.
func (j *Job) addEvent(at int64, kind, detail string) {
	if len(j.Events) >= maxEvents {
		keep := maxEvents / 2
		j.Events = append(j.Events[:keep], j.Events[keep+1:]...)
	}
	j.Events = append(j.Events, Event{AtMs: at, Kind: kind, Detail: detail})
}
