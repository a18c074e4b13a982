package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// jobFilter is what a listing of jobs narrows to; empty fields match all.
type jobFilter struct {
	state, queue, tenant, kind string
}

// parseFilter reads a listing's filter parameters. A queue or tenant the
// principal may not see is told as one that does not exist.
func (s *Server) parseFilter(q url.Values, p principal) (jobFilter, *api.Error) {
	f := jobFilter{state: q.Get("state"), queue: q.Get("queue"), tenant: q.Get("tenant"), kind: q.Get("kind")}
	if f.state != "" && !slices.Contains(store.States, f.state) {
		return f, api.Invalid("state", "%q: want one of %s", f.state, strings.Join(store.States, ", "))
	}
	qi := s.queues.Load()
	if f.queue != "" {
		if t, ok := qi.tenantOf[f.queue]; !ok || !p.sees(t) {
			return f, api.Invalid("queue", "no queue %q%s", f.queue, s.queueHint(qi, p))
		}
	}
	if f.tenant != "" {
		if i, ok := qi.byName[f.tenant]; !ok || qi.specs[i].Parent != "" || !p.sees(f.tenant) {
			if p.admin() {
				return f, api.Invalid("tenant", "no tenant %q", f.tenant)
			}
			return f, api.Invalid("tenant", "no tenant %q: this token sees tenant %s only", f.tenant, p.tenant)
		}
	}
	if f.kind != "" {
		if _, err := sched.ParseKind(f.kind); err != nil {
			return f, api.Invalid("kind", "%q: want one of %s", f.kind, strings.Join(sched.KindNames(), ", "))
		}
	}
	return f, nil
}

// match reports whether p may see job j and the filter takes it.
func (f jobFilter) match(j *store.Job, p principal) bool {
	return p.sees(j.Tenant) && (f.state == "" || j.State == f.state) && (f.queue == "" || j.Queue == f.queue) &&
		(f.tenant == "" || j.Tenant == f.tenant) && (f.kind == "" || j.Spec.Kind.String() == f.kind)
}

// live reports whether the filter asks for a state only jobs the loop
// holds can be in.
func (f jobFilter) live() bool {
	switch f.state {
	case store.Pending, store.Running, store.Preempting, store.Cancelling:
		return true
	}
	return false
}

// maxScan bounds the records one page of GET /v1/jobs reads from the
// store: a filter few jobs match answers a shorter page (with the cursor
// to go on) rather than reading the whole store in one request. Reading a
// stored record costs 30 to 100 µs on two shared cores, as loaded as they
// are (BenchmarkJobPages/budget, docs/BENCHMARKS.md), so a page reads for
// at most about half a second, inside the dashboard's 1 s.
const maxScan = 5000

// jobPage is a page's position: after (oldest first) or before (newest
// first) a cursor, which is a job's sequence number.
type jobPage struct {
	newest bool
	cursor uint64
	limit  int
}

func parsePage(q url.Values) (jobPage, *api.Error) {
	pg := jobPage{limit: api.DefaultJobPage}
	switch o := q.Get("order"); o {
	case "", "oldest":
	case "newest":
		pg.newest = true
	default:
		return pg, api.Invalid("order", "%q: want oldest (the default) or newest", o)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxJobPage {
			return pg, api.Invalid("limit", "%q: want a page size of 1..%d (default %d)", v, api.MaxJobPage, api.DefaultJobPage)
		}
		pg.limit = n
	}
	name, other := "after", "before"
	if pg.newest {
		name, other = other, name
	}
	if q.Get(other) != "" {
		return pg, api.Invalid(other, "%s pages go by %q: with order=%s, pass the previous page's \"next\" as %s", orderName(pg.newest), name, orderName(pg.newest), name)
	}
	if v := q.Get(name); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return pg, api.Invalid(name, "%q: want the \"next\" cursor of a previous page", v)
		}
		pg.cursor = n
	}
	return pg, nil
}

func orderName(newest bool) string {
	if newest {
		return "newest-first"
	}
	return "oldest-first"
}

// listJobs is GET /v1/jobs: a page of the jobs p may see that the filter
// takes, oldest or newest first. Jobs in a live state (pending, running,
// stopping) are read from the loop, which holds every such job, at a cost
// that grows with the live jobs and not with the store; other filters
// read the store in order, at most maxScan records a page.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	f, e := s.parseFilter(q, p)
	if e != nil {
		writeErr(w, e)
		return
	}
	pg, e := parsePage(q)
	if e != nil {
		writeErr(w, e)
		return
	}
	var out api.JobList
	var err error
	if f.live() {
		out, err = s.liveJobs(r.Context(), f, p, pg)
	} else {
		out, err = s.storedJobs(f, p, pg, maxScan)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := s.explainPending(r, out.Jobs); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// liveJobs pages through the loop's live jobs.
func (s *Server) liveJobs(ctx context.Context, f jobFilter, p principal, pg jobPage) (api.JobList, error) {
	return exec(ctx, s, func(l *loop, reply func(api.JobList)) {
		var match []*store.Job
		l.lc.Jobs(func(j *store.Job) {
			if !f.match(j, p) {
				return
			}
			if pg.cursor > 0 && ((pg.newest && j.Seq >= pg.cursor) || (!pg.newest && j.Seq <= pg.cursor)) {
				return
			}
			match = append(match, j)
		})
		slices.SortFunc(match, func(a, b *store.Job) int {
			if pg.newest {
				return compareSeq(b.Seq, a.Seq)
			}
			return compareSeq(a.Seq, b.Seq)
		})
		out := api.JobList{Jobs: []api.Job{}}
		for i, j := range match {
			if i == pg.limit {
				out.Next = strconv.FormatUint(match[i-1].Seq, 10)
				break
			}
			out.Jobs = append(out.Jobs, jobView(j))
		}
		reply(out)
	})
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// storedJobs pages through the store, reading at most scan records.
func (s *Server) storedJobs(f jobFilter, p principal, pg jobPage, scan int) (api.JobList, error) {
	out := api.JobList{Jobs: []api.Job{}}
	var last uint64
	read := 0
	take := func(j *store.Job) bool {
		read++
		if f.match(j, p) {
			if len(out.Jobs) == pg.limit {
				// One more matches: there is a next page, from the last
				// one returned.
				out.Next = strconv.FormatUint(last, 10)
				return false
			}
			out.Jobs = append(out.Jobs, jobView(j))
		}
		last = j.Seq
		if read == scan {
			// The page ends where the reading stopped; the next goes on.
			out.Next = strconv.FormatUint(last, 10)
			return false
		}
		return true
	}
	var err error
	if pg.newest {
		err = s.jobsBefore(pg.cursor, take)
	} else {
		err = s.db.JobsAfter(pg.cursor, take)
	}
	if err != nil {
		return out, api.Internal("list jobs: %v", err)
	}
	return out, nil
}

// jobsBefore calls fn for the jobs submitted before sequence number
// before (0: every job), newest first, until fn returns false. The store
// reads forward only, so it reads windows of sequence numbers backwards,
// each twice the last (up to 4096), from a seek to the window's start:
// a page costs what it reads, not what lies before it.
func (s *Server) jobsBefore(before uint64, fn func(*store.Job) bool) error {
	top := before
	if top == 0 {
		last, err := s.lastSeq()
		if err != nil || last == 0 {
			return err
		}
		top = last + 1
	}
	window := uint64(64)
	for top > 1 {
		lo := top - 1 - min(window, top-1)
		var batch []*store.Job
		err := s.db.JobsAfter(lo, func(j *store.Job) bool {
			if j.Seq >= top {
				return false
			}
			batch = append(batch, j)
			return true
		})
		if err != nil {
			return err
		}
		for i := len(batch) - 1; i >= 0; i-- {
			if !fn(batch[i]) {
				return nil
			}
		}
		top = lo + 1
		window = min(2*window, 4096)
	}
	return nil
}

// lastSeq finds the newest job's sequence number (0 for an empty store)
// with seeks alone: doubling to a number no job is after, then bisecting.
func (s *Server) lastSeq() (uint64, error) {
	after := func(x uint64) (bool, error) {
		found := false
		err := s.db.JobsAfter(x, func(*store.Job) bool { found = true; return false })
		return found, err
	}
	some, err := after(0)
	if err != nil || !some {
		return 0, err
	}
	lo, hi := uint64(0), uint64(1024)
	for {
		ok, err := after(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	// A job is after lo and none after hi: the newest is in (lo, hi].
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := after(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}
