package sim

// The engine's own events, on the virtual clock. Arrivals are not here:
// they stream from the workload in order and are merged with these.

type eventKind uint8

// At one instant, events apply in this order (then arrivals, then one
// scheduling cycle): what frees capacity first, so the cycle sees it.
const (
	evFinish     eventKind = iota // a job's work is done, or its maxSec ran out
	evStop                        // a preemption notice ends: the job stops
	evShrink                      // a shrink notice ends: some replicas stop
	evRepair                      // a failed node comes back
	evFailure                     // a node fails
	evTick                        // a scheduling cycle with no other cause
	evNodeAdd                     // a node is delivered (Config.NodeEvents)
	evNodeRetire                  // a node is retired
	evAbandon                     // a job that never started gives up (Config.AbandonAfterSec)
	evMeter                       // the accounting meters what runs (account.go)
)

type event struct {
	t    int64
	seq  uint64
	job  int32  // index into engine.jobs (Config.NodeEvents for node events); -1 when not about a job
	ver  uint32 // the job's version when scheduled; stale events are dropped
	node int32  // evRepair, evFailure
	kind eventKind
}

func (a *event) before(b *event) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.seq < b.seq
}

// eventQueue is a binary min-heap of events by (time, kind, sequence), so
// that ties break the same way on every run.
type eventQueue struct {
	h   []event
	seq uint64
}

func (q *eventQueue) Len() int { return len(q.h) }

func (q *eventQueue) push(e event) {
	q.seq++
	e.seq = q.seq
	q.h = append(q.h, e)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.h[i].before(&q.h[p]) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

// peek returns the earliest event; the queue must not be empty.
func (q *eventQueue) peek() *event { return &q.h[0] }

func (q *eventQueue) pop() event {
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h = q.h[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && q.h[l].before(&q.h[m]) {
			m = l
		}
		if r < n && q.h[r].before(&q.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}
