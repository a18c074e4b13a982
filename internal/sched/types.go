package sched

import (
	"fmt"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// JobID names a job uniquely within a core.
type JobID string

// Kind is what sort of AI work a job is.
type Kind uint8

const (
	Training Kind = iota
	FineTuning
	Batch
	Service
)

var kindNames = [...]string{"training", "fine-tuning", "batch", "service"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// ParseKind reads a kind name.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("kind %q: want one of %s", s, strings.Join(kindNames[:], ", "))
}

// KindNames lists the kinds.
func KindNames() []string { return append([]string(nil), kindNames[:]...) }

// Gang is a set of identical replicas that start together. Elastic gangs
// (MinReplicas < Replicas) start with MinReplicas and grow into free capacity.
type Gang struct {
	Name        string        `json:"name"`
	Replicas    int           `json:"replicas"`
	MinReplicas int           `json:"minReplicas,omitempty"`
	Shape       place.Request `json:"shape"`
	// AnyType makes Shape.Accel a set rather than an order of preference:
	// the placement chain ranks nodes of all listed types together (as for
	// a gang that lists none). It applies to one-replica gangs.
	AnyType bool `json:"anyType,omitempty"`
}

// Min is the number of replicas the gang needs to start.
func (g *Gang) Min() int {
	if g.MinReplicas > 0 && g.MinReplicas < g.Replicas {
		return g.MinReplicas
	}
	return g.Replicas
}

// Topology constrains where a job's replicas may go. Level names a topology
// level ("rack", "block", ...); Required keeps every replica of the job in
// one domain of that level, otherwise the level is a preference: the core
// uses the fewest domains it can and climbs levels only when it must.
type Topology struct {
	Level    string `json:"level,omitempty"`
	Required bool   `json:"required,omitempty"`
}

// Capacity tiers with a meaning to the core. Other tier names only name
// quota flavors.
const (
	// TierCommitted is capacity reserved under a contract.
	TierCommitted = "committed"
	// TierOnDemand is capacity paid for as it is used; "" counts as it.
	TierOnDemand = "on-demand"
	// TierSpot is cheap capacity that work of any other tier takes back,
	// with a notice.
	TierSpot = "spot"
)

// tierName names a tier in messages: "" is on-demand.
func tierName(t string) string {
	if t == "" {
		return TierOnDemand
	}
	return t
}

// Job is the unit of admission: all gangs start together or not at all.
type Job struct {
	ID       JobID  `json:"id"`
	Tenant   string `json:"tenant"`
	Queue    string `json:"queue"`
	Kind     Kind   `json:"kind"`
	Priority int32  `json:"priority"`
	// Tier is the capacity tier the job draws quota from ("" is the default
	// tier); together with the accelerator type it names a quota flavor.
	// TierSpot work is always preemptible, by work of any other tier in any
	// queue (see Config.SpotNoticeSec).
	Tier        string `json:"tier,omitempty"`
	Preemptible bool   `json:"preemptible,omitempty"`
	// NoticeSec is how long a preempted job keeps its resources before they
	// count as free.
	NoticeSec int64 `json:"noticeSec,omitempty"`
	// CheckpointSec is how often the job checkpoints; work since the last
	// checkpoint is lost on preemption.
	CheckpointSec int64    `json:"checkpointSec,omitempty"`
	Gangs         []Gang   `json:"gangs"`
	Topology      Topology `json:"topology,omitempty"`
	// EstimatedSec and MaxSec are runtime estimates; 0 means unknown.
	EstimatedSec int64 `json:"estimatedSec,omitempty"`
	MaxSec       int64 `json:"maxSec,omitempty"`
	// WaitForCapacity keeps a job the fleet as it is could never hold
	// (unschedulable) until nodes are added that let it fit, instead of
	// rejecting it on submission.
	WaitForCapacity bool `json:"waitForCapacity,omitempty"`
	// Deadline, when set, is the time (on the core's clock) by which the
	// job must finish: it makes the job deferrable, and the carbon
	// admission rule may delay it to the cleanest window before then (see
	// carbon.go). NotBefore, when set, is the earliest time it may start:
	// with Deadline it gives a window. Both 0: run as soon as possible.
	Deadline  int64 `json:"deadline,omitempty"`
	NotBefore int64 `json:"notBefore,omitempty"`
	// Interruptible says the job can be suspended at a checkpoint and
	// resumed with its work kept: the carbon rule may run it in several
	// clean windows, and a power cap cut suspends rather than stops it.
	Interruptible bool `json:"interruptible,omitempty"`
}

// Validate checks a job's own fields (not its queue or the fleet).
func (j *Job) Validate() error {
	if j.ID == "" {
		return fmt.Errorf("id: must not be empty")
	}
	if j.Queue == "" {
		return fmt.Errorf("queue: must not be empty")
	}
	if len(j.Gangs) == 0 {
		return fmt.Errorf("gangs: a job needs at least one gang")
	}
	for i := range j.Gangs {
		g := &j.Gangs[i]
		if g.Replicas < 1 {
			return fmt.Errorf("gangs[%d].replicas: %d, want at least 1", i, g.Replicas)
		}
		if g.MinReplicas < 0 || g.MinReplicas > g.Replicas {
			return fmt.Errorf("gangs[%d].minReplicas: %d, want 0..%d", i, g.MinReplicas, g.Replicas)
		}
		if err := g.Shape.Validate(); err != nil {
			return fmt.Errorf("gangs[%d].shape: %w", i, err)
		}
	}
	if j.NoticeSec < 0 || j.CheckpointSec < 0 || j.EstimatedSec < 0 || j.MaxSec < 0 {
		return fmt.Errorf("noticeSec, checkpointSec, estimatedSec and maxSec must not be negative")
	}
	if j.Deadline < 0 {
		return fmt.Errorf("deadline: %d, want a time (0 for none)", j.Deadline)
	}
	if j.NotBefore < 0 {
		return fmt.Errorf("notBefore: %d, want a time (0 for none)", j.NotBefore)
	}
	if j.Deadline > 0 && j.NotBefore >= j.Deadline {
		return fmt.Errorf("notBefore: %d, want before the deadline %d", j.NotBefore, j.Deadline)
	}
	return nil
}

// Replicas counts the job's replicas over all gangs.
func (j *Job) Replicas() int {
	n := 0
	for i := range j.Gangs {
		n += j.Gangs[i].Replicas
	}
	return n
}

// Event is a fact the core records. Events decide nothing by themselves;
// Schedule decides.
type Event interface{ isEvent() }

// JobSubmitted adds a pending job.
type JobSubmitted struct{ Job Job }

// JobCancelled removes a job, pending or running.
type JobCancelled struct{ ID JobID }

// JobFinished reports a running job's successful end.
type JobFinished struct{ ID JobID }

// JobFailed reports a running job's failure; Requeue asks to run it again.
type JobFailed struct {
	ID      JobID
	Reason  string
	Requeue bool
}

// NodeAdded adds a node to the fleet.
type NodeAdded struct{ Node fleet.Node }

// NodeFailed marks a node down and requeues every job on it.
type NodeFailed struct {
	Node   string
	Reason string
}

// NodeDrained stops new work on a node and requeues the jobs on it.
type NodeDrained struct{ Node string }

// NodeCordoned stops new work on a node and lets the jobs on it run to
// their end (a drain that evicts nothing).
type NodeCordoned struct{ Node string }

// NodeReturned makes a failed, drained or cordoned node schedulable again.
type NodeReturned struct{ Node string }

// QuotaChanged replaces one queue's quota for one flavor.
type QuotaChanged struct {
	Queue  string
	Flavor string
	Quota  quota.Limits
}

// QueuesChanged replaces the whole queue tree (tenants and queues created or
// removed by an administrator). Usage is recomputed from running jobs.
type QueuesChanged struct{ Specs []quota.Spec }

// JobRestored re-establishes a running job with its exact bindings, as a
// driver does after a restart from its durable store. The core checks that
// the bindings fit the free capacity; it never allocates a device twice.
type JobRestored struct {
	Job   Job
	Binds []Bind
	// Start is when the job started running (for backfill estimates).
	Start int64
	// Attempt is the attempt the bindings belong to (1 when 0).
	Attempt int
}

// DevicesHeld keeps devices of a node apart from placement: they are held
// by something the core did not place, or no longer holds (the process of
// a replica the driver stopped that has not been seen to end: a preempted
// job past its deadline, a replica on a node that went down and came back
// with it still running). Nothing is placed on them until DevicesFreed
// with the same key. The devices must be free; they count against no queue.
type DevicesHeld struct {
	Key       string
	Node      string
	Devices   []int
	Milli     int32
	CPUMilli  int64
	MemoryMiB int64
}

// DevicesFreed gives back devices held apart by DevicesHeld.
type DevicesFreed struct{ Key string }

// TimeAdvanced moves the core's clock; Schedule also takes the time.
type TimeAdvanced struct{ Now int64 }

// SitePowerCapped sets the power cap of a site (a topology domain, named
// by its path: "us-east" or "us-east/z1") to KW kilowatts, as a utility
// asks a data center to cut its draw; 0 lifts the cap. Whether the cap is
// one of facility or IT power comes from the site's Config entry
// (facility when it has none). When the site draws more than its new cap,
// running work there is stopped in priority order, with notice, until it
// is within it (see power.go). PUE is the PUE of a site neither Config nor
// an earlier event named (0: 1); a site the core knows keeps its own.
type SitePowerCapped struct {
	Site string
	KW   float64
	PUE  float64
}

func (JobSubmitted) isEvent()    {}
func (JobCancelled) isEvent()    {}
func (JobFinished) isEvent()     {}
func (JobFailed) isEvent()       {}
func (NodeAdded) isEvent()       {}
func (NodeFailed) isEvent()      {}
func (NodeDrained) isEvent()     {}
func (NodeReturned) isEvent()    {}
func (NodeCordoned) isEvent()    {}
func (DevicesHeld) isEvent()     {}
func (DevicesFreed) isEvent()    {}
func (QuotaChanged) isEvent()    {}
func (TimeAdvanced) isEvent()    {}
func (QueuesChanged) isEvent()   {}
func (JobRestored) isEvent()     {}
func (SitePowerCapped) isEvent() {}

// Action is a decision the core hands back to its driver.
type Action interface{ isAction() }

// Bind places one replica.
type Bind struct {
	Job     JobID
	Gang    int
	Replica int
	Node    string
	Devices []int // device indices on the node
	Milli   int32 // milli on each device: 1000 for whole devices
	// Attempt numbers the job's starts (1 for its first); a replica's
	// identity is (Job, Attempt, Gang, Replica), never reused.
	Attempt int
	// Since is when the replica was bound (the cycle's time). A driver
	// restoring a job passes it back, so that usage keeps its start.
	Since int64
}

// Preempt asks a running job (or, with Replicas set, some replicas of an
// elastic job) to stop by Deadline; its resources count as free then.
type Preempt struct {
	Job      JobID
	Deadline int64
	Reason   string
	// Replicas lists (gang, replica) pairs when an elastic job shrinks
	// instead of stopping; empty means the whole job.
	Replicas [][2]int
	// Suspend says the job is suspended at a checkpoint: it checkpoints
	// in its notice period and keeps all the work it has done (an
	// interruptible job). Otherwise work since its last checkpoint is lost.
	Suspend bool
}

// Reject refuses a job for good.
type Reject struct {
	Job    JobID
	Reason string
}

// Requeue puts a job that was running back to pending.
type Requeue struct {
	Job    JobID
	Reason string
}

func (Bind) isAction()    {}
func (Preempt) isAction() {}
func (Reject) isAction()  {}
func (Requeue) isAction() {}

func (a Bind) String() string {
	return fmt.Sprintf("bind %s gang=%d replica=%d node=%s devices=%v milli=%d", a.Job, a.Gang, a.Replica, a.Node, a.Devices, a.Milli)
}

func (a Preempt) String() string {
	if a.Suspend {
		return fmt.Sprintf("suspend %s deadline=%d reason=%q", a.Job, a.Deadline, a.Reason)
	}
	if len(a.Replicas) > 0 {
		return fmt.Sprintf("shrink %s replicas=%v deadline=%d reason=%q", a.Job, a.Replicas, a.Deadline, a.Reason)
	}
	return fmt.Sprintf("preempt %s deadline=%d reason=%q", a.Job, a.Deadline, a.Reason)
}

func (a Reject) String() string  { return fmt.Sprintf("reject %s reason=%q", a.Job, a.Reason) }
func (a Requeue) String() string { return fmt.Sprintf("requeue %s reason=%q", a.Job, a.Reason) }

// Ready is everything one call to Apply or Schedule decided, in the style
// of etcd raft's Ready: the actions, in the order they were decided, and
// the usage records of every holding that ended.
type Ready struct {
	Actions []Action
	Usage   []Usage
}

// Empty reports whether nothing was decided.
func (r Ready) Empty() bool { return len(r.Actions) == 0 && len(r.Usage) == 0 }

// EndReason says why a replica stopped holding what it held.
type EndReason uint8

const (
	// EndOpen marks a holding that has not ended (Core.Holdings).
	EndOpen EndReason = iota
	EndFinished
	EndFailed
	EndCancelled
	EndPreempted
	// EndShrunk: an elastic job gave the replica back.
	EndShrunk
	// EndRequeued: the node under it failed or was drained.
	EndRequeued
	// EndSuspended: the job was suspended at a checkpoint to resume in a
	// cleaner window, its capacity held for it.
	EndSuspended
)

var endNames = [...]string{"open", "finished", "failed", "cancelled", "preempted", "shrunk", "requeued", "suspended"}

func (e EndReason) String() string {
	if int(e) < len(endNames) {
		return endNames[e]
	}
	return fmt.Sprintf("EndReason(%d)", e)
}

// Usage is one replica's holding over one interval: what a job held, where,
// from when to when, and why it ended. The core emits one when a holding
// ends; summed over a run, the records are every accelerator-second the
// fleet gave to jobs. (Job, Attempt, Gang, Replica) names the holding; it
// never repeats, so a consumer that meters open holdings (Core.Holdings)
// and later the closed record counts each second once.
type Usage struct {
	Job     JobID
	Attempt int
	Tenant  string
	Queue   string
	Kind    Kind
	Gang    int
	Replica int
	// Type is the accelerator type held ("" for a CPU-only replica); with
	// Tier it names the quota flavor.
	Type      string
	Tier      string
	Node      string
	Site      string // the node's domain at Config.SiteLevel, as a path
	Devices   []int
	Milli     int32 // milli of each device held: 1000 for whole devices
	CPUMilli  int64
	MemoryMiB int64
	From, To  int64
	End       EndReason
	// Intensity is the grid carbon intensity (gCO2/kWh) the core's
	// decision to run the holding then and there used: the forecast mean
	// over the planned run of a shifted job, the forecast at its start
	// otherwise; 0 when the core has no forecast. A meter multiplies
	// energy by the intensity actually measured, not by this.
	Intensity float64
}

// AccelMilliSeconds is the accelerator time the record covers, in
// milli-accelerator-seconds.
func (u *Usage) AccelMilliSeconds() int64 {
	return (u.To - u.From) * int64(len(u.Devices)) * int64(u.Milli)
}

func (u Usage) String() string {
	s := fmt.Sprintf("usage %s attempt=%d gang=%d replica=%d %s node=%s devices=%v milli=%d from=%d to=%d end=%s",
		u.Job, u.Attempt, u.Gang, u.Replica, flavorName(u.Type, u.Tier), u.Node, u.Devices, u.Milli, u.From, u.To, u.End)
	if u.Intensity != 0 {
		s += fmt.Sprintf(" intensity=%.1f", u.Intensity)
	}
	return s
}

func flavorName(ty, tier string) string {
	if ty == "" {
		ty = "cpu"
	}
	if tier == "" {
		return ty
	}
	return ty + ":" + tier
}
