package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

const benchJob = `name: bench
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 1
command: [sleep, "60"]
`

// BenchmarkSubmit measures durable submissions through the HTTP API: each
// request returns only after its job is committed with fsync. Clients
// submit concurrently; the fleet has two 8-accelerator nodes, so the first
// jobs bind and the rest queue, as in a burst. It reports submissions per
// second and the 99th percentile latency.
func BenchmarkSubmit(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchSubmit(b, clients, false) })
	}
	b.Run("clients=64/no-group-commit", func(b *testing.B) { benchSubmit(b, 64, true) })
}

func benchSubmit(b *testing.B, clients int, noGroup bool) {
	benchSubmitIn(b, b.TempDir(), clients, noGroup)
}

// benchSubmitIn runs the submission benchmark on the store in dir.
func benchSubmitIn(b *testing.B, dir string, clients int, noGroup bool) {
	benchSubmitWith(b, Config{DataDir: dir, NoGroupCommit: noGroup}, clients)
}

// benchSubmitWith runs the submission benchmark on a server of cfg (with
// the test queues and no heartbeat timeout).
func benchSubmitWith(b *testing.B, cfg Config, clients int) {
	cfg.InitialQueues, cfg.HeartbeatTimeout = testQueues(), time.Hour
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s.Handler())
	s.cfg.Advertise = "http://" + ts.Listener.Addr().String()
	ts.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; ts.Close(); s.Close() }()
	for !s.Leading() {
		time.Sleep(10 * time.Millisecond)
	}

	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	adminTok := s.AdminToken()
	if adminTok == "" {
		if adminTok, err = s.CreateToken(store.RoleAdmin, "", ""); err != nil {
			b.Fatal(err)
		}
	}
	admin := api.NewClient(ts.URL, adminTok)
	admin.HTTP.Transport = transport
	for _, n := range []string{"n1", "n2"} {
		if err := admin.Register(ctx, api.NodeInfo{Name: n, Address: n, Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 19}); err != nil {
			b.Fatal(err)
		}
	}
	tok, err := admin.CreateToken(ctx, api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
	if err != nil {
		b.Fatal(err)
	}
	c := api.NewClient(ts.URL, tok.Token)
	c.HTTP.Transport = transport
	doc := []byte(benchJob)

	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				if _, _, err := c.Submit(ctx, "bench.yaml", doc, fmt.Sprint("k", i)); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "submits/s")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
}

// BenchmarkDrainBusyNode measures the drain of a node that runs work (the
// core's NodeCordoned: its jobs stay bound) against a plain loop call.
// Each iteration drains and undrains one busy node of 16; the server holds
// one running job a node and pending jobs behind them.
func BenchmarkDrainBusyNode(b *testing.B) {
	for _, pending := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) { benchDrain(b, pending) })
	}
}

func benchDrain(b *testing.B, pending int) {
	s, err := Open(Config{DataDir: b.TempDir(), InitialQueues: testQueues(), HeartbeatTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; ts.Close(); s.Close() }()
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	admin := api.NewClient(ts.URL, s.AdminToken())
	admin.HTTP.Transport = transport
	for i := range 16 {
		n := fmt.Sprintf("n%d", i)
		if err := admin.Register(ctx, api.NodeInfo{Name: n, Address: n, Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 19}); err != nil {
			b.Fatal(err)
		}
	}
	tok, err := admin.CreateToken(ctx, api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
	if err != nil {
		b.Fatal(err)
	}
	c := api.NewClient(ts.URL, tok.Token)
	c.HTTP.Transport = transport
	whole := strings.Replace(benchJob, "count: 1", "count: 8", 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(pending+16); i = next.Add(1) {
				if _, _, err := c.Submit(ctx, "bench.yaml", []byte(whole), fmt.Sprint("k", i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Let the first sixteen bind, one a node.
	for range 3 {
		if _, err := exec(ctx, s, func(l *loop, reply func(struct{})) { l.afterCommit(func(error) { reply(struct{}{}) }) }); err != nil {
			b.Fatal(err)
		}
	}
	// baseline is a call through the loop that changes nothing in the
	// core (undraining a node that is not drained): one loop iteration,
	// its scheduling cycle among them.
	var drain, baseline time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := admin.DrainNode(ctx, "n0", false); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := admin.UndrainNode(ctx, "n0"); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := admin.UndrainNode(ctx, "n0"); err != nil {
			b.Fatal(err)
		}
		drain += t1.Sub(t0)
		baseline += time.Since(t2)
	}
	b.ReportMetric(float64(drain.Microseconds())/float64(b.N)/1000, "drain-ms")
	b.ReportMetric(float64(baseline.Microseconds())/float64(b.N)/1000, "loop-call-ms")
}
