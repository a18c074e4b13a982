package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

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
}

func (e *statusError) Error() string {
	return fmt.Sprintf("POST %s: %d %s: %s", e.path, e.code, http.StatusText(e.code), e.body)
}

// permanent says retrying the same request cannot help: the server refused
// the node or the token.
func (e *statusError) permanent() bool {
	return e.code == http.StatusBadRequest || e.code == http.StatusUnauthorized || e.code == http.StatusForbidden
}

// client speaks the agent protocol to one server.
type client struct {
	base  string
	token string
	http  *http.Client
}

func (c *client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.base, "/")+path, bytes.NewReader(body))
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
		return &statusError{path: path, code: resp.StatusCode, body: strings.TrimSpace(string(msg))}
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
