package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store/schema"
)

// The one place where the store's records (package schema) meet the types
// the server works with. Every record is JSON that starts with its version,
// {"v":N,...}; a record without one is version 0.

// version reads the schema version a record starts with: 0 when it has
// none.
func version(data []byte) (int, error) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"v":`))
	if !ok {
		return 0, nil
	}
	v := 0
	for i, c := range rest {
		if c < '0' || c > '9' {
			if i == 0 {
				break
			}
			if v > schema.Version {
				return v, fmt.Errorf("record of schema version %d: this build reads versions 0..%d; run a newer gpufleet", v, schema.Version)
			}
			return v, nil
		}
		v = v*10 + int(c-'0')
		if v > 1<<20 {
			break
		}
	}
	return 0, fmt.Errorf("record starts %.20q: want {\"v\":N,...}", data)
}

// EncodeJob writes a job record.
func EncodeJob(j *Job) ([]byte, error) { return json.Marshal(jobRecord(j)) }

// DecodeJob reads a job record of any version.
func DecodeJob(data []byte) (Job, error) {
	v, err := version(data)
	if err != nil {
		return Job{}, err
	}
	var rec schema.Job
	if v == 0 {
		var old schema.JobV0
		if err := json.Unmarshal(data, &old); err != nil {
			return Job{}, fmt.Errorf("job record (version 0): %w", err)
		}
		if rec, err = old.Upgrade(); err != nil {
			return Job{}, fmt.Errorf("job %s (version 0): %w", old.ID, err)
		}
	} else if err := json.Unmarshal(data, &rec); err != nil {
		return Job{}, fmt.Errorf("job record: %w", err)
	}
	return jobOf(&rec)
}

func jobRecord(j *Job) schema.Job {
	s := &j.Spec
	gangs := make([]schema.Gang, len(s.Gangs))
	for i, g := range s.Gangs {
		gangs[i] = schema.Gang{Name: g.Name, Replicas: g.Replicas, MinReplicas: g.MinReplicas, AnyType: g.AnyType,
			Shape: schema.Shape{Accel: g.Shape.Accel, Devices: g.Shape.Devices, Milli: g.Shape.Milli, CPUMilli: g.Shape.CPUMilli, MemoryMiB: g.Shape.MemoryMiB}}
	}
	if s.Gangs == nil {
		gangs = nil
	}
	return schema.Job{V: schema.Version, ID: j.ID, Seq: j.Seq, Name: j.Name, Tenant: j.Tenant, Queue: j.Queue,
		Spec: schema.JobSpec{ID: string(s.ID), Tenant: s.Tenant, Queue: s.Queue, Kind: s.Kind.String(), Priority: s.Priority, Tier: s.Tier,
			Preemptible: s.Preemptible, NoticeSec: s.NoticeSec, CheckpointSec: s.CheckpointSec, Gangs: gangs,
			Topology: schema.Topology{Level: s.Topology.Level, Required: s.Topology.Required}, EstimatedSec: s.EstimatedSec, MaxSec: s.MaxSec,
			WaitForCapacity: s.WaitForCapacity, Deadline: s.Deadline, NotBefore: s.NotBefore, Interruptible: s.Interruptible},
		Run: schema.Run{Command: j.Run.Command, Env: j.Run.Env, RestartPolicy: j.Run.RestartPolicy, MaxRestarts: j.Run.MaxRestarts,
			Resize: j.Run.Resize, Replicas: j.Run.Replicas},
		IdempotencyKey: j.IdempotencyKey, State: j.State, Reason: j.Reason, SubmittedMs: j.SubmittedMs, StartedMs: j.StartedMs,
		FinishedMs: j.FinishedMs, Attempt: j.Attempt, Restarts: j.Restarts, MasterPort: j.MasterPort,
		Replicas: replicaRecords(j.Replicas), Stale: replicaRecords(j.Stale), Stopping: stoppingRecord(j.Stopping),
		Units: unitRecords(j.Units), Generation: j.Generation, Events: eventRecords(j.Events), Service: serviceRecord(j.Service)}
}

func jobOf(r *schema.Job) (Job, error) {
	kind, err := sched.ParseKind(r.Spec.Kind)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: spec.%w", r.ID, err)
	}
	s := &r.Spec
	var gangs []sched.Gang
	if s.Gangs != nil {
		gangs = make([]sched.Gang, len(s.Gangs))
	}
	for i, g := range s.Gangs {
		gangs[i] = sched.Gang{Name: g.Name, Replicas: g.Replicas, MinReplicas: g.MinReplicas, AnyType: g.AnyType,
			Shape: place.Request{Accel: g.Shape.Accel, Devices: g.Shape.Devices, Milli: g.Shape.Milli, CPUMilli: g.Shape.CPUMilli, MemoryMiB: g.Shape.MemoryMiB}}
	}
	return Job{ID: r.ID, Seq: r.Seq, Name: r.Name, Tenant: r.Tenant, Queue: r.Queue,
		Spec: sched.Job{ID: sched.JobID(s.ID), Tenant: s.Tenant, Queue: s.Queue, Kind: kind, Priority: s.Priority, Tier: s.Tier,
			Preemptible: s.Preemptible, NoticeSec: s.NoticeSec, CheckpointSec: s.CheckpointSec, Gangs: gangs,
			Topology: sched.Topology{Level: s.Topology.Level, Required: s.Topology.Required}, EstimatedSec: s.EstimatedSec, MaxSec: s.MaxSec,
			WaitForCapacity: s.WaitForCapacity, Deadline: s.Deadline, NotBefore: s.NotBefore, Interruptible: s.Interruptible},
		Run: lifecycle.Run{Command: r.Run.Command, Env: r.Run.Env, RestartPolicy: r.Run.RestartPolicy, MaxRestarts: r.Run.MaxRestarts,
			Resize: r.Run.Resize, Replicas: r.Run.Replicas},
		IdempotencyKey: r.IdempotencyKey, State: r.State, Reason: r.Reason, SubmittedMs: r.SubmittedMs, StartedMs: r.StartedMs,
		FinishedMs: r.FinishedMs, Attempt: r.Attempt, Restarts: r.Restarts, MasterPort: r.MasterPort,
		Replicas: replicasOf(r.Replicas), Stale: replicasOf(r.Stale), Stopping: stoppingOf(r.Stopping),
		Units: unitsOf(r.Units), Generation: r.Generation, Events: eventsOf(r.Events), Service: serviceOf(r.Service)}, nil
}

func serviceRecord(s *lifecycle.Service) *schema.Service {
	if s == nil {
		return nil
	}
	p := &s.Spec
	out := &schema.Service{Desired: s.Desired, Failures: s.Failures, RetryMs: s.RetryMs, ColdStartsMs: s.ColdStartsMs, Ended: s.Ended,
		Spec: schema.ServiceSpec{MinReplicas: p.MinReplicas, MaxReplicas: p.MaxReplicas, TargetInFlight: p.TargetInFlight,
			TargetTokensPerSecond: p.TargetTokensPerSecond, MaxInFlight: p.MaxInFlight, LatencyMs: p.LatencyMs, Quantile: p.Quantile,
			ReadinessPath: p.ReadinessPath, ReadinessPort: p.ReadinessPort, ScaleDownGraceMs: p.ScaleDownGraceMs, DrainTimeoutMs: p.DrainTimeoutMs,
			StartTimeoutMs: p.StartTimeoutMs, ColdStartMs: p.ColdStartMs, Policy: p.Policy, QueueLimit: p.QueueLimit, QueueTimeoutMs: p.QueueTimeoutMs}}
	if s.Keys != nil {
		out.Keys = make([]schema.ServiceKey, len(s.Keys))
		for i, k := range s.Keys {
			out.Keys[i] = schema.ServiceKey{ID: k.ID, Hash: k.Hash, CreatedMs: k.CreatedMs}
		}
	}
	return out
}

func serviceOf(s *schema.Service) *lifecycle.Service {
	if s == nil {
		return nil
	}
	p := &s.Spec
	out := &lifecycle.Service{Desired: s.Desired, Failures: s.Failures, RetryMs: s.RetryMs, ColdStartsMs: s.ColdStartsMs, Ended: s.Ended,
		Spec: lifecycle.ServiceSpec{MinReplicas: p.MinReplicas, MaxReplicas: p.MaxReplicas, TargetInFlight: p.TargetInFlight,
			TargetTokensPerSecond: p.TargetTokensPerSecond, MaxInFlight: p.MaxInFlight, LatencyMs: p.LatencyMs, Quantile: p.Quantile,
			ReadinessPath: p.ReadinessPath, ReadinessPort: p.ReadinessPort, ScaleDownGraceMs: p.ScaleDownGraceMs, DrainTimeoutMs: p.DrainTimeoutMs,
			StartTimeoutMs: p.StartTimeoutMs, ColdStartMs: p.ColdStartMs, Policy: p.Policy, QueueLimit: p.QueueLimit, QueueTimeoutMs: p.QueueTimeoutMs}}
	if s.Keys != nil {
		out.Keys = make([]lifecycle.ServiceKey, len(s.Keys))
		for i, k := range s.Keys {
			out.Keys[i] = lifecycle.ServiceKey{ID: k.ID, Hash: k.Hash, CreatedMs: k.CreatedMs}
		}
	}
	return out
}

func replicaRecords(rs []Replica) []schema.Replica {
	if rs == nil {
		return nil
	}
	out := make([]schema.Replica, len(rs))
	for i, r := range rs {
		out[i] = schema.Replica{Unit: r.Unit, Gang: r.Gang, Replica: r.Replica, Attempt: r.Attempt, Rank: r.Rank, Node: r.Node,
			Accel: r.Accel, Devices: r.Devices, Milli: r.Milli, Env: r.Env, State: r.State, Exit: r.Exit, Signal: r.Signal,
			BoundMs: r.BoundMs, StopMs: r.StopMs, Shrunk: r.Shrunk, Sent: r.Sent, Held: r.Held, Port: r.Port, Ready: r.Ready, ReadyMs: r.ReadyMs}
	}
	return out
}

func replicasOf(rs []schema.Replica) []Replica {
	if rs == nil {
		return nil
	}
	out := make([]Replica, len(rs))
	for i, r := range rs {
		out[i] = Replica{Unit: r.Unit, Gang: r.Gang, Replica: r.Replica, Attempt: r.Attempt, Rank: r.Rank, Node: r.Node,
			Accel: r.Accel, Devices: r.Devices, Milli: r.Milli, Env: r.Env, State: r.State, Exit: r.Exit, Signal: r.Signal,
			BoundMs: r.BoundMs, StopMs: r.StopMs, Shrunk: r.Shrunk, Sent: r.Sent, Held: r.Held, Port: r.Port, Ready: r.Ready, ReadyMs: r.ReadyMs}
	}
	return out
}

func stoppingRecord(s *Stopping) *schema.Stopping {
	if s == nil {
		return nil
	}
	return &schema.Stopping{Reason: s.Reason, Requeue: s.Requeue, Preempted: s.Preempted, Cancelled: s.Cancelled}
}

func stoppingOf(s *schema.Stopping) *Stopping {
	if s == nil {
		return nil
	}
	return &Stopping{Reason: s.Reason, Requeue: s.Requeue, Preempted: s.Preempted, Cancelled: s.Cancelled}
}

func unitRecords(us []Unit) []schema.Unit {
	if us == nil {
		return nil
	}
	out := make([]schema.Unit, len(us))
	for i, u := range us {
		out[i] = schema.Unit{Core: u.Core, State: u.State, Reason: u.Reason, Attempt: u.Attempt, Restarts: u.Restarts,
			Stopping: stoppingRecord(u.Stopping), StartedMs: u.StartedMs, FinishedMs: u.FinishedMs, DrainMs: u.DrainMs}
	}
	return out
}

func unitsOf(us []schema.Unit) []Unit {
	if us == nil {
		return nil
	}
	out := make([]Unit, len(us))
	for i, u := range us {
		out[i] = Unit{Core: u.Core, State: u.State, Reason: u.Reason, Attempt: u.Attempt, Restarts: u.Restarts,
			Stopping: stoppingOf(u.Stopping), StartedMs: u.StartedMs, FinishedMs: u.FinishedMs, DrainMs: u.DrainMs}
	}
	return out
}

func eventRecords(es []lifecycle.Event) []schema.Event {
	if es == nil {
		return nil
	}
	out := make([]schema.Event, len(es))
	for i, e := range es {
		out[i] = schema.Event{AtMs: e.AtMs, Kind: e.Kind, Detail: e.Detail}
	}
	return out
}

func eventsOf(es []schema.Event) []lifecycle.Event {
	if es == nil {
		return nil
	}
	out := make([]lifecycle.Event, len(es))
	for i, e := range es {
		out[i] = lifecycle.Event{AtMs: e.AtMs, Kind: e.Kind, Detail: e.Detail}
	}
	return out
}

// EncodeNode writes a node record.
func EncodeNode(n *Node) ([]byte, error) {
	i := n.Info
	return json.Marshal(schema.Node{V: schema.Version, State: n.State, Registered: n.Registered, Drained: n.Drained,
		Info: schema.NodeInfo{Name: i.Name, Address: i.Address, Path: i.Path, Accel: i.Accel, Count: i.Count, CPUMilli: i.CPUMilli,
			MemoryMiB: i.MemoryMiB, Labels: i.Labels}})
}

// DecodeNode reads a node record of any version (version 0 had version
// 1's layout).
func DecodeNode(data []byte) (Node, error) {
	if _, err := version(data); err != nil {
		return Node{}, err
	}
	var r schema.Node
	if err := json.Unmarshal(data, &r); err != nil {
		return Node{}, fmt.Errorf("node record: %w", err)
	}
	i := r.Info
	return Node{State: r.State, Registered: r.Registered, Drained: r.Drained,
		Info: api.NodeInfo{Name: i.Name, Address: i.Address, Path: i.Path, Accel: i.Accel, Count: i.Count, CPUMilli: i.CPUMilli,
			MemoryMiB: i.MemoryMiB, Labels: i.Labels}}, nil
}

// EncodeToken writes a token record.
func EncodeToken(t *Token) ([]byte, error) {
	return json.Marshal(schema.Token{V: schema.Version, Hash: t.Hash, Role: t.Role, Tenant: t.Tenant, Node: t.Node, Created: t.Created})
}

// DecodeToken reads a token record of any version.
func DecodeToken(data []byte) (Token, error) {
	if _, err := version(data); err != nil {
		return Token{}, err
	}
	var r schema.Token
	if err := json.Unmarshal(data, &r); err != nil {
		return Token{}, fmt.Errorf("token record: %w", err)
	}
	return Token{Hash: r.Hash, Role: r.Role, Tenant: r.Tenant, Node: r.Node, Created: r.Created}, nil
}

// EncodeQueues writes the queue tree's record.
func EncodeQueues(specs []quota.Spec) ([]byte, error) {
	rec := schema.Queues{V: schema.Version, Queues: make([]schema.Queue, len(specs))}
	for i, sp := range specs {
		q := schema.Queue{Name: sp.Name, Parent: sp.Parent, Weight: sp.Weight, Strict: sp.Strict}
		if sp.Quotas != nil {
			q.Quotas = make(map[string]schema.Limits, len(sp.Quotas))
			for f, l := range sp.Quotas {
				q.Quotas[f] = schema.Limits{Nominal: l.Nominal, Borrow: l.Borrow, Lend: l.Lend}
			}
		}
		rec.Queues[i] = q
	}
	return json.Marshal(rec)
}

// DecodeQueues reads the queue tree's record of any version (version 0
// was a bare array of queues).
func DecodeQueues(data []byte) ([]quota.Spec, error) {
	v, err := version(data)
	if err != nil {
		return nil, err
	}
	var rec schema.Queues
	if v == 0 {
		err = json.Unmarshal(data, &rec.Queues)
	} else {
		err = json.Unmarshal(data, &rec)
	}
	if err != nil {
		return nil, fmt.Errorf("queue tree record: %w", err)
	}
	var specs []quota.Spec
	for _, q := range rec.Queues {
		sp := quota.Spec{Name: q.Name, Parent: q.Parent, Weight: q.Weight, Strict: q.Strict}
		if q.Quotas != nil {
			sp.Quotas = make(map[string]quota.Limits, len(q.Quotas))
			for f, l := range q.Quotas {
				sp.Quotas[f] = quota.Limits{Nominal: l.Nominal, Borrow: l.Borrow, Lend: l.Lend}
			}
		}
		specs = append(specs, sp)
	}
	return specs, nil
}

// EncodeIdempotency writes an idempotency record.
func EncodeIdempotency(job string, seq uint64, bodyHash string) ([]byte, error) {
	return json.Marshal(schema.Idempotency{V: schema.Version, Job: job, Seq: seq, BodyHash: bodyHash})
}

// DecodeIdempotency reads an idempotency record of any version.
func DecodeIdempotency(data []byte) (schema.Idempotency, error) {
	var r schema.Idempotency
	if _, err := version(data); err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("idempotency record: %w", err)
	}
	return r, nil
}
