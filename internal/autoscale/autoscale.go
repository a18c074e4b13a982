// Package autoscale decides how many replicas an inference service should
// run. A policy is a pure, deterministic controller: the caller (the live
// server's request gateway once a second, or the serving simulator on its
// virtual clock) hands it an Observation of the service's load and
// replicas, and it returns a Decision with the desired replica count. It
// does no I/O, starts no goroutine, reads no clock and draws no random
// number, so the same observations always give the same decisions.
//
// Policies, by name: gpufleet (the default; replays the last five minutes
// of prompt tokens against the latency objective's error budget, scaled by
// the arrival-rate trend over the measured cold start, and holds capacity
// through lulls shorter than a cold start), kpa (Knative's KPA with its
// defaults, as a baseline), and Static for fixed provisioning.
// docs/SERVICES.md describes them.
package autoscale

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Spec is a service's scaling contract.
type Spec struct {
	// MinReplicas is the floor; 0 lets the service scale to zero after an
	// idle period.
	MinReplicas int `json:"minReplicas"`
	// MaxReplicas is the ceiling, at least 1 and at least MinReplicas.
	MaxReplicas int `json:"maxReplicas"`
	// TargetInFlight is the load per replica in requests being served
	// (concurrency). Required.
	TargetInFlight float64 `json:"targetInFlight"`
	// TargetTokensPerSecond is the load per replica in prompt tokens per
	// second; 0 when the service does not report tokens.
	TargetTokensPerSecond float64 `json:"targetTokensPerSecond,omitempty"`
	// Latency is the time to first token the service promises (queueing
	// and prefill); 0 means DefaultLatency.
	Latency time.Duration `json:"latency,omitempty"`
	// LatencyQuantile is the share of requests (0..1) whose first token
	// must come within Latency; 0 means DefaultLatencyQuantile.
	LatencyQuantile float64 `json:"latencyQuantile,omitempty"`
	// ScaleDownGrace is how long capacity must go unneeded before it is
	// removed, and how long a service must be idle before it scales to
	// zero.
	ScaleDownGrace time.Duration `json:"scaleDownGrace"`
	// ColdStart is the expected time from starting a replica to its
	// serving, used until cold starts have been measured; 0 means none is
	// known (the policy then learns it from the first replica that starts).
	ColdStart time.Duration `json:"coldStart,omitempty"`
}

// DefaultLatency is the latency objective of a spec that names none, and
// DefaultLatencyQuantile the share of requests it covers.
const (
	DefaultLatency         = 2 * time.Second
	DefaultLatencyQuantile = 0.99
)

// MaxReplicasLimit bounds MaxReplicas.
const MaxReplicasLimit = 100_000

// Validate names the first field that is wrong and what it allows.
func (s Spec) Validate() error {
	switch {
	case s.MinReplicas < 0:
		return fmt.Errorf("minReplicas %d: want 0 or more", s.MinReplicas)
	case s.MaxReplicas < 1 || s.MaxReplicas > MaxReplicasLimit:
		return fmt.Errorf("maxReplicas %d: want 1 to %d", s.MaxReplicas, MaxReplicasLimit)
	case s.MinReplicas > s.MaxReplicas:
		return fmt.Errorf("minReplicas %d: want at most maxReplicas (%d)", s.MinReplicas, s.MaxReplicas)
	case !(s.TargetInFlight > 0) || math.IsInf(s.TargetInFlight, 0):
		return fmt.Errorf("targetInFlight %g: want a positive number", s.TargetInFlight)
	case !(s.TargetTokensPerSecond >= 0) || math.IsInf(s.TargetTokensPerSecond, 0):
		return fmt.Errorf("targetTokensPerSecond %g: want 0 (not reported) or a positive number", s.TargetTokensPerSecond)
	case s.Latency < 0:
		return fmt.Errorf("latency %s: want 0 (the default %s) or more", s.Latency, DefaultLatency)
	case !(s.LatencyQuantile >= 0 && s.LatencyQuantile < 1):
		return fmt.Errorf("latencyQuantile %g: want 0 (the default %g) or a share below 1", s.LatencyQuantile, DefaultLatencyQuantile)
	case s.ScaleDownGrace < 0:
		return fmt.Errorf("scaleDownGrace %s: want 0 or more", s.ScaleDownGrace)
	case s.ColdStart < 0:
		return fmt.Errorf("coldStart %s: want 0 (unknown) or more", s.ColdStart)
	}
	return nil
}

func (s Spec) latency() time.Duration {
	if s.Latency == 0 {
		return DefaultLatency
	}
	return s.Latency
}

func (s Spec) quantile() float64 {
	if s.LatencyQuantile == 0 {
		return DefaultLatencyQuantile
	}
	return s.LatencyQuantile
}

func (s Spec) clamp(n int) int { return min(max(n, s.MinReplicas), s.MaxReplicas) }

// Observation is what the caller saw of the service at Now. Counts are over
// the interval since the previous observation (the first covers
// DefaultInterval).
type Observation struct {
	// Now is the time of the observation, from any fixed origin; it must
	// not go back.
	Now time.Duration
	// InFlight is the number of requests on replicas now (in prefill or
	// generating); Queued the number waiting for a replica.
	InFlight, Queued int
	// Concurrency is the time-weighted mean of InFlight + Queued over the
	// interval (what Knative's queue proxy reports); negative means not
	// measured, and InFlight + Queued is used.
	Concurrency float64
	// Arrivals is the number of requests that arrived in the interval and
	// PromptTokens their prompt tokens (0 when the service reports none).
	Arrivals     int
	PromptTokens int64
	// QueuedPromptTokens is the prompt tokens of the requests waiting.
	QueuedPromptTokens int64
	// Ready is the number of replicas serving (not counting those being
	// removed).
	Ready int
	// Starting holds, for each replica still starting, when it started.
	Starting []time.Duration
	// ColdStarts holds the measured cold starts of replicas that became
	// ready in the interval.
	ColdStarts []time.Duration
}

// DefaultInterval is the observation period the first observation's counts
// are taken to cover.
const DefaultInterval = time.Second

func (o Observation) concurrency() float64 {
	if o.Concurrency >= 0 {
		return o.Concurrency
	}
	return float64(o.InFlight + o.Queued)
}

// Mode says which rule set the decision.
type Mode uint8

// The modes.
const (
	// Stable: the load over the policy's long window.
	Stable Mode = iota
	// Panic: a burst over the short window (kpa), or a backlog of
	// waiting requests (gpufleet).
	Panic
	// Hold: capacity kept because replicas are starting or because the
	// lull is shorter than the hold time.
	Hold
	// Idle: no load; scaling to zero once the grace has passed.
	Idle
	// Fixed: a static count.
	Fixed
)

var modeNames = [...]string{"stable", "panic", "hold", "idle", "fixed"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", m)
}

// Victims says which replicas the caller removes first when Desired is
// below the replicas it has.
type Victims uint8

const (
	// ReadyFirst removes serving replicas (the least loaded first) and
	// never a starting one while Desired covers the starting replicas.
	ReadyFirst Victims = iota
	// StartingFirst removes starting replicas first, newest first, then
	// serving ones: Kubernetes' ReplicaSet order (not-ready pods go
	// first), which is what a KPA-driven Deployment does.
	StartingFirst
)

func (v Victims) String() string {
	if v == StartingFirst {
		return "starting-first"
	}
	return "ready-first"
}

// Decision is a policy's answer to one observation.
type Decision struct {
	// Desired is the number of replicas, serving and starting, the
	// service should have; within [MinReplicas, MaxReplicas].
	Desired int
	Mode    Mode
	Victims Victims
}

// Policy is one autoscaling controller for one service. Step is called
// with observations in time order.
type Policy interface {
	Step(Observation) Decision
}

// DefaultPolicy is the policy a service gets unless it names one.
const DefaultPolicy = "gpufleet"

var factories = map[string]func(Spec) Policy{
	"gpufleet": func(s Spec) Policy { return NewGpufleet(s) },
	"kpa":      func(s Spec) Policy { return NewKPA(s) },
}

// New builds the policy registered under name for a service.
func New(name string, spec Spec) (Policy, error) {
	f, ok := factories[name]
	if !ok {
		return nil, fmt.Errorf("autoscaling policy %q: want one of %s", name, strings.Join(Names(), ", "))
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return f(spec), nil
}

// Names lists the registered policies, sorted.
func Names() []string {
	out := make([]string, 0, len(factories))
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Static always wants N replicas: provisioning fixed in advance.
type Static struct{ N int }

// Step returns N.
func (s Static) Step(Observation) Decision { return Decision{Desired: s.N, Mode: Fixed} }
