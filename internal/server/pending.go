package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// pending is GET /v1/pending: the pending jobs p may see, queue by queue
// in the tree's order and in each queue's own order, each with its place
// in its queue and why it waits, as the scheduling core keeps them (at
// O(1) a job: sched.Core.Pending). The jobs of a page that wait for
// capacity also get their earliest start, which may cost the core a
// what-if search each: the page is bounded (MaxPendingPage). With job=ID
// it lists that job alone, when it is pending and p may see it.
func (s *Server) pending(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	f, e := s.parseFilter(q, p)
	if e != nil {
		writeErr(w, e)
		return
	}
	if f.state != "" {
		writeErr(w, api.Invalid("state", "GET /v1/pending lists pending jobs only; list other states with GET /v1/jobs?state=%s", f.state))
		return
	}
	limit := api.DefaultPendingPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxPendingPage {
			writeErr(w, api.Invalid("limit", "%q: want a page size of 1..%d (default %d)", v, api.MaxPendingPage, api.DefaultPendingPage))
			return
		}
		limit = n
	}
	offset := 0
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeErr(w, api.Invalid("offset", "%q: want the \"next\" offset of a previous page, 0 or more", v))
			return
		}
		offset = n
	}
	// job asks for one job's place: the dashboard's page of a job.
	only := q.Get("job")
	out, err := exec(r.Context(), s, func(l *loop, reply func(api.PendingList)) {
		qi := l.s.queues.Load()
		out := api.PendingList{Jobs: []api.PendingJob{}}
		l.core.Pending(func(wt sched.Waiting) bool {
			if f.queue != "" && wt.Queue != f.queue {
				return true
			}
			tenant := qi.tenantOf[wt.Queue]
			if !p.sees(tenant) || (f.tenant != "" && tenant != f.tenant) {
				return true
			}
			// The core's job is a job's unit: the job itself, or one
			// element of an array job.
			j, u, ok := l.lc.Unit(wt.Job)
			if !ok || j.Units[u].State != store.Pending || (f.kind != "" && j.Spec.Kind.String() != f.kind) {
				return true
			}
			if only != "" && j.ID != only {
				return true
			}
			out.Total++
			if out.Total <= offset || len(out.Jobs) == limit {
				return true
			}
			pj := api.PendingJob{ID: j.ID, Name: j.Name, Tenant: j.Tenant, Queue: j.Queue, Kind: j.Spec.Kind.String(),
				Priority: j.Spec.Priority, Submitted: msTime(j.SubmittedMs), Position: wt.Position,
				Code: wt.Status.Code.String(), Reason: wt.Status.Text(wallTime)}
			if j.Run.Independent() || j.Service != nil {
				e := u
				pj.Element = &e
			}
			if at := l.core.EarliestStart(wt.Job); at >= 0 {
				t := time.Unix(at, 0).UTC()
				pj.EarliestStart = &t
			}
			out.Jobs = append(out.Jobs, pj)
			return true
		})
		if offset+len(out.Jobs) < out.Total {
			out.Next = strconv.Itoa(offset + len(out.Jobs))
		}
		reply(out)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
