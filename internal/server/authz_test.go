package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// TestAnotherTenantCannotSeeOrTouch calls every route with another
// tenant's token, with a node token and with none; then every route but
// the metrics with a metrics token.
func TestAnotherTenantCannotSeeOrTouch(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, gangJob)
	svc := h.submit(acme, fmt.Sprintf(svcDoc, "chat", 10, "30s"))
	globex, err := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleTenant, Tenant: "globex"})
	if err != nil {
		t.Fatal(err)
	}
	nodeTok, err := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleNode})
	if err != nil {
		t.Fatal(err)
	}
	id := j.ID
	register := `{"name":"n9","address":"n9.local","count":0,"cpuMilli":1000,"memoryMiB":1024}`
	type call struct {
		body string
		// status for another tenant; check inspects the body.
		status int
		check  func(t *testing.T, body string)
		// public routes need no token.
		public bool
		// user routes refuse node tokens; agent routes refuse tenants.
		agent bool
		// stream routes answer events until the client leaves: the body
		// is what came in a moment.
		stream bool
	}
	// A list must not name the other tenant at all.
	notMine := func(t *testing.T, body string) {
		if strings.Contains(body, "acme") || strings.Contains(body, id) || strings.Contains(body, svc.ID) {
			t.Errorf("answer leaks the other tenant: %s", body)
		}
	}
	// A refusal must read as if the job (or queue) did not exist.
	var do func(t *testing.T, route, token, body string) (int, string)
	asIfAbsent := func(route, absentID, body string) func(t *testing.T, got string) {
		return func(t *testing.T, got string) {
			want := strings.ReplaceAll(strings.ReplaceAll(got, id, absentID), svc.ID, absentID)
			want = strings.ReplaceAll(want, "acme-train", "nosuch-queue")
			_, absent := do(t, strings.ReplaceAll(route, "{id}", absentID), globex.Token, strings.ReplaceAll(body, "acme-train", "nosuch-queue"))
			if absent != want {
				t.Errorf("refusal differs from the answer for a missing object:\n got: %s\nmissing: %s", got, absent)
			}
		}
	}
	calls := map[string]call{
		"GET /v1/openapi.yaml":          {status: 200, public: true},
		"GET /v1/healthz":               {status: 200, public: true},
		"GET " + MetricsPath:            {status: 403},
		"POST /v1/jobs":                 {body: gangJob, status: 422, check: asIfAbsent("POST /v1/jobs", "", gangJob)},
		"GET /v1/jobs":                  {status: 200, check: notMine},
		"GET /v1/jobs/{id}":             {status: 404, check: asIfAbsent("GET /v1/jobs/{id}", "train-999", "")},
		"POST /v1/jobs/{id}/cancel":     {status: 404, check: asIfAbsent("POST /v1/jobs/{id}/cancel", "train-999", "")},
		"GET /v1/jobs/{id}/logs":        {status: 404, check: asIfAbsent("GET /v1/jobs/{id}/logs", "train-999", "")},
		"GET /v1/jobs/{id}/logs/stream": {status: 404, check: asIfAbsent("GET /v1/jobs/{id}/logs/stream", "train-999", "")},
		"GET /v1/jobs/{id}/events":      {status: 404, check: asIfAbsent("GET /v1/jobs/{id}/events", "train-999", "")},
		"GET /v1/pending":               {status: 200, check: notMine},
		"GET /v1/history":               {status: 200, check: notMine},
		"GET /v1/whoami":                {status: 200, check: notMine},
		// From the first event on: every event the server still holds.
		"GET /v1/events?lastEventId=" + h.s.feed.epoch + "-0": {status: 200, check: notMine, stream: true},
		"GET /v1/queues":                {status: 200, check: notMine},
		"POST /v1/queues":               {body: `{"name":"evil","tenant":"acme"}`, status: 403},
		"GET /v1/tenants":               {status: 200, check: notMine},
		"POST /v1/tenants":              {body: `{"name":"evil"}`, status: 403},
		"POST /v1/tokens":               {body: `{"role":"tenant","tenant":"acme"}`, status: 403},
		"GET /v1/tokens":                {status: 403},
		"GET /v1/backup":                {status: 403},
		"DELETE /v1/tokens/{id}":        {status: 403},
		"PATCH /v1/queues/{name}":       {body: `{"weight":9}`, status: 403},
		"DELETE /v1/queues/{name}":      {status: 403},
		"PATCH /v1/tenants/{name}":      {body: `{"weight":9}`, status: 403},
		"DELETE /v1/tenants/{name}":     {status: 403},
		"POST /v1/nodes/{name}/drain":   {body: `{"evict":true}`, status: 403},
		"POST /v1/nodes/{name}/undrain": {status: 403},
		// The export names every tenant's jobs: admins only.
		"GET /v1/export": {status: 403},
		"GET /v1/nodes": {status: 200, check: func(t *testing.T, body string) {
			if !strings.Contains(body, `"name": "n1"`) || strings.Contains(body, "allocatedMilli") {
				t.Errorf("a tenant's node list: want the nodes without their allocations: %s", body)
			}
		}},
		"GET /v1/usage":                       {status: 200, check: notMine},
		"GET /v1/usage/jobs/{id}":             {status: 404, check: asIfAbsent("GET /v1/usage/jobs/{id}", "train-999", "")},
		"GET /v1/usage/records":               {status: 200, check: notMine},
		"GET /v1/credits":                     {status: 200, check: notMine},
		"POST /v1/credits":                    {body: `{"tenant":"globex","amount":5}`, status: 403},
		"GET /v1/sites":                       {status: 200, check: notMine},
		"PUT /v1/sites/{site}/cap":            {body: `{"kw":1}`, status: 403},
		"DELETE /v1/sites/{site}/cap":         {status: 403},
		"GET /v1/budgets":                     {status: 200, check: notMine},
		"PUT /v1/budgets/{name}":              {body: `{"monthly":5}`, status: 403},
		"GET /v1/commitments":                 {status: 200, check: notMine},
		"POST /v1/commitments":                {body: `{"id":"c","tenant":"globex","type":"h100","count":1,"end":"2099-01-01T00:00:00Z","pricePerHour":1}`, status: 403},
		"GET /v1/invoices":                    {status: 200, check: notMine},
		"GET /v1/services":                    {status: 200, check: notMine},
		"GET /v1/services/{id}":               {status: 404, check: asIfAbsent("GET /v1/services/{id}", "chat-999", "")},
		"POST /v1/services/{id}/keys":         {body: `{}`, status: 404, check: asIfAbsent("POST /v1/services/{id}/keys", "chat-999", `{}`)},
		"PATCH /v1/services/{id}":             {body: `{"minReplicas":3}`, status: 404, check: asIfAbsent("PATCH /v1/services/{id}", "chat-999", `{"minReplicas":3}`)},
		"DELETE /v1/services/{id}/keys/{key}": {status: 404, check: asIfAbsent("DELETE /v1/services/{id}/keys/{key}", "chat-999", "")},
		"POST /v1/agent/register":             {body: register, status: 403, agent: true},
		"POST /v1/agent/heartbeat":            {body: `{"node":"n1"}`, status: 403, agent: true},
	}
	for _, r := range Routes() {
		found := false
		for c := range calls {
			found = found || c == r || strings.HasPrefix(c, r+"?")
		}
		if !found {
			t.Errorf("route %s has no authorization case", r)
		}
	}
	do = func(t *testing.T, route, token, body string) (int, string) {
		method, path, _ := strings.Cut(route, " ")
		// {name} is the other tenant's own: its queue, itself, its node.
		for prefix, name := range map[string]string{"/v1/queues/": "acme-train", "/v1/tenants/": "acme", "/v1/nodes/": "n1", "/v1/budgets/": "acme"} {
			if strings.HasPrefix(path, prefix) {
				path = strings.ReplaceAll(path, "{name}", name)
			}
		}
		// {site} is a zone with nodes (the nodes' default path).
		path = strings.ReplaceAll(path, "{site}", "default%2Fdefault")
		if strings.HasPrefix(path, "/v1/services/") {
			// {id} is the other tenant's service.
			path = strings.ReplaceAll(path, "{id}", svc.ID)
		}
		req, err := http.NewRequest(method, h.url+strings.ReplaceAll(path, "{id}", id), bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		var tr http.RoundTripper = checked{t: t, next: http.DefaultTransport}
		if calls[route].stream {
			ctx, cancel := context.WithTimeout(req.Context(), 300*time.Millisecond)
			defer cancel()
			req, tr = req.WithContext(ctx), http.DefaultTransport
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	for route, c := range calls {
		t.Run(route, func(t *testing.T) {
			status, body := do(t, route, globex.Token, c.body)
			if status != c.status {
				t.Errorf("other tenant: status %d, want %d: %s", status, c.status, body)
			}
			if c.check != nil {
				c.check(t, body)
			}
			if c.public {
				return
			}
			if status, _ := do(t, route, "", c.body); status != http.StatusUnauthorized {
				t.Errorf("no token: status %d, want 401", status)
			}
			if status, _ := do(t, route, "gft_forged", c.body); status != http.StatusUnauthorized {
				t.Errorf("unknown token: status %d, want 401", status)
			}
			if !c.agent {
				if status, _ := do(t, route, nodeTok.Token, c.body); status != http.StatusForbidden {
					t.Errorf("node token: status %d, want 403", status)
				}
			}
		})
	}
	// Asking for the other tenant's accounting by name reads as asking for
	// a tenant that does not exist.
	for _, path := range []string{"/v1/usage", "/v1/credits", "/v1/budgets", "/v1/commitments", "/v1/invoices"} {
		status, body := do(t, "GET "+path+"?tenant=acme", globex.Token, "")
		_, absent := do(t, "GET "+path+"?tenant=nosuch", globex.Token, "")
		if status != http.StatusNotFound || strings.ReplaceAll(body, "acme", "nosuch") != absent {
			t.Errorf("GET %s?tenant=acme as globex: status %d, %s; want the answer for a missing tenant, %s", path, status, body, absent)
		}
	}
	// A scraper's token reads the metrics and nothing else.
	scraper, err := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleMetrics})
	if err != nil {
		t.Fatal(err)
	}
	for route, c := range calls {
		want := http.StatusForbidden
		switch {
		case route == "GET "+MetricsPath:
			want = http.StatusOK
		case c.public:
			continue
		}
		if status, body := do(t, route, scraper.Token, c.body); status != want {
			t.Errorf("metrics token, %s: status %d, want %d: %s", route, status, want, body)
		}
	}
	// Nothing the other tenant did changed the job, and its owner still
	// sees it.
	got, err := acme.Job(h.ctx(), id)
	if err != nil || got.State != store.Running {
		t.Errorf("owner's job after the other tenant's calls: %q, %v; want running", got.State, err)
	}
	// Nor did the admin routes: acme, its queue and n1 are as they were.
	var ts api.TenantList
	if _, body := do(t, "GET /v1/tenants", h.s.AdminToken(), ""); json.Unmarshal([]byte(body), &ts) != nil || len(ts.Tenants) != 2 || ts.Tenants[0].Weight != 1 {
		t.Errorf("tenants after the other tenant's calls: %s", body)
	}
	if nodes, err := h.admin.Nodes(h.ctx()); err != nil || nodes[0].State != "ready" || nodes[0].Drained {
		t.Errorf("nodes after the other tenant's calls: %+v, %v", nodes, err)
	}
	var qs api.QueueList
	_, body := do(t, "GET /v1/queues", globex.Token, "")
	if err := json.Unmarshal([]byte(body), &qs); err != nil || len(qs.Queues) != 2 {
		t.Errorf("other tenant's queue list: %s, want its own two queues", body)
	}
}

// A service's endpoint answers its tenant's tokens, admins' and its own
// API keys; to every other token it reads as a service that does not
// exist, and a key of one service reaches no other.
func TestServiceEndpointIsTheTenantsOnly(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	globex := h.client("globex")
	h.localNode("n1")
	be := newBackend(t, "r0")
	h.submit(acme, strings.Replace(fmt.Sprintf(svcDoc, "chat", 10, "30s"), "minReplicas: 0", "minReplicas: 1", 1))
	h.submit(acme, fmt.Sprintf(svcDoc, "other", 10, "30s"))
	h.sync()
	h.bringUp("n1", true, map[int]int{0: be.port(t)})
	key, err := acme.CreateServiceKey(h.ctx(), "chat")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := acme.CreateServiceKey(h.ctx(), "other")
	if err != nil {
		t.Fatal(err)
	}
	nodeTok, err := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleNode})
	if err != nil {
		t.Fatal(err)
	}
	_, _, absent := h.call(globex.Token, "/serve/acme/nosuch/x")
	for name, c := range map[string]struct {
		token, path string
		code        int
	}{
		"tenant":                 {acme.Token, "/serve/acme/chat/x", 200},
		"admin":                  {h.s.AdminToken(), "/serve/acme/chat/x", 200},
		"service key":            {key.Key, "/serve/acme/chat/x", 200},
		"bare endpoint":          {key.Key, "/serve/acme/chat", 200},
		"another tenant":         {globex.Token, "/serve/acme/chat/x", 404},
		"another service's key":  {otherKey.Key, "/serve/acme/chat/x", 404},
		"a key on another path":  {key.Key, "/serve/globex/chat/x", 404},
		"node token":             {nodeTok.Token, "/serve/acme/chat/x", 403},
		"no token":               {"", "/serve/acme/chat/x", 401},
		"forged token":           {"gft_forged", "/serve/acme/chat/x", 401},
		"another tenant, absent": {globex.Token, "/serve/acme/nosuch/x", 404},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, body := h.call(c.token, c.path)
			if code != c.code {
				t.Fatalf("status %d, want %d: %s", code, c.code, body)
			}
			if code == 404 && strings.HasPrefix(c.path, "/serve/acme/") && strings.ReplaceAll(body, "chat", "nosuch") != absent {
				t.Errorf("refusal differs from the answer for a missing service:\n got: %s\nmissing: %s", body, absent)
			}
		})
	}
	// The other tenant's lists and lookups do not name the service.
	if list, err := globex.Services(h.ctx()); err != nil || len(list) != 0 {
		t.Errorf("globex's services: %+v, %v", list, err)
	}
	if _, err := globex.CreateServiceKey(h.ctx(), "chat"); apiStatus(err) != 404 {
		t.Errorf("globex made a key for acme's service: %v", err)
	}
	// A revoked key reaches nothing.
	if err := acme.RevokeServiceKey(h.ctx(), "chat", key.ID); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := h.call(key.Key, "/serve/acme/chat/x"); code != 401 {
		t.Errorf("revoked key: %d, want 401", code)
	}
}
