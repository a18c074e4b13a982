package web_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/agent"
	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/server"
)

// plane is a live control plane on loopback: the real server (store,
// loop, API, dashboard) and real node agents that run real processes.
type plane struct {
	t      testing.TB
	url    string
	dir    string
	admin  *api.Client
	tokens map[string]string
	s      *server.Server
}

func lim(n int64) quota.Limits { return quota.Limits{Nominal: n * 1000} }

// planeQueues: two tenants, each with one team queue and quota for the
// whole fleet.
func planeQueues() []quota.Spec {
	return []quota.Spec{
		{Name: "acme", Quotas: map[string]quota.Limits{"h100": lim(16), "h200": lim(8)}},
		{Name: "acme-train", Parent: "acme", Quotas: map[string]quota.Limits{"h100": lim(16), "h200": lim(8)}},
		{Name: "globex", Quotas: map[string]quota.Limits{"h100": lim(16), "h200": lim(8)}},
		{Name: "globex-batch", Parent: "globex", Quotas: map[string]quota.Limits{"h100": lim(16), "h200": lim(8)}},
	}
}

type nodeDecl struct {
	name, accel, block, rack string
}

var planeNodes = []nodeDecl{
	{"h100-a", "h100", "b1", "r1"},
	{"h100-b", "h100", "b1", "r2"},
	{"h200-a", "h200", "b2", "r3"},
}

// startPlane runs the server on dir (a new one when empty) and an agent
// for each node, and makes a token for each tenant.
func startPlane(t testing.TB, dir string, withAgents bool) *plane {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := server.Config{DataDir: dir, InitialQueues: planeQueues(), HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout: time.Hour, StopGrace: 2 * time.Second, HistoryInterval: time.Second, Tick: 250 * time.Millisecond}
	s, err := server.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Serve(ctx, ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	url := "http://" + ln.Addr().String()
	p := &plane{t: t, url: url, dir: dir, s: s, tokens: map[string]string{}}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		s.Close()
	})
	p.admin = api.NewClient(url, s.AdminToken())
	for _, n := range planeNodes {
		info := api.NodeInfo{Name: n.name, Address: "127.0.0.1", Accel: n.accel, Count: 8, CPUMilli: 128000, MemoryMiB: 1 << 20,
			Path: map[string]string{"region": "eu", "zone": "eu-1", "block": n.block, "rack": n.rack}}
		if !withAgents {
			if err := p.admin.Register(ctx, info); err != nil {
				t.Fatal(err)
			}
			continue
		}
		acfg := agent.Config{Server: url, Token: s.AdminToken(), Name: n.name, Address: "127.0.0.1",
			Inventory: agent.Inventory{Accel: n.accel, Count: 8, CPUMilli: info.CPUMilli, MemoryMiB: info.MemoryMiB},
			Path:      info.Path, StateDir: filepath.Join(dir, "agents", n.name), Interval: 200 * time.Millisecond,
			StopGrace: time.Second, StopReplicasOnExit: true}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := agent.Run(ctx, acfg); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("agent %s: %v", acfg.Name, err)
			}
		}()
	}
	p.waitFor("every node ready", func() bool {
		ns, err := p.admin.Nodes(ctx)
		ready := 0
		for _, n := range ns {
			if n.State == "ready" {
				ready++
			}
		}
		return err == nil && ready == len(planeNodes)
	})
	for _, tenant := range []string{"acme", "globex"} {
		tok, err := p.admin.CreateToken(ctx, api.CreateToken{Role: api.RoleTenant, Tenant: tenant})
		if err != nil {
			t.Fatal(err)
		}
		p.tokens[tenant] = tok.Token
	}
	return p
}

func (p *plane) client(tenant string) *api.Client { return api.NewClient(p.url, p.tokens[tenant]) }

// waitFor polls cond for up to a minute: the machine may be loaded, and
// what is awaited is an outcome, not a speed.
func (p *plane) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *plane) submit(tenant, doc string) api.Job {
	p.t.Helper()
	j, _, err := p.client(tenant).Submit(context.Background(), "job.yaml", []byte(doc), "")
	if err != nil {
		p.t.Fatalf("submit for %s: %v\n%s", tenant, err, doc)
	}
	return j
}

func (p *plane) waitState(id string, states ...string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("job %s to be %v", id, states), func() bool {
		j, err := p.admin.Job(context.Background(), id)
		if err != nil {
			return false
		}
		for _, s := range states {
			if j.State == s {
				return true
			}
		}
		return false
	})
}

// chromium finds the browser: $GPUFLEET_CHROMIUM, else Debian's chromium
// or another Chrome on PATH.
func chromium() string {
	if p := os.Getenv("GPUFLEET_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// shotDir is where screenshots go: $GPUFLEET_SCREENSHOTS, else a
// directory of the test's own.
func shotDir(t testing.TB) string {
	if d := os.Getenv("GPUFLEET_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}
