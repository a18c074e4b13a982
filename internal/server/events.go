package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// The feed turns what the loop commits into a stream of changes that
// clients follow (GET /v1/events): a job's state, attempt, reason or
// replicas changed, a node's state changed, a new sample of the fleet and
// the queues was taken (GET /v1/history).
//
// It watches from a hook that runs on the loop goroutine after every
// commit (the loop owns the live state; nothing else reads it): the hook
// compares the live jobs and nodes with what it saw last and publishes the
// differences. Publishing never blocks the loop: each subscriber has a
// buffer, and one that falls behind loses events and is told to reload
// (a reset event). Comparing costs O(live jobs); the hook spends at most a
// tenth of the loop's time on it (after a comparison that took d, the
// next waits 9d), so with many live jobs changes are coalesced over a few
// commits, and it compares nothing while no one listens.

const (
	// ringSize is how many recent events a client may resume from
	// (Last-Event-ID) after a dropped connection.
	ringSize = 4096
	// subBuffer is how many events a subscriber may fall behind by
	// before it loses events and is told to reload.
	subBuffer = 512
	// maxSubscribers bounds the open streams (events and logs together).
	maxSubscribers = 1024
	// keepAlive is the longest silence on a stream: a comment then keeps
	// proxies from closing it and finds clients that went away.
	keepAlive = 15 * time.Second
	// maxHistory is how many samples GET /v1/history keeps.
	maxHistory = 960
)

type feed struct {
	s *Server
	// epoch names this run of the server in event ids, so that an id of
	// an earlier run is not taken for one of this run.
	epoch string

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	// streams counts open streams of both kinds (maxSubscribers).
	streams int
	ring    []streamEvent
	next    uint64
	// validFrom is the first id after which no change went unpublished:
	// a client resuming from before it must reload.
	validFrom uint64
	history   []api.Sample

	// Owned by the loop goroutine. The live jobs are known by their
	// records' addresses, which the loop keeps while a job lives: hashing
	// a pointer is several times cheaper than hashing an id
	// (BenchmarkFeedWatch).
	jobs       map[*store.Job]jobMark
	nodes      map[string]api.NodeChange
	nextDiff   time.Time
	lastSample time.Time
}

// streamEvent is one published change. Tenant, when set, limits it to
// that tenant's tokens and admins; a sample is cut down per reader.
type streamEvent struct {
	id     uint64
	typ    string
	tenant string
	data   []byte
	sample *api.Sample
}

type subscriber struct {
	p  principal
	ch chan streamEvent
	// lost is set (under feed.mu) when an event did not fit in ch.
	lost bool
}

// jobMark is what the feed remembers of a live job to tell a change.
type jobMark struct {
	state, reason              string
	attempt, replicas, running int
	gone, shrunk               int
}

func newFeed(s *Server) *feed {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &feed{s: s, epoch: hex.EncodeToString(b[:]), subs: map[*subscriber]struct{}{}, next: 1, validFrom: math.MaxUint64,
		nodes: map[string]api.NodeChange{}}
}

// hook is the function the loop runs after each commit; it puts itself
// back for the next one.
func (f *feed) hook(l *loop) func(error) {
	var fn func(error)
	fn = func(err error) {
		if err != nil {
			// The loop stops on a failed commit.
			return
		}
		f.observe(l)
		l.afterCommit(fn)
	}
	return fn
}

// observe runs on the loop goroutine after a commit.
func (f *feed) observe(l *loop) {
	now := l.now()
	if f.lastSample.IsZero() || now.Sub(f.lastSample) >= l.s.cfg.HistoryInterval {
		f.lastSample = now
		f.sample(l, now)
	}
	f.watchNodes(l)
	f.mu.Lock()
	listening := len(f.subs) > 0
	f.mu.Unlock()
	if !listening {
		// Changes go unseen from now on; the next subscriber starts from
		// a fresh look.
		if f.jobs != nil {
			f.jobs = nil
			f.mu.Lock()
			f.validFrom = math.MaxUint64
			f.mu.Unlock()
		}
		return
	}
	start := time.Now()
	if f.jobs == nil || start.Before(f.nextDiff) {
		f.baseline(l)
		return
	}
	f.watchJobs(l)
	f.nextDiff = time.Now().Add(9 * time.Since(start))
}

// baseline takes note of the live jobs, when no look is kept, without
// publishing them: a subscriber reads what is there from the API and
// hears of changes from then on.
func (f *feed) baseline(l *loop) {
	if f.jobs != nil {
		return
	}
	f.jobs = make(map[*store.Job]jobMark, l.lc.Len())
	l.lc.Jobs(func(j *store.Job) { f.jobs[j] = markOf(j) })
	f.mu.Lock()
	f.validFrom = f.next
	f.mu.Unlock()
}

func markOf(j *store.Job) jobMark {
	m := jobMark{state: j.State, reason: j.Reason, attempt: j.Attempt, replicas: len(j.Replicas)}
	for i := range j.Replicas {
		r := &j.Replicas[i]
		switch {
		case r.Shrunk:
			m.shrunk++
		case r.Gone():
			m.gone++
		case r.State == store.ReplicaRunning:
			m.running++
		}
	}
	return m
}

func jobChange(id, tenant, queue string, m jobMark, prev string) api.JobChange {
	return api.JobChange{ID: id, Tenant: tenant, Queue: queue, State: m.state, Previous: prev, Reason: m.reason,
		Attempt: m.attempt, Replicas: m.replicas - m.shrunk, Running: m.running}
}

// watchJobs publishes the live jobs that changed since the last look, and
// the end of those the loop no longer holds.
func (f *feed) watchJobs(l *loop) {
	// Changes are published in job id order; only they are sorted.
	var changed []*store.Job
	l.lc.Jobs(func(j *store.Job) {
		if old, ok := f.jobs[j]; !ok || old != markOf(j) {
			changed = append(changed, j)
		}
	})
	slices.SortFunc(changed, func(a, b *store.Job) int { return strings.Compare(a.ID, b.ID) })
	for _, j := range changed {
		m := markOf(j)
		old := f.jobs[j]
		f.jobs[j] = m
		f.publishJob(jobChange(j.ID, j.Tenant, j.Queue, m, old.state))
	}
	if len(f.jobs) == l.lc.Len() {
		return
	}
	// Some jobs left the loop (they ended) since the last look; the
	// store has their final record.
	var gone []*store.Job
	for j := range f.jobs {
		if l.lc.Job(j.ID) != j {
			gone = append(gone, j)
		}
	}
	slices.SortFunc(gone, func(a, b *store.Job) int { return strings.Compare(a.ID, b.ID) })
	for _, j := range gone {
		old := f.jobs[j]
		delete(f.jobs, j)
		if l.lc.Job(j.ID) != nil || store.Terminal(old.state) {
			// Still live under a new record (told as a change above), or
			// its end was told.
			continue
		}
		rec, err := l.s.db.Job(j.ID)
		if err != nil {
			// Deleted (a tenant's deletion, a refused job): nothing to tell.
			continue
		}
		f.publishJob(jobChange(rec.ID, rec.Tenant, rec.Queue, markOf(&rec), old.state))
	}
}

func (f *feed) publishJob(c api.JobChange) {
	data, _ := json.Marshal(c)
	f.publish(streamEvent{typ: api.StreamJob, tenant: c.Tenant, data: data})
}

// watchNodes publishes nodes whose state or drain changed, in name order.
func (f *feed) watchNodes(l *loop) {
	var changed []string
	for name, n := range l.nodes {
		if old, ok := f.nodes[name]; !ok || old.State != n.rec.State || old.Drained != n.rec.Drained {
			changed = append(changed, name)
		}
	}
	slices.Sort(changed)
	for _, name := range changed {
		n := l.nodes[name]
		c := api.NodeChange{Name: name, State: n.rec.State, Drained: n.rec.Drained, Previous: f.nodes[name].State}
		f.nodes[name] = c
		data, _ := json.Marshal(c)
		f.publish(streamEvent{typ: api.StreamNode, data: data})
	}
}

// publish numbers an event, keeps it for resumption and hands it to every
// subscriber that may see it, without waiting for any.
func (f *feed) publish(ev streamEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev.id = f.next
	f.next++
	if len(f.ring) == ringSize {
		copy(f.ring, f.ring[1:])
		f.ring = f.ring[:ringSize-1]
	}
	f.ring = append(f.ring, ev)
	for sub := range f.subs {
		if !sub.p.sees(ev.tenant) && ev.tenant != "" {
			continue
		}
		select {
		case sub.ch <- ev:
		default:
			sub.lost = true
		}
	}
}

// openStream counts a stream against maxSubscribers.
func (f *feed) openStream() *api.Error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streams >= maxSubscribers {
		return api.Unavailable("%d streams are open, the most this server serves; try again later", maxSubscribers)
	}
	f.streams++
	return nil
}

func (f *feed) closeStream() {
	f.mu.Lock()
	f.streams--
	f.mu.Unlock()
}

// subscribe adds a subscriber and returns the events after lastID it may
// see, or reset when they are no longer all known.
func (f *feed) subscribe(p principal, lastID string) (sub *subscriber, backlog []streamEvent, reset bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub = &subscriber{p: p, ch: make(chan streamEvent, subBuffer)}
	f.subs[sub] = struct{}{}
	if lastID == "" {
		return sub, nil, false
	}
	epoch, n, ok := strings.Cut(lastID, "-")
	seq, err := strconv.ParseUint(n, 10, 64)
	oldest := f.next
	if len(f.ring) > 0 {
		oldest = f.ring[0].id
	}
	if !ok || err != nil || epoch != f.epoch || seq+1 < oldest || seq+1 < f.validFrom || seq >= f.next {
		return sub, nil, true
	}
	for _, ev := range f.ring {
		if ev.id > seq && (ev.tenant == "" || p.sees(ev.tenant)) {
			backlog = append(backlog, ev)
		}
	}
	return sub, backlog, false
}

func (f *feed) unsubscribe(sub *subscriber) {
	f.mu.Lock()
	delete(f.subs, sub)
	f.mu.Unlock()
}

// takeLost reports and clears a subscriber's lost flag.
func (f *feed) takeLost(sub *subscriber) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	lost := sub.lost
	sub.lost = false
	return lost
}

func (f *feed) id(ev streamEvent) string { return fmt.Sprintf("%s-%d", f.epoch, ev.id) }

// stream writes server-sent events, moving the connection's deadlines
// with every write: the server's per-request deadlines bound one answer,
// and a stream is many.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *Server) openSSE(w http.ResponseWriter) (*stream, error) {
	st := &stream{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// Proxies that buffer answers would hold the events back.
	h.Set("X-Accel-Buffering", "no")
	st.extend()
	w.WriteHeader(http.StatusOK)
	return st, st.flush()
}

// extend gives the next write the server's write timeout, and the
// connection's reads (net/http watches a streaming request's connection
// for the client going away) until the write after it is due.
func (st *stream) extend() {
	now := time.Now()
	_ = st.rc.SetWriteDeadline(now.Add(st.timeout))
	_ = st.rc.SetReadDeadline(now.Add(st.timeout + keepAlive))
}

func (st *stream) flush() error {
	err := st.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// send writes one event; data is one line of JSON.
func (st *stream) send(id, event string, data []byte) error {
	st.extend()
	if id != "" {
		if _, err := fmt.Fprintf(st.w, "id: %s\n", id); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(st.w, "event: %s\ndata: %s\n\n", event, data); err != nil {
		return err
	}
	return st.flush()
}

func (st *stream) sendJSON(event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return st.send("", event, data)
}

func (st *stream) ping() error {
	st.extend()
	if _, err := fmt.Fprint(st.w, ": keep-alive\n\n"); err != nil {
		return err
	}
	return st.flush()
}

// keepAliveEvery is how often an idle stream writes: within the write
// timeout it moves and at most every keepAlive.
func (s *Server) keepAliveEvery() time.Duration {
	return min(keepAlive, s.cfg.WriteTimeout/2, s.cfg.BodyTimeout/2)
}

// streamEvents is GET /v1/events: the feed, as server-sent events, from
// the Last-Event-ID header (or the lastEventId parameter) when given.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, p principal) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	if len(last) > 64 {
		writeErr(w, api.Invalid("Last-Event-ID", "%d bytes: want the id of an event this stream sent", len(last)))
		return
	}
	if e := s.feed.openStream(); e != nil {
		writeErr(w, e)
		return
	}
	defer s.feed.closeStream()
	sub, backlog, reset := s.feed.subscribe(p, last)
	defer s.feed.unsubscribe(sub)
	// The loop takes note of the live jobs before the stream opens, so
	// that what a client reads from the API once it is open is followed
	// by every change after it.
	if _, err := exec(r.Context(), s, func(l *loop, reply func(struct{})) {
		s.feed.baseline(l)
		reply(struct{}{})
	}); err != nil {
		writeErr(w, err)
		return
	}
	st, err := s.openSSE(w)
	if err != nil {
		return
	}
	if reset {
		if st.send("", api.StreamReset, []byte(`{"reason":"the events since the given id are no longer held"}`)) != nil {
			return
		}
	}
	for _, ev := range backlog {
		if s.sendEvent(st, p, ev) != nil {
			return
		}
	}
	tick := time.NewTicker(s.keepAliveEvery())
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case ev := <-sub.ch:
			if s.feed.takeLost(sub) {
				// The buffer overflowed: what came after it was dropped.
				for len(sub.ch) > 0 {
					<-sub.ch
				}
				if st.send("", api.StreamReset, []byte(`{"reason":"this client fell behind and lost events"}`)) != nil {
					return
				}
				continue
			}
			if s.sendEvent(st, p, ev) != nil {
				return
			}
		case <-tick.C:
			if st.ping() != nil {
				return
			}
		}
	}
}

// sendEvent writes one event as p may read it.
func (s *Server) sendEvent(st *stream, p principal, ev streamEvent) error {
	data := ev.data
	if ev.sample != nil {
		data, _ = json.Marshal(s.sampleFor(*ev.sample, p))
	}
	return st.send(s.feed.id(ev), ev.typ, data)
}
