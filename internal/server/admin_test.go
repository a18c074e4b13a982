package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

func ptr[T any](v T) *T { return &v }

const cappedJob = `name: wide
queue: capped-team
kind: batch
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
command: [sleep, "600"]
`

// Quota and weight changes reach the running core: a job held by its
// queue's quota starts once the quota is raised, without a restart.
func TestQueueChangesReachTheRunningCore(t *testing.T) {
	h := start(t, "")
	h.node("n1")
	h.node("n2")
	capped := func(n float64) map[string]api.Quota {
		return map[string]api.Quota{"h100": {Nominal: n, BorrowingLimit: ptr(0.0)}}
	}
	tn, err := h.admin.CreateTenant(h.ctx(), api.CreateTenant{Name: "capped", Quotas: capped(8)})
	if err != nil {
		t.Fatal(err)
	}
	if tn.Weight != 1 {
		t.Errorf("a tenant created without a weight shows weight %v, want the default 1", tn.Weight)
	}
	if _, err := h.admin.CreateQueue(h.ctx(), api.CreateQueue{Name: "capped-team", Tenant: "capped", Quotas: capped(8)}); err != nil {
		t.Fatal(err)
	}
	j := h.submit(h.client("capped"), cappedJob)
	h.sync()
	if got := h.job(j.ID); got.State != store.Pending {
		t.Fatalf("job over its quota: %q %+v, want pending", got.State, got.Explanation)
	}
	up := map[string]*api.Quota{"h100": {Nominal: 16, BorrowingLimit: ptr(0.0)}}
	if _, err := h.admin.UpdateTenant(h.ctx(), "capped", api.UpdateTenant{Quotas: up}); err != nil {
		t.Fatal(err)
	}
	q, err := h.admin.UpdateQueue(h.ctx(), "capped-team", api.UpdateQueue{Quotas: up, Weight: ptr(3.0), Strict: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if q.Weight != 3 || !q.Strict || q.Quotas["h100"].Nominal != 16 {
		t.Errorf("queue after the change: %+v", q)
	}
	h.sync()
	if got := h.job(j.ID); got.State != store.Running {
		t.Fatalf("job after its quota was raised: %q (%+v), want running", got.State, got.Explanation)
	}
	// A flavor set to null loses its quota; fields left out stay.
	tn, err = h.admin.UpdateTenant(h.ctx(), "capped", api.UpdateTenant{Quotas: map[string]*api.Quota{"h100": nil}})
	if err != nil || len(tn.Quotas) != 0 || tn.Weight != 1 {
		t.Errorf("tenant after dropping its h100 quota: %+v, %v", tn, err)
	}
	for name, tc := range map[string]struct {
		call   func() error
		status int
	}{
		"unknown tenant": {func() error {
			_, err := h.admin.UpdateTenant(h.ctx(), "nosuch", api.UpdateTenant{Weight: ptr(2.0)})
			return err
		}, 404},
		"a queue as a tenant": {func() error {
			_, err := h.admin.UpdateTenant(h.ctx(), "capped-team", api.UpdateTenant{Weight: ptr(2.0)})
			return err
		}, 404},
		"a tenant as a queue": {func() error {
			_, err := h.admin.UpdateQueue(h.ctx(), "capped", api.UpdateQueue{Weight: ptr(2.0)})
			return err
		}, 404},
		"nothing to change": {func() error { _, err := h.admin.UpdateQueue(h.ctx(), "capped-team", api.UpdateQueue{}); return err }, 422},
		"lending over nominal": {func() error {
			_, err := h.admin.UpdateQueue(h.ctx(), "capped-team", api.UpdateQueue{Quotas: map[string]*api.Quota{"h100": {Nominal: 1, LendingLimit: ptr(2.0)}}})
			return err
		}, 422},
	} {
		if err := tc.call(); apiStatus(err) != tc.status {
			t.Errorf("%s: %v, want %d", name, err, tc.status)
		}
	}
}

// Deleting a tenant or queue with unfinished jobs is refused, naming them;
// once they are over, deleting a tenant takes its queues, its tokens and
// its finished jobs with it.
func TestDeleteTenantsAndQueues(t *testing.T) {
	h := start(t, "")
	h.node("n1")
	acme := h.client("acme")
	j := h.submit(acme, benchJob)
	k := h.beat("n1").Run[0].ReplicaKey
	h.beat("n1", running(k))
	err := h.admin.DeleteTenant(h.ctx(), "acme")
	var e *api.Error
	if !asErr(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, "tenant acme has 1 job not finished: "+j.ID+" (running); cancel it first") {
		t.Fatalf("deleting a tenant with a running job: %v, want 409 naming it", err)
	}
	if err := h.admin.DeleteQueue(h.ctx(), "acme-train"); apiStatus(err) != http.StatusConflict {
		t.Errorf("deleting a queue with a running job: %v, want 409", err)
	}
	if err := h.admin.DeleteQueue(h.ctx(), "acme"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("deleting a tenant as a queue: %v, want 404", err)
	}
	h.beat("n1", exited(k, 0, ""))
	if got := h.job(j.ID); got.State != store.Succeeded {
		t.Fatalf("job: %q", got.State)
	}
	if err := h.admin.DeleteTenant(h.ctx(), "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Jobs(h.ctx(), api.JobFilter{}); apiStatus(err) != http.StatusUnauthorized {
		t.Errorf("the deleted tenant's token: %v, want 401", err)
	}
	if _, err := h.admin.Job(h.ctx(), j.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("the deleted tenant's finished job: %v, want 404", err)
	}
	ts, err := h.admin.Tenants(h.ctx())
	if err != nil || len(ts) != 1 || ts[0].Name != "globex" {
		t.Errorf("tenants after the deletion: %+v, %v", ts, err)
	}
	// A new tenant of the same name starts with nothing of the old one's.
	if _, err := h.admin.CreateTenant(h.ctx(), api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if jobs, err := h.client("acme").Jobs(h.ctx(), api.JobFilter{}); err != nil || len(jobs) != 0 {
		t.Errorf("the new acme's jobs: %d, %v; want none", len(jobs), err)
	}
	// An idle team queue goes.
	if err := h.admin.DeleteQueue(h.ctx(), "globex-batch"); err != nil {
		t.Errorf("deleting an idle queue: %v", err)
	}
	qs, _ := h.admin.Queues(h.ctx())
	var names []string
	for _, q := range qs {
		names = append(names, q.Name)
	}
	if diff := cmp.Diff([]string{"acme", "globex"}, names); diff != "" {
		t.Errorf("queues (-want +got):\n%s", diff)
	}
}

// Tokens are listed without their secrets and revoked by ID; the last
// admin token stays.
func TestListAndRevokeTokens(t *testing.T) {
	h := start(t, "")
	acme, err := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleNode, Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	toks, err := h.admin.Tokens(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	var adminID string
	for _, tk := range toks {
		roles[tk.Role] = tk.Tenant + tk.Node
		if tk.Role == api.RoleAdmin {
			adminID = tk.ID
		}
		if strings.Contains(acme.Token, tk.ID) {
			t.Errorf("a listed ID is part of a secret")
		}
	}
	if diff := cmp.Diff(map[string]string{"admin": "", "tenant": "acme", "node": "n1"}, roles); diff != "" {
		t.Errorf("listed tokens (-want +got):\n%s", diff)
	}
	if err := h.admin.RevokeToken(h.ctx(), acme.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.newClient(acme.Token).Jobs(h.ctx(), api.JobFilter{}); apiStatus(err) != http.StatusUnauthorized {
		t.Errorf("revoked token: %v, want 401", err)
	}
	if err := h.admin.RevokeToken(h.ctx(), acme.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("revoking it again: %v, want 404", err)
	}
	if err := h.admin.RevokeToken(h.ctx(), adminID); apiStatus(err) != http.StatusConflict {
		t.Errorf("revoking the last admin token: %v, want 409", err)
	}
}

const nodeJob = `name: one
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sleep, "600"]
`

// A drained node takes no new work; its running work finishes where it
// is, or with evict is stopped and requeued elsewhere. The drain outlasts
// a restart and a spell down, until undrained.
func TestDrainAndUndrain(t *testing.T) {
	h := start(t, "", func(c *Config) { c.Tick = 10 * time.Millisecond })
	acme := h.client("acme")
	h.node("n1")
	first := h.submit(acme, nodeJob)
	k := h.beat("n1").Run[0].ReplicaKey
	h.beat("n1", running(k))

	n, err := h.admin.DrainNode(h.ctx(), "n1", false)
	if err != nil || n.State != "draining" || !n.Drained {
		t.Fatalf("drained node: %+v, %v", n, err)
	}
	// The running job keeps its place and its process.
	if r := h.beat("n1", running(k)); len(r.Run) != 1 || len(r.Stop) != 0 {
		t.Errorf("the drained node's run list: run %+v stop %+v, want its job kept", r.Run, r.Stop)
	}
	if got := h.job(first.ID); got.State != store.Running {
		t.Errorf("job on the drained node: %q, want running", got.State)
	}
	second := h.submit(acme, strings.Replace(nodeJob, "name: one", "name: two", 1))
	h.beat("n1", exited(k, 0, ""))
	h.sync()
	if got := h.job(second.ID); got.State != store.Pending {
		t.Fatalf("new job while the only node is drained: %q, want pending", got.State)
	}

	// The drain survives a restart and the node going down and back.
	h.stop()
	h2 := start(t, h.dir, func(c *Config) { c.Tick = 10 * time.Millisecond })
	h2.admin.Token = h.admin.Token
	h2.beat("n1")
	h2.clock.Advance(11 * time.Second)
	h2.sync()
	if ns, _ := h2.admin.Nodes(h2.ctx()); len(ns) != 1 || ns[0].State != "down" || !ns[0].Drained {
		t.Fatalf("drained node after a restart and a silence: %+v", ns)
	}
	h2.beat("n1")
	h2.sync()
	if ns, _ := h2.admin.Nodes(h2.ctx()); ns[0].State != "draining" {
		t.Fatalf("drained node back from down: %q, want draining", ns[0].State)
	}
	if got := h2.job(second.ID); got.State != store.Pending {
		t.Fatalf("job while the node is drained: %q, want pending", got.State)
	}
	if n, err := h2.admin.UndrainNode(h2.ctx(), "n1"); err != nil || n.State != "ready" || n.Drained {
		t.Fatalf("undrained node: %+v, %v", n, err)
	}
	h2.sync()
	if got := h2.job(second.ID); got.State != store.Running {
		t.Fatalf("job once the node is undrained: %q, want running", got.State)
	}

	// Evict: the job is stopped with the stop grace, then runs elsewhere.
	k2 := h2.beat("n1").Run[0].ReplicaKey
	h2.beat("n1", running(k2))
	h2.node("n2")
	if _, err := h2.admin.DrainNode(h2.ctx(), "n1", true); err != nil {
		t.Fatal(err)
	}
	if got := h2.job(second.ID); got.State != store.Preempting || !strings.Contains(got.Reason, "drained") {
		t.Errorf("evicted job: %q (%s), want preempting", got.State, got.Reason)
	}
	r := h2.beat("n1", running(k2))
	if len(r.Run) != 0 || len(r.Stop) != 1 || r.Stop[0].DeadlineUnixMilli != h2.clock.Now().Add(5*time.Second).UnixMilli() {
		t.Fatalf("evicted node: run %+v stop %+v, want a stop order with the grace", r.Run, r.Stop)
	}
	if a := h2.beat("n2").Run; len(a) != 0 {
		t.Fatalf("the evicted job runs on n2 before its process on n1 is gone: %+v", a)
	}
	h2.beat("n1", exited(k2, -1, "SIGTERM"))
	h2.sync()
	if a := h2.beat("n2").Run; len(a) != 1 || a[0].Job != second.ID || a[0].Attempt != 2 {
		t.Errorf("n2 after the eviction: %+v, want the job's second attempt", a)
	}
	if _, err := h2.admin.DrainNode(h2.ctx(), "n9", false); apiStatus(err) != http.StatusNotFound {
		t.Errorf("draining an unknown node: %v, want 404", err)
	}
}
