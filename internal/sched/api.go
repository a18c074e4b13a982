// Package sched is gpufleet's scheduling core: a pure, deterministic state
// machine. Events go in (Apply), one scheduling cycle runs on request
// (Schedule(now)) and returns actions: binds, preemptions, rejections,
// requeues. The core does no I/O, starts no goroutine, reads no clock and
// draws random numbers only from the seed in its Config, so the same events
// and times always give byte-identical actions. The live server and the
// simulator both drive it and hold no scheduling logic of their own.
package sched

import "github.com/gpufleet/gpufleet/internal/place"

// Config selects the core's policies.
type Config struct {
	// Placement is the chain of placement stages by name, filters first and
	// then scorers (see Stages). Empty means DefaultPlacement.
	Placement []string `json:"placement,omitempty"`
	// Candidates bounds how many feasible nodes the scorers rank for one
	// replica: 0 picks a default that keeps a placement's cost independent of
	// fleet size; -1 ranks every feasible node (what the fragmentation
	// experiments of the literature do).
	Candidates int `json:"candidates,omitempty"`
	// NoBackfill turns off reservations for blocked gangs.
	NoBackfill bool `json:"noBackfill,omitempty"`
	// NoPreemption turns off preemption (reclaim and priority).
	NoPreemption bool `json:"noPreemption,omitempty"`
	// MaxBindsPerCycle bounds the jobs admitted in one Schedule call; 0 is
	// unlimited.
	MaxBindsPerCycle int `json:"maxBindsPerCycle,omitempty"`
	// RequeueBackoffSec is the first back-off of a preempted job before it
	// may start again; it doubles with each preemption up to an hour (or
	// up to the base if that is longer). 0 means 60 s; negative turns the
	// back-off off.
	RequeueBackoffSec int64 `json:"requeueBackoffSec,omitempty"`
	// PreemptAfterSec is how long a job waits for room (since it last
	// became pending) before it may preempt anything, to reclaim quota or
	// by priority: jobs end all the time, and room that turns up on its own
	// costs no one their work. 0 means 60 s; negative preempts at once.
	PreemptAfterSec int64 `json:"preemptAfterSec,omitempty"`
	// SpotNoticeSec is the notice spot-tier work gets when work of another
	// tier takes its capacity back; 0 means the job's own NoticeSec.
	SpotNoticeSec int64 `json:"spotNoticeSec,omitempty"`
	// SiteLevel is the topology level whose domains are the sites (data
	// centers) named in usage records; empty means "zone" when the fleet
	// has that level, else its first level.
	SiteLevel string `json:"siteLevel,omitempty"`
	// NoScoreboards turns off the scoreboards of chains that rank every
	// feasible node with one local scorer (see scoreboard.go): for tests
	// that compare them with the plain scan.
	NoScoreboards bool `json:"-"`
	// Seed drives every random choice the policies make.
	Seed uint64 `json:"seed,omitempty"`
	// Workload is the target workload that fragmentation-aware scorers plan
	// for. Nil means the workload the core has seen submitted so far.
	Workload *place.Workload `json:"-"`
	// Sites give topology domains a power cap and a PUE: the core never
	// admits work that would take a site over its cap (see power.go).
	Sites []Site `json:"sites,omitempty"`
	// Forecast is the grid carbon intensity the carbon rules plan on, per
	// site (the domains at SiteLevel); nil means none. The driver passes
	// it: the series itself, the series with noise, or a forecast file.
	Forecast Forecast `json:"-"`
	// Admission names optional admission rules, applied to every job they
	// concern: "carbon" delays deferrable jobs (Job.Deadline) to the
	// cleanest window the forecast shows and picks their site (see
	// carbon.go). Empty means none.
	Admission []string `json:"admission,omitempty"`
}

// Site is a topology domain's power attributes.
type Site struct {
	// Domain is the domain's path ("us-east" or "us-east/z1").
	Domain string `json:"domain"`
	// PowerCapKW is the most the domain may draw, in kW; 0 means no cap.
	PowerCapKW float64 `json:"powerCapKW,omitempty"`
	// ITCap makes the cap one of IT power (the accelerators' draw); by
	// default it caps facility power, IT power x PUE, as a utility does.
	ITCap bool `json:"itCap,omitempty"`
	// PUE is the power usage effectiveness (facility / IT power); 0 means
	// 1.
	PUE float64 `json:"pue,omitempty"`
}

// Forecast is the grid carbon intensity the core plans on. Steps are
// StepSec seconds long and start at multiples of StepSec on the core's
// clock (Unix time live).
type Forecast interface {
	StepSec() int64
	// Intensity returns site's forecast intensity in gCO2/kWh, one value
	// per step from the step that holds from to the one that holds to-1;
	// fewer when the forecast ends sooner, none for a site it does not
	// know. The core does not keep the slice.
	Intensity(site string, from, to int64) []float64
}

// AdmissionRules lists the optional admission rules by name.
func AdmissionRules() []string { return []string{"carbon"} }

// Explanation is what the core can say about one job.
type Explanation struct {
	Job   JobID  `json:"job"`
	State string `json:"state"`
	// Status is why the job waits, typed, with the figures of its reason;
	// Reason is it in plain words (times in virtual form, see Status.Text),
	// empty while running.
	Status Status `json:"-"`
	Reason string `json:"reason,omitempty"`
	// EarliestStart is the start the backfill reservation predicts from
	// running jobs' estimated runtimes; -1 when unknown.
	EarliestStart int64 `json:"earliestStart"`
	// Nodes are the nodes a running job occupies, in bind order.
	Nodes []string `json:"nodes,omitempty"`
}

// Job states as Explanation reports them.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StatePreempting = "preempting"
	// StateUnschedulable: pending, but the fleet as it is could never
	// hold the job; it waits for the fleet to grow.
	StateUnschedulable = "unschedulable"
)
