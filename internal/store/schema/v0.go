package schema

// Version 0 is the layout before the store had versions: its records were
// the server's structs as JSON (the job lifecycle's Job with the core's Job
// as its spec, the API's node registration). These are frozen copies of
// that layout; only fields that differ from version 1 have types here.

// JobV0 is a version 0 job record.
type JobV0 struct {
	ID             string    `json:"id"`
	Seq            uint64    `json:"seq"`
	Name           string    `json:"name"`
	Tenant         string    `json:"tenant"`
	Queue          string    `json:"queue"`
	Spec           JobSpecV0 `json:"spec"`
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
	Stale          []Replica `json:"stale,omitempty"`
	Stopping       *Stopping `json:"stopping,omitempty"`
	Units          []Unit    `json:"units,omitempty"`
	Generation     int       `json:"generation,omitempty"`
	Events         []Event   `json:"events,omitempty"`
}

// JobSpecV0 is the core's job as version 0 wrote it: the kind as its
// number, shapes with Go's field names.
type JobSpecV0 struct {
	ID              string   `json:"id"`
	Tenant          string   `json:"tenant"`
	Queue           string   `json:"queue"`
	Kind            uint8    `json:"kind"`
	Priority        int32    `json:"priority"`
	Tier            string   `json:"tier,omitempty"`
	Preemptible     bool     `json:"preemptible,omitempty"`
	NoticeSec       int64    `json:"noticeSec,omitempty"`
	CheckpointSec   int64    `json:"checkpointSec,omitempty"`
	Gangs           []GangV0 `json:"gangs"`
	Topology        Topology `json:"topology,omitempty"`
	EstimatedSec    int64    `json:"estimatedSec,omitempty"`
	MaxSec          int64    `json:"maxSec,omitempty"`
	WaitForCapacity bool     `json:"waitForCapacity,omitempty"`
}

// GangV0 is a version 0 gang.
type GangV0 struct {
	Name        string  `json:"name"`
	Replicas    int     `json:"replicas"`
	MinReplicas int     `json:"minReplicas,omitempty"`
	Shape       ShapeV0 `json:"shape"`
	AnyType     bool    `json:"anyType,omitempty"`
}

// ShapeV0 is a version 0 replica request: no JSON names of its own.
type ShapeV0 struct {
	Accel     []string `json:"Accel"`
	Devices   int      `json:"Devices"`
	Milli     int32    `json:"Milli"`
	CPUMilli  int64    `json:"CPUMilli"`
	MemoryMiB int64    `json:"MemoryMiB"`
}

// Kinds are the job kinds' names by their version 0 numbers.
var Kinds = []string{"training", "fine-tuning", "batch", "service"}

// Upgrade converts a version 0 job to version 1.
func (j *JobV0) Upgrade() (Job, error) {
	if int(j.Spec.Kind) >= len(Kinds) {
		return Job{}, &KindError{Kind: j.Spec.Kind}
	}
	s := j.Spec
	gangs := make([]Gang, len(s.Gangs))
	for i, g := range s.Gangs {
		gangs[i] = Gang{Name: g.Name, Replicas: g.Replicas, MinReplicas: g.MinReplicas, AnyType: g.AnyType,
			Shape: Shape{Accel: g.Shape.Accel, Devices: g.Shape.Devices, Milli: g.Shape.Milli, CPUMilli: g.Shape.CPUMilli, MemoryMiB: g.Shape.MemoryMiB}}
	}
	if s.Gangs == nil {
		gangs = nil
	}
	return Job{V: Version, ID: j.ID, Seq: j.Seq, Name: j.Name, Tenant: j.Tenant, Queue: j.Queue,
		Spec: JobSpec{ID: s.ID, Tenant: s.Tenant, Queue: s.Queue, Kind: Kinds[s.Kind], Priority: s.Priority, Tier: s.Tier,
			Preemptible: s.Preemptible, NoticeSec: s.NoticeSec, CheckpointSec: s.CheckpointSec, Gangs: gangs, Topology: s.Topology,
			EstimatedSec: s.EstimatedSec, MaxSec: s.MaxSec, WaitForCapacity: s.WaitForCapacity},
		Run: j.Run, IdempotencyKey: j.IdempotencyKey, State: j.State, Reason: j.Reason, SubmittedMs: j.SubmittedMs,
		StartedMs: j.StartedMs, FinishedMs: j.FinishedMs, Attempt: j.Attempt, Restarts: j.Restarts, MasterPort: j.MasterPort,
		Replicas: j.Replicas, Stale: j.Stale, Stopping: j.Stopping, Units: j.Units, Generation: j.Generation, Events: j.Events}, nil
}

// KindError is a job kind no version knows.
type KindError struct{ Kind uint8 }

func (e *KindError) Error() string {
	return "spec.kind: " + itoa(int(e.Kind)) + " is not a kind of version 0 (0..3: training, fine-tuning, batch, service)"
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// The other version 0 records (nodes, tokens, idempotency keys) had the
// layout of version 1 without its "v"; the queue tree was a bare array of
// queues.
