package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/api/jobdoc"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
	"github.com/gpufleet/gpufleet/internal/store"
)

// principal is who a request acts for.
type principal struct {
	role   string
	tenant string
	// node is the node a node token is bound to ("" until it registers
	// one); hash names the token in the store.
	node string
	hash string
}

func (p principal) admin() bool { return p.role == store.RoleAdmin }

// sees reports whether p may see a tenant's objects.
func (p principal) sees(tenant string) bool { return p.admin() || p.tenant == tenant }

type route struct {
	method, pattern string
	// roles may call the route; nil means anyone.
	roles []string
	h     func(w http.ResponseWriter, r *http.Request, p principal)
}

var (
	users = []string{store.RoleAdmin, store.RoleTenant}
	admin = []string{store.RoleAdmin}
	nodes = []string{store.RoleAdmin, store.RoleNode}
	// The metrics name every tenant's usage: not for tenant tokens.
	scrapers = []string{store.RoleAdmin, store.RoleMetrics}
)

func (s *Server) routes() []route {
	return append([]route{
		{"GET", "/v1/openapi.yaml", nil, s.openAPI},
		{"GET", "/v1/healthz", nil, s.healthz},
		{"POST", "/v1/jobs", users, s.submit},
		{"GET", "/v1/jobs", users, s.listJobs},
		{"GET", "/v1/jobs/{id}", users, s.getJob},
		{"POST", "/v1/jobs/{id}/cancel", users, s.cancelJob},
		{"GET", "/v1/jobs/{id}/logs", users, s.jobLogs},
		{"GET", "/v1/jobs/{id}/logs/stream", users, s.streamLogs},
		{"GET", "/v1/jobs/{id}/events", users, s.jobEvents},
		{"GET", "/v1/pending", users, s.pending},
		{"GET", "/v1/events", users, s.streamEvents},
		{"GET", "/v1/history", users, s.history},
		{"GET", "/v1/whoami", users, s.whoami},
		{"GET", "/v1/queues", users, s.listQueues},
		{"POST", "/v1/queues", admin, s.createQueue},
		{"PATCH", "/v1/queues/{name}", admin, s.updateQueue},
		{"DELETE", "/v1/queues/{name}", admin, s.deleteQueue},
		{"GET", "/v1/tenants", users, s.listTenants},
		{"POST", "/v1/tenants", admin, s.createTenant},
		{"PATCH", "/v1/tenants/{name}", admin, s.updateTenant},
		{"DELETE", "/v1/tenants/{name}", admin, s.deleteTenant},
		{"GET", "/v1/tokens", admin, s.listTokens},
		{"POST", "/v1/tokens", admin, s.createToken},
		{"DELETE", "/v1/tokens/{id}", admin, s.revokeToken},
		{"GET", "/v1/nodes", users, s.listNodes},
		{"GET", "/v1/services", users, s.listServices},
		{"GET", "/v1/services/{id}", users, s.getService},
		{"PATCH", "/v1/services/{id}", users, s.scaleServiceBounds},
		{"POST", "/v1/services/{id}/keys", users, s.createServiceKey},
		{"DELETE", "/v1/services/{id}/keys/{key}", users, s.revokeServiceKey},
		{"POST", "/v1/nodes/{name}/drain", admin, s.drainNode},
		{"POST", "/v1/nodes/{name}/undrain", admin, s.undrainNode},
		{"GET", "/v1/backup", admin, s.backup},
		{"GET", "/v1/export", admin, s.export},
		{"POST", "/v1/agent/register", nodes, s.register},
		{"POST", "/v1/agent/heartbeat", nodes, s.heartbeat},
	}, append(s.accountingRoutes(), s.siteRoutes()...)...)
}

// MetricsPath is where the Prometheus metrics are served.
const MetricsPath = "/metrics"

// Routes lists the "METHOD /path" patterns the server mounts.
func Routes() []string {
	var out []string
	for _, rt := range (&Server{}).routes() {
		out = append(out, rt.method+" "+rt.pattern)
	}
	return append(out, "GET "+MetricsPath)
}

// Handler is the server's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	metrics := promhttp.HandlerFor(s.metrics.gatherer(s.reg), promhttp.HandlerOpts{})
	mux.Handle("GET "+MetricsPath, s.wrap(route{"GET", MetricsPath, scrapers, func(w http.ResponseWriter, r *http.Request, _ principal) {
		metrics.ServeHTTP(w, r)
	}}))
	mux.Handle(api.ServePrefix+"{tenant}/{service}/{rest...}", s.gw)
	mux.Handle(api.ServePrefix+"{tenant}/{service}", s.gw)
	s.mountWeb(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, api.NotFound("no route %s %s; see /v1/openapi.yaml", r.Method, r.URL.Path))
	})
	if s.elector != nil {
		return s.deadlines(s.forward(mux))
	}
	return s.deadlines(mux)
}

// deadlines gives every request a deadline for its body (BodyTimeout) and
// one for its answer (WriteTimeout), counted from when its headers were
// read, so that a client that sends a body slowly, or never, or reads the
// answer slowly, holds a connection for a bounded time. The body deadline
// also bounds the reading of a body a handler left unread (net/http reads
// it before reusing the connection). A route that streams its answer
// moves its write deadline with its own http.ResponseController.
func (s *Server) deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// Not every ResponseWriter has a connection (a test's recorder):
		// without one there is nothing to bound.
		_ = rc.SetReadDeadline(now.Add(s.cfg.BodyTimeout))
		_ = rc.SetWriteDeadline(now.Add(s.cfg.WriteTimeout))
		next.ServeHTTP(w, r)
	})
}

func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p principal
		if rt.roles != nil {
			var err *api.Error
			if p, err = s.authenticate(r); err != nil {
				writeErr(w, err)
				return
			}
			if !slices.Contains(rt.roles, p.role) {
				writeErr(w, api.Forbidden("%s %s is for %s tokens, not %s tokens", rt.method, rt.pattern, strings.Join(rt.roles, " or "), p.role))
				return
			}
		}
		rt.h(w, r, p)
	})
}

func (s *Server) authenticate(r *http.Request) (principal, *api.Error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return principal{}, api.Unauthorized("missing bearer token: send Authorization: Bearer TOKEN")
	}
	hash := hashToken(strings.TrimSpace(tok))
	t, err := s.db.Token(hash)
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, api.Unauthorized("unknown token")
	}
	if err != nil {
		return principal{}, api.Internal("token lookup: %v", err)
	}
	return principal{role: t.Role, tenant: t.Tenant, node: t.Node, hash: hash}, nil
}

// actsFor checks that p may speak for a node: an admin for any, a node
// token for the one it is bound to.
func (p principal) actsFor(node string) *api.Error {
	switch {
	case p.role != store.RoleNode:
		return nil
	case p.node == "":
		return api.Forbidden("this node token speaks for no node yet: register the node first (POST /v1/agent/register)")
	case p.node != node:
		return api.Forbidden("this token speaks for node %s, not %s; each node has its own token (gpufleet admin create token --node %s)", p.node, node, node)
	}
	return nil
}

func writeErr(w http.ResponseWriter, err error) {
	var e *api.Error
	if !errors.As(err, &e) {
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			e = api.Unavailable("request cancelled: %v", err)
		default:
			e = api.Internal("%v", err)
		}
	}
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	writeJSON(w, e.Status, api.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// The status line is out; a client that went away is all that can
	// fail here.
	_ = enc.Encode(v)
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request, _ principal) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(api.OpenAPI)
}

// healthz says the server is up, and for one of a group whether it leads
// and which server does.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ principal) {
	h := map[string]string{"status": "ok"}
	if s.elector != nil {
		h["role"], h["leader"] = "standby", s.elector.Leader()
		if s.Leading() {
			h["role"], h["leader"] = "leader", s.cfg.Advertise
		}
	}
	writeJSON(w, http.StatusOK, h)
}

// jobNameMax leaves room for the "-SEQ" suffix within job id limits.
const jobNameMax = 100

// mediaType checks a request body's Content-Type against the types a route
// takes and returns the one given ("" when none is: the body is taken as
// the route's own syntax).
func mediaType(r *http.Request, allowed ...string) (string, *api.Error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && slices.Contains(allowed, mt) {
		return mt, nil
	}
	return "", &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeUnsupported, Field: "Content-Type",
		Message: fmt.Sprintf("Content-Type %q: want %s", ct, strings.Join(allowed, ", "))}
}

// readJSON reads a JSON request body of at most limit bytes.
func readJSON(r *http.Request, limit int64) ([]byte, *api.Error) {
	if _, e := mediaType(r, "application/json"); e != nil {
		return nil, e
	}
	return api.ReadBody(r.Body, limit)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, p principal) {
	mt, e := mediaType(r, slices.Sorted(maps.Keys(api.JobMediaTypes))...)
	if e != nil {
		writeErr(w, e)
		return
	}
	body, e := api.ReadBody(r.Body, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	file := r.URL.Query().Get("filename")
	if file == "" {
		file = "request"
	}
	js, e := jobdoc.DecodeAs(file, body, api.JobMediaTypes[mt])
	if e != nil {
		writeErr(w, e)
		return
	}
	name := string(js.Job.ID)
	if name == "" {
		writeErr(w, api.Invalid("name", "missing: a job needs a name"))
		return
	}
	if len(name) > jobNameMax {
		writeErr(w, api.Invalid("name", "%q is longer than %d characters", name, jobNameMax))
		return
	}
	qi := s.queues.Load()
	q := js.Job.Queue
	tenant, ok := qi.tenantOf[q]
	if !ok || !p.sees(tenant) {
		writeErr(w, api.Invalid("queue", "no queue %q%s", q, s.queueHint(qi, p)))
		return
	}
	if kids := qi.children[q]; len(kids) > 0 {
		writeErr(w, api.Invalid("queue", "%q has team queues; submit to one of them (%s)", q, strings.Join(qi.leavesOf(tenant), ", ")))
		return
	}
	if js.Job.Tenant != "" && js.Job.Tenant != tenant {
		writeErr(w, api.Invalid("tenant", "%q: queue %s belongs to tenant %s", js.Job.Tenant, q, tenant))
		return
	}
	cat := fleet.DefaultCatalog()
	for i, g := range js.Job.Gangs {
		for _, a := range g.Shape.Accel {
			if cat.Index(a) < 0 {
				writeErr(w, api.Invalid(fmt.Sprintf("gangs[%d].accelerators", i), "type %q is not in the catalog (want one of %s)", a, strings.Join(cat.Names(), ", ")))
				return
			}
		}
	}
	key := r.Header.Get(api.HeaderIdempotency)
	if len(key) > 256 {
		writeErr(w, api.Invalid(api.HeaderIdempotency, "key of %d bytes: want at most 256", len(key)))
		return
	}
	sum := sha256.Sum256(append([]byte(file+"\x00"), body...))
	sub := submission{tenant: tenant, key: key, bodyHash: hex.EncodeToString(sum[:]), looked: time.Now()}
	if key != "" {
		switch j, hash, err := s.db.Idempotent(tenant, key); {
		case err == nil && hash != sub.bodyHash:
			writeErr(w, api.Conflict("idempotency key %q was used for a different job document", key))
			return
		case err == nil:
			writeJSON(w, http.StatusOK, jobView(&j))
			return
		case !errors.Is(err, store.ErrNotFound):
			writeErr(w, api.Internal("store: %v", err))
			return
		}
	}
	nowMs := s.cfg.Now().UnixMilli()
	sub.build = func(seq uint64) store.Job {
		id := fmt.Sprintf("%s-%d", name, seq)
		spec := js.Job
		spec.ID, spec.Tenant = sched.JobID(id), tenant
		return store.Job{ID: id, Name: name, Queue: q, Spec: spec, Run: runOf(js.Run), State: store.Pending, SubmittedMs: nowMs,
			Service: serviceOf(js.Service)}
	}
	// Once the loop has it, the job goes in even if the client leaves.
	a, err := exec(context.WithoutCancel(r.Context()), s, func(l *loop, reply func(submitted)) { l.submit(sub, l.now(), reply) })
	if err == nil {
		err = a.err
	}
	switch {
	case errors.Is(err, store.ErrKeyReused):
		writeErr(w, api.Conflict("idempotency key %q was used for a different job document", key))
	case err != nil:
		writeErr(w, err)
	case !a.created:
		writeJSON(w, http.StatusOK, a.view)
	default:
		writeJSON(w, http.StatusCreated, a.view)
	}
}

func (s *Server) queueHint(qi *queueIndex, p principal) string {
	if p.admin() {
		return ""
	}
	if leaves := qi.leavesOf(p.tenant); len(leaves) > 0 {
		return fmt.Sprintf(" in tenant %s (its queues: %s)", p.tenant, strings.Join(leaves, ", "))
	}
	return fmt.Sprintf(" in tenant %s", p.tenant)
}

// explainPending fills in the core's explanation of the pending jobs of a
// list (a page: at most MaxJobPage), so that a listing says why each waits.
func (s *Server) explainPending(r *http.Request, jobs []api.Job) error {
	var ids []int
	for i := range jobs {
		if jobs[i].State == store.Pending {
			ids = append(ids, i)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	exs, err := exec(r.Context(), s, func(l *loop, reply func([]*api.Explanation)) {
		out := make([]*api.Explanation, len(ids))
		for k, i := range ids {
			if ex, ok := l.explain(jobs[i].ID, false); ok {
				out[k] = explanationView(ex)
			}
		}
		reply(out)
	})
	if err != nil {
		return err
	}
	for k, i := range ids {
		jobs[i].Explanation = exs[k]
	}
	return nil
}

// lookup reads a job the principal may see; another tenant's job is "not
// found", so its existence does not leak.
func (s *Server) lookup(id string, p principal) (store.Job, *api.Error) {
	j, err := s.db.Job(id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.sees(j.Tenant)) {
		return j, api.NotFound("job %s not found", id)
	}
	if err != nil {
		return j, api.Internal("read job %s: %v", id, err)
	}
	return j, nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, p principal) {
	j, e := s.lookup(r.PathValue("id"), p)
	if e != nil {
		writeErr(w, e)
		return
	}
	v := jobView(&j)
	if !store.Terminal(j.State) {
		type answer struct {
			ex sched.Explanation
			ok bool
		}
		a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
			ex, ok := l.explain(j.ID, true)
			reply(answer{ex, ok})
		})
		if err != nil {
			writeErr(w, err)
			return
		}
		if a.ok {
			v.Explanation = explanationView(a.ex)
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, p principal) {
	j, e := s.lookup(r.PathValue("id"), p)
	if e != nil {
		writeErr(w, e)
		return
	}
	type answer struct {
		job api.Job
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		live := l.lc.Job(j.ID)
		if live == nil || store.Terminal(live.State) {
			state := j.State
			if live != nil {
				state = live.State
			}
			reply(answer{err: api.Conflict("job %s is already %s", j.ID, state)})
			return
		}
		if err := l.cancel(live, l.now()); err != nil {
			reply(answer{err: err})
			return
		}
		v := jobView(live)
		l.afterCommit(func(err error) { reply(answer{v, err}) })
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.job)
}

// logPath is where a replica's log lives on the server.
func (s *Server) logPath(k api.ReplicaKey) string {
	return filepath.Join(s.logDir(), k.Job, strconv.Itoa(k.Attempt), fmt.Sprintf("%d-%d.log", k.Gang, k.Replica))
}

// maxLogRead bounds one log response.
const maxLogRead = 1 << 20

func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request, p principal) {
	j, e := s.lookup(r.PathValue("id"), p)
	if e != nil {
		writeErr(w, e)
		return
	}
	q := r.URL.Query()
	rank, offset, attempt := 0, int64(0), j.Attempt
	explicit := q.Get("attempt") != ""
	var err error
	if v := q.Get("rank"); v != "" {
		if rank, err = strconv.Atoi(v); err != nil || rank < 0 {
			writeErr(w, api.Invalid("rank", "%q: want a replica rank, 0 or more", v))
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 || offset > api.MaxLogSize {
			writeErr(w, api.Invalid("offset", "%q: want a byte offset of 0..%d (a replica's log holds at most %s)", v, api.MaxLogSize, spec.FormatBytes(api.MaxLogSize)))
			return
		}
	}
	if v := q.Get("attempt"); v != "" {
		if attempt, err = strconv.Atoi(v); err != nil || attempt < 1 || attempt > j.Attempt {
			if j.Attempt == 0 {
				writeErr(w, api.Invalid("attempt", "%q: job %s has not started an attempt yet", v, j.ID))
			} else {
				writeErr(w, api.Invalid("attempt", "%q: want 1..%d", v, j.Attempt))
			}
			return
		}
	}
	var data []byte
	if attempt > 0 {
		rp, at, ok := logReplica(&j, rank, attempt, explicit)
		if !ok {
			writeErr(w, api.Invalid("rank", "%d: job %s has ranks 0..%d", rank, j.ID, max(len(j.Replicas)-1, 0)))
			return
		}
		attempt = at
		data, err = readAt(s.logPath(api.ReplicaKey{Job: j.ID, Gang: rp.Gang, Replica: rp.Replica, Attempt: attempt}), offset, maxLogRead)
		if err != nil {
			// The error names the server's file; the operator's log gets
			// it, the client does not.
			s.log.Error("read a replica's log", "job", j.ID, "rank", rank, "attempt", attempt, "err", err)
			writeErr(w, api.Internal("the log of job %s rank %d could not be read; the server's log says why", j.ID, rank))
			return
		}
	}
	w.Header().Set(api.HeaderJobState, j.State)
	w.Header().Set(api.HeaderLogAttempt, strconv.Itoa(attempt))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set(api.HeaderLogNext, strconv.FormatInt(offset+int64(len(data)), 10))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

func readAt(path string, offset int64, max int) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, max)
	n, err := f.ReadAt(buf, offset)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:n], nil
}

// writeLogs stores log chunks the loop vouched for.
func (s *Server) writeLogs(chunks []api.LogChunk) {
	for _, c := range chunks {
		if len(c.Data) == 0 {
			continue
		}
		path := s.logPath(c.ReplicaKey)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			s.log.Error("log dir", "err", err)
			continue
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			s.log.Error("log file", "err", err)
			continue
		}
		if _, err := f.WriteAt(c.Data, c.Offset); err != nil {
			s.log.Error("log write", "err", err)
		}
		f.Close()
	}
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request, p principal) {
	qs, err := exec(r.Context(), s, func(l *loop, reply func([]api.Queue)) { reply(l.queueViews(p.tenant)) })
	if err != nil {
		writeErr(w, err)
		return
	}
	if qs == nil {
		qs = []api.Queue{}
	}
	writeJSON(w, http.StatusOK, api.QueueList{Queues: qs})
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p principal) {
	ts, err := exec(r.Context(), s, func(l *loop, reply func([]api.Tenant)) { reply(l.tenantViews(p.tenant)) })
	if err != nil {
		writeErr(w, err)
		return
	}
	if ts == nil {
		ts = []api.Tenant{}
	}
	writeJSON(w, http.StatusOK, api.TenantList{Tenants: ts})
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, p principal) {
	ns, err := exec(r.Context(), s, func(l *loop, reply func([]api.Node)) { reply(l.nodeViews(p.admin())) })
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.NodeList{Nodes: ns})
}

// changeQueues adds one queue spec to the tree: the core takes the new
// tree first (it may refuse), then the store.
func (s *Server) changeQueues(r *http.Request, add quota.Spec) error {
	res, err := exec(r.Context(), s, func(l *loop, reply func(error)) {
		for _, sp := range l.specs {
			if sp.Name == add.Name {
				reply(api.Conflict("a queue or tenant named %s exists", add.Name))
				return
			}
		}
		reply(l.setQueues(append(slices.Clone(l.specs), add)))
	})
	if err != nil {
		return err
	}
	return res
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, _ principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	t, e := api.DecodeCreateTenant(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	if err := s.changeQueues(r, quota.Spec{Name: t.Name, Weight: t.Weight, Quotas: quotaSpec(t.Quotas)}); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.Tenant{Name: t.Name, Weight: weight(t.Weight), Quotas: t.Quotas, Queues: []string{}})
}

func (s *Server) createQueue(w http.ResponseWriter, r *http.Request, _ principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	q, e := api.DecodeCreateQueue(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	qi := s.queues.Load()
	if i, ok := qi.byName[q.Tenant]; !ok || qi.specs[i].Parent != "" {
		writeErr(w, api.Invalid("tenant", "no tenant %q", q.Tenant))
		return
	}
	if err := s.changeQueues(r, quota.Spec{Name: q.Name, Parent: q.Tenant, Weight: q.Weight, Strict: q.Strict, Quotas: quotaSpec(q.Quotas)}); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.Queue{Name: q.Name, Tenant: q.Tenant, Parent: q.Tenant, Weight: weight(q.Weight), Strict: q.Strict, Quotas: q.Quotas})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, _ principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	t, e := api.DecodeCreateToken(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	if t.Role == api.RoleTenant {
		qi := s.queues.Load()
		if i, ok := qi.byName[t.Tenant]; !ok || qi.specs[i].Parent != "" {
			writeErr(w, api.Invalid("tenant", "no tenant %q", t.Tenant))
			return
		}
	}
	tok, err := s.CreateToken(t.Role, t.Tenant, t.Node)
	if err != nil {
		writeErr(w, api.Internal("%v", err))
		return
	}
	writeJSON(w, http.StatusCreated, api.Token{Token: tok, ID: hashToken(tok)[:store.TokenIDLen], Role: t.Role, Tenant: t.Tenant, Node: t.Node})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, p principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	info, e := api.DecodeRegister(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	if p.role == store.RoleNode && p.node == "" {
		// A token made without a node is bound to the first one it
		// registers, unless another token speaks for that node.
		t, err := s.db.BindToken(p.hash, info.Name)
		switch {
		case errors.Is(err, store.ErrNodeClaimed):
			writeErr(w, api.Forbidden("node %s has a token of its own; this token cannot take it over (create one with gpufleet admin create token --node %s)", info.Name, info.Name))
			return
		case err != nil && !errors.Is(err, store.ErrTokenBound):
			writeErr(w, api.Internal("bind token: %v", err))
			return
		}
		p.node = t.Node
		if err == nil {
			s.log.Info("node token bound at its first registration", "node", info.Name, "token", t.ID())
		}
	}
	if e := p.actsFor(info.Name); e != nil {
		writeErr(w, e)
		return
	}
	res, err := exec(r.Context(), s, func(l *loop, reply func(error)) {
		if e := l.register(info, l.now()); e != nil {
			reply(e)
			return
		}
		l.afterCommit(func(err error) { reply(err) })
	})
	if err == nil {
		err = res
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"node": info.Name})
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, p principal) {
	body, e := readJSON(r, api.MaxHeartbeatBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	req, e := api.DecodeHeartbeat(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	// The node's run list holds its tenants' commands and environments,
	// and its reports end their jobs and write their logs: only the
	// node's own token may hear or make them.
	if e := p.actsFor(req.Node); e != nil {
		writeErr(w, e)
		return
	}
	// Output is stored before the report is applied, so a client that
	// sees a job end finds the output its replicas wrote before they exited.
	if len(req.Logs) > 0 {
		type vouched struct{ known, unknown []api.LogChunk }
		v, err := exec(r.Context(), s, func(l *loop, reply func(vouched)) {
			k, u := l.vouchLogs(req.Node, req.Logs)
			reply(vouched{k, u})
		})
		if err != nil {
			writeErr(w, err)
			return
		}
		s.writeLogs(v.known)
		s.writeLogs(s.finishedJobChunks(req.Node, v.unknown))
	}
	type answer struct {
		resp api.HeartbeatResponse
		err  error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		if e := l.heartbeat(req, l.now()); e != nil {
			reply(answer{err: e})
			return
		}
		l.afterCommit(func(err error) { reply(answer{resp: l.desired(req.Node), err: err}) })
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	a.resp.Ack = []api.ReplicaKey{}
	for _, st := range req.Replicas {
		if st.State == api.ReplicaExited {
			a.resp.Ack = append(a.resp.Ack, st.ReplicaKey)
		}
	}
	writeJSON(w, http.StatusOK, a.resp)
}

// finishedJobChunks keeps the chunks of jobs that left the loop (they
// finished) whose replica ran on the node.
func (s *Server) finishedJobChunks(nodeName string, chunks []api.LogChunk) []api.LogChunk {
	var out []api.LogChunk
	jobs := map[string]*store.Job{}
	for _, c := range chunks {
		j, ok := jobs[c.Job]
		if !ok {
			if rec, err := s.db.Job(c.Job); err == nil {
				j = &rec
			}
			jobs[c.Job] = j
		}
		if j == nil {
			continue
		}
		if r, _ := lifecycle.FindReplica(j, c.Gang, c.Replica, c.Attempt); r != nil && r.Node == nodeName {
			out = append(out, c)
		}
	}
	return out
}

// runOf is what the agents run for a job document.
func runOf(r spec.RunSpec) store.Run {
	return store.Run{Command: r.Command, Env: r.Env, RestartPolicy: r.RestartPolicy, MaxRestarts: r.MaxRestarts,
		Resize: r.Resize, Replicas: r.Replicas}
}
