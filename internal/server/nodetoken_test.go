package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// A node token speaks for its own node only: it does not hear another
// node's run list (commands, environments with their secrets), cannot end
// another node's replicas or write their logs, and registers no other
// node. A token made without a node is bound to the first one it
// registers, and cannot take over a node another token speaks for.
func TestNodeTokenSpeaksForItsNodeOnly(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, strings.Replace(gangJob, `env: {STEPS: "10"}`, `env: {API_KEY: "s3cret"}`, 1))
	k2 := h.beat("n2").Run[0].ReplicaKey
	h.beat("n2", running(k2))
	h.beat("n1")
	token := func(req api.CreateToken) string {
		t.Helper()
		tok, err := h.admin.CreateToken(h.ctx(), req)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	n1 := token(api.CreateToken{Role: api.RoleNode, Node: "n1"})
	post := func(tok, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Transport: checked{t: t, next: http.DefaultTransport}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	beat := func(req api.HeartbeatRequest) string {
		b, _ := json.Marshal(req)
		return string(b)
	}
	register := func(name string) string {
		return `{"name":"` + name + `","address":"` + name + `.local","accel":"h100","count":8,"cpuMilli":64000,"memoryMiB":524288,"path":{"rack":"r1"}}`
	}

	for name, body := range map[string]string{
		"another node's run list": beat(api.HeartbeatRequest{Node: "n2"}),
		"another node's exit":     beat(api.HeartbeatRequest{Node: "n2", Replicas: []api.ReplicaStatus{exited(k2, 1, "")}}),
		"another node's log":      beat(api.HeartbeatRequest{Node: "n2", Logs: []api.LogChunk{{ReplicaKey: k2, Data: []byte("forged\n")}}}),
	} {
		status, got := post(n1, "/v1/agent/heartbeat", body)
		if status != http.StatusForbidden || !strings.Contains(got, "speaks for node n1, not n2") {
			t.Errorf("%s with n1's token: %d %s, want 403", name, status, got)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "echo rank") {
			t.Errorf("%s: the answer leaks the tenant's job: %s", name, got)
		}
	}
	if status, got := post(n1, "/v1/agent/register", register("n9")); status != http.StatusForbidden {
		t.Errorf("n1's token registering n9: %d %s, want 403", status, got)
	}
	if got := h.job(j.ID); got.State != store.Running {
		t.Errorf("job after the forged reports: %q, want running", got.State)
	}
	if p, err := acme.Logs(h.ctx(), j.ID, rankOf(h, j.ID, k2), 0, 0); err != nil || len(p.Data) != 0 {
		t.Errorf("n2's replica log after a forged chunk: %q, %v", p.Data, err)
	}
	// Its own node: registered again and heard.
	if status, got := post(n1, "/v1/agent/register", register("n1")); status != http.StatusOK {
		t.Errorf("n1's token registering n1: %d %s", status, got)
	}
	if status, got := post(n1, "/v1/agent/heartbeat", beat(api.HeartbeatRequest{Node: "n1"})); status != http.StatusOK || !strings.Contains(got, "s3cret") {
		t.Errorf("n1's own heartbeat: %d %s, want its run list", status, got)
	}

	// A token made without a node is bound by its first registration.
	first := token(api.CreateToken{Role: api.RoleNode})
	if status, got := post(first, "/v1/agent/heartbeat", beat(api.HeartbeatRequest{Node: "n1"})); status != http.StatusForbidden || !strings.Contains(got, "speaks for no node yet") {
		t.Errorf("unbound token's heartbeat: %d %s, want 403", status, got)
	}
	if status, got := post(first, "/v1/agent/register", register("n1")); status != http.StatusForbidden || !strings.Contains(got, "node n1 has a token of its own") {
		t.Errorf("unbound token taking over n1: %d %s, want 403", status, got)
	}
	if status, got := post(first, "/v1/agent/register", register("n3")); status != http.StatusOK {
		t.Fatalf("unbound token registering n3: %d %s", status, got)
	}
	if status, got := post(first, "/v1/agent/register", register("n4")); status != http.StatusForbidden || !strings.Contains(got, "speaks for node n3, not n4") {
		t.Errorf("bound token registering a second node: %d %s, want 403", status, got)
	}
	if status, got := post(first, "/v1/agent/heartbeat", beat(api.HeartbeatRequest{Node: "n3"})); status != http.StatusOK {
		t.Errorf("n3's heartbeat: %d %s", status, got)
	}
	second := token(api.CreateToken{Role: api.RoleNode})
	if status, got := post(second, "/v1/agent/register", register("n3")); status != http.StatusForbidden {
		t.Errorf("a second unbound token taking over n3: %d %s, want 403", status, got)
	}

	// Tenants see the fleet's capacity, not what other tenants hold.
	nodes, err := h.client("globex").Nodes(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.AllocatedMilli != nil {
			t.Errorf("a tenant sees node %s's allocation", n.Name)
		}
	}
	all, err := h.admin.Nodes(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	alloc := map[string]int64{}
	for _, n := range all {
		if n.AllocatedMilli != nil {
			alloc[n.Name] = *n.AllocatedMilli
		}
	}
	if diff := cmp.Diff(map[string]int64{"n1": 8000, "n2": 8000, "n3": 0}, alloc); diff != "" {
		t.Errorf("admin's node allocations (-want +got):\n%s", diff)
	}
}

func rankOf(h *harness, id string, k api.ReplicaKey) int {
	for _, r := range h.job(id).Replicas {
		if r.Gang == k.Gang && r.Replica == k.Replica {
			return r.Rank
		}
	}
	h.t.Fatalf("no rank for %+v", k)
	return -1
}
