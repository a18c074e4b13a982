package store

import (
	"errors"
	"slices"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
)

// ErrNotFound is returned for a missing record.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a commit creates a record (Record.Create)
// whose key is taken: nothing of the commit is written.
var ErrExists = errors.New("exists")

// Token roles.
const (
	RoleAdmin  = "admin"
	RoleTenant = "tenant"
	RoleNode   = "node"
	// RoleMetrics may only read the Prometheus metrics.
	RoleMetrics = "metrics"
)

// Token is an access token as the server knows it: only its SHA-256 hash
// is kept.
type Token struct {
	Hash   string
	Role   string
	Tenant string
	// Node is the one node a node token may act for; empty until the
	// token first registers a node, when it is bound to that node.
	Node    string
	Created int64
}

// TokenIDLen is how many hex digits of a token's hash name it in listings
// and revocations: enough to tell tokens apart, nothing to authenticate.
const TokenIDLen = 16

// ID names the token without revealing it.
func (t Token) ID() string { return t.Hash[:min(TokenIDLen, len(t.Hash))] }

// Errors of BindToken.
var (
	// ErrTokenBound: the token is bound to another node.
	ErrTokenBound = errors.New("the token is bound to another node")
	// ErrNodeClaimed: another token is bound to the node.
	ErrNodeClaimed = errors.New("another token is bound to the node")
)

// Node is a registered node.
type Node struct {
	Info       api.NodeInfo
	State      string // ready, draining, down
	Registered int64
	// Drained records an administrator's drain: the node takes no new
	// work until undrained, through restarts and a spell down.
	Drained bool
}

// The server works with the live lifecycle's jobs (package lifecycle); the
// store converts them to records of its own (package schema).
type (
	Job      = lifecycle.Job
	Replica  = lifecycle.Replica
	Stopping = lifecycle.Stopping
	Run      = lifecycle.Run
	Unit     = lifecycle.Unit
)

// Job and replica states, as package lifecycle names them.
const (
	Pending         = lifecycle.Pending
	Running         = lifecycle.Running
	Preempting      = lifecycle.Preempting
	Cancelling      = lifecycle.Cancelling
	Succeeded       = lifecycle.Succeeded
	Failed          = lifecycle.Failed
	Cancelled       = lifecycle.Cancelled
	ReplicaStarting = lifecycle.ReplicaStarting
	ReplicaRunning  = lifecycle.ReplicaRunning
	ReplicaExited   = lifecycle.ReplicaExited
	ReplicaLost     = lifecycle.ReplicaLost
	ReplicaSkipped  = lifecycle.ReplicaSkipped
)

// States lists every job state, in the order a job passes them.
var States = lifecycle.States

// Terminal reports whether a job state is final.
func Terminal(state string) bool { return lifecycle.Terminal(state) }

// ErrKeyReused is returned when an idempotency key comes back with a
// different request body.
var ErrKeyReused = errors.New("idempotency key was used for a different request")

// Filter selects jobs: "" matches any state, tenant or queue.
type Filter struct {
	State, Tenant, Queue string
}

// Match reports whether a job passes the filter.
func (f Filter) Match(j *Job) bool {
	return (f.State == "" || j.State == f.State) && (f.Tenant == "" || j.Tenant == f.Tenant) && (f.Queue == "" || j.Queue == f.Queue)
}

// NewJob is a job a commit adds, with its idempotency scope.
type NewJob struct {
	Job *Job
	// Key is the tenant's idempotency key ("" for none); BodyHash tells a
	// replay from a different request that reuses the key.
	Key, BodyHash string
}

// Record is an extra record a commit writes with the loop's jobs and
// nodes, in a collection of its own (Kind): a usage record written in the
// same transaction as the job commit it accounts for. A nil Value deletes
// the record. Create makes the record new: the commit is refused, all of
// it, with ErrExists when a record of that kind and key is stored.
type Record struct {
	Kind, Key string
	Value     []byte
	Create    bool
}

// Change is what one commit writes, all of it or nothing.
type Change struct {
	Nodes []*Node
	// Jobs are job records to write (new ones are in New too).
	Jobs []*Job
	New  []NewJob
	// Deleted jobs go with their idempotency keys.
	Deleted []*Job
	Records []Record
	// Seq, when above the store's, is the highest job sequence number
	// handed out.
	Seq uint64
	// Confirm asks a replicated store to prove the writer still leads
	// even when nothing else is written (the answers waiting on the
	// commit are then given by a leader).
	Confirm bool
}

// Empty reports whether the change writes nothing.
func (c *Change) Empty() bool {
	return len(c.Nodes) == 0 && len(c.Jobs) == 0 && len(c.New) == 0 && len(c.Deleted) == 0 && len(c.Records) == 0 && c.Seq == 0
}

// Live reports whether a job is one the loop holds after a restart: not
// over, or over with processes that may still run.
func Live(j *Job) bool { return !Terminal(j.State) || lifecycle.Live(j) }

// CloneJob copies what of a job the live lifecycle changes in place (its
// replicas, units, stop order and events), so that a commit in flight
// holds the record as it was decided while the loop goes on.
func CloneJob(j *Job) *Job {
	c := *j
	c.Replicas = slices.Clone(j.Replicas)
	c.Stale = slices.Clone(j.Stale)
	c.Events = slices.Clone(j.Events)
	c.Stopping = cloneStopping(j.Stopping)
	if j.Units != nil {
		c.Units = make([]Unit, len(j.Units))
		for i, u := range j.Units {
			u.Stopping = cloneStopping(u.Stopping)
			c.Units[i] = u
		}
	}
	return &c
}

func cloneStopping(s *Stopping) *Stopping {
	if s == nil {
		return nil
	}
	c := *s
	return &c
}
