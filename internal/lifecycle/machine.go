package lifecycle

import (
	"fmt"
	"maps"
	"slices"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// Config tunes the machine.
type Config struct {
	// StopGraceMs is how long a replica stopped for a cancel, a failure, a
	// gang restart or a node drain has between SIGTERM and SIGKILL.
	StopGraceMs int64
	// Node tells what the machine needs of a node: the address its
	// replicas are reachable at and its accelerator type; ok is false for
	// a node the driver does not know.
	Node func(name string) (address, accel string, ok bool)
}

// Out is what one call of the machine decided for its driver.
type Out struct {
	// Core are the events the scheduling core must hear, in order: a job
	// whose processes are all gone (JobFinished, JobFailed, JobCancelled),
	// devices held apart or freed. The driver applies them and hands each
	// Ready back through Take.
	Core []sched.Event
	// Dirty are the jobs whose records changed, to persist.
	Dirty map[string]*Job
	// Admitted and Preempted list the queues of units admitted and
	// preempted, for metrics.
	Admitted, Preempted []string
	// ColdStarts are the cold starts measured (service replicas that
	// became ready for the first time).
	ColdStarts []ColdStart
}

func (o *Out) dirty(j *Job) {
	if o.Dirty == nil {
		o.Dirty = map[string]*Job{}
	}
	o.Dirty[j.ID] = j
}

// Machine holds every live job: every job that is not over, and jobs over
// whose processes are still being stopped.
type Machine struct {
	cfg  Config
	jobs map[string]*Job
	// units maps a core job ID to its job and unit index.
	units map[string]unitRef
	// onNode indexes live jobs by the nodes their replicas are on.
	onNode map[string]map[string]struct{}
	// orphans are processes agents report that no live replica accounts
	// for, per node and key (see Heartbeat).
	orphans map[string]map[string]*orphan
	out     Out
}

type unitRef struct {
	j *Job
	u int
}

// New makes an empty machine.
func New(cfg Config) *Machine {
	if cfg.Node == nil {
		cfg.Node = func(string) (string, string, bool) { return "", "", false }
	}
	return &Machine{cfg: cfg, jobs: map[string]*Job{}, units: map[string]unitRef{}, onNode: map[string]map[string]struct{}{}}
}

// flush returns what the calls so far decided and starts afresh.
func (m *Machine) flush() Out {
	out := m.out
	m.out = Out{}
	return out
}

// Job returns a live job.
func (m *Machine) Job(id string) *Job { return m.jobs[id] }

// Jobs calls fn for every live job, in no defined order.
func (m *Machine) Jobs(fn func(*Job)) {
	for _, j := range m.jobs {
		fn(j)
	}
}

// Len is the number of live jobs.
func (m *Machine) Len() int { return len(m.jobs) }

// OnNode lists the live jobs with a replica on a node, in ID order.
func (m *Machine) OnNode(node string) []*Job {
	var out []*Job
	for _, id := range slices.Sorted(maps.Keys(m.onNode[node])) {
		if j := m.jobs[id]; j != nil {
			out = append(out, j)
		}
	}
	return out
}

// Unit finds the job and unit of a core job ID.
func (m *Machine) Unit(core sched.JobID) (*Job, int, bool) {
	r, ok := m.units[string(core)]
	return r.j, r.u, ok
}

// Add takes a job in: a new submission (pending) or one read back from the
// store at a restart, in any state. It indexes its replicas by node.
func (m *Machine) Add(j *Job, nowMs int64) {
	j.Normalize()
	m.jobs[j.ID] = j
	for u := range j.Units {
		m.units[j.Units[u].Core] = unitRef{j, u}
	}
	for i := range j.Replicas {
		m.index(j.Replicas[i].Node, j.ID)
	}
	for i := range j.Stale {
		m.index(j.Stale[i].Node, j.ID)
	}
	if len(j.Events) == 0 {
		j.addEvent(j.SubmittedMs, EventSubmitted, "")
	}
}

// Submitted takes in a new job and records its submission.
func (m *Machine) Submitted(j *Job) Out {
	j.State = Pending
	for i := range j.Units {
		j.Units[i].State = Pending
	}
	m.Add(j, j.SubmittedMs)
	j.sum()
	m.out.dirty(j)
	return m.flush()
}

func (m *Machine) index(node, job string) {
	s := m.onNode[node]
	if s == nil {
		s = map[string]struct{}{}
		m.onNode[node] = s
	}
	s[job] = struct{}{}
}

// evict forgets a job that is over and whose processes are all gone.
func (m *Machine) evict(j *Job) {
	delete(m.jobs, j.ID)
	for _, u := range j.Units {
		delete(m.units, u.Core)
	}
	for _, list := range [][]Replica{j.Replicas, j.Stale} {
		for i := range list {
			if s := m.onNode[list[i].Node]; s != nil {
				delete(s, j.ID)
			}
		}
	}
}

// Settle forgets the jobs of the records just persisted that are over with
// every process gone; the driver calls it after a commit.
func (m *Machine) Settle(jobs []*Job) {
	for _, j := range jobs {
		if Terminal(j.State) && !Live(j) {
			m.evict(j)
		}
	}
}

// Live reports whether any process of any attempt of j may still run.
func Live(j *Job) bool {
	for i := range j.Replicas {
		if !j.Replicas[i].Gone() {
			return true
		}
	}
	return len(j.Stale) > 0
}

// sum brings a job's own state in line with its units.
func (j *Job) sum() {
	if j.Service != nil {
		j.sumService()
		return
	}
	if len(j.Units) == 0 {
		return
	}
	if !j.Run.Independent() {
		u := &j.Units[0]
		j.State, j.Reason, j.Attempt, j.Restarts = u.State, u.Reason, u.Attempt, u.Restarts
		j.Stopping, j.StartedMs, j.FinishedMs = u.Stopping, u.StartedMs, u.FinishedMs
		return
	}
	counts := map[string]int{}
	j.Attempt, j.Restarts, j.FinishedMs = 0, 0, 0
	for i := range j.Units {
		u := &j.Units[i]
		counts[u.State]++
		j.Attempt = max(j.Attempt, u.Attempt)
		j.Restarts += u.Restarts
		if u.StartedMs > 0 && (j.StartedMs == 0 || u.StartedMs < j.StartedMs) {
			j.StartedMs = u.StartedMs
		}
		j.FinishedMs = max(j.FinishedMs, u.FinishedMs)
	}
	n := len(j.Units)
	over := counts[Succeeded] + counts[Failed] + counts[Cancelled]
	switch {
	case over == n && counts[Succeeded] == n:
		j.State, j.Reason = Succeeded, ""
	case over == n && counts[Cancelled] > 0:
		j.State, j.Reason = Cancelled, "cancelled by request"
	case over == n:
		j.State = Failed
		j.Reason = fmt.Sprintf("%d of %d replicas failed", counts[Failed], n)
		for i := range j.Units {
			if j.Units[i].State == Failed {
				j.Reason += "; first: " + j.Units[i].Reason
				break
			}
		}
	case counts[Cancelling] > 0:
		j.State, j.Reason = Cancelling, "cancelled by request; stopping its processes"
	case counts[Running]+counts[Preempting] > 0:
		j.State = Running
		j.Reason = fmt.Sprintf("%d of %d replicas running, %d done", counts[Running]+counts[Preempting], n, over)
	default:
		j.State = Pending
		j.Reason = fmt.Sprintf("%d of %d replicas waiting, %d done", n-over, n, over)
	}
	if !Terminal(j.State) {
		j.FinishedMs = 0
	}
}

// replicasOf lists the replicas of unit u of j (indices into j.Replicas).
func (j *Job) replicasOf(u int) []int {
	var out []int
	for i := range j.Replicas {
		if j.Replicas[i].Unit == u {
			out = append(out, i)
		}
	}
	return out
}

// element maps array index i of j to its gang and index within the gang.
func (j *Job) element(i int) (g, r int) {
	for g, gang := range j.Spec.Gangs {
		if i < gang.Replicas {
			return g, i
		}
		i -= gang.Replicas
	}
	return 0, i
}

// FindReplica finds the replica of a key, of the current attempts or a
// stale one.
func FindReplica(j *Job, gang, replica, attempt int) (r *Replica, current bool) {
	for i := range j.Replicas {
		if r := &j.Replicas[i]; r.Attempt == attempt && r.Gang == gang && r.Replica == replica {
			return r, true
		}
	}
	for i := range j.Stale {
		if r := &j.Stale[i]; r.Attempt == attempt && r.Gang == gang && r.Replica == replica {
			return r, false
		}
	}
	return nil, false
}

// heldKey names a replica whose devices are held apart in the core.
func heldKey(j *Job, r *Replica) string {
	return fmt.Sprintf("%s/%d/%d/%d", j.ID, r.Attempt, r.Gang, r.Replica)
}

// hold keeps a replica's devices apart in the core while its process
// lives on after the core let go of it.
func (m *Machine) hold(j *Job, r *Replica) {
	if r.Held || r.Gone() || len(r.Devices) == 0 {
		return
	}
	r.Held = true
	sh := j.Spec.Gangs[r.Gang].Shape
	m.out.Core = append(m.out.Core, sched.DevicesHeld{Key: heldKey(j, r), Node: r.Node, Devices: slices.Clone(r.Devices),
		Milli: r.Milli, CPUMilli: sh.CPUMilli, MemoryMiB: sh.MemoryMiB})
	m.out.dirty(j)
}

// release frees the devices held for a replica once its process is gone.
func (m *Machine) release(j *Job, r *Replica) {
	if !r.Held {
		return
	}
	r.Held = false
	m.out.Core = append(m.out.Core, sched.DevicesFreed{Key: heldKey(j, r)})
	m.out.dirty(j)
}

func coreID(s string) sched.JobID { return sched.JobID(s) }

// reasonOf is the text of a stop for the core and for people.
func reasonOf(st *Stopping) string {
	if st.Preempted {
		return "preempted"
	}
	return st.Reason
}
