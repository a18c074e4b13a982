package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls a gpufleet server.
type Client struct {
	// Base is the server's URL, e.g. http://127.0.0.1:7070.
	Base  string
	Token string
	HTTP  *http.Client
}

// NewClient makes a client with a bounded request timeout.
func NewClient(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Log response headers.
const (
	HeaderLogNext     = "X-Log-Next-Offset"
	HeaderLogAttempt  = "X-Log-Attempt"
	HeaderJobState    = "X-Job-State"
	HeaderIdempotency = "Idempotency-Key"
)

func (c *Client) do(ctx context.Context, method, path string, body []byte, contentType string, hdr http.Header, out any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			return resp, eb.Error
		}
		return resp, &Error{Status: resp.StatusCode, Code: CodeInternal, Message: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))}
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = data
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return resp, fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return resp, nil
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, path, body, "application/json", nil, out)
	return err
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	_, err := c.do(ctx, http.MethodGet, path, nil, "", nil, out)
	return err
}

// Submit sends a job document (YAML or JSON). name labels error messages;
// key makes retries safe. created is false when the server returned the
// job an earlier request with the same key made.
func (c *Client) Submit(ctx context.Context, name string, doc []byte, key string) (job Job, created bool, err error) {
	hdr := http.Header{}
	if key != "" {
		hdr.Set(HeaderIdempotency, key)
	}
	path := "/v1/jobs"
	if name != "" {
		path += "?filename=" + url.QueryEscape(name)
	}
	resp, err := c.do(ctx, http.MethodPost, path, doc, "application/yaml", hdr, &job)
	if err != nil {
		return job, false, err
	}
	return job, resp.StatusCode == http.StatusCreated, nil
}

// JobFilter narrows a job listing.
type JobFilter struct {
	State  string
	Queue  string
	Tenant string
	Kind   string
	// Newest lists the newest jobs first; a page's cursor then goes back
	// in time.
	Newest bool
}

// Jobs lists jobs the token may see.
func (c *Client) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	var all []Job
	after := ""
	for {
		l, err := c.JobsPage(ctx, f, after, 0)
		if err != nil {
			return all, err
		}
		all = append(all, l.Jobs...)
		if l.Next == "" {
			return all, nil
		}
		after = l.Next
	}
}

// JobsPage reads one page of the job list: up to limit jobs (0: the
// server's default) from the cursor a previous page gave (empty: from the
// start, or with f.Newest from the newest job).
func (c *Client) JobsPage(ctx context.Context, f JobFilter, after string, limit int) (JobList, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Queue != "" {
		q.Set("queue", f.Queue)
	}
	if f.Tenant != "" {
		q.Set("tenant", f.Tenant)
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	cursor := "after"
	if f.Newest {
		q.Set("order", "newest")
		cursor = "before"
	}
	if after != "" {
		q.Set(cursor, after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l JobList
	err := c.get(ctx, path, &l)
	return l, err
}

// PendingFilter narrows GET /v1/pending.
type PendingFilter struct {
	Queue, Tenant, Kind, Job string
}

// Pending reads a page of pending jobs in their queues' order from an
// offset (limit 0: the server's default).
func (c *Client) Pending(ctx context.Context, f PendingFilter, offset, limit int) (PendingList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"queue": f.Queue, "tenant": f.Tenant, "kind": f.Kind, "job": f.Job} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/pending"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l PendingList
	err := c.get(ctx, path, &l)
	return l, err
}

// JobEvents reads a job's timeline.
func (c *Client) JobEvents(ctx context.Context, id string) (JobEvents, error) {
	var e JobEvents
	err := c.get(ctx, "/v1/jobs/"+url.PathEscape(id)+"/events", &e)
	return e, err
}

// History reads the samples of the fleet and the queues the token may see.
func (c *Client) History(ctx context.Context) (History, error) {
	var h History
	err := c.get(ctx, "/v1/history", &h)
	return h, err
}

// Whoami reads the token's role and tenant.
func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	var w Whoami
	err := c.get(ctx, "/v1/whoami", &w)
	return w, err
}

// Job reads one job with the core's explanation.
func (c *Client) Job(ctx context.Context, id string) (Job, error) {
	var j Job
	err := c.get(ctx, "/v1/jobs/"+url.PathEscape(id), &j)
	return j, err
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) (Job, error) {
	var j Job
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, "", nil, &j)
	return j, err
}

// LogPage is one read of a replica's log.
type LogPage struct {
	Data []byte
	// Next is the offset to ask for next.
	Next     int64
	Attempt  int
	JobState string
}

// Logs reads a replica's log (by rank) from offset; attempt 0 means the
// latest.
func (c *Client) Logs(ctx context.Context, id string, rank, attempt int, offset int64) (LogPage, error) {
	q := url.Values{}
	q.Set("rank", strconv.Itoa(rank))
	q.Set("offset", strconv.FormatInt(offset, 10))
	if attempt > 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	var p LogPage
	resp, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/logs?"+q.Encode(), nil, "", nil, &p.Data)
	if err != nil {
		return p, err
	}
	p.Next, _ = strconv.ParseInt(resp.Header.Get(HeaderLogNext), 10, 64)
	p.Attempt, _ = strconv.Atoi(resp.Header.Get(HeaderLogAttempt))
	p.JobState = resp.Header.Get(HeaderJobState)
	return p, nil
}

// Nodes lists the fleet's nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var l NodeList
	err := c.get(ctx, "/v1/nodes", &l)
	return l.Nodes, err
}

// Queues lists the queues the token may see.
func (c *Client) Queues(ctx context.Context) ([]Queue, error) {
	var l QueueList
	err := c.get(ctx, "/v1/queues", &l)
	return l.Queues, err
}

// Tenants lists the tenants the token may see.
func (c *Client) Tenants(ctx context.Context) ([]Tenant, error) {
	var l TenantList
	err := c.get(ctx, "/v1/tenants", &l)
	return l.Tenants, err
}

// CreateTenant adds a tenant (admin only).
func (c *Client) CreateTenant(ctx context.Context, t CreateTenant) (Tenant, error) {
	var out Tenant
	err := c.postJSON(ctx, "/v1/tenants", t, &out)
	return out, err
}

// CreateQueue adds a team queue under a tenant (admin only).
func (c *Client) CreateQueue(ctx context.Context, q CreateQueue) (Queue, error) {
	var out Queue
	err := c.postJSON(ctx, "/v1/queues", q, &out)
	return out, err
}

// CreateToken makes a token (admin only); its secret is returned once.
func (c *Client) CreateToken(ctx context.Context, t CreateToken) (Token, error) {
	var out Token
	err := c.postJSON(ctx, "/v1/tokens", t, &out)
	return out, err
}

func (c *Client) send(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	ctype := ""
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
		ctype = "application/json"
	}
	_, err := c.do(ctx, method, path, body, ctype, nil, out)
	return err
}

// UpdateTenant changes a tenant's weight or quotas (admin only).
func (c *Client) UpdateTenant(ctx context.Context, name string, u UpdateTenant) (Tenant, error) {
	var out Tenant
	err := c.send(ctx, http.MethodPatch, "/v1/tenants/"+url.PathEscape(name), u, &out)
	return out, err
}

// DeleteTenant removes a tenant with its queues, tokens and finished jobs
// (admin only); it is refused while the tenant has jobs not finished.
func (c *Client) DeleteTenant(ctx context.Context, name string) error {
	return c.send(ctx, http.MethodDelete, "/v1/tenants/"+url.PathEscape(name), nil, nil)
}

// UpdateQueue changes a queue's weight, strict FIFO setting or quotas
// (admin only).
func (c *Client) UpdateQueue(ctx context.Context, name string, u UpdateQueue) (Queue, error) {
	var out Queue
	err := c.send(ctx, http.MethodPatch, "/v1/queues/"+url.PathEscape(name), u, &out)
	return out, err
}

// DeleteQueue removes a team queue (admin only); it is refused while the
// queue has jobs not finished or queues below it.
func (c *Client) DeleteQueue(ctx context.Context, name string) error {
	return c.send(ctx, http.MethodDelete, "/v1/queues/"+url.PathEscape(name), nil, nil)
}

// Tokens lists the tokens, without their secrets (admin only).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var l TokenList
	err := c.get(ctx, "/v1/tokens", &l)
	return l.Tokens, err
}

// RevokeToken deletes a token by its ID (admin only).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.send(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// DrainNode keeps new work off a node; with evict its running work is
// stopped and requeued too (admin only).
func (c *Client) DrainNode(ctx context.Context, name string, evict bool) (Node, error) {
	var out Node
	err := c.send(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/drain", DrainNode{Evict: evict}, &out)
	return out, err
}

// UndrainNode lets a drained node take work again (admin only).
func (c *Client) UndrainNode(ctx context.Context, name string) (Node, error) {
	var out Node
	err := c.send(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/undrain", nil, &out)
	return out, err
}

// Register declares a node (node or admin token).
func (c *Client) Register(ctx context.Context, n NodeInfo) error {
	return c.postJSON(ctx, "/v1/agent/register", n, nil)
}

// Heartbeat reports a node's replicas and receives its desired state.
func (c *Client) Heartbeat(ctx context.Context, h HeartbeatRequest) (HeartbeatResponse, error) {
	var out HeartbeatResponse
	err := c.postJSON(ctx, "/v1/agent/heartbeat", h, &out)
	return out, err
}

// Export streams the fleet's recorded history from from to to (zero
// times: the beginning of the record, now) as a native trace into w. The
// client's timeout does not cut it short; ctx does.
func (c *Client) Export(ctx context.Context, from, to time.Time, w io.Writer) error {
	q := url.Values{}
	if !from.IsZero() {
		q.Set("from", from.UTC().Format(time.RFC3339))
	}
	if !to.IsZero() {
		q.Set("to", to.UTC().Format(time.RFC3339))
	}
	path := "/v1/export"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			return eb.Error
		}
		return &Error{Status: resp.StatusCode, Code: CodeInternal, Message: fmt.Sprintf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(data))}
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
