package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
	"github.com/gpufleet/gpufleet/internal/store/schema"
)

// Benchmarks of a store that has filled up: N finished jobs (the history
// a busy control plane keeps for its retention period), seeded straight
// into the store. The sizes come from GPUFLEET_BENCH_STORED (default
// "0,100000"; docs/BENCHMARKS.md records 1,000,000). A seeded store is
// kept under the system's temporary directory and copied for each run.

func storedSizes() []int {
	v := os.Getenv("GPUFLEET_BENCH_STORED")
	if v == "" {
		v = "0,100000"
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil && n >= 0 {
			out = append(out, n)
		}
	}
	return out
}

// finishedJob is one job of the seeded history: a one-replica job of
// acme's or globex's that ran and ended (nine in ten succeeded).
func finishedJob(seq uint64) *store.Job {
	tenant, queue := "acme", "acme-train"
	if seq%3 == 0 {
		tenant, queue = "globex", "globex-batch"
	}
	state := store.Succeeded
	switch seq % 10 {
	case 7:
		state = store.Failed
	case 8:
		state = store.Cancelled
	}
	id := fmt.Sprintf("hist-%d", seq)
	at := int64(1_790_000_000_000) + int64(seq)*1000
	return &store.Job{ID: id, Seq: seq, Name: "hist", Tenant: tenant, Queue: queue, State: state,
		Spec: sched.Job{ID: sched.JobID(id), Tenant: tenant, Queue: queue, Kind: sched.Batch,
			Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Accel: []string{"h100"}, Devices: 1}}}},
		Run:         lifecycle.Run{Command: []string{"python", "train.py", "--epochs", "3"}},
		SubmittedMs: at, StartedMs: at + 100, FinishedMs: at + 60_000, Attempt: 1,
		Replicas: []lifecycle.Replica{{Node: "n1", Accel: "h100", Devices: []int{int(seq % 8)}, State: store.ReplicaExited,
			BoundMs: at + 100, Sent: true}},
		Units: []lifecycle.Unit{{Core: id, State: state, Attempt: 1, StartedMs: at + 100, FinishedMs: at + 60_000}},
		Events: []lifecycle.Event{{AtMs: at, Kind: lifecycle.EventSubmitted}, {AtMs: at + 100, Kind: lifecycle.EventAdmitted},
			{AtMs: at + 60_000, Kind: state}}}
}

// seeded returns a data directory whose store holds n finished jobs and
// the test queues.
func seeded(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	if n == 0 {
		return dir
	}
	cache := filepath.Join(os.TempDir(), fmt.Sprintf("gpufleet-bench-stored-%d-v%d", n, schema.Version))
	if _, err := os.Stat(filepath.Join(cache, store.FileName)); err != nil {
		start := time.Now()
		tmp := cache + ".tmp"
		os.RemoveAll(tmp)
		db, err := store.Open(tmp, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.PutQueues(testQueues()); err != nil {
			b.Fatal(err)
		}
		const chunk = 20000
		for from := 1; from <= n; from += chunk {
			var c store.Change
			for seq := from; seq < from+chunk && seq <= n; seq++ {
				j := finishedJob(uint64(seq))
				c.Jobs = append(c.Jobs, j)
				c.New = append(c.New, store.NewJob{Job: j})
			}
			c.Seq = uint64(min(from+chunk-1, n))
			if err := db.Commit(c); err != nil {
				b.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(cache)
		if err := os.Rename(tmp, cache); err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d finished jobs in %s", n, time.Since(start).Round(time.Second))
	}
	in, err := os.Open(filepath.Join(cache, store.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, store.FileName))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	// On disk before the clock starts: the copy's writeback does not
	// compete with what is measured.
	if err := out.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkSubmitStored is BenchmarkSubmit's 64 clients on a store that
// already holds N finished jobs, all kept (their end times are fixed, and
// the retention sweep would otherwise delete them as the clock passes
// them: TestRetentionBacklogIsPrunedASliceATick).
func BenchmarkSubmitStored(b *testing.B) {
	for _, n := range storedSizes() {
		b.Run(fmt.Sprintf("stored=%d/clients=64", n), func(b *testing.B) {
			b.StopTimer()
			dir := seeded(b, n)
			b.StartTimer()
			benchSubmitWith(b, Config{DataDir: dir, Retain: -1}, 64)
		})
	}
}

// BenchmarkListByState lists jobs by state on a store of N finished jobs
// and 200 running ones: running (200 matches, one page) and pending (none),
// as an admin and as a tenant; it reports the median and 99th percentile
// of the request's time through HTTP.
func BenchmarkListByState(b *testing.B) {
	for _, n := range storedSizes() {
		b.Run(fmt.Sprintf("stored=%d", n), func(b *testing.B) {
			b.StopTimer()
			dir := seeded(b, n)
			s, err := Open(Config{DataDir: dir, InitialQueues: testQueues(), HeartbeatTimeout: time.Hour, Retain: -1})
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(s.Handler())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			defer func() { cancel(); <-done; ts.Close(); s.Close() }()
			admin := api.NewClient(ts.URL, s.AdminToken())
			if s.AdminToken() == "" {
				tok, err := s.CreateToken(store.RoleAdmin, "", "")
				if err != nil {
					b.Fatal(err)
				}
				admin = api.NewClient(ts.URL, tok)
			}
			for _, nd := range []string{"n1", "n2"} {
				if err := admin.Register(ctx, api.NodeInfo{Name: nd, Address: nd, Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 19}); err != nil {
					b.Fatal(err)
				}
			}
			tenantTok, err := admin.CreateToken(ctx, api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
			if err != nil {
				b.Fatal(err)
			}
			tenant := api.NewClient(ts.URL, tenantTok.Token)
			small := strings.Replace(benchJob, "count: 1", "fraction: 0.08", 1)
			for i := range 200 {
				if _, _, err := tenant.Submit(ctx, "bench.yaml", []byte(small), fmt.Sprint("run", i)); err != nil {
					b.Fatal(err)
				}
			}
			for _, q := range []struct {
				name string
				c    *api.Client
				f    api.JobFilter
			}{
				{"admin/running", admin, api.JobFilter{State: store.Running}},
				{"admin/pending", admin, api.JobFilter{State: store.Pending}},
				{"tenant/running", tenant, api.JobFilter{State: store.Running}},
				{"tenant/succeeded-page", tenant, api.JobFilter{State: store.Succeeded}},
			} {
				b.Run(q.name, func(b *testing.B) {
					var lat []time.Duration
					for range b.N {
						t0 := time.Now()
						if _, err := q.c.JobsPage(ctx, q.f, "", 100); err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(t0))
					}
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				})
			}
		})
	}
}

// BenchmarkRestart opens a store of N finished jobs and 1,000 pending
// ones, rebuilds the core and answers one request: the time from the start
// of Open to the answer.
func BenchmarkRestart(b *testing.B) {
	for _, n := range storedSizes() {
		b.Run(fmt.Sprintf("stored=%d", n), func(b *testing.B) {
			b.StopTimer()
			dir := seeded(b, n)
			db, err := store.Open(dir, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				if err := db.PutQueues(testQueues()); err != nil {
					b.Fatal(err)
				}
			}
			var c store.Change
			for i := range 1000 {
				j := finishedJob(uint64(n + i + 1))
				j.State, j.FinishedMs, j.StartedMs, j.Replicas, j.Units, j.Attempt = store.Pending, 0, 0, nil, nil, 0
				c.Jobs = append(c.Jobs, j)
				c.New = append(c.New, store.NewJob{Job: j})
			}
			c.Seq = uint64(n + 1000)
			if err := db.Commit(c); err != nil {
				b.Fatal(err)
			}
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			for range b.N {
				t0 := time.Now()
				s, err := Open(Config{DataDir: dir, HeartbeatTimeout: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				ts := httptest.NewServer(s.Handler())
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { s.Run(ctx); close(done) }()
				resp, err := http.Get(ts.URL + "/v1/healthz")
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				total += time.Since(t0)
				cancel()
				<-done
				ts.Close()
				s.Close()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "restart-ms")
		})
	}
}
