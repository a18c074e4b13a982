package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func intp(n int) *int { return &n }

// A live service's bounds change through the API: a raised floor opens
// replicas at once and the idle autoscaler keeps them; a lowered floor
// lets it go back to zero; bad bounds are refused naming the field; the
// change is an event of the service and survives a restart.
func TestServiceBoundsChangeLive(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	svc := h.submit(acme, fmt.Sprintf(svcDoc, "chat", 10, "30s"))
	s, err := acme.ScaleService(h.ctx(), "chat", api.ScaleService{MinReplicas: intp(2)})
	if err != nil {
		t.Fatal(err)
	}
	if s.MinReplicas != 2 || s.MaxReplicas != 3 || s.Desired != 2 || s.Starting+s.Waiting != 2 {
		t.Fatalf("after the floor rose to 2: %+v", s)
	}
	if e := s.Events[len(s.Events)-2]; e.Kind != "bounds" || e.Detail != "replicas 2..3, were 0..3" {
		t.Errorf("bounds event: %+v (events %+v)", e, s.Events)
	}
	reps := h.bringUp("n1", true, map[int]int{0: newBackend(t, "r0").port(t), 1: newBackend(t, "r1").port(t)})
	// No load for longer than the scale-down grace (5s): the floor holds.
	for range 10 {
		h.tick()
		h.beat("n1", reps...)
	}
	if s := h.service(acme, svc.ID); s.Desired != 2 || s.Ready != 2 {
		t.Fatalf("idle above the floor: %+v", s)
	}

	for name, c := range map[string]struct{ body, field string }{
		"min above max":       {`{"minReplicas": 4}`, "minReplicas"},
		"max below min":       {`{"maxReplicas": 1}`, "maxReplicas"},
		"both, crossed":       {`{"minReplicas": 3, "maxReplicas": 2}`, "minReplicas"},
		"max zero":            {`{"maxReplicas": 0}`, "maxReplicas"},
		"negative min":        {`{"minReplicas": -1}`, "minReplicas"},
		"max above the limit": {`{"maxReplicas": 10001}`, "maxReplicas"},
		"unknown field":       {`{"replicas": 2}`, "replicas"},
		"nothing to change":   {`{}`, ""},
		"not a number":        {`{"minReplicas": "two"}`, "minReplicas"},
	} {
		req, _ := http.NewRequest(http.MethodPatch, h.url+"/v1/services/chat", strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+acme.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb api.ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if err != nil || eb.Error == nil {
			t.Fatalf("%s: error body: %v", name, err)
		}
		e := eb.Error
		if resp.StatusCode != http.StatusUnprocessableEntity || e.Field != c.field {
			t.Errorf("%s: status %d field %q (%s), want 422 naming %q", name, resp.StatusCode, e.Field, e.Message, c.field)
		}
	}
	if s := h.service(acme, svc.ID); s.MinReplicas != 2 || s.MaxReplicas != 3 || s.Desired != 2 {
		t.Fatalf("refused changes changed the service: %+v", s)
	}

	// A restart keeps the bounds.
	h.stop()
	h2 := start(t, h.dir)
	h2.admin.Token = h.admin.Token
	h, acme = h2, h2.newClient(acme.Token)
	if s := h.service(acme, svc.ID); s.MinReplicas != 2 || s.MaxReplicas != 3 || s.Desired != 2 {
		t.Fatalf("after a restart: %+v", s)
	}
	h.beat("n1", reps...)
	// Back to a floor of zero: idle, it drains to zero.
	if _, err := acme.ScaleService(h.ctx(), svc.ID, api.ScaleService{MinReplicas: intp(0)}); err != nil {
		t.Fatal(err)
	}
	h.waitService(acme, svc.ID, "drained to zero", func(s api.Service) bool { return s.Desired == 0 && s.Ready == 0 })
}

func TestServiceReplicaLimitsAgree(t *testing.T) {
	if api.MaxServiceReplicas != spec.MaxServiceReplicas {
		t.Errorf("api.MaxServiceReplicas %d, spec.MaxServiceReplicas %d", api.MaxServiceReplicas, spec.MaxServiceReplicas)
	}
}
