package serve

import (
	"container/heap"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/gpufleet/gpufleet/internal/autoscale"
)

// The engine is a discrete-event model of one service: a gateway that
// holds requests in one first-come-first-served queue, and replicas that
// take the head request whenever their prefill engine is free and they
// have a sequence slot and KV cache room for its prompt and output. A
// request's first token comes when its prefill ends; it then generates at
// the profile's per-sequence speed and frees its slot and KV cache at the
// end. The engine holds no policy: the caller starts and removes replicas.
// Every part of its state is a value or a slice, so clone can copy it for
// the oracle's what-if runs.
type engine struct {
	prof Profile
	reqs []Request // shared, never written
	slo  time.Duration

	now    time.Duration
	events eventHeap
	seq    uint64
	next   int // the next request to arrive
	// arriveBefore stops arrivals at this index (len(reqs) normally).
	arriveBefore int

	queue        []int32 // waiting requests, FIFO from qhead
	qhead        int
	queuedTokens int64
	inflight     int
	finished     int // requests completed or dropped
	endAt        time.Duration

	reps []replica

	ttft    []time.Duration // per request; -1 until dispatched
	dropped []bool
	ndrop   int

	// Since the last observation.
	arrivals      int
	arrivedTokens int64
	concArea      float64 // integral of inflight + queued, in request-seconds
	areaAt        time.Duration
	coldStarts    []time.Duration

	// Totals.
	starts, killedStarting int
	loaded                 []time.Duration // measured cold starts

	pcg  *rand.PCG
	rng  *rand.Rand
	cold ColdStarts
}

type repState uint8

const (
	starting repState = iota
	ready
	draining
	stopped
)

type replica struct {
	state      repState
	start      time.Duration // when it was started (GPU time counts from here)
	readyAt    time.Duration
	stop       time.Duration
	prefilling bool
	seqs       int
	kv         int64
}

type eventKind uint8

const (
	evPrefillDone eventKind = iota
	evDecodeDone
	evReady
)

type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	rep  int32
	req  int32
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newEngine(prof Profile, reqs []Request, slo time.Duration, cold ColdStarts, seed uint64) *engine {
	e := &engine{
		prof: prof, reqs: reqs, slo: slo, arriveBefore: len(reqs),
		ttft: make([]time.Duration, len(reqs)), dropped: make([]bool, len(reqs)),
		pcg: rand.NewPCG(seed, 0x5e57e), cold: cold,
	}
	e.rng = rand.New(e.pcg)
	for i := range e.ttft {
		e.ttft[i] = -1
	}
	return e
}

// clone copies the engine; the copy shares only the read-only trace.
func (e *engine) clone() *engine {
	c := *e
	c.events = slices.Clone(e.events)
	c.queue = slices.Clone(e.queue)
	c.reps = slices.Clone(e.reps)
	c.ttft = slices.Clone(e.ttft)
	c.dropped = slices.Clone(e.dropped)
	c.coldStarts = slices.Clone(e.coldStarts)
	c.loaded = slices.Clone(e.loaded)
	p := *e.pcg
	c.pcg = &p
	c.rng = rand.New(c.pcg)
	return &c
}

func (e *engine) push(at time.Duration, k eventKind, rep, req int) {
	e.seq++
	heap.Push(&e.events, event{at: at, seq: e.seq, kind: k, rep: int32(rep), req: int32(req)})
}

// done reports whether every request has completed or been dropped.
func (e *engine) done() bool { return e.finished == len(e.reqs) }

// settle advances the concurrency integral to t.
func (e *engine) settle(t time.Duration) {
	if t > e.areaAt {
		e.concArea += float64(e.inflight+len(e.queue)-e.qhead) * (t - e.areaAt).Seconds()
		e.areaAt = t
	}
}

// advance runs every event and arrival up to and including t, then sets
// the clock to t.
func (e *engine) advance(t time.Duration) {
	for {
		nextArrival := time.Duration(-1)
		if e.next < e.arriveBefore {
			nextArrival = e.reqs[e.next].Arrival
		}
		hasEvent := len(e.events) > 0 && e.events[0].at <= t
		hasArrival := nextArrival >= 0 && nextArrival <= t
		if !hasEvent && !hasArrival {
			break
		}
		// Replica events before an arrival at the same instant: a slot
		// freed at t serves a request arriving at t.
		if hasEvent && (!hasArrival || e.events[0].at <= nextArrival) {
			ev := heap.Pop(&e.events).(event)
			e.settle(ev.at)
			e.now = ev.at
			e.handle(ev)
		} else {
			e.settle(nextArrival)
			e.now = nextArrival
			e.arrive(e.next)
			e.next++
		}
		e.dispatch()
	}
	e.settle(t)
	e.now = t
}

func (e *engine) arrive(i int) {
	r := e.reqs[i]
	e.arrivals++
	e.arrivedTokens += int64(r.Prompt)
	if int64(r.Prompt)+int64(r.Output) > int64(e.prof.KVTokens) {
		// Larger than a replica's whole KV cache: no replica can ever
		// serve it.
		e.drop(i)
		return
	}
	e.queue = append(e.queue, int32(i))
	e.queuedTokens += int64(r.Prompt)
}

func (e *engine) drop(i int) {
	e.dropped[i] = true
	e.ndrop++
	e.finish()
}

func (e *engine) finish() {
	e.finished++
	if e.done() {
		e.endAt = e.now
	}
}

func (e *engine) handle(ev event) {
	rp := &e.reps[ev.rep]
	switch ev.kind {
	case evReady:
		if rp.state != starting {
			return // removed while it loaded
		}
		rp.state = ready
		e.coldStarts = append(e.coldStarts, e.now-rp.start)
		e.loaded = append(e.loaded, e.now-rp.start)
	case evPrefillDone:
		rp.prefilling = false
		r := e.reqs[ev.req]
		decode := time.Duration(float64(r.Output-1) / e.prof.DecodeTokensPerSec * float64(time.Second))
		e.push(e.now+decode, evDecodeDone, int(ev.rep), int(ev.req))
	case evDecodeDone:
		r := e.reqs[ev.req]
		rp.seqs--
		rp.kv -= int64(r.Prompt) + int64(r.Output)
		e.inflight--
		e.finish()
		if rp.state == draining && rp.seqs == 0 {
			rp.state, rp.stop = stopped, e.now
		}
	}
}

// dispatch hands waiting requests, oldest first, to free replicas: the
// one with the fewest running sequences, then the lowest index.
func (e *engine) dispatch() {
	for e.qhead < len(e.queue) {
		i := int(e.queue[e.qhead])
		r := e.reqs[i]
		need := int64(r.Prompt) + int64(r.Output)
		best := -1
		for k := range e.reps {
			rp := &e.reps[k]
			if rp.state != ready || rp.prefilling || rp.seqs >= e.prof.MaxSeqs || rp.kv+need > int64(e.prof.KVTokens) {
				continue
			}
			if best < 0 || rp.seqs < e.reps[best].seqs {
				best = k
			}
		}
		if best < 0 {
			return
		}
		e.popQueue()
		rp := &e.reps[best]
		rp.prefilling = true
		rp.seqs++
		rp.kv += need
		e.inflight++
		prefill := time.Duration(float64(r.Prompt) / e.prof.PrefillTokensPerSec * float64(time.Second))
		e.ttft[i] = e.now + prefill - r.Arrival
		e.push(e.now+prefill, evPrefillDone, best, i)
	}
}

func (e *engine) popQueue() {
	i := e.queue[e.qhead]
	e.queuedTokens -= int64(e.reqs[i].Prompt)
	e.qhead++
	// Compact now and then so the queue does not grow without bound.
	if e.qhead > 1024 && e.qhead*2 > len(e.queue) {
		e.queue = append(e.queue[:0], e.queue[e.qhead:]...)
		e.qhead = 0
	}
}

// expire drops waiting requests that have waited longer than timeout.
func (e *engine) expire(timeout time.Duration) {
	for e.qhead < len(e.queue) {
		i := int(e.queue[e.qhead])
		if e.now-e.reqs[i].Arrival <= timeout {
			return
		}
		e.popQueue()
		e.drop(i)
	}
}

// counts returns the serving and starting replicas.
func (e *engine) counts() (serving, startingN int) {
	for k := range e.reps {
		switch e.reps[k].state {
		case ready:
			serving++
		case starting:
			startingN++
		}
	}
	return serving, startingN
}

// observe reports the service as the autoscaler sees it and resets the
// interval's counters.
func (e *engine) observe(interval time.Duration) autoscale.Observation {
	serving, _ := e.counts()
	o := autoscale.Observation{
		Now: e.now, InFlight: e.inflight, Queued: len(e.queue) - e.qhead,
		Concurrency: e.concArea / interval.Seconds(),
		Arrivals:    e.arrivals, PromptTokens: e.arrivedTokens, QueuedPromptTokens: e.queuedTokens,
		Ready: serving, ColdStarts: e.coldStarts,
	}
	for k := range e.reps {
		if e.reps[k].state == starting {
			o.Starting = append(o.Starting, e.reps[k].start)
		}
	}
	e.arrivals, e.arrivedTokens, e.concArea, e.coldStarts = 0, 0, 0, nil
	return o
}

// scale brings the replicas (serving and starting) to n. New replicas
// load for a cold start drawn from the distribution, or are ready at once
// when warm. Surplus replicas are removed in the victims' order; a serving
// one drains (takes nothing new, stops when its sequences end).
func (e *engine) scale(n int, victims autoscale.Victims, warm bool) {
	serving, startingN := e.counts()
	for have := serving + startingN; have < n; have++ {
		e.startReplica(warm)
	}
	surplus := serving + startingN - n
	if surplus <= 0 {
		e.dispatch()
		return
	}
	order := e.victims(victims)
	for _, k := range order[:surplus] {
		e.remove(k)
	}
}

func (e *engine) startReplica(warm bool) {
	k := len(e.reps)
	if warm {
		e.reps = append(e.reps, replica{state: ready, start: e.now, readyAt: e.now})
		return
	}
	d := e.cold.Draw(e.rng)
	e.reps = append(e.reps, replica{state: starting, start: e.now, readyAt: e.now + d})
	e.starts++
	e.push(e.now+d, evReady, k, -1)
}

func (e *engine) remove(k int) {
	rp := &e.reps[k]
	switch rp.state {
	case starting:
		rp.state, rp.stop = stopped, e.now
		e.killedStarting++
	case ready:
		rp.state = draining
		if rp.seqs == 0 {
			rp.state, rp.stop = stopped, e.now
		}
	}
}

// victims orders the live replicas for removal.
func (e *engine) victims(v autoscale.Victims) []int {
	var startingK, readyK []int
	for k := range e.reps {
		switch e.reps[k].state {
		case starting:
			startingK = append(startingK, k)
		case ready:
			readyK = append(readyK, k)
		}
	}
	// Newest starting first (Kubernetes' order; gpufleet never gets here
	// with starting replicas in surplus unless Desired fell below them).
	slices.Reverse(startingK)
	if v == autoscale.StartingFirst {
		// Then ready pods newest first, as a ReplicaSet ranks them.
		slices.Reverse(readyK)
		return append(startingK, readyK...)
	}
	// Least loaded serving replicas first, then newest.
	slices.SortStableFunc(readyK, func(a, b int) int {
		if d := e.reps[a].seqs - e.reps[b].seqs; d != 0 {
			return d
		}
		return b - a
	})
	return append(readyK, startingK...)
}

// gpuTime is the accelerator time of every replica up to end, and the part
// spent loading.
func (e *engine) gpuTime(end time.Duration) (total, loading time.Duration) {
	for _, r := range e.reps {
		stop := end
		if r.state == stopped {
			stop = min(r.stop, end)
		}
		if stop > r.start {
			total += stop - r.start
			loading += min(stop, r.readyAt) - r.start
		}
	}
	d := time.Duration(e.prof.Devices)
	return total * d, loading * d
}
