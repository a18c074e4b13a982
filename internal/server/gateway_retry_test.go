package server

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// A replica whose process is gone while it is still routed (before its
// agent's probe takes it out) refuses the gateway's connection: the
// request, which it never saw, goes to another ready replica, body and
// all, and no caller sees the dead one. With no other replica, the caller
// gets a 502 after the attempts.
func TestGatewayRetriesARefusedConnectionElsewhere(t *testing.T) {
	h := start(t, "", func(c *Config) { c.HeartbeatTimeout = time.Hour })
	acme := h.client("acme")
	h.localNode("n1")
	dead, live := newBackend(t, "r0"), newBackend(t, "r1")
	doc := strings.Replace(fmt.Sprintf(svcDoc, "chat", 10, "30s"), "minReplicas: 0", "minReplicas: 2", 1)
	svc := h.submit(acme, doc)
	h.sync()
	ports := map[int]int{0: dead.port(t), 1: live.port(t)}
	reps := h.bringUp("n1", true, ports)
	h.waitService(acme, svc.ID, "two ready", func(s api.Service) bool { return s.Ready == 2 })
	dead.Close() // its port now refuses connections

	var wg sync.WaitGroup
	answers := make(chan string, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", h.url+"/serve/acme/chat/v1/completions", strings.NewReader(fmt.Sprintf(`{"prompt": "p%d"}`, i)))
			req.Header.Set("Authorization", "Bearer "+acme.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- err.Error()
				return
			}
			defer resp.Body.Close()
			buf := new(strings.Builder)
			_, _ = fmt.Fprint(buf, resp.StatusCode, " ", resp.Header.Get(api.HeaderReplica), " ")
			b := make([]byte, 256)
			n, _ := resp.Body.Read(b)
			buf.Write(b[:n])
			answers <- buf.String()
		}()
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		if !strings.HasPrefix(a, "200 1 r1 /v1/completions") {
			t.Errorf("answer %q, want 200 from replica 1", a)
		}
	}
	if n := live.calls.Load(); n != 8 {
		t.Errorf("the live replica had %d calls, want 8", n)
	}
	if s := h.service(acme, svc.ID); s.InFlight != 0 {
		t.Errorf("in flight after the answers: %d", s.InFlight)
	}

	if m := regexp.MustCompile(`(?m)^gpufleet_service_refused_connections_total\{service="chat",tenant="acme"\} [1-9]`); !m.MatchString(h.metricsText()) {
		t.Errorf("refused connections not counted:\n%s", h.metricsText())
	}

	// The live one goes too: nothing to retry on, a 502.
	live.Close()
	h.beat("n1", reps...)
	if code, _, body := h.call(acme.Token, "/serve/acme/chat/x"); code != http.StatusBadGateway {
		t.Errorf("with every replica refusing: %d %q, want 502", code, body)
	}
}

// metricsText scrapes the server's metrics with the admin token.
func (h *harness) metricsText() string {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url+MetricsPath, nil)
	req.Header.Set("Authorization", "Bearer "+h.admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}
