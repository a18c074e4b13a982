package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/spec"
	"github.com/gpufleet/gpufleet/internal/store"
)

const (
	// logPoll is how often a log stream looks for new output: the agents
	// ship output with their heartbeats (every second by default), so
	// looking more often finds nothing more.
	logPoll = 250 * time.Millisecond
	// logChunk bounds the bytes of one log event.
	logChunk = 64 << 10
)

// streamLogs is GET /v1/jobs/{id}/logs/stream: one replica's log as
// server-sent events, from an offset, followed live until the job is over
// and its output read to the end (the rule `gpufleet logs -f` follows).
// Without an attempt it follows the job's attempts: when another starts,
// an "attempt" event says so and its log follows from the start. A job
// still pending streams nothing until it starts.
func (s *Server) streamLogs(w http.ResponseWriter, r *http.Request, p principal) {
	j, e := s.lookup(r.PathValue("id"), p)
	if e != nil {
		writeErr(w, e)
		return
	}
	q := r.URL.Query()
	rank, attempt, offset := 0, 0, int64(0)
	var err error
	if v := q.Get("rank"); v != "" {
		if rank, err = strconv.Atoi(v); err != nil || rank < 0 {
			writeErr(w, api.Invalid("rank", "%q: want a replica rank, 0 or more", v))
			return
		}
	}
	if _, _, ok := logReplica(&j, rank, 0, false); len(j.Replicas) > 0 && !ok {
		writeErr(w, api.Invalid("rank", "%d: job %s has ranks 0..%d", rank, j.ID, len(j.Replicas)-1))
		return
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 || offset > api.MaxLogSize {
			writeErr(w, api.Invalid("offset", "%q: want a byte offset of 0..%d (a replica's log holds at most %s)", v, api.MaxLogSize, spec.FormatBytes(api.MaxLogSize)))
			return
		}
	}
	follow := true
	if v := q.Get("attempt"); v != "" {
		if attempt, err = strconv.Atoi(v); err != nil || attempt < 1 || attempt > j.Attempt {
			if j.Attempt == 0 {
				writeErr(w, api.Invalid("attempt", "%q: job %s has not started an attempt yet", v, j.ID))
			} else {
				writeErr(w, api.Invalid("attempt", "%q: want 1..%d", v, j.Attempt))
			}
			return
		}
		follow = false
	} else if _, at, ok := logReplica(&j, rank, 0, false); ok {
		attempt = at
	}
	if e := s.feed.openStream(); e != nil {
		writeErr(w, e)
		return
	}
	defer s.feed.closeStream()
	st, err := s.openSSE(w)
	if err != nil {
		return
	}
	ls := logStream{s: s, st: st, rank: rank, attempt: attempt, offset: offset, follow: follow, state: j.State}
	if st.sendJSON(api.LogStreamState, ls.stateData()) != nil {
		return
	}
	tick := time.NewTicker(logPoll)
	defer tick.Stop()
	idle := time.Now()
	for {
		done, wrote, err := ls.step(&j)
		if err != nil || done {
			return
		}
		if wrote {
			idle = time.Now()
		} else if time.Since(idle) >= s.keepAliveEvery() {
			idle = time.Now()
			if st.ping() != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-tick.C:
		}
		if j, err = s.db.Job(j.ID); err != nil {
			// The job was deleted (its tenant was): nothing more comes.
			_ = st.sendJSON(api.LogStreamEnd, ls.stateData())
			return
		}
	}
}

type logStream struct {
	s       *Server
	st      *stream
	rank    int
	attempt int
	offset  int64
	follow  bool
	state   string
}

func (ls *logStream) stateData() api.LogState {
	return api.LogState{State: ls.state, Attempt: ls.attempt, Next: ls.offset}
}

// logReplica finds the replica whose log a rank's stands for: the newest
// replica of the rank (a gang that shrank and grew back has had several)
// and its attempt, or with explicit set, the rank's replica of that
// attempt (an earlier one's: the same gang and index as the rank's now).
func logReplica(j *store.Job, rank, attempt int, explicit bool) (store.Replica, int, bool) {
	idx := -1
	// A service's replicas each have a rank 0: its rank parameter names
	// the service replica (the leader's log).
	isRank := func(rp store.Replica) bool { return rp.Rank == rank }
	if j.Service != nil {
		isRank = func(rp store.Replica) bool { return rp.Unit == rank && rp.Rank == 0 }
	}
	for i, rp := range j.Replicas {
		if isRank(rp) && (!explicit || rp.Attempt == attempt) {
			idx = i
		}
	}
	if idx < 0 && explicit {
		for i, rp := range j.Replicas {
			if isRank(rp) {
				idx = i
			}
		}
	}
	if idx < 0 {
		return store.Replica{}, 0, false
	}
	rp := j.Replicas[idx]
	if !explicit {
		attempt = rp.Attempt
	}
	return rp, attempt, true
}

// step tells what changed in the job's record and sends the output that
// came since the last step. It reports whether the stream is over.
func (ls *logStream) step(j *store.Job) (done, wrote bool, err error) {
	rp, attempt, placed := logReplica(j, ls.rank, ls.attempt, !ls.follow)
	if ls.follow && placed && attempt > ls.attempt {
		// Another attempt of the rank's replica (a requeue, a restart, a
		// gang grown back): its log from the start.
		ls.attempt, ls.offset = attempt, 0
		wrote = true
		if err := ls.st.sendJSON(api.LogStreamAttempt, ls.stateData()); err != nil {
			return true, wrote, err
		}
	}
	if j.State != ls.state {
		ls.state = j.State
		wrote = true
		if err := ls.st.sendJSON(api.LogStreamState, ls.stateData()); err != nil {
			return true, wrote, err
		}
	}
	// The state is read before the output, so that output written before
	// the job ended is read before its end is told.
	over := (store.Terminal(j.State) || (!ls.follow && j.Attempt > ls.attempt)) && !hasLive(j)
	if ls.attempt > 0 && placed {
		path := ls.s.logPath(api.ReplicaKey{Job: j.ID, Gang: rp.Gang, Replica: rp.Replica, Attempt: ls.attempt})
		for {
			data, err := readAt(path, ls.offset, logChunk)
			if err != nil {
				ls.s.log.Error("read a replica's log", "job", j.ID, "rank", ls.rank, "attempt", ls.attempt, "err", err)
				return true, wrote, errors.Join(err, ls.st.sendJSON(api.LogStreamEnd, ls.stateData()))
			}
			if !over {
				// A character cut at the end of what arrived so far is
				// sent whole with the bytes that complete it.
				data = completeRunes(data)
			}
			if len(data) == 0 {
				break
			}
			ev := api.LogEvent{Rank: ls.rank, Attempt: ls.attempt, Offset: ls.offset, Next: ls.offset + int64(len(data)), Text: string(data)}
			ls.offset = ev.Next
			wrote = true
			if err := ls.st.sendJSON(api.LogStreamLog, ev); err != nil {
				return true, wrote, err
			}
			if len(data) < logChunk-utf8.UTFMax {
				break
			}
		}
	}
	if over {
		return true, wrote, ls.st.sendJSON(api.LogStreamEnd, ls.stateData())
	}
	return false, wrote, nil
}

// completeRunes drops an incomplete UTF-8 sequence at the end of b.
func completeRunes(b []byte) []byte {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return b
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}
