package server

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/store"
)

// The gateway is the services' request path: a reverse proxy the server
// hosts under api.ServePrefix. Per service it keeps the ready replicas the
// loop last handed it, each with its requests in flight, and sends each
// request to the ready replica with the fewest (ties: the lowest replica
// number), up to the service's maxInFlight a replica when it has one. A
// request that finds no replica that can take it is held, first come
// first served, up to the service's queue limit and timeout (as Knative's
// activator holds requests while a revision scales from zero), and the
// loop is told at once when a service at zero replicas gets one. Answers
// stream through as they come (server-sent events, chunked bodies).
//
// Every count the autoscaler reads comes from here: requests in flight per
// replica, those held, arrivals, prompt tokens (the replicas' answers'
// Gpufleet-Prompt-Tokens header) and the time-weighted mean of in flight
// plus held since the previous reading. A replica the loop takes out of
// the routes gets no new request from the moment setRoutes returns, so the
// in-flight count read after that only falls.
type gateway struct {
	s       *Server
	proxy   *httputil.ReverseProxy
	metrics *serviceMetrics

	mu sync.RWMutex
	// byName maps "tenant/name" to the live service of that name; byKey
	// maps an API key's hash to its service.
	byName map[string]*gwService
	byKey  map[string]*gwService
}

type gwService struct {
	id, tenant, name string
	// poked is set while an activation request to the loop is on its way.
	poked atomic.Bool
	// The service's metric series, looked up once (a label lookup costs
	// more than the rest of the accounting of a request).
	once            sync.Once
	ttfb, queueWait prometheus.Observer
	codes           sync.Map // int -> prometheus.Counter

	mu          sync.Mutex
	ended       bool
	maxInFlight int
	queueLimit  int
	timeout     time.Duration
	retryAfter  time.Duration
	// backends are the replicas with routes or requests in flight, by
	// unit; routed is the ready ones, in unit order.
	backends map[int]*backend
	routed   []*backend
	queue    list.List // of *waiter
	// Counts since the last snapshot.
	arrivals, tokens, tokenAnswers, answers int64
	// The integral of in flight + queued over time, for the mean.
	inFlight  int
	area      float64
	areaSince time.Time
	snapFrom  time.Time
	// meanPrompt is a running mean of reported prompt tokens.
	meanPrompt float64
}

type backend struct {
	unit, attempt int
	target        *url.URL
	inFlight      int
	routed        bool
	// refusedAt is when it last refused a connection (gateway_retry.go).
	refusedAt time.Time
}

type waiter struct {
	got chan *backend
	el  *list.Element
}

func newGateway(s *Server, m *serviceMetrics) *gateway {
	g := &gateway{s: s, metrics: m, byName: map[string]*gwService{}, byKey: map[string]*gwService{}}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // a replica may think for as long as the request lasts
		ForceAttemptHTTP2:     false,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      g.rewrite,
		Transport:    transport,
		ErrorHandler: g.proxyError,
		// Server-sent events and bodies of unknown length are flushed as
		// they come; a negative interval would flush every write of
		// every answer.
		FlushInterval: 0,
	}
	return g
}

type routeKey struct{}

type routed struct {
	b    *backend
	rest string
	raw  string
	// retry is set when a refused connection may be tried on another
	// replica; refused when it was.
	retry, refused bool
}

func (g *gateway) rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(routeKey{}).(*routed)
	pr.Out.URL.Scheme = rt.b.target.Scheme
	pr.Out.URL.Host = rt.b.target.Host
	pr.Out.URL.Path = rt.rest
	pr.Out.URL.RawPath = rt.raw
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = rt.b.target.Host
	// The caller's credentials are for the gateway, not the model server.
	pr.Out.Header.Del("Authorization")
	pr.SetXForwarded()
}

func (g *gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		// The client went away.
		w.WriteHeader(499)
		return
	}
	rt := r.Context().Value(routeKey{}).(*routed)
	if rt.retry && isRefused(err) {
		rt.refused = true
		return
	}
	writeErr(w, &api.Error{Status: http.StatusBadGateway, Code: api.CodeUnavailable,
		Message: fmt.Sprintf("replica %d of the service did not answer: %v", rt.b.unit, err)})
}

// ServeHTTP answers /serve/{tenant}/{service}/{rest...}.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// A request lasts as long as its answer streams; the queue timeout
	// bounds the wait for a replica.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	// The replica may answer before the proxy has read the request's
	// body to its end; without full duplex the server would close the
	// body under the proxy when the answer's header goes out, and the
	// proxy would drop the replica's connection mid-answer.
	_ = rc.EnableFullDuplex()
	tenant, name := r.PathValue("tenant"), r.PathValue("service")
	svc, e := g.authorize(r, tenant, name)
	if e != nil {
		writeErr(w, e)
		return
	}
	body, replay, err := replayable(r)
	if err != nil {
		writeErr(w, api.Invalid("", "the request's body could not be read: %v", err))
		return
	}
	b, e, retry := svc.acquire(r.Context(), g, start)
	if e != nil {
		svc.counted(g, e.Status).Inc()
		if retry > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(retry.Seconds())), 1)))
		}
		writeErr(w, e)
		return
	}
	svc.observers(g)
	svc.queueWait.Observe(time.Since(start).Seconds())
	prefix := api.ServePrefix + tenant + "/" + name
	rest := strings.TrimPrefix(r.URL.Path, prefix)
	raw := ""
	if r.URL.RawPath != "" {
		raw = strings.TrimPrefix(r.URL.RawPath, prefix)
		if raw == "" {
			raw = "/"
		}
	}
	if rest == "" {
		rest = "/"
	}
	tw := &timedWriter{ResponseWriter: w, start: start}
	w.Header().Set(api.HeaderReplica, strconv.Itoa(b.unit))
	// The proxy panics (http.ErrAbortHandler) when an answer breaks off
	// mid-stream: the request is counted out all the same.
	defer func() {
		if b == nil {
			// A retry found no replica; its refusal is counted.
			svc.counted(g, tw.status).Inc()
			return
		}
		tokens, reported := int64(0), false
		if v := tw.Header().Get(api.HeaderPromptTokens); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				tokens, reported = n, true
			}
		}
		svc.release(b, tokens, reported)
		status := tw.status
		if status == 0 {
			status = http.StatusOK
		}
		if tw.broken {
			status = http.StatusBadGateway
		}
		svc.counted(g, status).Inc()
		if !tw.first.IsZero() {
			svc.ttfb.Observe(tw.first.Sub(start).Seconds())
		}
	}()
	for attempt := 1; ; attempt++ {
		rt := &routed{b: b, rest: rest, raw: raw, retry: replay && attempt < refusedAttempts}
		if replay {
			withBody(r, body)
		}
		tw.broken = true
		g.proxy.ServeHTTP(tw, r.WithContext(context.WithValue(r.Context(), routeKey{}, rt)))
		tw.broken = false
		if !rt.refused {
			return
		}
		// Nothing was sent: another replica, if one can take it.
		refused := b.unit
		next, e, retry := svc.reacquire(r.Context(), g, b)
		if e == nil && next == nil {
			e = &api.Error{Status: http.StatusBadGateway, Code: api.CodeUnavailable,
				Message: fmt.Sprintf("replica %d of the service refused the connection and no other replica is ready", refused)}
		}
		if e != nil {
			b = nil
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(retry.Seconds())), 1)))
			}
			tw.status = e.Status
			writeErr(w, e)
			return
		}
		b = next
		w.Header().Set(api.HeaderReplica, strconv.Itoa(b.unit))
	}
}

func (s *gwService) observers(g *gateway) {
	s.once.Do(func() {
		s.ttfb = g.metrics.ttfb.WithLabelValues(s.tenant, s.name)
		s.queueWait = g.metrics.queueWait.WithLabelValues(s.tenant, s.name)
	})
}

// counted is the request counter of an answer's status.
func (s *gwService) counted(g *gateway, code int) prometheus.Counter {
	if c, ok := s.codes.Load(code); ok {
		return c.(prometheus.Counter)
	}
	c := g.metrics.requests.WithLabelValues(s.tenant, s.name, strconv.Itoa(code))
	s.codes.Store(code, c)
	return c
}

// authorize finds the service a request is for and checks its credentials:
// the service's tenant's token, an admin's, or one of its API keys. A
// service another tenant owns reads as one that does not exist.
func (g *gateway) authorize(r *http.Request, tenant, name string) (*gwService, *api.Error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return nil, api.Unauthorized("missing bearer token: send Authorization: Bearer TOKEN (a tenant token or the service's API key)")
	}
	hash := hashToken(tok)
	notFound := api.NotFound("no service %s/%s", tenant, name)
	g.mu.RLock()
	svc := g.byName[tenant+"/"+name]
	keyed := g.byKey[hash]
	g.mu.RUnlock()
	if keyed != nil {
		if keyed != svc {
			// A key reaches its own service only.
			return nil, notFound
		}
		return svc, nil
	}
	t, err := g.s.db.Token(hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Unauthorized("unknown token")
	}
	if err != nil {
		return nil, api.Internal("token lookup: %v", err)
	}
	switch t.Role {
	case store.RoleAdmin:
	case store.RoleTenant:
		if t.Tenant != tenant {
			return nil, notFound
		}
	default:
		return nil, api.Forbidden("a %s token cannot call services; use a tenant token or a service API key", t.Role)
	}
	if svc == nil {
		return nil, notFound
	}
	return svc, nil
}

// acquire gives the request a replica: at once when one can take it, or
// after a wait in the service's queue. A refusal comes with the wait to
// suggest in Retry-After (0: none).
func (s *gwService) acquire(ctx context.Context, g *gateway, start time.Time) (*backend, *api.Error, time.Duration) {
	return s.get(ctx, g, start, true)
}

// get is acquire, counting the request as an arrival or not (a retry).
func (s *gwService) get(ctx context.Context, g *gateway, start time.Time, arrival bool) (*backend, *api.Error, time.Duration) {
	gone := func() (*backend, *api.Error, time.Duration) {
		return nil, api.NotFound("no service %s/%s", s.tenant, s.name), 0
	}
	s.mu.Lock()
	if arrival {
		s.arrivals++
	}
	if s.ended {
		s.mu.Unlock()
		return gone()
	}
	if s.queue.Len() == 0 {
		if b := s.pick(); b != nil {
			s.take(b, start)
			s.mu.Unlock()
			return b, nil, 0
		}
	}
	if limit := s.queueLimit; s.queue.Len() >= limit {
		retry := s.retryAfter
		s.mu.Unlock()
		g.metrics.rejected.WithLabelValues(s.tenant, s.name, "queue-full").Inc()
		return nil, api.Unavailable("service %s/%s already holds %d requests (its queue limit); retry later", s.tenant, s.name, limit), retry
	}
	s.account(start)
	wt := &waiter{got: make(chan *backend, 1)}
	wt.el = s.queue.PushBack(wt)
	noReplica := len(s.routed) == 0
	timeout := s.timeout
	s.mu.Unlock()
	if noReplica && s.poked.CompareAndSwap(false, true) {
		g.s.activate(s.id)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case b := <-wt.got:
		if b == nil {
			return gone()
		}
		return b, nil, 0
	case <-timer.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case b := <-wt.got:
		// Handed a replica (or the service's end) as the wait ended.
		if b == nil {
			return gone()
		}
		return b, nil, 0
	default:
	}
	s.account(time.Now())
	s.queue.Remove(wt.el)
	if ctx.Err() != nil {
		return nil, &api.Error{Status: 499, Code: api.CodeUnavailable, Message: "the client went away while its request was held"}, 0
	}
	g.metrics.rejected.WithLabelValues(s.tenant, s.name, "timeout").Inc()
	return nil, api.Unavailable("no replica of service %s/%s could take the request within %s (its queue timeout); retry later", s.tenant, s.name, timeout), s.retryAfter
}

// pick is the routed replica with the fewest requests in flight that can
// take one more, or nil. The caller holds s.mu.
func (s *gwService) pick() *backend {
	var best *backend
	now := time.Now()
	for _, b := range s.routed {
		if s.maxInFlight > 0 && b.inFlight >= s.maxInFlight || b.shunned(now) {
			continue
		}
		if best == nil || b.inFlight < best.inFlight {
			best = b
		}
	}
	return best
}

// take counts a request on b. The caller holds s.mu.
func (s *gwService) take(b *backend, now time.Time) {
	s.account(now)
	b.inFlight++
	s.inFlight++
}

// release counts a request's end and hands its replica to the next held
// request.
func (s *gwService) release(b *backend, tokens int64, reported bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers++
	s.putBack(b, tokens, reported)
}

// putBack counts a request off its replica and hands the replica to the
// next held request. The caller holds s.mu.
func (s *gwService) putBack(b *backend, tokens int64, reported bool) {
	now := time.Now()
	s.account(now)
	b.inFlight--
	s.inFlight--
	if reported {
		s.tokens += tokens
		s.tokenAnswers++
		s.meanPrompt += (float64(tokens) - s.meanPrompt) / float64(min(s.tokenAnswers, 100)+1)
	}
	if !b.routed && b.inFlight == 0 && s.backends[b.unit] == b {
		delete(s.backends, b.unit)
	}
	s.dispatch(now)
}

// dispatch hands replicas to held requests, first come first served. The
// caller holds s.mu.
func (s *gwService) dispatch(now time.Time) {
	for s.queue.Len() > 0 {
		b := s.pick()
		if b == nil {
			return
		}
		wt := s.queue.Remove(s.queue.Front()).(*waiter)
		s.take(b, now)
		wt.got <- b
	}
}

// account adds the time since the last change to the integral of in flight
// plus held. The caller holds s.mu.
func (s *gwService) account(now time.Time) {
	if !s.areaSince.IsZero() && now.After(s.areaSince) {
		s.area += float64(s.inFlight+s.queue.Len()) * now.Sub(s.areaSince).Seconds()
	}
	s.areaSince = now
}

// gwStats is what the autoscaler reads of a service once a second.
type gwStats struct {
	byUnit           map[int]int
	inFlight, queued int
	// concurrency is the time-weighted mean of in flight plus held since
	// the previous snapshot; -1 for the first.
	concurrency        float64
	arrivals           int
	tokens             int64
	tokenAnswers       int64
	answers            int64
	queuedPromptTokens int64
}

// snapshot reads the counts since the last snapshot and starts afresh.
func (s *gwService) snapshot(now time.Time) gwStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account(now)
	st := gwStats{byUnit: map[int]int{}, inFlight: s.inFlight, queued: s.queue.Len(), arrivals: int(s.arrivals),
		tokens: s.tokens, tokenAnswers: s.tokenAnswers, answers: s.answers, concurrency: -1}
	for u, b := range s.backends {
		st.byUnit[u] += b.inFlight
	}
	if dt := now.Sub(s.snapFrom).Seconds(); !s.snapFrom.IsZero() && dt > 0 {
		st.concurrency = s.area / dt
	}
	st.queuedPromptTokens = int64(s.meanPrompt * float64(st.queued))
	s.arrivals, s.tokens, s.tokenAnswers, s.answers, s.area = 0, 0, 0, 0, 0
	s.snapFrom = now
	return st
}

// setRoutes replaces a service's routes with the ready replicas the loop
// knows; from its return no new request goes to a replica left out.
func (s *gwService) setRoutes(routes []lifecycle.Route, addr func(node string) string, maxInFlight, queueLimit int, timeout, retry time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxInFlight, s.queueLimit, s.timeout, s.retryAfter = maxInFlight, queueLimit, timeout, retry
	keep := map[int]bool{}
	s.routed = s.routed[:0]
	for _, rt := range routes {
		b := s.backends[rt.Unit]
		host := net.JoinHostPort(addr(rt.Node), strconv.Itoa(rt.Port))
		if b == nil || b.attempt != rt.Attempt || b.target.Host != host {
			b = &backend{unit: rt.Unit, attempt: rt.Attempt, target: &url.URL{Scheme: "http", Host: host}}
			if old := s.backends[rt.Unit]; old != nil && old.inFlight > 0 {
				// The old attempt's requests finish on their own record.
				old.routed = false
			}
			s.backends[rt.Unit] = b
		}
		b.routed = true
		keep[rt.Unit] = true
		s.routed = append(s.routed, b)
	}
	for u, b := range s.backends {
		if !keep[u] {
			b.routed = false
			if b.inFlight == 0 {
				delete(s.backends, u)
			}
		}
	}
	s.dispatch(time.Now())
}

// end refuses the held requests of a cancelled service and every later one.
func (s *gwService) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	s.routed = nil
	for s.queue.Len() > 0 {
		wt := s.queue.Remove(s.queue.Front()).(*waiter)
		close(wt.got)
	}
}

// timedWriter notes the status and the time of the first byte of the body.
type timedWriter struct {
	http.ResponseWriter
	start  time.Time
	first  time.Time
	status int
	// broken is set while the proxy runs: an answer cut off mid-stream
	// leaves it set.
	broken bool
}

func (w *timedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *timedWriter) Write(p []byte) (int, error) {
	if w.first.IsZero() && len(p) > 0 {
		w.first = time.Now()
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController (the proxy's flushes) reach the
// connection.
func (w *timedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// GatewayHandler is the services' gateway alone: what --gateway-listen
// serves, without the API's deadlines.
func (s *Server) GatewayHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(api.ServePrefix+"{tenant}/{service}/{rest...}", s.gw)
	mux.Handle(api.ServePrefix+"{tenant}/{service}", s.gw)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, api.NotFound("this listener serves only the services' gateway, %sTENANT/SERVICE/...", api.ServePrefix))
	})
	return mux
}

// ServeGateway serves the gateway on ln until ctx ends; Serve must run
// too (the loop is what keeps the routes).
func (s *Server) ServeGateway(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.GatewayHandler(), ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, IdleTimeout: s.cfg.IdleTimeout}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
