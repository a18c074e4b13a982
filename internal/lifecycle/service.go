package lifecycle

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// An inference service is a job whose units are its replicas: each unit is
// one job for the scheduling core (core ID id[i], as an array job's), a
// gang of the service's members. Units are slots: a service grows by
// opening a slot (a new one, or one whose last replica is over, its
// attempts counting on so that every replica's identity stays unique) and
// shrinks by taking a serving replica out of routing, then stopping it
// once its requests in flight are done or its drain time is up. Scale
// carries out one decision of the autoscaler; Heartbeat records each
// replica's port and readiness, and the cold start it measures (bound to
// ready). The job itself runs until it is cancelled, at zero replicas too.

// ServiceSpec is what the lifecycle keeps of a service's spec.
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
	// StartTimeoutMs is 0 for the driver's default.
	StartTimeoutMs int64  `json:"startTimeoutMs,omitempty"`
	ColdStartMs    int64  `json:"coldStartMs,omitempty"`
	Policy         string `json:"policy"`
	QueueLimit     int    `json:"queueLimit"`
	QueueTimeoutMs int64  `json:"queueTimeoutMs"`
}

// Service is a service's spec and scaling state.
type Service struct {
	Spec ServiceSpec `json:"spec"`
	// Desired is the replica count last asked for.
	Desired int `json:"desired"`
	// Failures counts the replicas that failed in a row (exited, or did
	// not become ready within the start timeout); no new replica opens
	// before RetryMs.
	Failures int   `json:"failures,omitempty"`
	RetryMs  int64 `json:"retryMs,omitempty"`
	// ColdStartsMs are the last measured cold starts, oldest first.
	ColdStartsMs []int64 `json:"coldStartsMs,omitempty"`
	// Ended is set once the service is cancelled.
	Ended bool `json:"ended,omitempty"`
	// Keys are the service's API keys (hashes only).
	Keys []ServiceKey `json:"keys,omitempty"`
}

// ServiceKey is an API key that reaches one service's endpoint.
type ServiceKey struct {
	ID        string `json:"id"`
	Hash      string `json:"hash"`
	CreatedMs int64  `json:"createdMs"`
}

// Service event kinds.
const (
	EventScaled   = "scaled"
	EventReady    = "ready"
	EventDraining = "draining"
	EventKept     = "kept"
	EventReplaced = "replaced"
)

// coldStartsKept bounds Service.ColdStartsMs.
const coldStartsKept = 32

// Crash back-off: a service whose replicas keep failing opens the next
// one after 10 s, doubling to 5 minutes (Kubernetes' CrashLoopBackOff).
const (
	retryBaseMs = 10_000
	retryMaxMs  = 300_000
)

// slotsPerReplica bounds a service's slots: replicas being stopped keep
// theirs while new ones open.
const slotsPerReplica = 3

// ColdStart is one measured cold start, for the driver's metrics and its
// autoscaler.
type ColdStart struct {
	Job   string
	Unit  int
	Ms    int64
	Queue string
}

// members is the size of one replica's gang.
func (j *Job) members() int {
	if len(j.Spec.Gangs) == 0 {
		return 1
	}
	return max(j.Spec.Gangs[0].Replicas, 1)
}

// serviceCoreJobs are a service's core jobs, one per unit (slot).
func (j *Job) serviceCoreJobs() []sched.Job {
	out := make([]sched.Job, len(j.Units))
	for i := range j.Units {
		one := j.Spec
		one.ID = sched.JobID(j.Units[i].Core)
		out[i] = one
	}
	return out
}

// leader is unit u's replica of rank 0 in its current attempt, or nil.
func (j *Job) leader(u int) *Replica {
	at := j.Units[u].Attempt
	for i := range j.Replicas {
		if r := &j.Replicas[i]; r.Unit == u && r.Attempt == at && r.Rank == 0 {
			return r
		}
	}
	return nil
}

// UnitPhase says where a service's unit stands.
type UnitPhase uint8

// Unit phases.
const (
	// PhaseOver: the slot is free (its replica ended, or never was).
	PhaseOver UnitPhase = iota
	// PhaseWaiting: waiting for the core to place it.
	PhaseWaiting
	// PhaseStarting: placed, its readiness path not answering yet.
	PhaseStarting
	// PhaseReady: serving.
	PhaseReady
	// PhaseDraining: out of routing, finishing its requests.
	PhaseDraining
	// PhaseStopping: its processes are being stopped.
	PhaseStopping
)

var phaseNames = [...]string{"over", "waiting", "starting", "ready", "draining", "stopping"}

func (p UnitPhase) String() string { return phaseNames[p] }

// Phase is unit u's phase.
func (j *Job) Phase(u int) UnitPhase {
	un := &j.Units[u]
	switch {
	case Terminal(un.State):
		return PhaseOver
	case un.Stopping != nil || un.State == Preempting || un.State == Cancelling:
		return PhaseStopping
	case un.State == Pending:
		return PhaseWaiting
	case un.DrainMs > 0:
		return PhaseDraining
	}
	if l := j.leader(u); l != nil && l.Ready {
		return PhaseReady
	}
	return PhaseStarting
}

// ServiceCounts sums up a service's replicas by phase.
type ServiceCounts struct {
	Desired, Waiting, Starting, Ready, Draining, Stopping int
	// StartingSinceMs holds, per starting replica, when it was placed.
	StartingSinceMs []int64
}

// Counts sums up a service's units.
func (j *Job) Counts() ServiceCounts {
	var c ServiceCounts
	if j.Service != nil {
		c.Desired = j.Service.Desired
	}
	for u := range j.Units {
		switch j.Phase(u) {
		case PhaseWaiting:
			c.Waiting++
		case PhaseStarting:
			c.Starting++
			if l := j.leader(u); l != nil {
				c.StartingSinceMs = append(c.StartingSinceMs, l.BoundMs)
			}
		case PhaseReady:
			c.Ready++
		case PhaseDraining:
			c.Draining++
		case PhaseStopping:
			c.Stopping++
		}
	}
	return c
}

// Route is a serving replica the gateway may send requests to.
type Route struct {
	Unit, Attempt int
	Node          string
	Port          int
}

// Routes lists a service's ready replicas, by unit.
func (j *Job) Routes() []Route {
	var out []Route
	if j.Service == nil || j.Service.Ended {
		return nil
	}
	for u := range j.Units {
		if j.Phase(u) != PhaseReady {
			continue
		}
		l := j.leader(u)
		if l.Port == 0 {
			continue
		}
		out = append(out, Route{Unit: u, Attempt: l.Attempt, Node: l.Node, Port: l.Port})
	}
	return out
}

// sumService sums up a service: running until cancelled, at zero replicas
// too; cancelling while any replica stops after the cancel; then
// cancelled.
func (j *Job) sumService() {
	c := j.Counts()
	live := 0
	for u := range j.Units {
		un := &j.Units[u]
		if !Terminal(un.State) {
			live++
		}
		if un.StartedMs > 0 && (j.StartedMs == 0 || un.StartedMs < j.StartedMs) {
			j.StartedMs = un.StartedMs
		}
		j.Attempt = max(j.Attempt, un.Attempt)
		j.FinishedMs = max(j.FinishedMs, un.FinishedMs)
	}
	switch {
	case j.Service.Ended && live == 0:
		j.State, j.Reason = Cancelled, "cancelled by request"
		return
	case j.Service.Ended:
		j.State, j.Reason = Cancelling, "cancelled by request; stopping its replicas"
	default:
		j.State = Running
		parts := []string{fmt.Sprintf("%d ready", c.Ready)}
		for _, p := range []struct {
			n    int
			what string
		}{{c.Starting, "starting"}, {c.Waiting, "waiting for a place"}, {c.Draining, "draining"}, {c.Stopping, "stopping"}} {
			if p.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
			}
		}
		j.Reason = fmt.Sprintf("%s of %d desired", strings.Join(parts, ", "), c.Desired)
		if c.Desired == 0 && c.Ready+c.Starting+c.Waiting+c.Draining == 0 {
			j.Reason = "scaled to zero; the next request starts a replica"
			if c.Stopping > 0 {
				j.Reason = fmt.Sprintf("scaled to zero (%d stopping); the next request starts a replica", c.Stopping)
			}
		}
	}
	j.FinishedMs = 0
}

// Scale is one decision of a service's autoscaler, with what the gateway
// knows of its replicas.
type Scale struct {
	// Desired is the replicas, serving and starting, the service should
	// have (clamped to its bounds).
	Desired int
	// StartingFirst removes starting replicas before serving ones (the
	// order of the kpa policy's Deployment); otherwise serving replicas go
	// first and a starting one only when the count is below the starting
	// replicas.
	StartingFirst bool
	// InFlight is each unit's requests in flight, counted by the gateway
	// after the routes of the previous call had taken effect: a replica
	// this call takes out of routing is stopped by a later call, once its
	// count, read then, is 0.
	InFlight map[int]int
	// StartTimeoutMs is the start timeout of a service whose spec gives
	// none.
	StartTimeoutMs int64
	// Reason is why the count is what it is (the policy's mode), for the
	// service's events.
	Reason string
}

// Scale carries out one decision for a service: replicas that did not
// become ready in time are replaced, drained ones whose requests are done
// (or whose drain time is up) are stopped, and the count moves to the
// desired one: up by keeping draining replicas and opening slots (after
// the crash back-off), down by cancelling waiting replicas, then taking
// serving ones out of routing (least loaded first) or stopping starting
// ones, in the order Scale says.
func (m *Machine) Scale(id string, s Scale, nowMs int64) Out {
	j := m.jobs[id]
	if j == nil || j.Service == nil || j.Service.Ended {
		return m.flush()
	}
	svc := j.Service
	want := min(max(s.Desired, svc.Spec.MinReplicas), svc.Spec.MaxReplicas)
	if want != svc.Desired {
		detail := fmt.Sprintf("from %d to %d", svc.Desired, want)
		if s.Reason != "" {
			detail += " (" + s.Reason + ")"
		}
		j.addEvent(nowMs, EventScaled, detail)
		svc.Desired = want
		m.out.dirty(j)
	}
	m.startTimeouts(j, s, nowMs)
	m.finishDrains(j, s, nowMs)
	c := j.Counts()
	live := c.Waiting + c.Starting + c.Ready
	switch {
	case live < want:
		m.grow(j, want-live, nowMs)
	case live > want:
		m.shrink(j, live-want, s, nowMs)
	}
	j.sum()
	return m.flush()
}

// startTimeouts replaces replicas placed longer ago than the start timeout
// that never became ready. Nothing else stops a replica for being slow to
// start.
func (m *Machine) startTimeouts(j *Job, s Scale, nowMs int64) {
	limit := j.Service.Spec.StartTimeoutMs
	if limit <= 0 {
		limit = s.StartTimeoutMs
	}
	if limit <= 0 {
		return
	}
	for u := range j.Units {
		if j.Phase(u) != PhaseStarting {
			continue
		}
		l := j.leader(u)
		if l == nil || l.ReadyMs > 0 || nowMs-l.BoundMs < limit {
			continue
		}
		reason := fmt.Sprintf("replica %d was not ready %s after it was placed (startTimeout)", u, fmtMs(nowMs-l.BoundMs))
		j.addEvent(nowMs, EventReplaced, reason)
		m.failed(j, nowMs)
		m.beginStop(j, u, Stopping{Reason: reason}, nowMs+m.cfg.StopGraceMs, nowMs)
	}
}

// finishDrains stops the draining replicas whose requests are done, or
// whose drain time is up.
func (m *Machine) finishDrains(j *Job, s Scale, nowMs int64) {
	for u := range j.Units {
		if j.Phase(u) != PhaseDraining {
			continue
		}
		un := &j.Units[u]
		if un.DrainMs >= nowMs {
			// Taken out of routing by this call's time: the gateway's
			// count may predate it.
			continue
		}
		done := s.InFlight[u] == 0
		if !done && nowMs < un.DrainMs+j.Service.Spec.DrainTimeoutMs {
			continue
		}
		reason := "scaled down"
		if !done {
			reason = fmt.Sprintf("scaled down; %d requests still in flight when its drain time (%s) ended", s.InFlight[u], fmtMs(j.Service.Spec.DrainTimeoutMs))
		}
		m.beginStop(j, u, Stopping{Reason: reason, Cancelled: true}, nowMs+m.cfg.StopGraceMs, nowMs)
	}
}

// grow adds n replicas: draining ones are kept first (they are warm), then
// slots are opened once the crash back-off allows.
func (m *Machine) grow(j *Job, n int, nowMs int64) {
	var draining []int
	for u := range j.Units {
		if j.Phase(u) == PhaseDraining {
			draining = append(draining, u)
		}
	}
	slices.SortFunc(draining, func(a, b int) int { return int(j.Units[b].DrainMs - j.Units[a].DrainMs) })
	for _, u := range draining {
		if n == 0 {
			return
		}
		j.Units[u].DrainMs = 0
		j.addEvent(nowMs, EventKept, fmt.Sprintf("replica %d back in routing", u))
		m.out.dirty(j)
		n--
	}
	if n == 0 || nowMs < j.Service.RetryMs {
		return
	}
	limit := slotsPerReplica * j.Service.Spec.MaxReplicas
	for ; n > 0; n-- {
		u := m.freeSlot(j)
		if u < 0 {
			if len(j.Units) >= limit {
				return
			}
			u = len(j.Units)
			j.Units = append(j.Units, Unit{Core: ArrayCoreID(j.ID, u)})
			m.units[j.Units[u].Core] = unitRef{j, u}
		}
		un := &j.Units[u]
		un.State, un.Reason, un.Stopping, un.DrainMs, un.FinishedMs = Pending, "", nil, 0, 0
		m.out.Core = append(m.out.Core, sched.JobSubmitted{Job: j.serviceCoreJobs()[u]})
		m.out.dirty(j)
	}
}

// freeSlot is the lowest slot whose replica is over with every process
// gone, or -1.
func (m *Machine) freeSlot(j *Job) int {
	for u := range j.Units {
		if !Terminal(j.Units[u].State) {
			continue
		}
		free := true
		for _, i := range j.replicasOf(u) {
			if !j.Replicas[i].Gone() {
				free = false
			}
		}
		for i := range j.Stale {
			if j.Stale[i].Unit == u && !j.Stale[i].Gone() {
				free = false
			}
		}
		if free {
			return u
		}
	}
	return -1
}

// shrink removes n replicas: waiting ones first (newest first), then
// serving and starting ones. Which of those are kept follows s: with
// StartingFirst the serving ones, and starting ones only for the rest;
// otherwise starting ones (coming capacity) up to the count, but one
// serving replica is kept whenever there is one and the count is not zero,
// so that a scale-down never leaves a service with nothing serving while
// its new replicas load. Serving replicas go least loaded first and are
// drained, starting ones go newest first and are stopped.
func (m *Machine) shrink(j *Job, n int, s Scale, nowMs int64) {
	var waiting, starting, ready []int
	for u := len(j.Units) - 1; u >= 0; u-- {
		switch j.Phase(u) {
		case PhaseWaiting:
			waiting = append(waiting, u)
		case PhaseStarting:
			starting = append(starting, u)
		case PhaseReady:
			ready = append(ready, u)
		}
	}
	for _, u := range waiting {
		if n == 0 {
			return
		}
		un := &j.Units[u]
		m.out.Core = append(m.out.Core, sched.JobCancelled{ID: coreID(un.Core)})
		un.State, un.Reason, un.FinishedMs, un.Stopping = Cancelled, "scaled down before it was placed", nowMs, nil
		m.stopUnit(j, u, nowMs)
		n--
	}
	if n == 0 {
		return
	}
	want := len(starting) + len(ready) - n
	var keepReady int
	if s.StartingFirst {
		keepReady = min(want, len(ready))
	} else if len(ready) > 0 && want > 0 {
		keepReady = min(max(1, want-len(starting)), len(ready))
	}
	keepStarting := min(want-keepReady, len(starting))
	slices.SortStableFunc(starting, func(a, b int) int { return int(j.leaderBound(b) - j.leaderBound(a)) })
	slices.SortStableFunc(ready, func(a, b int) int { return s.InFlight[a] - s.InFlight[b] })
	for _, u := range starting[:len(starting)-keepStarting] {
		m.beginStop(j, u, Stopping{Reason: "scaled down while starting", Cancelled: true}, nowMs+m.cfg.StopGraceMs, nowMs)
	}
	for _, u := range ready[:len(ready)-keepReady] {
		j.Units[u].DrainMs = nowMs
		j.addEvent(nowMs, EventDraining, fmt.Sprintf("replica %d out of routing with %d requests in flight", u, s.InFlight[u]))
		m.out.dirty(j)
	}
}

func (j *Job) leaderBound(u int) int64 {
	if l := j.leader(u); l != nil {
		return l.BoundMs
	}
	return 0
}

// failed counts a failed replica and sets the back-off before the next.
func (m *Machine) failed(j *Job, nowMs int64) {
	j.Service.Failures++
	j.Service.RetryMs = nowMs + backoff(j.Service.Failures)
}

// backoff is the wait before the next replica after k failures in a row.
func backoff(k int) int64 {
	if k <= 0 {
		return 0
	}
	return min(int64(retryBaseMs)<<min(k-1, 10), retryMaxMs)
}

// serviceReport records a running replica's port and readiness; a replica
// that becomes ready for the first time has its cold start measured.
func (m *Machine) serviceReport(j *Job, r *Replica, port int, ready bool, nowMs int64) {
	if port != r.Port {
		r.Port = port
		m.out.dirty(j)
	}
	if ready == r.Ready {
		return
	}
	r.Ready = ready
	m.out.dirty(j)
	j.sum()
	if !ready || r.ReadyMs > 0 || r.Rank != 0 {
		return
	}
	r.ReadyMs = nowMs
	svc := j.Service
	cold := nowMs - r.BoundMs
	svc.ColdStartsMs = append(svc.ColdStartsMs, cold)
	if n := len(svc.ColdStartsMs); n > coldStartsKept {
		svc.ColdStartsMs = slices.Delete(svc.ColdStartsMs, 0, n-coldStartsKept)
	}
	svc.Failures, svc.RetryMs = 0, 0
	m.out.ColdStarts = append(m.out.ColdStarts, ColdStart{Job: j.ID, Unit: r.Unit, Ms: cold, Queue: j.Queue})
	j.addEvent(nowMs, EventReady, fmt.Sprintf("replica %d on %s after a cold start of %s", r.Unit, r.Node, fmtMs(cold)))
	j.sum()
}

// serviceExited replaces a replica whose process ended on its own: a
// server is not meant to exit.
func (m *Machine) serviceExited(j *Job, r *Replica, exit int, signal string, nowMs int64) {
	u := r.Unit
	what := fmt.Sprintf("exited with code %d", exit)
	if signal != "" {
		what = "was killed by " + signal
	}
	reason := fmt.Sprintf("replica %d (rank %d on %s) %s; replaced", u, r.Rank, r.Node, what)
	m.failed(j, nowMs)
	m.beginStop(j, u, Stopping{Reason: reason}, nowMs+m.cfg.StopGraceMs, nowMs)
}

// setServiceEnv fills in the environment of a service's new replicas:
// the members of one replica are a gang of their own (RANK within it,
// MASTER_ADDR its rank 0's node).
func (m *Machine) setServiceEnv(j *Job) {
	world := j.members()
	for i := range j.Replicas {
		r := &j.Replicas[i]
		if r.Env != nil {
			continue
		}
		masterAddr := ""
		local := 0
		for k := range j.Replicas {
			o := &j.Replicas[k]
			if o.Unit != r.Unit || o.Attempt != r.Attempt {
				continue
			}
			if o.Rank == 0 {
				masterAddr, _, _ = m.cfg.Node(o.Node)
			}
			if o.Node == r.Node && o.Rank < r.Rank {
				local++
			}
		}
		env := make(map[string]string, len(j.Run.Env)+14)
		for k, v := range j.Run.Env {
			env[k] = v
		}
		devs := make([]string, len(r.Devices))
		for d, idx := range r.Devices {
			devs[d] = strconv.Itoa(idx)
		}
		env["CUDA_VISIBLE_DEVICES"] = strings.Join(devs, ",")
		if r.Milli > 0 && r.Milli < 1000 {
			env["GPUFLEET_GPU_MILLI"] = strconv.Itoa(int(r.Milli))
		}
		env["RANK"] = strconv.Itoa(r.Rank)
		env["LOCAL_RANK"] = strconv.Itoa(local)
		env["WORLD_SIZE"] = strconv.Itoa(world)
		env["MASTER_ADDR"] = masterAddr
		env["MASTER_PORT"] = strconv.Itoa(20000 + int((j.Seq*97+uint64(r.Unit))%20000))
		env["GPUFLEET_JOB"] = j.ID
		env["GPUFLEET_GANG"] = strconv.Itoa(r.Gang)
		env["GPUFLEET_REPLICA"] = strconv.Itoa(r.Replica)
		env["GPUFLEET_ATTEMPT"] = strconv.Itoa(r.Attempt)
		env["GPUFLEET_SERVICE"] = j.Name
		env["GPUFLEET_SERVICE_REPLICA"] = strconv.Itoa(r.Unit)
		r.Env = env
	}
}

// fmtMs renders milliseconds as a short duration: 850ms, 12.3s, 4m10s.
func fmtMs(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return d.String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
