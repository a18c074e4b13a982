// Package api holds the live control plane's wire types: the REST API's
// requests and responses (described in docs/openapi.yaml, served at
// /v1/openapi.yaml), the node agent protocol, strict decoders for every
// request body, and a Go client that the command line uses.
package api

import (
	_ "embed"
	"time"
)

// OpenAPI is the API's OpenAPI 3 document; docs/openapi.yaml is a copy kept
// equal by a test.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Job is a job as the API shows it.
type Job struct {
	ID          string    `json:"id" yaml:"id"`
	Name        string    `json:"name" yaml:"name"`
	Tenant      string    `json:"tenant" yaml:"tenant"`
	Queue       string    `json:"queue" yaml:"queue"`
	Kind        string    `json:"kind" yaml:"kind"`
	Priority    int32     `json:"priority" yaml:"priority"`
	Preemptible bool      `json:"preemptible,omitempty" yaml:"preemptible,omitempty"`
	State       string    `json:"state" yaml:"state"`
	Reason      string    `json:"reason,omitempty" yaml:"reason,omitempty"`
	Submitted   time.Time `json:"submitted" yaml:"submitted"`
	Started     time.Time `json:"started,omitzero" yaml:"started,omitempty"`
	Finished    time.Time `json:"finished,omitzero" yaml:"finished,omitempty"`
	Attempt     int       `json:"attempt" yaml:"attempt"`
	Restarts    int       `json:"restarts,omitempty" yaml:"restarts,omitempty"`
	Gangs       []Gang    `json:"gangs" yaml:"gangs"`
	Command     []string  `json:"command,omitempty" yaml:"command,omitempty"`
	Replicas    []Replica `json:"replicas,omitempty" yaml:"replicas,omitempty"`
	// Explanation is the scheduling core's view of a job that is still
	// pending or running. A single job's GET fills it for such a job; a
	// job list, for its pending jobs (their reason for waiting).
	Explanation *Explanation `json:"explanation,omitempty" yaml:"explanation,omitempty"`
}

// Gang summarizes one gang of a job.
type Gang struct {
	Name        string   `json:"name,omitempty" yaml:"name,omitempty"`
	Replicas    int      `json:"replicas" yaml:"replicas"`
	MinReplicas int      `json:"minReplicas,omitempty" yaml:"minReplicas,omitempty"`
	Accel       []string `json:"accelerators,omitempty" yaml:"accelerators,omitempty"`
	Devices     int      `json:"count,omitempty" yaml:"count,omitempty"`
	Milli       int32    `json:"milli,omitempty" yaml:"milli,omitempty"`
}

// Replica is one bound replica of a job's current attempt.
type Replica struct {
	Rank    int    `json:"rank" yaml:"rank"`
	Gang    int    `json:"gang" yaml:"gang"`
	Replica int    `json:"replica" yaml:"replica"`
	Attempt int    `json:"attempt" yaml:"attempt"`
	Node    string `json:"node" yaml:"node"`
	// Accel is the accelerator type granted (the node's); empty for a
	// replica that holds none.
	Accel    string `json:"accel,omitempty" yaml:"accel,omitempty"`
	Devices  []int  `json:"devices,omitempty" yaml:"devices,omitempty"`
	Milli    int32  `json:"milli,omitempty" yaml:"milli,omitempty"`
	State    string `json:"state" yaml:"state"`
	ExitCode *int   `json:"exitCode,omitempty" yaml:"exitCode,omitempty"`
	Signal   string `json:"signal,omitempty" yaml:"signal,omitempty"`
	// Bound is when the scheduling core bound the replica: its usage is
	// metered from then.
	Bound time.Time `json:"bound,omitzero" yaml:"bound,omitempty"`
}

// Explanation is what the scheduling core says of a job.
type Explanation struct {
	State string `json:"state" yaml:"state"`
	// Reason is why the job waits, in plain words; times in it are RFC
	// 3339 (UTC). Code is its kind (no-capacity, over-quota, ...).
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
	Code   string `json:"code,omitempty" yaml:"code,omitempty"`
	// EarliestStart is the predicted start of a pending job, when known.
	EarliestStart *time.Time `json:"earliestStart,omitempty" yaml:"earliestStart,omitempty"`
	Nodes         []string   `json:"nodes,omitempty" yaml:"nodes,omitempty"`
}

// JobList is the answer to GET /v1/jobs: one page of jobs in submission
// order. Next, when set, is the cursor to pass as "after" for the next
// page; it is empty on the last page.
type JobList struct {
	Jobs []Job  `json:"jobs" yaml:"jobs"`
	Next string `json:"next,omitempty" yaml:"next,omitempty"`
}

// Page sizes of GET /v1/jobs.
const (
	DefaultJobPage = 1000
	MaxJobPage     = 10000
)

// Node is a registered node.
type Node struct {
	Name    string            `json:"name" yaml:"name"`
	Address string            `json:"address" yaml:"address"`
	State   string            `json:"state" yaml:"state"`
	Path    map[string]string `json:"path,omitempty" yaml:"path,omitempty"`
	Accel   string            `json:"accel,omitempty" yaml:"accel,omitempty"`
	Count   int               `json:"count" yaml:"count"`
	// AllocatedMilli is what running replicas hold, in milli-accelerators:
	// every tenant's, so only admin tokens see it.
	AllocatedMilli *int64            `json:"allocatedMilli,omitempty" yaml:"allocatedMilli,omitempty"`
	CPUMilli       int64             `json:"cpuMilli" yaml:"cpuMilli"`
	MemoryMiB      int64             `json:"memoryMiB" yaml:"memoryMiB"`
	Labels         map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	LastHeartbeat  time.Time         `json:"lastHeartbeat,omitzero" yaml:"lastHeartbeat,omitempty"`
	// Drained is set while an administrator keeps new work off the node
	// (its state is draining, or down if it also stopped reporting).
	Drained bool `json:"drained,omitempty" yaml:"drained,omitempty"`
}

// NodeList is the answer to GET /v1/nodes.
type NodeList struct {
	Nodes []Node `json:"nodes" yaml:"nodes"`
}

// Quota is one flavor's limits in accelerators (fractions allowed); nil
// borrowing and lending limits are unlimited.
type Quota struct {
	Nominal        float64  `json:"nominal" yaml:"nominal"`
	BorrowingLimit *float64 `json:"borrowingLimit,omitempty" yaml:"borrowingLimit,omitempty"`
	LendingLimit   *float64 `json:"lendingLimit,omitempty" yaml:"lendingLimit,omitempty"`
}

// Queue is a queue of the tree: a tenant's team queue, or a tenant itself
// (Parent empty).
type Queue struct {
	Name   string           `json:"name" yaml:"name"`
	Tenant string           `json:"tenant" yaml:"tenant"`
	Parent string           `json:"parent,omitempty" yaml:"parent,omitempty"`
	Weight float64          `json:"weight,omitempty" yaml:"weight,omitempty"`
	Strict bool             `json:"strict,omitempty" yaml:"strict,omitempty"`
	Quotas map[string]Quota `json:"quotas,omitempty" yaml:"quotas,omitempty"`
	// Usage is what the queue's running jobs hold, in accelerators per
	// flavor.
	Usage map[string]float64 `json:"usage,omitempty" yaml:"usage,omitempty"`
	// Borrowed is what the queue's jobs hold above its nominal quota, per
	// flavor (the scheduling core's figure). Lent is the part of its
	// nominal quota other queues use, per flavor: what the queues borrow
	// below their common parent, shared among the lenders in proportion
	// to the idle quota each may lend.
	Borrowed map[string]float64 `json:"borrowed,omitempty" yaml:"borrowed,omitempty"`
	Lent     map[string]float64 `json:"lent,omitempty" yaml:"lent,omitempty"`
	// Share is the queue's dominant share of the fleet's pool: the
	// largest, over flavors, of its usage over the pool of that flavor.
	// Entitlement is the same of its nominal quota: a share above it is
	// borrowed capacity.
	Share       float64 `json:"share" yaml:"share"`
	Entitlement float64 `json:"entitlement" yaml:"entitlement"`
	Pending     int     `json:"pending" yaml:"pending"`
	Running     int     `json:"running" yaml:"running"`
}

// QueueList is the answer to GET /v1/queues.
type QueueList struct {
	Queues []Queue `json:"queues" yaml:"queues"`
}

// Tenant is a top-level queue with its team queues.
type Tenant struct {
	Name   string             `json:"name" yaml:"name"`
	Weight float64            `json:"weight,omitempty" yaml:"weight,omitempty"`
	Quotas map[string]Quota   `json:"quotas,omitempty" yaml:"quotas,omitempty"`
	Usage  map[string]float64 `json:"usage,omitempty" yaml:"usage,omitempty"`
	Queues []string           `json:"queues" yaml:"queues"`
}

// TenantList is the answer to GET /v1/tenants.
type TenantList struct {
	Tenants []Tenant `json:"tenants" yaml:"tenants"`
}

// CreateTenant is the body of POST /v1/tenants.
type CreateTenant struct {
	Name   string           `json:"name"`
	Weight float64          `json:"weight,omitempty"`
	Quotas map[string]Quota `json:"quotas,omitempty"`
}

// CreateQueue is the body of POST /v1/queues.
type CreateQueue struct {
	Name   string           `json:"name"`
	Tenant string           `json:"tenant"`
	Weight float64          `json:"weight,omitempty"`
	Strict bool             `json:"strict,omitempty"`
	Quotas map[string]Quota `json:"quotas,omitempty"`
}

// UpdateTenant is the body of PATCH /v1/tenants/{name}: the fields given
// change, the others stay. A flavor in Quotas replaces that flavor's
// limits; a flavor set to null loses its quota.
type UpdateTenant struct {
	Weight *float64          `json:"weight,omitempty"`
	Quotas map[string]*Quota `json:"quotas,omitempty"`
}

// UpdateQueue is the body of PATCH /v1/queues/{name}, as UpdateTenant with
// the queue's strict FIFO setting.
type UpdateQueue struct {
	Weight *float64          `json:"weight,omitempty"`
	Strict *bool             `json:"strict,omitempty"`
	Quotas map[string]*Quota `json:"quotas,omitempty"`
}

// DrainNode is the body of POST /v1/nodes/{name}/drain (optional).
type DrainNode struct {
	// Evict stops the node's running work now (SIGTERM, then SIGKILL after
	// the stop grace) and requeues it; without it running work finishes
	// and the node only takes nothing new.
	Evict bool `json:"evict,omitempty"`
}

// Token roles.
const (
	RoleAdmin  = "admin"
	RoleTenant = "tenant"
	RoleNode   = "node"
	// RoleMetrics may only read the Prometheus metrics (a scraper's token).
	RoleMetrics = "metrics"
)

// CreateToken is the body of POST /v1/tokens.
type CreateToken struct {
	Role   string `json:"role"`
	Tenant string `json:"tenant,omitempty"`
	// Node binds a node token to one node. A node token created without
	// one is bound to the first node it registers.
	Node string `json:"node,omitempty"`
}

// Token is a new token; the secret is shown this once.
type Token struct {
	Token  string `json:"token" yaml:"token"`
	ID     string `json:"id" yaml:"id"`
	Role   string `json:"role" yaml:"role"`
	Tenant string `json:"tenant,omitempty" yaml:"tenant,omitempty"`
	Node   string `json:"node,omitempty" yaml:"node,omitempty"`
}

// TokenInfo is a token as GET /v1/tokens lists it: everything but the
// secret, which the server does not keep.
type TokenInfo struct {
	ID      string    `json:"id" yaml:"id"`
	Role    string    `json:"role" yaml:"role"`
	Tenant  string    `json:"tenant,omitempty" yaml:"tenant,omitempty"`
	Node    string    `json:"node,omitempty" yaml:"node,omitempty"`
	Created time.Time `json:"created" yaml:"created"`
}

// TokenList is the answer to GET /v1/tokens.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens" yaml:"tokens"`
}

// Job document syntaxes.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// JobMediaTypes are the Content-Types POST /v1/jobs takes, with the syntax
// each announces.
var JobMediaTypes = map[string]string{
	"application/yaml": FormatYAML, "application/x-yaml": FormatYAML, "text/yaml": FormatYAML, "text/x-yaml": FormatYAML,
	"application/json": FormatJSON,
}
