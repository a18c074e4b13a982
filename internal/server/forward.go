package server

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"

	"github.com/gpufleet/gpufleet/internal/api"
)

// A server of a group that does not lead forwards every request of the
// API to the one that does (the leader's URL is what it announced in the
// election), so that agents and clients given any server's address reach
// the loop. Its own health and metrics it answers itself. A request is
// forwarded once: one that arrives forwarded at a server that does not
// lead (the lead moved meanwhile) is answered 503, and the client tries
// again.

// HeaderForwarded marks a request a standby forwarded, with its URL.
const HeaderForwarded = "X-Gpufleet-Forwarded-By"

type forwarder struct {
	s       *Server
	next    http.Handler
	mu      sync.Mutex
	proxies map[string]*httputil.ReverseProxy
}

func (s *Server) forward(next http.Handler) http.Handler {
	return &forwarder{s: s, next: next, proxies: map[string]*httputil.ReverseProxy{}}
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.s.Leading() || r.URL.Path == "/v1/healthz" || r.URL.Path == MetricsPath {
		f.next.ServeHTTP(w, r)
		return
	}
	leader := f.s.elector.Leader()
	switch {
	case r.Header.Get(HeaderForwarded) != "":
		unavailable(w, "this server no longer leads; try again")
	case leader == "" || leader == f.s.cfg.Advertise:
		unavailable(w, "no server leads now (an election is under way); try again")
	default:
		p, err := f.proxy(leader)
		if err != nil {
			unavailable(w, "the leader announced the URL %q, which does not parse: %v", leader, err)
			return
		}
		r.Header.Set(HeaderForwarded, f.s.cfg.Advertise)
		p.ServeHTTP(w, r)
	}
}

func (f *forwarder) proxy(leader string) (*httputil.ReverseProxy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.proxies[leader]; p != nil {
		return p, nil
	}
	u, err := url.Parse(leader)
	if err != nil {
		return nil, err
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			unavailable(w, "the leader at %s did not answer: %v; try again", leader, err)
		},
	}
	f.proxies[leader] = p
	return p, nil
}

func unavailable(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Retry-After", "1")
	writeErr(w, api.Unavailable(format, args...))
}
