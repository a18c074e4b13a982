package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
	"github.com/gpufleet/gpufleet/internal/store/storetest"
)

// benchPlane is a server over a store of 100,000 jobs (98,000 finished,
// 2,000 pending, of which the 16 nodes of 8 h100 run what fits) with no
// agents: what the dashboard reads, not what runs.
type benchPlane struct {
	s                  *Server
	url, admin, tenant string
	ids                []string
}

var (
	benchOnce sync.Once
	benchP    *benchPlane
	benchErr  error
	// benchDir holds the plane's store; TestMain removes it.
	benchDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func dashboardPlane(b *testing.B) *benchPlane {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gpufleet-bench-")
		if err != nil {
			benchErr = err
			return
		}
		benchDir = dir
		var nodes []string
		for i := range 16 {
			nodes = append(nodes, fmt.Sprintf("n%02d", i))
		}
		start := time.Now()
		ids, err := storetest.Fill(dir, storetest.Seed{Jobs: 100_000, Pending: 2_000, Queues: []string{"acme-train", "globex-batch"},
			TenantOf: map[string]string{"acme-train": "acme", "globex-batch": "globex"}, Nodes: nodes, End: time.Now(), Tree: testQueues()})
		if err != nil {
			benchErr = err
			return
		}
		b.Logf("seeded 100,000 jobs in %v", time.Since(start).Round(time.Millisecond))
		s, err := Open(Config{DataDir: dir, InitialQueues: testQueues(), HeartbeatTimeout: time.Hour, Retain: -1})
		if err != nil {
			benchErr = err
			return
		}
		go s.Run(context.Background())
		ts := httptest.NewServer(s.Handler())
		admin := api.NewClient(ts.URL, s.AdminToken())
		for _, n := range nodes {
			if err := admin.Register(context.Background(), api.NodeInfo{Name: n, Address: n, Accel: "h100", Count: 8, CPUMilli: 128000, MemoryMiB: 1 << 20,
				Path: map[string]string{"rack": "r" + n[1:2]}}); err != nil {
				benchErr = err
				return
			}
		}
		tok, err := admin.CreateToken(context.Background(), api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
		if err != nil {
			benchErr = err
			return
		}
		benchP = &benchPlane{s: s, url: ts.URL, admin: s.AdminToken(), tenant: tok.Token, ids: ids}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchP
}

// fetchAll gets the paths at once, as a page does, and fails on any
// answer but 200.
func fetchAll(b *testing.B, c *http.Client, base, token string, paths ...string) {
	var wg sync.WaitGroup
	errs := make([]error, len(paths))
	for i, p := range paths {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", base+p, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := c.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs[i] = fmt.Errorf("GET %s: %s", p, resp.Status)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDashboardViews measures the server's side of each dashboard
// view with 100,000 jobs stored: the API calls the view's page makes, all
// at once as the page makes them, from request to last byte on loopback.
// It reports the 50th and 95th percentile per view.
func BenchmarkDashboardViews(b *testing.B) {
	p := dashboardPlane(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	pending := p.ids[len(p.ids)-1]
	finished := p.ids[len(p.ids)/2]
	held := "/v1/jobs?state=running&order=newest&limit=10000"
	views := []struct {
		name  string
		token string
		paths []string
	}{
		{"first-load", p.admin, []string{"/", "/ui/app.css", "/ui/js/main.js", "/ui/js/api.js", "/ui/js/dom.js", "/ui/js/chart.js",
			"/ui/js/views/fleet.js", "/ui/js/views/queues.js", "/ui/js/views/jobs.js", "/ui/js/views/job.js", "/ui/js/views/submit.js",
			"/ui/js/views/extra.js", "/v1/whoami", "/v1/openapi.yaml"}},
		{"fleet", p.admin, []string{"/v1/nodes", "/v1/history", held, "/v1/jobs?state=preempting&order=newest&limit=10000",
			"/v1/jobs?state=cancelling&order=newest&limit=10000"}},
		{"queues", p.admin, []string{"/v1/queues", "/v1/history"}},
		{"jobs", p.admin, []string{"/v1/tenants", "/v1/queues", "/v1/jobs?order=newest&limit=50"}},
		{"jobs-tenant", p.tenant, []string{"/v1/queues", "/v1/jobs?order=newest&limit=50"}},
		{"jobs-page-2000", p.admin, []string{fmt.Sprintf("/v1/jobs?order=newest&limit=50&before=%d", 100_000-2000*50)}},
		{"jobs-failed", p.admin, []string{"/v1/tenants", "/v1/queues", "/v1/jobs?order=newest&limit=50&state=failed"}},
		{"jobs-rare-filter", p.admin, []string{"/v1/jobs?order=newest&limit=50&state=failed&kind=fine-tuning&tenant=globex&queue=globex-batch"}},
		{"jobs-pending", p.admin, []string{"/v1/tenants", "/v1/queues", "/v1/pending?limit=50"}},
		{"job-pending", p.admin, []string{"/v1/jobs/" + pending, "/v1/jobs/" + pending + "/events", "/v1/pending?job=" + pending}},
		{"job-finished", p.admin, []string{"/v1/jobs/" + finished, "/v1/jobs/" + finished + "/events"}},
		{"submit", p.admin, []string{"/v1/queues"}},
	}
	for _, v := range views {
		b.Run(v.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				fetchAll(b, c, p.url, v.token, v.paths...)
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*95/100)].Microseconds())/1000, "p95-ms")
		})
	}
}

// BenchmarkJobPages measures reading job pages off a store of 100,000
// jobs, and what one record costs to read: "budget" matches no job, so it
// reads maxScan records (the budget's basis).
func BenchmarkJobPages(b *testing.B) {
	s := dashboardPlane(b).s
	adminP := principal{role: store.RoleAdmin}
	for _, c := range []struct {
		name string
		f    jobFilter
		pg   jobPage
	}{
		{"oldest-first-page", jobFilter{}, jobPage{limit: 50}},
		{"newest-first-page", jobFilter{}, jobPage{newest: true, limit: 50}},
		{"newest-page-after-50k", jobFilter{}, jobPage{newest: true, limit: 50, cursor: 50_000}},
		{"budget", jobFilter{kind: "service"}, jobPage{newest: true, limit: 50}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.storedJobs(c.f, adminP, c.pg, maxScan); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFeedWatch measures one look of the event feed's watcher over
// the loop's live jobs, with one job changed: the cost the loop pays after
// a commit while someone follows the stream (the watcher spends at most a
// tenth of the loop's time on it).
func BenchmarkFeedWatch(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("live=%d", n), func(b *testing.B) {
			l := &loop{lc: lifecycle.New(lifecycle.Config{})}
			var changed *store.Job
			for i := range n {
				id := fmt.Sprintf("j-%d", i)
				j := &store.Job{ID: id, Tenant: "acme", Queue: "acme-train", State: store.Pending,
					Spec: sched.Job{ID: sched.JobID(id), Gangs: []sched.Gang{{Replicas: 1}}}}
				l.lc.Add(j, 0)
				if i == 7 {
					changed = j
				}
			}
			f := newFeed(&Server{})
			f.subs[&subscriber{p: principal{role: store.RoleAdmin}, ch: make(chan streamEvent, 1)}] = struct{}{}
			f.baseline(l)
			for i := 0; b.Loop(); i++ {
				changed.Attempt = i + 1
				f.watchJobs(l)
			}
		})
	}
}
