package api

import "time"

// Whoami is the answer to GET /v1/whoami: what the token is. The dashboard
// signs in with it.
type Whoami struct {
	Role   string `json:"role" yaml:"role"`
	Tenant string `json:"tenant,omitempty" yaml:"tenant,omitempty"`
}

// PendingJob is one pending job as its queue holds it (GET /v1/pending).
type PendingJob struct {
	ID        string    `json:"id" yaml:"id"`
	Name      string    `json:"name" yaml:"name"`
	Tenant    string    `json:"tenant" yaml:"tenant"`
	Queue     string    `json:"queue" yaml:"queue"`
	Kind      string    `json:"kind" yaml:"kind"`
	Priority  int32     `json:"priority" yaml:"priority"`
	Submitted time.Time `json:"submitted" yaml:"submitted"`
	// Element is, for an array job, the replica that waits (each waits on
	// its own), for a service the service replica; absent for a gang job.
	Element *int `json:"element,omitempty" yaml:"element,omitempty"`
	// Position is the job's place in its queue's order (priority, then
	// submission), from 1.
	Position int `json:"position" yaml:"position"`
	// Code classifies why it waits (the scheduling core's status code:
	// not-tried, no-capacity, over-quota, ...); Reason says it in words.
	Code   string `json:"code" yaml:"code"`
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
	// EarliestStart is the predicted start of a job that waits for
	// capacity, when one can be made.
	EarliestStart *time.Time `json:"earliestStart,omitempty" yaml:"earliestStart,omitempty"`
}

// PendingList is one page of GET /v1/pending: pending jobs queue by queue
// in the tree's order and in each queue's own order. Total counts every
// pending job the filter matches; Next, when set, is the offset of the
// next page.
type PendingList struct {
	Jobs  []PendingJob `json:"jobs" yaml:"jobs"`
	Total int          `json:"total" yaml:"total"`
	Next  string       `json:"next,omitempty" yaml:"next,omitempty"`
}

// Page sizes of GET /v1/pending.
const (
	DefaultPendingPage = 50
	MaxPendingPage     = 500
)

// Job event types of a job's timeline (GET /v1/jobs/{id}/events), as the
// live lifecycle records them.
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

// JobEvent is one entry of a job's timeline.
type JobEvent struct {
	// Time is when it happened; absent when the server did not record it.
	Time    *time.Time `json:"time,omitempty" yaml:"time,omitempty"`
	Type    string     `json:"type" yaml:"type"`
	Attempt int        `json:"attempt,omitempty" yaml:"attempt,omitempty"`
	Detail  string     `json:"detail,omitempty" yaml:"detail,omitempty"`
}

// JobEvents is the answer to GET /v1/jobs/{id}/events, oldest first. The
// live lifecycle records a job's events (the first and the latest of a
// long history). Derived is set for a record from before it did: the
// timeline is then read off the record (its submission, the start of its
// current attempt, its end and its counters), and earlier attempts appear
// without their times.
type JobEvents struct {
	Events  []JobEvent `json:"events" yaml:"events"`
	Derived bool       `json:"derived,omitempty" yaml:"derived,omitempty"`
}

// History is the answer to GET /v1/history: samples of the fleet and the
// queues, oldest first, taken every IntervalSeconds since the server
// started (it keeps the latest MaxSamples).
type History struct {
	IntervalSeconds float64  `json:"intervalSeconds" yaml:"intervalSeconds"`
	MaxSamples      int      `json:"maxSamples" yaml:"maxSamples"`
	Samples         []Sample `json:"samples" yaml:"samples"`
}

// Sample is the fleet and the queues at one time. Fleet holds every
// tenant's allocations together, so only admin tokens see it; a tenant
// sees its own queues.
type Sample struct {
	Time   time.Time              `json:"time" yaml:"time"`
	Fleet  *FleetSample           `json:"fleet,omitempty" yaml:"fleet,omitempty"`
	Queues map[string]QueueSample `json:"queues" yaml:"queues"`
}

// FleetSample is the fleet's allocation at one time.
type FleetSample struct {
	Ready    int `json:"ready" yaml:"ready"`
	Draining int `json:"draining" yaml:"draining"`
	Down     int `json:"down" yaml:"down"`
	// Accelerators counts the accelerators of nodes that are not down;
	// Allocated what running replicas hold of them.
	Accelerators float64 `json:"accelerators" yaml:"accelerators"`
	Allocated    float64 `json:"allocated" yaml:"allocated"`
	// Utilization is Allocated over Accelerators.
	Utilization float64 `json:"utilization" yaml:"utilization"`
	// Fragmentation is the share of free accelerator capacity that lies on
	// nodes already partly in use, where a job that wants whole nodes
	// cannot have it (the simulator's measure).
	Fragmentation float64               `json:"fragmentation" yaml:"fragmentation"`
	ByType        map[string]TypeSample `json:"byType,omitempty" yaml:"byType,omitempty"`
	Pending       int                   `json:"pending" yaml:"pending"`
	Running       int                   `json:"running" yaml:"running"`
}

// TypeSample is one accelerator type's allocation.
type TypeSample struct {
	Accelerators float64 `json:"accelerators" yaml:"accelerators"`
	Allocated    float64 `json:"allocated" yaml:"allocated"`
}

// QueueSample is one queue at one time.
type QueueSample struct {
	// Usage and Borrowed are in accelerators, over all flavors.
	Usage    float64 `json:"usage" yaml:"usage"`
	Borrowed float64 `json:"borrowed" yaml:"borrowed"`
	// Share is the queue's dominant share of the fleet's pool, Entitlement
	// the dominant share its nominal quota gives it (see Queue).
	Share       float64 `json:"share" yaml:"share"`
	Entitlement float64 `json:"entitlement" yaml:"entitlement"`
	Pending     int     `json:"pending" yaml:"pending"`
	Running     int     `json:"running" yaml:"running"`
}

// Stream event types of GET /v1/events.
const (
	StreamJob    = "job"
	StreamNode   = "node"
	StreamSample = "sample"
	// StreamReset tells a client that events were lost (it fell behind,
	// or resumed from an id the server no longer holds): it reloads what
	// it shows.
	StreamReset = "reset"
)

// JobChange is the data of a "job" event: a job's state, attempt, reason
// or replicas changed (or it was submitted: Previous is empty).
type JobChange struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Queue    string `json:"queue"`
	State    string `json:"state"`
	Previous string `json:"previous,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Attempt  int    `json:"attempt"`
	// Replicas counts the current attempt's replicas, Running those whose
	// process runs.
	Replicas int `json:"replicas"`
	Running  int `json:"running"`
}

// NodeChange is the data of a "node" event.
type NodeChange struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Previous string `json:"previous,omitempty"`
	Drained  bool   `json:"drained,omitempty"`
}

// Log stream event types of GET /v1/jobs/{id}/logs/stream.
const (
	LogStreamLog = "log"
	// LogStreamAttempt: the job started another attempt; the stream follows
	// its log from the start.
	LogStreamAttempt = "attempt"
	LogStreamState   = "state"
	// LogStreamEnd: the job is over and its log read to the end.
	LogStreamEnd = "end"
)

// LogEvent is the data of a log stream's "log" event: the bytes of one
// replica's log from Offset to Next, as text (bytes that are not UTF-8
// become U+FFFD; offsets count bytes).
type LogEvent struct {
	Rank    int    `json:"rank"`
	Attempt int    `json:"attempt"`
	Offset  int64  `json:"offset"`
	Next    int64  `json:"next"`
	Text    string `json:"text"`
}

// LogState is the data of a log stream's "attempt", "state" and "end"
// events.
type LogState struct {
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
	Next    int64  `json:"next"`
}
