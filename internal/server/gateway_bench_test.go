package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// BenchmarkGateway measures what the gateway adds to a request: the same
// backend (a replica that answers 64 bytes at once) is called directly and
// through the gateway in the same run, by the same closed loop of
// concurrent clients on keep-alive connections, with a service API key
// (checked in memory) and with a tenant token (looked up in the store on
// every request). It reports requests a second and the 50th and 99th
// percentile latency in microseconds. Client, gateway and backend share
// the machine's cores.
func BenchmarkGateway(b *testing.B) {
	env := newGatewayBench(b)
	for _, clients := range []int{1, 16, 64} {
		for _, mode := range []string{"direct", "gateway-key", "gateway-token"} {
			b.Run(fmt.Sprintf("clients=%d/%s", clients, mode), func(b *testing.B) {
				target, token := env.backendURL+"/v1/completions", ""
				switch mode {
				case "gateway-key":
					target, token = env.gatewayURL+"/serve/acme/bench/v1/completions", env.key
				case "gateway-token":
					target, token = env.gatewayURL+"/serve/acme/bench/v1/completions", env.token
				}
				benchRequests(b, clients, target, token)
			})
		}
	}
}

type gatewayBench struct {
	backendURL, gatewayURL string
	key, token             string
}

func newGatewayBench(b *testing.B) *gatewayBench {
	body := []byte(`{"id":"cmpl-1","choices":[{"text":"tok0 tok1 tok2 tok3 tok4"}]}` + "\n")[:64]
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(api.HeaderPromptTokens, "12")
		w.Write(body)
	}))
	b.Cleanup(backend.Close)
	s, err := Open(Config{DataDir: b.TempDir(), InitialQueues: testQueues(), HeartbeatTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done; ts.Close(); s.Close() })
	admin := api.NewClient(ts.URL, s.AdminToken())
	if err := admin.Register(ctx, api.NodeInfo{Name: "n1", Address: "127.0.0.1", Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 19}); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Heartbeat(ctx, api.HeartbeatRequest{Node: "n1"}); err != nil {
		b.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
	if err != nil {
		b.Fatal(err)
	}
	acme := api.NewClient(ts.URL, tok.Token)
	doc := `name: bench
queue: acme-train
kind: service
service:
  replica: {accelerators: h100, count: 1}
  minReplicas: 1
  maxReplicas: 1
  target: {inFlight: 1000}
command: [serve]
`
	if _, _, err := acme.Submit(ctx, "bench.yaml", []byte(doc), ""); err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(backend.URL)
	_, p, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(p)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := admin.Heartbeat(ctx, api.HeartbeatRequest{Node: "n1"})
		if err != nil {
			b.Fatal(err)
		}
		var reps []api.ReplicaStatus
		for _, a := range resp.Run {
			reps = append(reps, api.ReplicaStatus{ReplicaKey: a.ReplicaKey, State: api.ReplicaRunning, PID: 1, Port: port, Ready: true})
		}
		if len(reps) > 0 {
			if _, err := admin.Heartbeat(ctx, api.HeartbeatRequest{Node: "n1", Replicas: reps}); err != nil {
				b.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the service's replica was never placed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	key, err := acme.CreateServiceKey(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return &gatewayBench{backendURL: backend.URL, gatewayURL: ts.URL, key: key.Key, token: tok.Token}
}

// benchRequests sends b.N POSTs from clients concurrent loops and reports
// the rate and latency percentiles.
func benchRequests(b *testing.B, clients int, target, token string) {
	transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxIdleConns: clients}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport}
	reqBody := []byte(`{"prompt":"hello there","max_tokens":5}`)
	one := func() (time.Duration, error) {
		req, err := http.NewRequest("POST", target, bytes.NewReader(reqBody))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(t0), err
	}
	// Warm the connections.
	for range clients {
		if _, err := one(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([][]time.Duration, clients)
	var next sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		next.Add(1)
		go func() {
			defer next.Done()
			for range work {
				d, err := one()
				if err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], d)
			}
		}()
	}
	next.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	pct := func(q float64) float64 {
		return float64(all[min(int(q*float64(len(all))), len(all)-1)].Microseconds())
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
