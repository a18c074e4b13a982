package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// svcDoc is a service of acme that scales to zero; %s is its name, the
// queue limit and timeout follow.
const svcDoc = `name: %s
queue: acme-train
kind: service
service:
  replica:
    accelerators: h100
    count: 1
  minReplicas: 0
  maxReplicas: 3
  target:
    inFlight: 2
  scaleDownGrace: 5s
  drainTimeout: 1m
  queue:
    limit: %d
    timeout: %s
command: [serve]
`

// backendServer is a replica's model server: it answers with its name and
// the path it was asked, streams server-sent events on /stream (one each
// time release is sent to), and holds /hold until release closes.
type backendServer struct {
	*httptest.Server
	name    string
	release chan struct{}
	calls   atomic.Int64
	auth    atomic.Value
}

func newBackend(t *testing.T, name string) *backendServer {
	b := &backendServer{name: name, release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		b.auth.Store(r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set(api.HeaderPromptTokens, "7")
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "data: token %d\n\n", i)
				w.(http.Flusher).Flush()
				<-b.release
			}
		case "/hold":
			<-b.release
			fmt.Fprintf(w, "%s held %s", b.name, r.URL.RawQuery)
		default:
			fmt.Fprintf(w, "%s %s?%s", b.name, r.URL.Path, r.URL.RawQuery)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backendServer) port(t *testing.T) int {
	u, _ := url.Parse(b.URL)
	_, p, _ := net.SplitHostPort(u.Host)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// localNode registers a node whose replicas are reachable on loopback.
func (h *harness) localNode(name string) {
	h.t.Helper()
	err := h.admin.Register(h.ctx(), api.NodeInfo{Name: name, Address: "127.0.0.1", Accel: "h100", Count: 8,
		CPUMilli: 64000, MemoryMiB: 512 << 10, Path: map[string]string{"rack": "r1"}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.beat(name)
}

// tick moves the clock a second on and waits for the loop to take it: the
// autoscalers step once.
func (h *harness) tick() {
	h.t.Helper()
	h.clock.Advance(time.Second)
	h.sync()
}

// call sends a request to the gateway.
func (h *harness) call(token, path string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

func (h *harness) service(c *api.Client, ref string) api.Service {
	h.t.Helper()
	s, err := c.Service(h.ctx(), ref)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// waitService waits until the service satisfies cond, stepping the
// autoscalers between looks.
func (h *harness) waitService(c *api.Client, ref, what string, cond func(api.Service) bool) api.Service {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := h.service(c, ref)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("service %s: %s: not within 20s (last: %+v)", ref, what, s)
		}
		h.tick()
	}
}

// bringUp answers the heartbeat that runs the service's new replicas: each
// reported running on its backend's port, ready as ready says.
func (h *harness) bringUp(node string, ready bool, ports map[int]int) []api.ReplicaStatus {
	h.t.Helper()
	resp := h.beat(node)
	var reps []api.ReplicaStatus
	for _, a := range resp.Run {
		st := running(a.ReplicaKey)
		st.Port, st.Ready = ports[a.Replica], ready
		reps = append(reps, st)
	}
	h.beat(node, reps...)
	return reps
}

// A request to a service at zero replicas is held while a replica is
// placed and starts; once its agent reports it ready, the request is
// passed to it (the path past the service's prefix and the query with it,
// the caller's token not), and its answer comes back.
func TestServiceHoldsTheFirstRequestAtZeroThenServesIt(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	be := newBackend(t, "r0")
	svc := h.submit(acme, fmt.Sprintf(svcDoc, "chat", 10, "30s"))
	if s := h.service(acme, "chat"); s.Desired != 0 || s.Endpoint != "/serve/acme/chat/" || len(s.Replicas) != 0 {
		t.Fatalf("new service: %+v", s)
	}
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	go func() {
		code, _, body := h.call(acme.Token, "/serve/acme/chat/v1/models?x=1")
		got <- answer{code, body}
	}()
	// The held request starts a replica at once; the core places it.
	s := h.waitService(acme, svc.ID, "a replica placed", func(s api.Service) bool { return s.Starting == 1 && s.Queued == 1 })
	if s.Desired != 1 {
		t.Errorf("desired %d, want 1", s.Desired)
	}
	reps := h.bringUp("n1", false, map[int]int{0: be.port(t)})
	h.tick()
	select {
	case a := <-got:
		t.Fatalf("answered before a replica was ready: %+v", a)
	default:
	}
	reps[0].Ready = true
	h.beat("n1", reps...)
	a := <-got
	if a.code != 200 || a.body != "r0 /v1/models?x=1" {
		t.Errorf("answer %d %q", a.code, a.body)
	}
	if auth := be.auth.Load(); auth != "" {
		t.Errorf("the replica saw the caller's credentials: %q", auth)
	}
	s = h.service(acme, "chat")
	if s.Ready != 1 || len(s.ColdStarts) != 1 || s.Replicas[0].Phase != "ready" {
		t.Errorf("after the first answer: %+v", s)
	}
}

// With no replica to take it, a request waits at most the queue timeout
// and is answered 503 with Retry-After; past the queue limit it is
// answered so at once.
func TestServiceQueueLimitAndTimeout(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	// No node: the replica the first request asks for is never placed.
	h.submit(acme, fmt.Sprintf(svcDoc, "chat", 1, "1s"))
	var wg sync.WaitGroup
	codes := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, hdr, body := h.call(acme.Token, "/serve/acme/chat/")
		if hdr.Get("Retry-After") == "" || !strings.Contains(body, "queue timeout") {
			t.Errorf("held request refused without Retry-After or reason: %v %s", hdr, body)
		}
		codes <- code
	}()
	h.waitService(acme, "chat", "a request held", func(s api.Service) bool { return s.Queued == 1 })
	code, hdr, body := h.call(acme.Token, "/serve/acme/chat/")
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(body, "queue limit") {
		t.Errorf("past the queue limit: %d %v %s", code, hdr, body)
	}
	wg.Wait()
	if c := <-codes; c != 503 {
		t.Errorf("held request: %d, want 503", c)
	}
}

// Server-sent events come through as the replica sends them, one at a
// time, and the prompt tokens a replica reports reach the autoscaler.
func TestServiceStreamsAnswersUnbuffered(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	be := newBackend(t, "r0")
	h.submit(acme, strings.Replace(fmt.Sprintf(svcDoc, "chat", 10, "30s"), "minReplicas: 0", "minReplicas: 1", 1))
	h.sync()
	h.bringUp("n1", true, map[int]int{0: be.port(t)})
	req, _ := http.NewRequest("GET", h.url+"/serve/acme/chat/stream", nil)
	req.Header.Set("Authorization", "Bearer "+acme.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get(api.HeaderReplica) != "0" {
		t.Errorf("replica header %q", resp.Header.Get(api.HeaderReplica))
	}
	rd := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		// The replica sends the next event only after this one was read.
		line, err := rd.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: token %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		rd.ReadString('\n')
		be.release <- struct{}{}
	}
	// The answer ends once the gateway has counted the request out.
	if rest, err := io.ReadAll(rd); err != nil || len(rest) != 0 {
		t.Errorf("after the last event: %q %v", rest, err)
	}
	if s := h.service(acme, "chat"); s.InFlight != 0 {
		t.Errorf("in flight after the stream: %d", s.InFlight)
	}
}

// Scaling down takes a replica out of routing first and stops it only once
// its requests in flight are done: every request in flight on it is
// answered.
func TestServiceScaleDownDrainsBeforeStopping(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	be := [2]*backendServer{newBackend(t, "r0"), newBackend(t, "r1")}
	doc := strings.Replace(fmt.Sprintf(svcDoc, "chat", 10, "30s"), "inFlight: 2", "inFlight: 4", 1)
	svc := h.submit(acme, doc)
	// Five requests need two replicas of four each.
	var wg sync.WaitGroup
	answers := make(chan string, 8)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, body := h.call(acme.Token, "/serve/acme/chat/hold?n="+strconv.Itoa(i))
			answers <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	h.waitService(acme, svc.ID, "two replicas placed", func(s api.Service) bool { return s.Starting == 2 && s.Queued == 5 })
	h.bringUp("n1", true, map[int]int{0: be[0].port(t), 1: be[1].port(t)})
	// Least in flight first, ties to the lower replica: 3 on r0, 2 on r1.
	h.waitService(acme, svc.ID, "five requests in flight", func(s api.Service) bool { return s.InFlight == 5 })
	be[0].release <- struct{}{}
	// Four in flight need one replica: after the scale-down grace the
	// less loaded (a tie: the newer, r1) is drained, not stopped.
	s := h.waitService(acme, svc.ID, "a replica draining", func(s api.Service) bool { return s.Draining == 1 })
	for i := 0; i < 10; i++ {
		h.tick()
		s = h.service(acme, svc.ID)
		for _, r := range s.Replicas {
			if r.Replica == 1 && r.Phase != "draining" {
				t.Fatalf("replica 1 is %s with requests in flight: %+v", r.Phase, s)
			}
		}
		for _, st := range h.beat("n1").Stop {
			t.Fatalf("stop order while requests are in flight: %+v", st)
		}
	}
	if code, _, body := h.call(acme.Token, "/serve/acme/chat/other"); code != 200 || !strings.HasPrefix(body, "r0 ") {
		t.Errorf("a new request went to %d %q, want r0 (r1 is out of routing)", code, body)
	}
	be[1].release <- struct{}{}
	be[1].release <- struct{}{}
	h.waitService(acme, svc.ID, "the drained replica stopping", func(s api.Service) bool { return s.Draining == 0 && s.Stopping == 1 })
	be[0].release <- struct{}{}
	be[0].release <- struct{}{}
	wg.Wait()
	close(answers)
	for a := range answers {
		if !strings.HasPrefix(a, "200 ") {
			t.Errorf("a request was dropped: %s", a)
		}
	}
}

// A replica that answers before it has read the request's body (a server
// that streams from the first byte) still gets the whole body and its
// answer comes through whole: the gateway's connection is full duplex.
func TestServiceAnswerBeforeTheBodyIsRead(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: start\n\n")
		w.(http.Flusher).Flush()
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "data: read %d %v\n\n", n, err)
	}))
	t.Cleanup(be.Close)
	u, _ := url.Parse(be.URL)
	_, p, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(p)
	h.submit(acme, strings.Replace(fmt.Sprintf(svcDoc, "chat", 10, "30s"), "minReplicas: 0", "minReplicas: 1", 1))
	h.sync()
	h.bringUp("n1", true, map[int]int{0: port})
	// The client sends the rest of its body only once the answer has
	// begun: a gateway that is not full duplex would wait for the body's
	// end before passing the answer's header on.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", h.url+"/serve/acme/chat/x", pr)
	req.Header.Set("Authorization", "Bearer "+acme.Token)
	go pw.Write([]byte(strings.Repeat("x", 1000)))
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		got <- result{resp, err}
	}()
	var res result
	select {
	case res = <-got:
	case <-time.After(10 * time.Second):
		pw.Close()
		t.Fatal("the answer's header did not come before the request's body ended")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	pw.Write([]byte(strings.Repeat("y", 1000)))
	pw.Close()
	data, err := io.ReadAll(res.resp.Body)
	res.resp.Body.Close()
	if err != nil || string(data) != "data: start\n\ndata: read 2000 <nil>\n\n" {
		t.Fatalf("answer %q %v", data, err)
	}
}

// A restarted server takes its services back: their replicas keep their
// bindings, the gateway routes to the ready ones again once their agent
// reports them, the API keys still work, and the name stays taken.
func TestServiceSurvivesARestart(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	be := [2]*backendServer{newBackend(t, "r0"), newBackend(t, "r1")}
	doc := strings.Replace(fmt.Sprintf(svcDoc, "chat", 10, "30s"), "minReplicas: 0", "minReplicas: 2", 1)
	svc := h.submit(acme, doc)
	h.sync()
	reps := h.bringUp("n1", true, map[int]int{0: be[0].port(t), 1: be[1].port(t)})
	if len(reps) != 2 {
		t.Fatalf("%d replicas started, want 2", len(reps))
	}
	key, err := acme.CreateServiceKey(h.ctx(), "chat")
	if err != nil {
		t.Fatal(err)
	}
	before := h.service(acme, svc.ID)
	h.stop()

	h2 := start(t, h.dir)
	h2.admin.Token = h.admin.Token
	acme2 := h2.newClient(acme.Token)
	after := h2.service(acme2, svc.ID)
	if after.Desired != 2 || len(after.Replicas) != 2 || after.Replicas[0].Attempt != before.Replicas[0].Attempt || len(after.ColdStarts) != 2 {
		t.Errorf("after the restart: %+v\nbefore: %+v", after, before)
	}
	// Ready again once the agent reports; nothing new is started.
	resp := h2.beat("n1", reps...)
	if len(resp.Run) != 2 || len(resp.Stop) != 0 {
		t.Errorf("heartbeat after restart: run %d, stop %d", len(resp.Run), len(resp.Stop))
	}
	if code, _, body := h2.call(key.Key, "/serve/acme/chat/x"); code != 200 || !strings.HasPrefix(body, "r") {
		t.Errorf("through the gateway after the restart: %d %q", code, body)
	}
	if _, _, err := acme2.Submit(h2.ctx(), "again.yaml", []byte(doc), ""); apiStatus(err) != http.StatusConflict {
		t.Errorf("a second service named chat: %v, want 409", err)
	}
}

// A service with a tokens target is scaled on the prompt tokens its
// replicas report; one whose replicas report none is scaled on requests
// in flight instead, once it has seen enough answers to know.
func TestServiceTokensOrInFlight(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	reporting := newBackend(t, "r0") // /stream sets Gpufleet-Prompt-Tokens
	silent := newBackend(t, "r0")    // / does not
	doc := strings.Replace(fmt.Sprintf(svcDoc, "%s", 10, "30s"), "minReplicas: 0", "minReplicas: 1", 1)
	doc = strings.Replace(doc, "    inFlight: 2\n", "    inFlight: 2\n    tokensPerSecond: 1000\n", 1)
	h.submit(acme, fmt.Sprintf(doc, "tok"))
	h.submit(acme, fmt.Sprintf(doc, "plain"))
	h.sync()
	resp := h.beat("n1")
	var reps []api.ReplicaStatus
	for _, a := range resp.Run {
		st := running(a.ReplicaKey)
		st.Ready, st.Port = true, reporting.port(t)
		if strings.HasPrefix(a.Job, "plain") {
			st.Port = silent.port(t)
		}
		reps = append(reps, st)
	}
	h.beat("n1", reps...)
	go func() {
		for range 3 {
			reporting.release <- struct{}{}
		}
	}()
	if code, _, _ := h.call(acme.Token, "/serve/acme/tok/stream"); code != 200 {
		t.Fatalf("stream: %d", code)
	}
	for range untokenedAnswers {
		if code, _, _ := h.call(acme.Token, "/serve/acme/plain/x"); code != 200 {
			t.Fatalf("plain: %d", code)
		}
	}
	h.tick()
	if s := h.service(acme, "tok"); !s.Tokens {
		t.Errorf("a service whose replicas report tokens is not scaled on them")
	}
	if s := h.service(acme, "plain"); s.Tokens {
		t.Errorf("a service whose replicas report no tokens is still scaled on them")
	}
}

// The gateway alone (what --gateway-listen serves) routes services'
// requests and nothing of the API.
func TestGatewayHandlerAlone(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.localNode("n1")
	be := newBackend(t, "r0")
	h.submit(acme, strings.Replace(fmt.Sprintf(svcDoc, "chat", 10, "30s"), "minReplicas: 0", "minReplicas: 1", 1))
	h.sync()
	h.bringUp("n1", true, map[int]int{0: be.port(t)})
	gw := httptest.NewServer(h.s.GatewayHandler())
	t.Cleanup(gw.Close)
	for path, want := range map[string]int{"/serve/acme/chat/v1/models": 200, "/v1/jobs": 404, "/metrics": 404} {
		req, _ := http.NewRequest("GET", gw.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+acme.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
}
