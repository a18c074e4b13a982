package server

import (
	"errors"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// A submission is persisted by the loop, with the jobs and nodes of the
// iteration that takes it: the core sees the job first (it may refuse it
// for good, and then nothing is written), the commit writes the job, its
// id and its idempotency key with everything else the iteration changed,
// and only then does the client hear that it was accepted. Every
// submission waiting when an iteration starts shares that one commit.
//
// Idempotency: the handler looks the tenant's key up in the store before
// it hands the job to the loop; the loop knows the keys it accepted
// lately (keys), which the store may not have shown the handler yet. A
// look-up older than keyWindow is repeated on the loop, so that a key the
// loop has forgotten cannot slip through.

// keyWindow is how long the loop remembers the idempotency keys it took.
const keyWindow = time.Minute

// keyRecord is an idempotency key the loop accepted.
type keyRecord struct {
	job, bodyHash string
	at            time.Time
}

// submission is a job for the loop to add.
type submission struct {
	tenant, key, bodyHash string
	// looked is when the handler looked the key up in the store.
	looked time.Time
	build  func(seq uint64) store.Job
}

// submitted is the loop's answer: the job's view as accepted, or the job
// an earlier request with the same key created (created false).
type submitted struct {
	view    api.Job
	created bool
	err     error
}

// submit takes a submission on the loop; reply is called once the answer
// is durable.
func (l *loop) submit(sub submission, now time.Time, reply func(submitted)) {
	if sub.key != "" {
		l.forgetKeys()
		if rec, ok := l.keys[string(store.IdempotencyKey(sub.tenant, sub.key))]; ok {
			l.replay(rec.job, rec.bodyHash, sub.bodyHash, reply)
			return
		}
		if time.Since(sub.looked) >= keyWindow {
			switch j, hash, err := l.s.db.Idempotent(sub.tenant, sub.key); {
			case err == nil:
				l.replay(j.ID, hash, sub.bodyHash, reply)
				return
			case !errors.Is(err, store.ErrNotFound):
				reply(submitted{err: api.Internal("store: %v", err)})
				return
			}
		}
	}
	// A job the core refuses takes its sequence number with it, as an id
	// a client was told about once.
	l.seq++
	seq := l.seq
	j := sub.build(seq)
	j.Seq, j.Tenant, j.IdempotencyKey = seq, sub.tenant, sub.key
	// The answer shows the job as submitted, before the lifecycle takes
	// it (a service is running from then on; its replicas wait).
	view := jobView(&j)
	if err := l.submitted(&j, now); err != nil {
		// An API error says what it is (a service's name taken: 409);
		// the core's refusal is the document's fault.
		var ae *api.Error
		if !errors.As(err, &ae) {
			ae = api.Invalid("", "%v", err)
		}
		reply(submitted{err: ae})
		return
	}
	live := l.lc.Job(j.ID)
	if live == nil {
		live = &j
	}
	l.markJob(live)
	l.newJobs = append(l.newJobs, store.NewJob{Job: live, Key: sub.key, BodyHash: sub.bodyHash})
	if sub.key != "" {
		k := string(store.IdempotencyKey(sub.tenant, sub.key))
		l.keys[k] = keyRecord{job: j.ID, bodyHash: sub.bodyHash, at: time.Now()}
		l.keyOrder = append(l.keyOrder, k)
	}
	l.afterCommit(func(err error) {
		if err != nil {
			reply(submitted{err: api.Unavailable("the job was not stored: %v", err)})
			return
		}
		l.s.metrics.submissions.Inc()
		reply(submitted{view: view, created: true})
	})
}

// replay answers a submission whose key an earlier one used.
func (l *loop) replay(id, hash, bodyHash string, reply func(submitted)) {
	if hash != bodyHash {
		reply(submitted{err: store.ErrKeyReused})
		return
	}
	l.afterCommit(func(err error) {
		if err != nil {
			reply(submitted{err: api.Unavailable("%v", err)})
			return
		}
		if j := l.lc.Job(id); j != nil {
			reply(submitted{view: jobView(j)})
			return
		}
		j, err := l.s.db.Job(id)
		if err != nil {
			reply(submitted{err: api.Internal("read job %s: %v", id, err)})
			return
		}
		reply(submitted{view: jobView(&j)})
	})
}

// forgetKeys drops the keys accepted more than keyWindow ago, oldest
// first (keyOrder is in the order they were taken).
func (l *loop) forgetKeys() {
	n := 0
	for _, k := range l.keyOrder {
		rec, ok := l.keys[k]
		if ok && time.Since(rec.at) < keyWindow {
			break
		}
		if ok {
			delete(l.keys, k)
		}
		n++
	}
	l.keyOrder = l.keyOrder[n:]
}
