// Package schema is the layout of what the store persists: records of the
// store's own, each with a schema version, so that a change to an API, core
// or lifecycle struct cannot silently change what is on disk. The store
// converts between these records and the types the server works with (in
// package store, codec.go); a record written by an earlier version is read
// through that version's frozen layout (V0 here) and converted forward.
//
// Rules for changing it: a field may be added (omitempty, with a zero value
// that means what records without it meant); a field's meaning or
// encoding never changes in place: that is a new Version, a frozen copy of
// the old layout, and a conversion from it.
package schema

// Version is the schema version this build writes. It reads every version
// from 0 up to it.
const Version = 1

// Job is a job record: what was submitted and everything the control plane
// knows of its lifecycle.
type Job struct {
	V              int       `json:"v"`
	ID             string    `json:"id"`
	Seq            uint64    `json:"seq"`
	Name           string    `json:"name"`
	Tenant         string    `json:"tenant"`
	Queue          string    `json:"queue"`
	Spec           JobSpec   `json:"spec"`
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
	Service        *Service  `json:"service,omitempty"`
}

// Service is an inference service's spec and scaling state.
type Service struct {
	Spec         ServiceSpec  `json:"spec"`
	Desired      int          `json:"desired"`
	Failures     int          `json:"failures,omitempty"`
	RetryMs      int64        `json:"retryMs,omitempty"`
	ColdStartsMs []int64      `json:"coldStartsMs,omitempty"`
	Ended        bool         `json:"ended,omitempty"`
	Keys         []ServiceKey `json:"keys,omitempty"`
}

// ServiceSpec is how a service scales and is reached.
type ServiceSpec struct {
	MinReplicas           int     `json:"minReplicas"`
	MaxReplicas           int     `json:"maxReplicas"`
	TargetInFlight        float64 `json:"targetInFlight"`
	TargetTokensPerSecond float64 `json:"targetTokensPerSecond,omitempty"`
	MaxInFlight           int     `json:"maxInFlight,omitempty"`
	LatencyMs             int64   `json:"latencyMs,omitempty"`
	Quantile              float64 `json:"quantile,omitempty"`
	ReadinessPath         string  `json:"readinessPath"`
	ReadinessPort         int     `json:"readinessPort,omitempty"`
	ScaleDownGraceMs      int64   `json:"scaleDownGraceMs"`
	DrainTimeoutMs        int64   `json:"drainTimeoutMs"`
	StartTimeoutMs        int64   `json:"startTimeoutMs,omitempty"`
	ColdStartMs           int64   `json:"coldStartMs,omitempty"`
	Policy                string  `json:"policy"`
	QueueLimit            int     `json:"queueLimit"`
	QueueTimeoutMs        int64   `json:"queueTimeoutMs"`
}

// ServiceKey is an API key of a service (its hash only).
type ServiceKey struct {
	ID        string `json:"id"`
	Hash      string `json:"hash"`
	CreatedMs int64  `json:"createdMs"`
}

// JobSpec is what the scheduling core admits. Kind is written by name.
type JobSpec struct {
	ID              string   `json:"id"`
	Tenant          string   `json:"tenant"`
	Queue           string   `json:"queue"`
	Kind            string   `json:"kind"`
	Priority        int32    `json:"priority,omitempty"`
	Tier            string   `json:"tier,omitempty"`
	Preemptible     bool     `json:"preemptible,omitempty"`
	NoticeSec       int64    `json:"noticeSec,omitempty"`
	CheckpointSec   int64    `json:"checkpointSec,omitempty"`
	Gangs           []Gang   `json:"gangs"`
	Topology        Topology `json:"topology,omitzero"`
	EstimatedSec    int64    `json:"estimatedSec,omitempty"`
	MaxSec          int64    `json:"maxSec,omitempty"`
	WaitForCapacity bool     `json:"waitForCapacity,omitempty"`
	Deadline        int64    `json:"deadline,omitempty"`
	NotBefore       int64    `json:"notBefore,omitempty"`
	Interruptible   bool     `json:"interruptible,omitempty"`
}

// Gang is a set of identical replicas.
type Gang struct {
	Name        string `json:"name,omitempty"`
	Replicas    int    `json:"replicas"`
	MinReplicas int    `json:"minReplicas,omitempty"`
	Shape       Shape  `json:"shape"`
	AnyType     bool   `json:"anyType,omitempty"`
}

// Shape is one replica's request.
type Shape struct {
	Accel     []string `json:"accel,omitempty"`
	Devices   int      `json:"devices,omitempty"`
	Milli     int32    `json:"milli,omitempty"`
	CPUMilli  int64    `json:"cpuMilli,omitempty"`
	MemoryMiB int64    `json:"memoryMiB,omitempty"`
}

// Topology is a job's placement constraint.
type Topology struct {
	Level    string `json:"level,omitempty"`
	Required bool   `json:"required,omitempty"`
}

// Run is what the agents execute.
type Run struct {
	Command       []string          `json:"command"`
	Env           map[string]string `json:"env,omitempty"`
	RestartPolicy string            `json:"restartPolicy,omitempty"`
	MaxRestarts   int               `json:"maxRestarts,omitempty"`
	Resize        string            `json:"resize,omitempty"`
	Replicas      string            `json:"replicas,omitempty"`
}

// Replica is one bound replica of one attempt.
type Replica struct {
	Unit    int               `json:"unit,omitempty"`
	Gang    int               `json:"gang"`
	Replica int               `json:"replica"`
	Attempt int               `json:"attempt"`
	Rank    int               `json:"rank"`
	Node    string            `json:"node"`
	Accel   string            `json:"accel,omitempty"`
	Devices []int             `json:"devices,omitempty"`
	Milli   int32             `json:"milli,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	State   string            `json:"state"`
	Exit    int               `json:"exitCode,omitempty"`
	Signal  string            `json:"signal,omitempty"`
	BoundMs int64             `json:"boundMs,omitempty"`
	StopMs  int64             `json:"stopMs,omitempty"`
	Shrunk  bool              `json:"shrunk,omitempty"`
	Sent    bool              `json:"sent,omitempty"`
	Held    bool              `json:"held,omitempty"`
	Port    int               `json:"port,omitempty"`
	Ready   bool              `json:"ready,omitempty"`
	ReadyMs int64             `json:"readyMs,omitempty"`
}

// Stopping is why a unit's attempt is being stopped.
type Stopping struct {
	Reason    string `json:"reason"`
	Requeue   bool   `json:"requeue"`
	Preempted bool   `json:"preempted,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
}

// Unit is what the core admits as one job.
type Unit struct {
	Core       string    `json:"core"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	Attempt    int       `json:"attempt,omitempty"`
	Restarts   int       `json:"restarts,omitempty"`
	Stopping   *Stopping `json:"stopping,omitempty"`
	StartedMs  int64     `json:"startedMs,omitempty"`
	FinishedMs int64     `json:"finishedMs,omitempty"`
	DrainMs    int64     `json:"drainMs,omitempty"`
}

// Event is one entry of a job's history.
type Event struct {
	AtMs   int64  `json:"atMs"`
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
}

// Node is a registered node.
type Node struct {
	V          int      `json:"v"`
	Info       NodeInfo `json:"info"`
	State      string   `json:"state"`
	Registered int64    `json:"registered"`
	Drained    bool     `json:"drained,omitempty"`
}

// NodeInfo is what an agent declared of its node.
type NodeInfo struct {
	Name      string            `json:"name"`
	Address   string            `json:"address"`
	Path      map[string]string `json:"path,omitempty"`
	Accel     string            `json:"accel,omitempty"`
	Count     int               `json:"count"`
	CPUMilli  int64             `json:"cpuMilli"`
	MemoryMiB int64             `json:"memoryMiB"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Token is an access token's hash and what it may do.
type Token struct {
	V       int    `json:"v"`
	Hash    string `json:"hash"`
	Role    string `json:"role"`
	Tenant  string `json:"tenant,omitempty"`
	Node    string `json:"node,omitempty"`
	Created int64  `json:"created"`
}

// Queues is the queue tree, in creation order.
type Queues struct {
	V      int     `json:"v"`
	Queues []Queue `json:"queues"`
}

// Queue declares one queue of the tree.
type Queue struct {
	Name   string            `json:"name"`
	Parent string            `json:"parent,omitempty"`
	Weight float64           `json:"weight,omitempty"`
	Strict bool              `json:"strict,omitempty"`
	Quotas map[string]Limits `json:"quotas,omitempty"`
}

// Limits are one flavor's quota of a queue, in milli-accelerators; nil is
// unlimited.
type Limits struct {
	Nominal int64  `json:"nominal"`
	Borrow  *int64 `json:"borrowingLimit,omitempty"`
	Lend    *int64 `json:"lendingLimit,omitempty"`
}

// Idempotency ties a tenant's idempotency key to the job it created.
type Idempotency struct {
	V   int    `json:"v"`
	Job string `json:"job"`
	// Seq is the job's sequence number (0 in records written before it
	// was kept: the job is then found by its id).
	Seq      uint64 `json:"seq,omitempty"`
	BodyHash string `json:"bodyHash"`
}

// The accounting records are extra records of their own kinds (see package
// store's accounting.go for their keys). Amounts are in micro-units of the
// ledger's currency; times are Unix milliseconds.

// Usage is a closed usage record: one replica's holding of accelerators
// over an interval, as the scheduling core reported it when it ended. ID is
// the ledger's (one per holding: job, attempt, gang, replica, start).
type Usage struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	Job     string `json:"job"`
	Unit    string `json:"unit,omitempty"` // the core's job of an array job's unit
	Tenant  string `json:"tenant"`
	Queue   string `json:"queue"`
	Kind    string `json:"kind,omitempty"`
	Attempt int    `json:"attempt"`
	Gang    int    `json:"gang"`
	Replica int    `json:"replica"`
	Type    string `json:"type"`
	Tier    string `json:"tier,omitempty"`
	Site    string `json:"site,omitempty"`
	Node    string `json:"node"`
	Devices []int  `json:"devices"`
	Milli   int32  `json:"milli"`
	FromMs  int64  `json:"fromMs"`
	ToMs    int64  `json:"toMs"`
	End     string `json:"end"`
	// Intensity is the grid carbon intensity (gCO2/kWh) the scheduling
	// core planned the holding on, when it had a forecast (0: none); the
	// meter reads the site's measured series.
	Intensity float64 `json:"intensity,omitempty"`
}

// SiteCap is a site's power cap as an administrator set it: KW 0 lifts
// the site's cap until it is set again.
type SiteCap struct {
	V     int     `json:"v"`
	Site  string  `json:"site"`
	KW    float64 `json:"kw"`
	SetMs int64   `json:"setMs"`
}

// Grant is a credit grant.
type Grant struct {
	V         int    `json:"v"`
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Queue     string `json:"queue,omitempty"`
	Kind      string `json:"kind"`
	Amount    int64  `json:"amount"`
	StartMs   int64  `json:"startMs"`
	ExpiresMs int64  `json:"expiresMs,omitempty"`
	CreatedMs int64  `json:"createdMs"`
}

// Commitment is a capacity commitment; PricePerHour is in micro-units.
type Commitment struct {
	V            int    `json:"v"`
	ID           string `json:"id"`
	Tenant       string `json:"tenant"`
	Type         string `json:"type"`
	Site         string `json:"site,omitempty"`
	Count        int    `json:"count"`
	StartMs      int64  `json:"startMs"`
	EndMs        int64  `json:"endMs"`
	PricePerHour int64  `json:"pricePerHour"`
	CreatedMs    int64  `json:"createdMs"`
}

// Budget is a tenant's monthly budget.
type Budget struct {
	V       int    `json:"v"`
	Tenant  string `json:"tenant"`
	Monthly int64  `json:"monthly"`
	SetMs   int64  `json:"setMs"`
}
