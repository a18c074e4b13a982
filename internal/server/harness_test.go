package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/store"
)

// clock is a settable clock for the loop.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func lim(n int64) quota.Limits { return quota.Limits{Nominal: n * 1000} }

// testQueues: two tenants with one team queue each, 16 h100 each.
func testQueues() []quota.Spec {
	return []quota.Spec{
		{Name: "acme", Quotas: map[string]quota.Limits{"h100": lim(16)}},
		{Name: "acme-train", Parent: "acme", Quotas: map[string]quota.Limits{"h100": lim(16)}},
		{Name: "globex", Quotas: map[string]quota.Limits{"h100": lim(16)}},
		{Name: "globex-batch", Parent: "globex", Quotas: map[string]quota.Limits{"h100": lim(16)}},
	}
}

type harness struct {
	t     *testing.T
	dir   string
	s     *Server
	url   string
	admin *api.Client
	clock *clock
	stop  func()
}

type option func(*Config)

// start runs a server on dir (a new temp dir when empty) with a fake clock.
func start(t *testing.T, dir string, opts ...option) *harness {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	cfg := Config{DataDir: dir, InitialQueues: testQueues(), HeartbeatTimeout: 10 * time.Second, StopGrace: 5 * time.Second,
		Now: clk.Now}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	h := &harness{t: t, dir: dir, s: s, url: ts.URL, clock: clk}
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("loop: %v", err)
			}
			ts.Close()
			s.Close()
		})
	}
	t.Cleanup(h.stop)
	h.admin = h.newClient(s.AdminToken())
	return h
}

// newClient makes a client whose every response is checked against the
// OpenAPI document.
func (h *harness) newClient(token string) *api.Client {
	c := api.NewClient(h.url, token)
	c.HTTP.Transport = checked{t: h.t, next: http.DefaultTransport}
	return c
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// client makes a tenant's client.
func (h *harness) client(tenant string) *api.Client {
	h.t.Helper()
	tok, err := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleTenant, Tenant: tenant})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.newClient(tok.Token)
}

// node registers a node with 8 h100.
func (h *harness) node(name string) {
	h.t.Helper()
	err := h.admin.Register(h.ctx(), api.NodeInfo{Name: name, Address: name + ".local", Accel: "h100", Count: 8,
		CPUMilli: 64000, MemoryMiB: 512 << 10, Path: map[string]string{"rack": "r1"}})
	if err != nil {
		h.t.Fatal(err)
	}
}

// beat sends a heartbeat from a node.
func (h *harness) beat(node string, reps ...api.ReplicaStatus) api.HeartbeatResponse {
	h.t.Helper()
	resp, err := h.admin.Heartbeat(h.ctx(), api.HeartbeatRequest{Node: node, Replicas: reps})
	if err != nil {
		h.t.Fatal(err)
	}
	sort.Slice(resp.Run, func(a, b int) bool { return less(resp.Run[a].ReplicaKey, resp.Run[b].ReplicaKey) })
	sort.Slice(resp.Stop, func(a, b int) bool { return less(resp.Stop[a].ReplicaKey, resp.Stop[b].ReplicaKey) })
	return resp
}

func less(a, b api.ReplicaKey) bool {
	return fmt.Sprint(a.Job, a.Attempt, a.Gang, a.Replica) < fmt.Sprint(b.Job, b.Attempt, b.Gang, b.Replica)
}

// sync waits for two loop iterations to pass whole: each answers only
// after its commit, so the tick, cycle and commit of the iteration that
// took it are done (the gauges refreshed, if the clock says it is time).
func (h *harness) sync() {
	h.t.Helper()
	for range 2 {
		if _, err := exec(h.ctx(), h.s, func(l *loop, reply func(struct{})) {
			l.afterCommit(func(error) { reply(struct{}{}) })
		}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) submit(c *api.Client, doc string) api.Job {
	h.t.Helper()
	j, _, err := c.Submit(h.ctx(), "job.yaml", []byte(doc), "")
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) job(id string) api.Job {
	h.t.Helper()
	j, err := h.admin.Job(h.ctx(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func running(k api.ReplicaKey) api.ReplicaStatus {
	return api.ReplicaStatus{ReplicaKey: k, State: api.ReplicaRunning, PID: 100}
}

func exited(k api.ReplicaKey, code int, sig string) api.ReplicaStatus {
	return api.ReplicaStatus{ReplicaKey: k, State: api.ReplicaExited, ExitCode: code, Signal: sig}
}

func apiStatus(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

var _ = store.Pending

func asErr(err error, e **api.Error) bool { return errors.As(err, e) }
