package server

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Administration beyond creation: tenants and queues are changed in the
// running core (QueuesChanged) and the store together, deleted only when
// nothing of theirs is left unfinished, tokens are listed and revoked, and
// nodes drained and undrained.

// setQueues gives the core a new queue tree (it may refuse), then the
// store, then the handlers' index.
func (l *loop) setQueues(specs []quota.Spec) error {
	if _, err := quota.New(specs); err != nil {
		return api.Invalid("", "%v", err)
	}
	r, err := l.core.Apply(sched.QueuesChanged{Specs: l.acct.overlay(specs, l.now())})
	if err != nil {
		return api.Invalid("", "%v", err)
	}
	if err := l.s.db.PutQueues(specs); err != nil {
		if _, rerr := l.core.Apply(sched.QueuesChanged{Specs: l.acct.overlay(l.specs, l.now())}); rerr != nil {
			l.log.Error("restore queue tree", "err", rerr)
		}
		return api.Internal("store queues: %v", err)
	}
	l.specs = specs
	l.s.queues.Store(newQueueIndex(specs))
	// Pending jobs of queues that are gone were rejected.
	l.take(r, l.now())
	return nil
}

// editQueue changes one queue of the tree on the loop.
func (l *loop) editQueue(name string, edit func(sp *quota.Spec)) error {
	specs := slices.Clone(l.specs)
	i := slices.IndexFunc(specs, func(sp quota.Spec) bool { return sp.Name == name })
	if i < 0 {
		return api.NotFound("no queue %q", name)
	}
	sp := specs[i]
	sp.Quotas = maps.Clone(sp.Quotas)
	edit(&sp)
	specs[i] = sp
	return l.setQueues(specs)
}

// applyQuotas merges a change of quotas: a flavor given replaces that
// flavor's limits, a nil one drops them.
func applyQuotas(sp *quota.Spec, change map[string]*api.Quota) {
	for f, q := range change {
		if q == nil {
			delete(sp.Quotas, f)
			continue
		}
		if sp.Quotas == nil {
			sp.Quotas = map[string]quota.Limits{}
		}
		sp.Quotas[f] = quotaSpec(map[string]api.Quota{f: *q})[f]
	}
	if len(sp.Quotas) == 0 {
		sp.Quotas = nil
	}
}

// below lists a queue and every queue under it.
func (l *loop) below(name string) []string {
	out := []string{name}
	for i := 0; i < len(out); i++ {
		for _, sp := range l.specs {
			if sp.Parent == out[i] {
				out = append(out, sp.Name)
			}
		}
	}
	return out
}

// unfinished lists the jobs of the queues that are not over: pending,
// running, stopping, or ended with processes still being stopped.
func (l *loop) unfinished(queues []string) []*store.Job {
	var out []*store.Job
	l.lc.Jobs(func(j *store.Job) {
		if slices.Contains(queues, j.Queue) {
			out = append(out, j)
		}
	})
	slices.SortFunc(out, func(a, b *store.Job) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// busy refuses the deletion of what still has unfinished jobs, naming
// them (the first ten) and what to do.
func busy(what string, jobs []*store.Job) *api.Error {
	var names []string
	for i, j := range jobs {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(jobs)-10))
			break
		}
		names = append(names, fmt.Sprintf("%s (%s)", j.ID, j.State))
	}
	return api.Conflict("%s has %d job%s not finished: %s; cancel %s first (gpufleet cancel ID...)",
		what, len(jobs), plural(len(jobs)), strings.Join(names, ", "), map[bool]string{true: "it", false: "them"}[len(jobs) == 1])
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (s *Server) tenantOrNotFound(name string) *api.Error {
	qi := s.queues.Load()
	if i, ok := qi.byName[name]; !ok || qi.specs[i].Parent != "" {
		if ok {
			return api.NotFound("no tenant %q: it is a queue of tenant %s", name, qi.tenantOf[name])
		}
		return api.NotFound("no tenant %q", name)
	}
	return nil
}

func (s *Server) queueOrNotFound(name string) *api.Error {
	qi := s.queues.Load()
	i, ok := qi.byName[name]
	switch {
	case !ok:
		return api.NotFound("no queue %q", name)
	case qi.specs[i].Parent == "":
		return api.NotFound("no queue %q: it is a tenant (see /v1/tenants/%s)", name, name)
	}
	return nil
}

func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request, _ principal) {
	name := r.PathValue("name")
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	u, e := api.DecodeUpdateTenant(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	if e := s.tenantOrNotFound(name); e != nil {
		writeErr(w, e)
		return
	}
	type answer struct {
		t   api.Tenant
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		err := l.editQueue(name, func(sp *quota.Spec) {
			if u.Weight != nil {
				sp.Weight = *u.Weight
			}
			applyQuotas(sp, u.Quotas)
		})
		if err != nil {
			reply(answer{err: err})
			return
		}
		reply(answer{t: l.tenantViews(name)[0]})
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("tenant changed", "tenant", name)
	writeJSON(w, http.StatusOK, a.t)
}

func (s *Server) updateQueue(w http.ResponseWriter, r *http.Request, _ principal) {
	name := r.PathValue("name")
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	u, e := api.DecodeUpdateQueue(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	if e := s.queueOrNotFound(name); e != nil {
		writeErr(w, e)
		return
	}
	type answer struct {
		q   api.Queue
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		err := l.editQueue(name, func(sp *quota.Spec) {
			if u.Weight != nil {
				sp.Weight = *u.Weight
			}
			if u.Strict != nil {
				sp.Strict = *u.Strict
			}
			applyQuotas(sp, u.Quotas)
		})
		if err != nil {
			reply(answer{err: err})
			return
		}
		for _, q := range l.queueViews("") {
			if q.Name == name {
				reply(answer{q: q})
				return
			}
		}
		reply(answer{err: api.Internal("queue %s vanished", name)})
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("queue changed", "queue", name)
	writeJSON(w, http.StatusOK, a.q)
}

// deleteTenant removes a tenant and its queues once none of their jobs is
// unfinished (else 409 naming them), revokes the tenant's tokens, and
// deletes its finished jobs with their logs: a tenant created later under
// the same name starts with nothing of this one's.
func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request, _ principal) {
	name := r.PathValue("name")
	if e := s.tenantOrNotFound(name); e != nil {
		writeErr(w, e)
		return
	}
	res, err := exec(r.Context(), s, func(l *loop, reply func(error)) {
		queues := l.below(name)
		if jobs := l.unfinished(queues); len(jobs) > 0 {
			reply(busy("tenant "+name, jobs))
			return
		}
		reply(l.setQueues(slices.DeleteFunc(slices.Clone(l.specs), func(sp quota.Spec) bool { return slices.Contains(queues, sp.Name) })))
	})
	if err == nil {
		err = res
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	cutoff := s.cfg.Now().UnixMilli()
	revoked, err := s.db.DeleteTokens(func(t store.Token) bool { return t.Role == store.RoleTenant && t.Tenant == name }, nil)
	if err != nil {
		writeErr(w, api.Internal("the tenant is deleted, but revoking its tokens failed: %v", err))
		return
	}
	purged, err := s.purgeJobs(name, func(j *store.Job) bool { return store.Terminal(j.State) && j.SubmittedMs <= cutoff })
	if err != nil {
		writeErr(w, api.Internal("the tenant is deleted, but deleting its finished jobs failed: %v", err))
		return
	}
	s.log.Info("tenant deleted", "tenant", name, "tokens", len(revoked), "jobs", purged)
	w.WriteHeader(http.StatusNoContent)
}

// purgeJobs deletes a tenant's stored jobs that done selects, with their
// logs, through the tenant's index, pruneScan jobs a commit.
func (s *Server) purgeJobs(tenant string, done func(*store.Job) bool) (int, error) {
	n := 0
	after := uint64(0)
	for {
		var gone []*store.Job
		more := false
		err := s.db.List(store.Filter{Tenant: tenant}, after, func(j *store.Job) bool {
			if len(gone) == pruneScan {
				more = true
				return false
			}
			after = j.Seq
			if !hasLive(j) && done(j) {
				gone = append(gone, j)
			}
			return true
		})
		if err == nil && len(gone) > 0 {
			err = s.db.Commit(store.Change{Deleted: gone})
		}
		if err != nil {
			return n, err
		}
		for _, j := range gone {
			if err := os.RemoveAll(filepath.Join(s.logDir(), j.ID)); err != nil {
				s.log.Warn("removing a deleted job's logs", "job", j.ID, "err", err)
			}
		}
		n += len(gone)
		if !more {
			return n, nil
		}
	}
}

// deleteQueue removes a team queue with no queues below it and no
// unfinished jobs (else 409 naming them). Its finished jobs stay with its
// tenant.
func (s *Server) deleteQueue(w http.ResponseWriter, r *http.Request, _ principal) {
	name := r.PathValue("name")
	if e := s.queueOrNotFound(name); e != nil {
		writeErr(w, e)
		return
	}
	res, err := exec(r.Context(), s, func(l *loop, reply func(error)) {
		if kids := l.below(name)[1:]; len(kids) > 0 {
			reply(api.Conflict("queue %s has queues below it (%s); delete them first", name, strings.Join(kids, ", ")))
			return
		}
		if jobs := l.unfinished([]string{name}); len(jobs) > 0 {
			reply(busy("queue "+name, jobs))
			return
		}
		reply(l.setQueues(slices.DeleteFunc(slices.Clone(l.specs), func(sp quota.Spec) bool { return sp.Name == name })))
	})
	if err == nil {
		err = res
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("queue deleted", "queue", name)
	w.WriteHeader(http.StatusNoContent)
}

func tokenInfo(t store.Token) api.TokenInfo {
	return api.TokenInfo{ID: t.ID(), Role: t.Role, Tenant: t.Tenant, Node: t.Node, Created: time.Unix(t.Created, 0).UTC()}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ principal) {
	toks, err := s.db.Tokens()
	if err != nil {
		writeErr(w, api.Internal("list tokens: %v", err))
		return
	}
	slices.SortFunc(toks, func(a, b store.Token) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.Hash, b.Hash))
	})
	out := api.TokenList{Tokens: []api.TokenInfo{}}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, tokenInfo(t))
	}
	writeJSON(w, http.StatusOK, out)
}

// errLastAdmin keeps the server administrable.
var errLastAdmin = errors.New("last admin token")

// revokeToken deletes a token by its ID; the last admin token is kept
// (409), so that the server can still be administered.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, _ principal) {
	id := r.PathValue("id")
	gone, err := s.db.DeleteTokens(func(t store.Token) bool { return t.ID() == id }, func(left []store.Token) error {
		if !slices.ContainsFunc(left, func(t store.Token) bool { return t.Role == store.RoleAdmin }) {
			return errLastAdmin
		}
		return nil
	})
	switch {
	case errors.Is(err, errLastAdmin):
		writeErr(w, api.Conflict("token %s is the last admin token; create another (gpufleet admin create token --admin) before revoking it", id))
		return
	case err != nil:
		writeErr(w, api.Internal("revoke token: %v", err))
		return
	case len(gone) == 0:
		writeErr(w, api.NotFound("no token %q (gpufleet get tokens lists their IDs)", id))
		return
	}
	s.log.Info("token revoked", "token", id, "role", gone[0].Role)
	w.WriteHeader(http.StatusNoContent)
}

// nodeView is one node as an admin sees it.
func (l *loop) nodeView(name string) api.Node {
	for _, v := range l.nodeViews(true) {
		if v.Name == name {
			return v
		}
	}
	return api.Node{Name: name}
}

// drainNode keeps new work off a node (the core's NodeCordoned: its jobs
// stay where they are); with evict, those jobs are then stopped as a
// preemption without notice stops them (SIGTERM, SIGKILL after the stop
// grace) and requeued once their processes are gone, so their devices are
// never handed on while they still run.
func (l *loop) drainNode(n *node, evict bool, now time.Time) error {
	name := n.rec.Info.Name
	if !n.rec.Drained && n.rec.State == fleet.Ready.String() {
		n.rec.State = fleet.Draining.String()
		if err := l.apply(sched.NodeCordoned{Node: name}, now); err != nil {
			n.rec.State = fleet.Ready.String()
			return api.Internal("drain node %s: %v", name, err)
		}
	}
	// A node that is down stays down, and comes back drained.
	n.rec.Drained = true
	l.markNode(n)
	if !evict {
		return nil
	}
	l.follow(l.lc.Evict(name, now.UnixMilli()), now)
	return nil
}

// undrainNode lets a drained node take work again (once it is up).
func (l *loop) undrainNode(n *node) error {
	if n.rec.State == fleet.Draining.String() {
		if _, err := l.core.Apply(sched.NodeReturned{Node: n.rec.Info.Name}); err != nil {
			return api.Internal("undrain node %s: %v", n.rec.Info.Name, err)
		}
		n.rec.State = fleet.Ready.String()
	}
	n.rec.Drained = false
	l.markNode(n)
	return nil
}

func (s *Server) drainNode(w http.ResponseWriter, r *http.Request, _ principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	d, e := api.DecodeDrainNode(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	s.nodeOp(w, r, func(l *loop, n *node) error { return l.drainNode(n, d.Evict, l.now()) }, "node drained", "evict", d.Evict)
}

func (s *Server) undrainNode(w http.ResponseWriter, r *http.Request, _ principal) {
	s.nodeOp(w, r, func(l *loop, n *node) error { return l.undrainNode(n) }, "node undrained")
}

// nodeOp runs op on the named node in the loop and answers the node once
// the change is durable.
func (s *Server) nodeOp(w http.ResponseWriter, r *http.Request, op func(l *loop, n *node) error, msg string, args ...any) {
	name := r.PathValue("name")
	type answer struct {
		n   api.Node
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		n := l.nodes[name]
		if n == nil {
			reply(answer{err: api.NotFound("no node %q", name)})
			return
		}
		if err := op(l, n); err != nil {
			reply(answer{err: err})
			return
		}
		l.afterCommit(func(err error) { reply(answer{l.nodeView(name), err}) })
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info(msg, append([]any{"node", name}, args...)...)
	writeJSON(w, http.StatusOK, a.n)
}
