package server

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/autoscale"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/spec"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Inference services in the loop. Each live service has an svcRun beside
// its record: the autoscaling policy (package autoscale, the same Step the
// serving simulator drives), the gateway's side of it, and what the
// policy is fed. Once a second (tick) the loop reads each service's
// counts from the gateway, steps its policy and hands the decision to the
// job lifecycle (Machine.Scale), which grows and shrinks the service
// through the scheduling core; whatever changed a service's replicas is
// pushed to the gateway's routes at the end of the same follow.

// DefaultReplicaStartTimeout is how long a service replica may take to
// become ready when its spec names no start timeout: long enough for a
// large model to load from a slow store (kserve#1247 and knative#15316
// report replicas killed after 2 and 10 minutes of loading).
const DefaultReplicaStartTimeout = 30 * time.Minute

// fallbackColdStart is the cold start assumed for Retry-After before any
// is measured or declared.
const fallbackColdStart = 10 * time.Second

// untokenedAnswers is how many answers without a prompt-token report a
// service scaled on tokens may see in a row before it is scaled on
// requests in flight instead: a policy fed no tokens would size for none.
const untokenedAnswers = 20

// serviceLoop is the loop's state of the live services.
type serviceLoop struct {
	runs  map[string]*svcRun
	dirty map[string]bool
}

type svcRun struct {
	id, tenant, name string
	gw               *gwService
	policy           autoscale.Policy
	origin           time.Time
	// tokens is set while the policy is fed prompt tokens.
	tokens    bool
	untokened int64
	mode      string
	// coldStarts are measured cold starts not yet fed to the policy.
	coldStarts []time.Duration
	// arrivals of the last minute, one slot a second, for the rate.
	arrivals [60]int
	slot     int
}

func (sl *serviceLoop) init() {
	if sl.runs == nil {
		sl.runs, sl.dirty = map[string]*svcRun{}, map[string]bool{}
	}
}

// serviceOf is what the lifecycle keeps of a submitted service's spec.
func serviceOf(s *spec.ServiceSpec) *lifecycle.Service {
	if s == nil {
		return nil
	}
	return &lifecycle.Service{Spec: lifecycle.ServiceSpec{
		MinReplicas: s.MinReplicas, MaxReplicas: s.MaxReplicas, TargetInFlight: s.TargetInFlight,
		TargetTokensPerSecond: s.TargetTokensPerSecond, MaxInFlight: s.MaxInFlight, LatencyMs: s.Latency.Milliseconds(),
		Quantile: s.Quantile, ReadinessPath: s.ReadinessPath, ReadinessPort: s.ReadinessPort,
		ScaleDownGraceMs: s.ScaleDownGrace.Milliseconds(), DrainTimeoutMs: s.DrainTimeout.Milliseconds(),
		StartTimeoutMs: s.StartTimeout.Milliseconds(), ColdStartMs: s.ColdStart.Milliseconds(), Policy: s.Policy,
		QueueLimit: s.QueueLimit, QueueTimeoutMs: s.QueueTimeout.Milliseconds(),
	}}
}

// newPolicy builds a service's autoscaling policy, fed tokens or not.
func newPolicy(sp lifecycle.ServiceSpec, tokens bool) (autoscale.Policy, error) {
	if sp.Policy == spec.PolicyStatic {
		return autoscale.Static{N: sp.MaxReplicas}, nil
	}
	as := autoscale.Spec{MinReplicas: sp.MinReplicas, MaxReplicas: sp.MaxReplicas, TargetInFlight: sp.TargetInFlight,
		Latency: time.Duration(sp.LatencyMs) * time.Millisecond, LatencyQuantile: sp.Quantile,
		ScaleDownGrace: time.Duration(sp.ScaleDownGraceMs) * time.Millisecond, ColdStart: time.Duration(sp.ColdStartMs) * time.Millisecond}
	if tokens {
		as.TargetTokensPerSecond = sp.TargetTokensPerSecond
	}
	return autoscale.New(sp.Policy, as)
}

// serviceConflict refuses a service whose name a live service of its
// tenant already has: the endpoint is by name.
func (l *loop) serviceConflict(j *store.Job) error {
	if j.Service == nil {
		return nil
	}
	for _, run := range l.svc.runs {
		if run.tenant == j.Tenant && run.name == j.Name {
			if o := l.lc.Job(run.id); o != nil && !o.Service.Ended {
				return api.Conflict("service %s already runs in tenant %s (job %s): cancel it first, or give this one another name", j.Name, j.Tenant, run.id)
			}
		}
	}
	return nil
}

// serviceAdded starts the loop's side of a live service: a new one, or one
// read back from the store.
func (l *loop) serviceAdded(j *store.Job, now time.Time) {
	l.svc.init()
	run := &svcRun{id: j.ID, tenant: j.Tenant, name: j.Name, origin: now, tokens: j.Service.Spec.TargetTokensPerSecond > 0}
	p, err := newPolicy(j.Service.Spec, run.tokens)
	if err != nil {
		// The spec was checked at submission; a record from a newer
		// server may name a policy this one lacks.
		l.log.Error("service policy; keeping it at its floor", "service", j.ID, "err", err)
		p = autoscale.Static{N: j.Service.Spec.MinReplicas}
	}
	run.policy = p
	for _, ms := range j.Service.ColdStartsMs {
		run.coldStarts = append(run.coldStarts, time.Duration(ms)*time.Millisecond)
	}
	run.gw = &gwService{id: j.ID, tenant: j.Tenant, name: j.Name, backends: map[int]*backend{}}
	l.svc.runs[j.ID] = run
	g := l.s.gw
	g.mu.Lock()
	g.byName[j.Tenant+"/"+j.Name] = run.gw
	g.mu.Unlock()
	l.svc.dirty[j.ID] = true
}

// serviceOut takes what the lifecycle reports of services: the cold
// starts it measured, and the services whose replicas changed.
func (l *loop) serviceOut(o lifecycle.Out) {
	if l.svc.runs == nil {
		return
	}
	for id, j := range o.Dirty {
		if j.Service != nil {
			l.svc.dirty[id] = true
		}
	}
	for _, c := range o.ColdStarts {
		run := l.svc.runs[c.Job]
		if run == nil {
			continue
		}
		d := time.Duration(c.Ms) * time.Millisecond
		run.coldStarts = append(run.coldStarts, d)
		l.s.gw.metrics.coldStart.WithLabelValues(run.tenant, run.name).Observe(d.Seconds())
	}
}

// syncServices hands the gateway the routes of every service whose
// replicas changed, and lets go of services that ended.
func (l *loop) syncServices() {
	if len(l.svc.dirty) == 0 {
		return
	}
	g := l.s.gw
	for _, id := range slices.Sorted(maps.Keys(l.svc.dirty)) {
		delete(l.svc.dirty, id)
		run := l.svc.runs[id]
		if run == nil {
			continue
		}
		j := l.lc.Job(id)
		if j == nil || j.Service == nil || j.Service.Ended {
			run.gw.end()
			g.mu.Lock()
			if g.byName[run.tenant+"/"+run.name] == run.gw {
				delete(g.byName, run.tenant+"/"+run.name)
			}
			for h, s := range g.byKey {
				if s == run.gw {
					delete(g.byKey, h)
				}
			}
			g.mu.Unlock()
			g.metrics.forget(run.tenant, run.name)
			delete(l.svc.runs, id)
			continue
		}
		sp := j.Service.Spec
		run.gw.setRoutes(j.Routes(), l.nodeAddress, sp.MaxInFlight, sp.QueueLimit,
			time.Duration(sp.QueueTimeoutMs)*time.Millisecond, l.retryAfter(j, l.now()))
		g.mu.Lock()
		for h, s := range g.byKey {
			if s == run.gw {
				delete(g.byKey, h)
			}
		}
		for _, k := range j.Service.Keys {
			g.byKey[k.Hash] = run.gw
		}
		g.mu.Unlock()
	}
}

func (l *loop) nodeAddress(name string) string {
	if n := l.nodes[name]; n != nil {
		return n.rec.Info.Address
	}
	return name
}

// coldStart is the cold start a service reckons with: the 90th percentile
// of its measured ones (the gpufleet policy's estimate), else its spec's.
func coldStart(j *store.Job) time.Duration {
	if cs := j.Service.ColdStartsMs; len(cs) > 0 {
		s := slices.Clone(cs)
		slices.Sort(s)
		i := min(max(int(math.Ceil(0.9*float64(len(s))))-1, 0), len(s)-1)
		return time.Duration(s[i]) * time.Millisecond
	}
	return time.Duration(j.Service.Spec.ColdStartMs) * time.Millisecond
}

// retryAfter is when a replica may be ready: the cold start left of the
// furthest starting one, else a whole cold start.
func (l *loop) retryAfter(j *store.Job, now time.Time) time.Duration {
	cold := coldStart(j)
	if cold <= 0 {
		cold = fallbackColdStart
	}
	c := j.Counts()
	if c.Ready > 0 {
		return time.Second
	}
	left := cold
	for _, b := range c.StartingSinceMs {
		left = min(left, cold-now.Sub(time.UnixMilli(b)))
	}
	return max(left, time.Second)
}

// autoscale runs one step of every live service's autoscaler.
func (l *loop) autoscale(now time.Time) {
	if len(l.svc.runs) == 0 {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(l.svc.runs)) {
		l.scaleService(l.svc.runs[id], now)
	}
}

func (l *loop) scaleService(run *svcRun, now time.Time) {
	j := l.lc.Job(run.id)
	if j == nil || j.Service == nil || j.Service.Ended {
		l.svc.dirty[run.id] = true
		return
	}
	st := run.gw.snapshot(time.Now())
	run.slot = (run.slot + 1) % len(run.arrivals)
	run.arrivals[run.slot] = st.arrivals
	if run.tokens {
		if st.tokenAnswers > 0 {
			run.untokened = 0
		}
		run.untokened += st.answers - st.tokenAnswers
		if run.untokened >= untokenedAnswers {
			run.tokens = false
			if p, err := newPolicy(j.Service.Spec, false); err == nil {
				run.policy = p
			}
			l.log.Warn("service replicas report no prompt tokens; scaling it on requests in flight", "service", run.id,
				"header", api.HeaderPromptTokens)
		}
	}
	c := j.Counts()
	o := autoscale.Observation{Now: now.Sub(run.origin), InFlight: st.inFlight, Queued: st.queued, Concurrency: st.concurrency,
		Arrivals: st.arrivals, Ready: c.Ready, ColdStarts: run.coldStarts}
	if run.tokens {
		o.PromptTokens, o.QueuedPromptTokens = st.tokens, st.queuedPromptTokens
	}
	for _, b := range c.StartingSinceMs {
		o.Starting = append(o.Starting, time.UnixMilli(b).Sub(run.origin))
	}
	run.coldStarts = nil
	d := run.policy.Step(o)
	run.mode = d.Mode.String()
	out := l.lc.Scale(run.id, lifecycle.Scale{Desired: d.Desired, StartingFirst: d.Victims == autoscale.StartingFirst,
		InFlight: st.byUnit, StartTimeoutMs: l.s.cfg.ReplicaStartTimeout.Milliseconds(), Reason: run.mode}, now.UnixMilli())
	l.follow(out, now)
	// The routes carry the Retry-After estimate, which moves with time.
	l.svc.dirty[run.id] = true
	m := l.s.gw.metrics
	m.inFlight.WithLabelValues(run.tenant, run.name).Set(float64(st.inFlight))
	m.queued.WithLabelValues(run.tenant, run.name).Set(float64(st.queued))
	c = j.Counts()
	for i, n := range []int{c.Desired, c.Waiting, c.Starting, c.Ready, c.Draining, c.Stopping} {
		m.replicas.WithLabelValues(run.tenant, run.name, replicaGaugePhases[i]).Set(float64(n))
	}
}

// activate gives a service at zero replicas one at once, when a request
// arrives for it (the policy's next step takes it from there).
func (l *loop) activate(id string, now time.Time) {
	run := l.svc.runs[id]
	if run == nil {
		return
	}
	run.gw.poked.Store(false)
	j := l.lc.Job(id)
	if j == nil || j.Service == nil || j.Service.Ended {
		return
	}
	c := j.Counts()
	if c.Ready+c.Starting+c.Waiting > 0 {
		return
	}
	out := l.lc.Scale(id, lifecycle.Scale{Desired: max(j.Service.Desired, 1), InFlight: run.gw.peek(),
		StartTimeoutMs: l.s.cfg.ReplicaStartTimeout.Milliseconds(), Reason: "a request arrived"}, now.UnixMilli())
	l.follow(out, now)
}

// activate asks the loop to start a replica of a service at zero.
func (s *Server) activate(id string) {
	select {
	case s.inbox <- func(l *loop) { l.activate(id, l.now()) }:
	default:
		// The loop is swamped; the next autoscaler step sees the held
		// request anyway.
		if run := s.gw.lookupID(id); run != nil {
			run.poked.Store(false)
		}
	}
}

// restoreServices starts the loop's side of the services read back from
// the store.
func (l *loop) restoreServices(now time.Time) {
	var ids []string
	l.lc.Jobs(func(j *store.Job) {
		if j.Service != nil && !j.Service.Ended {
			ids = append(ids, j.ID)
		}
	})
	sort.Strings(ids)
	for _, id := range ids {
		l.serviceAdded(l.lc.Job(id), now)
	}
	l.syncServices()
}

// peek reads the requests in flight per replica without starting a new
// snapshot.
func (s *gwService) peek() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]int{}
	for u, b := range s.backends {
		out[u] += b.inFlight
	}
	return out
}

func (g *gateway) lookupID(id string) *gwService {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, s := range g.byName {
		if s.id == id {
			return s
		}
	}
	return nil
}

// serviceView is a service as the API shows it.
func (l *loop) serviceView(j *store.Job, detail bool) api.Service {
	run := l.svc.runs[j.ID]
	sp := j.Service.Spec
	c := j.Counts()
	v := api.Service{ID: j.ID, Name: j.Name, Tenant: j.Tenant, Queue: j.Queue, State: j.State, Reason: j.Reason,
		Endpoint: api.ServePrefix + j.Tenant + "/" + j.Name + "/", Policy: sp.Policy, MinReplicas: sp.MinReplicas,
		MaxReplicas: sp.MaxReplicas, Submitted: msTime(j.SubmittedMs), Desired: c.Desired, Ready: c.Ready,
		Starting: c.Starting, Waiting: c.Waiting, Draining: c.Draining, Stopping: c.Stopping,
		ColdStartSeconds: coldStart(j).Seconds(), Replicas: []api.ServiceReplica{}}
	var inFlight map[int]int
	if run != nil {
		v.Mode, v.Tokens = run.mode, run.tokens
		inFlight = run.gw.peek()
		total := 0
		for _, n := range run.arrivals {
			total += n
		}
		v.RequestRate = float64(total) / float64(len(run.arrivals))
		run.gw.mu.Lock()
		v.InFlight, v.Queued = run.gw.inFlight, run.gw.queue.Len()
		run.gw.mu.Unlock()
	}
	for _, ms := range j.Service.ColdStartsMs {
		v.ColdStarts = append(v.ColdStarts, float64(ms)/1000)
	}
	for u := range j.Units {
		ph := j.Phase(u)
		if ph == lifecycle.PhaseOver {
			continue
		}
		r := api.ServiceReplica{Replica: u, Attempt: j.Units[u].Attempt, Phase: ph.String(), InFlight: inFlight[u]}
		if ph == lifecycle.PhaseWaiting || ph == lifecycle.PhaseStopping {
			r.Reason = j.Units[u].Reason
		}
		for i := range j.Replicas {
			rp := &j.Replicas[i]
			if rp.Unit == u && rp.Attempt == j.Units[u].Attempt && rp.Rank == 0 {
				r.Node, r.Port, r.Placed, r.ReadyAt = rp.Node, rp.Port, msTime(rp.BoundMs), msTime(rp.ReadyMs)
			}
		}
		v.Replicas = append(v.Replicas, r)
	}
	if detail {
		for _, e := range j.Events {
			v.Events = append(v.Events, api.ServiceEvent{Time: msTime(e.AtMs), Kind: e.Kind, Detail: e.Detail})
		}
		// The history keeps its first and its latest events; the latest
		// are what a person looking at a service wants.
		slices.SortStableFunc(v.Events, func(a, b api.ServiceEvent) int { return a.Time.Compare(b.Time) })
		if n := len(v.Events); n > maxServiceEvents {
			v.Events = v.Events[n-maxServiceEvents:]
		}
		for _, k := range j.Service.Keys {
			v.Keys = append(v.Keys, api.ServiceKeyInfo{ID: k.ID, Created: msTime(k.CreatedMs)})
		}
	}
	return v
}

// maxServiceEvents bounds the events a service's view shows.
const maxServiceEvents = 20

// findService resolves a service by job ID, or by name among the services
// the principal sees; another tenant's reads as absent.
func (l *loop) findService(ref string, p principal) (*store.Job, *api.Error) {
	if j := l.lc.Job(ref); j != nil && j.Service != nil && p.sees(j.Tenant) {
		return j, nil
	}
	var found []*store.Job
	l.lc.Jobs(func(j *store.Job) {
		if j.Service != nil && !j.Service.Ended && j.Name == ref && p.sees(j.Tenant) {
			found = append(found, j)
		}
	})
	switch len(found) {
	case 0:
		return nil, api.NotFound("service %s not found", ref)
	case 1:
		return found[0], nil
	}
	slices.SortFunc(found, func(a, b *store.Job) int { return cmp.Compare(a.Seq, b.Seq) })
	ids := make([]string, len(found))
	for i, j := range found {
		ids[i] = j.ID
	}
	return nil, api.Conflict("%d services are named %s (%v); give the ID", len(found), ref, ids)
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request, p principal) {
	list, err := exec(r.Context(), s, func(l *loop, reply func([]api.Service)) {
		var jobs []*store.Job
		l.lc.Jobs(func(j *store.Job) {
			if j.Service != nil && p.sees(j.Tenant) {
				jobs = append(jobs, j)
			}
		})
		slices.SortFunc(jobs, func(a, b *store.Job) int { return cmp.Compare(a.Seq, b.Seq) })
		out := make([]api.Service, 0, len(jobs))
		for _, j := range jobs {
			out = append(out, l.serviceView(j, false))
		}
		reply(out)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ServiceList{Services: list})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request, p principal) {
	type answer struct {
		v   api.Service
		err *api.Error
	}
	ref := r.PathValue("id")
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		j, e := l.findService(ref, p)
		if e != nil {
			reply(answer{err: e})
			return
		}
		reply(answer{v: l.serviceView(j, true)})
	})
	if err == nil && a.err != nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.v)
}

// maxServiceKeys bounds a service's API keys.
const maxServiceKeys = 32

func (s *Server) createServiceKey(w http.ResponseWriter, r *http.Request, p principal) {
	if body, e := readJSON(r, api.MaxBody); e != nil {
		writeErr(w, e)
		return
	} else if len(body) > 0 {
		if e := decodeEmpty(body); e != nil {
			writeErr(w, e)
			return
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		writeErr(w, api.Internal("%v", err))
		return
	}
	secret := "gfs_" + base64.RawURLEncoding.EncodeToString(raw[:])
	hash := hashToken(secret)
	type answer struct {
		k   api.ServiceKey
		err error
	}
	ref := r.PathValue("id")
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		j, e := l.findService(ref, p)
		switch {
		case e != nil:
			reply(answer{err: e})
			return
		case j.Service.Ended:
			reply(answer{err: api.Conflict("service %s is %s", j.ID, j.State)})
			return
		case len(j.Service.Keys) >= maxServiceKeys:
			reply(answer{err: api.Conflict("service %s has %d API keys, the most it may; revoke one first", j.ID, maxServiceKeys)})
			return
		}
		now := l.now()
		k := lifecycle.ServiceKey{ID: hash[:store.TokenIDLen], Hash: hash, CreatedMs: now.UnixMilli()}
		j.Service.Keys = append(j.Service.Keys, k)
		l.markJob(j)
		l.svc.dirty[j.ID] = true
		l.syncServices()
		v := api.ServiceKey{Key: secret, ID: k.ID, Service: j.ID, Created: msTime(k.CreatedMs)}
		l.afterCommit(func(err error) { reply(answer{k: v, err: err}) })
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.k)
}

func (s *Server) revokeServiceKey(w http.ResponseWriter, r *http.Request, p principal) {
	ref, id := r.PathValue("id"), r.PathValue("key")
	res, err := exec(r.Context(), s, func(l *loop, reply func(error)) {
		j, e := l.findService(ref, p)
		if e != nil {
			reply(e)
			return
		}
		i := slices.IndexFunc(j.Service.Keys, func(k lifecycle.ServiceKey) bool { return k.ID == id })
		if i < 0 {
			reply(api.NotFound("service %s has no API key %s", j.ID, id))
			return
		}
		j.Service.Keys = slices.Delete(j.Service.Keys, i, i+1)
		l.markJob(j)
		l.svc.dirty[j.ID] = true
		l.syncServices()
		l.afterCommit(reply)
	})
	if err == nil {
		err = res
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeEmpty accepts an empty JSON object and nothing else.
func decodeEmpty(body []byte) *api.Error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return api.Invalid("", "want an empty JSON object (the request takes no fields)")
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		return api.Invalid(k, "unknown field %q: the request takes none", k)
	}
	return nil
}
