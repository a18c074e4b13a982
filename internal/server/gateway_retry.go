package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// A replica that refuses the gateway's connection (its process died, or
// its node went, before the agent's probe took it out of the routes) has
// not seen the request: the gateway tries another ready replica, up to
// refusedAttempts in all, and routes no new request to the refusing one
// for refusedFor. Only a connection that was never made is retried; once
// a replica has the request, its failure is the caller's 502 (the model
// server may have acted on it). A request is retried only when its body
// is known and at most maxReplayBody long, which the gateway then reads
// before it picks a replica.
const (
	refusedAttempts = 3
	refusedFor      = 2 * time.Second
	maxReplayBody   = 1 << 20
)

// replayable reads a request's body when it may be sent again, and
// reports whether it may.
func replayable(r *http.Request) ([]byte, bool, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true, nil
	}
	if r.ContentLength < 0 || r.ContentLength > maxReplayBody {
		return nil, false, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	if err != nil {
		return nil, false, err
	}
	return body, true, nil
}

// withBody gives the request a fresh reader of its buffered body.
func withBody(r *http.Request, body []byte) {
	if body == nil {
		r.Body = http.NoBody
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
}

// isRefused says whether the proxy's error is a connection to the replica
// that was never made.
func isRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// shunned says whether a replica refused a connection too recently to be
// tried again.
func (b *backend) shunned(now time.Time) bool {
	return !b.refusedAt.IsZero() && now.Sub(b.refusedAt) < refusedFor
}

// reacquire hands back a replica that refused the request's connection
// (no answer to count), shunning it a while, and acquires another, which
// may mean a wait in the queue; nil and no error when no other replica is
// routed that has not refused a connection itself.
func (s *gwService) reacquire(ctx context.Context, g *gateway, b *backend) (*backend, *api.Error, time.Duration) {
	g.metrics.refused.WithLabelValues(s.tenant, s.name).Inc()
	now := time.Now()
	s.mu.Lock()
	b.refusedAt = now
	s.putBack(b, 0, false)
	other := false
	for _, o := range s.routed {
		other = other || !o.shunned(now)
	}
	s.mu.Unlock()
	if !other {
		return nil, nil, 0
	}
	return s.get(ctx, g, now, false)
}
