package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// Protocol paths on the server.
const (
	RegisterPath  = "/v1/agent/register"
	HeartbeatPath = "/v1/agent/heartbeat"
)

// statusError is a non-2xx answer from the server.
type statusError struct {
	path string
	code int
	body string
	// retry is set when the server said when to try again.
	retry bool
}

func (e *statusError) Error() string {
	return fmt.Sprintf("POST %s: %d %s: %s", e.path, e.code, http.StatusText(e.code), e.body)
}

// permanent says retrying the same request cannot help: the server refused
// the node or the token.
func (e *statusError) permanent() bool {
	return e.code == http.StatusBadRequest || e.code == http.StatusUnauthorized || e.code == http.StatusForbidden
}

// TryTimeout bounds one request to one server of a group.
const TryTimeout = 3 * time.Second

// client speaks the agent protocol to a server, or to any of a group of
// servers sharing one store (base: their URLs separated by commas). A
// request that reaches none of them, or that one answers 503 with
// Retry-After (an election is under way), goes to the next; the one that
// answered is tried first next time.
type client struct {
	base  string
	token string
	http  *http.Client
	cur   atomic.Int32
}

func (c *client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	bases := api.Bases(c.base)
	if len(bases) == 0 {
		bases = []string{c.base}
	}
	for try := range len(bases) {
		i := (int(c.cur.Load()) + try) % len(bases)
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if len(bases) > 1 {
			// A server that froze holds a request without answering:
			// with others to ask, one try is bounded.
			tctx, cancel = context.WithTimeout(ctx, TryTimeout)
		}
		err = c.postTo(tctx, bases[i], path, body, out)
		timedOut := tctx.Err() != nil && ctx.Err() == nil
		cancel()
		var se *statusError
		// Register and heartbeat may be sent twice: a retry of either
		// only repeats what the node says.
		again := timedOut || api.Retryable(err, true) || errors.As(err, &se) && se.code == http.StatusServiceUnavailable && (se.retry || len(bases) > 1)
		if !again || ctx.Err() != nil {
			if err == nil {
				c.cur.Store(int32(i))
			}
			return err
		}
	}
	return err
}

func (c *client) postTo(ctx context.Context, base, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &statusError{path: path, code: resp.StatusCode, body: strings.TrimSpace(string(msg)), retry: resp.Header.Get("Retry-After") != ""}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("POST %s: decode answer: %w", path, err)
	}
	return nil
}

func (c *client) register(ctx context.Context, n api.NodeInfo) error {
	return c.post(ctx, RegisterPath, n, nil)
}

func (c *client) heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	var resp api.HeartbeatResponse
	if err := c.post(ctx, HeartbeatPath, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
