package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// An h100 idles at 70 W and draws 700 W busy: a node of eight idles at
// 0.56 kW and a job on all eight adds 5.04 kW. Two nodes with one job draw
// 6.16 kW, with two 11.2 kW.

// siteNode registers a node of 8 h100 in region us, zone z1, and reports.
func (h *harness) siteNode(name string) {
	h.t.Helper()
	err := h.admin.Register(h.ctx(), api.NodeInfo{Name: name, Address: name + ".local", Accel: "h100", Count: 8,
		CPUMilli: 64000, MemoryMiB: 512 << 10, Path: map[string]string{"region": "us", "zone": "z1", "rack": "r1"}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.beat(name)
}

func wholeNodeJob(name string, priority int) string {
	return fmt.Sprintf(`name: %s
queue: acme-train
kind: batch
priority: %d
preemptible: true
noticePeriod: 30s
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sleep, "1000"]
`, name, priority)
}

// runOn starts a submitted job's replica on whichever node got it.
func (h *harness) runOn(nodes ...string) map[string]api.ReplicaKey {
	h.t.Helper()
	out := map[string]api.ReplicaKey{}
	for _, n := range nodes {
		for _, r := range h.beat(n).Run {
			out[r.Job] = r.ReplicaKey
			h.beat(n, running(r.ReplicaKey))
		}
	}
	return out
}

func (h *harness) site(path string) api.Site {
	h.t.Helper()
	l, err := h.admin.Sites(h.ctx())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, s := range l.Sites {
		if s.Site == path {
			return s
		}
	}
	h.t.Fatalf("no site %s in %+v", path, l.Sites)
	return api.Site{}
}

func TestFleetCapKeepsAJobOutWithThePowerCappedReason(t *testing.T) {
	h := start(t, "", func(c *Config) { c.Sched.Sites = []sched.Site{{Domain: "us/z1", PowerCapKW: 8}} })
	acme := h.client("acme")
	h.siteNode("n1")
	h.siteNode("n2")
	first := h.submit(acme, wholeNodeJob("first", 0))
	second := h.submit(acme, wholeNodeJob("second", 0))
	h.runOn("n1", "n2")
	h.sync()
	if got := h.job(first.ID); got.State != store.Running {
		t.Fatalf("first job %q, want running", got.State)
	}
	got := h.job(second.ID)
	if got.State != store.Pending || got.Explanation == nil || got.Explanation.Code != "power-capped" {
		t.Fatalf("second job %q %+v, want pending, power-capped", got.State, got.Explanation)
	}
	want := "site us/z1 is at its power cap: 6.2 of 8.0 kW of facility power drawn or committed, and one more replica needs 5.0 kW"
	if !strings.Contains(got.Explanation.Reason, want) {
		t.Errorf("reason %q, want it to say %q", got.Explanation.Reason, want)
	}
	if diff := cmp.Diff(api.Site{Site: "us/z1", CapKW: ptr(8.0), CapSource: "fleet", DrawKW: ptr(6.16), Nodes: 2}, h.site("us/z1")); diff != "" {
		t.Errorf("site (-want +got):\n%s", diff)
	}
	// The list has the region too, though the core meters only the zone.
	l, _ := h.admin.Sites(h.ctx())
	if len(l.Sites) != 1 || l.CarbonAware {
		t.Errorf("sites %+v, want the one site at the site level, carbon-aware off", l)
	}
}

func TestCapCutStopsWorkInPriorityOrderAndHoldsAcrossARestart(t *testing.T) {
	h := start(t, "", func(c *Config) { c.HeartbeatTimeout = time.Hour })
	acme := h.client("acme")
	h.siteNode("n1")
	h.siteNode("n2")
	low := h.submit(acme, wholeNodeJob("low", 10))
	high := h.submit(acme, wholeNodeJob("high", 100))
	keys := h.runOn("n1", "n2")
	h.clock.Advance(time.Second)
	h.sync()
	if s := h.site("us/z1"); s.CapKW != nil || s.DrawKW != nil {
		t.Fatalf("site before any cap: %+v, want none metered", s)
	}

	// A utility asks for a cut to 8 kW: the lower priority job stops, with
	// its notice; the other runs on.
	s, err := h.admin.SetSiteCap(h.ctx(), "us/z1", "8")
	if err != nil {
		t.Fatal(err)
	}
	if s.CapKW == nil || *s.CapKW != 8 || s.CapSource != "admin" {
		t.Errorf("answer %+v, want cap 8 set by an admin", s)
	}
	if got := h.job(low.ID); got.State != store.Preempting {
		t.Fatalf("low priority job after the cut: %q (%s), want preempting", got.State, got.Reason)
	}
	if got := h.job(high.ID); got.State != store.Running {
		t.Fatalf("high priority job after the cut: %q, want running", got.State)
	}
	lowNode := "n1"
	if _, ok := keys[low.ID]; ok {
		if r := h.beat("n2", running(keys[high.ID])); len(r.Stop) == 1 {
			lowNode = "n2"
		}
	}
	resp := h.beat(lowNode, running(keys[low.ID]))
	if len(resp.Stop) != 1 || resp.Stop[0].ReplicaKey != keys[low.ID] {
		t.Fatalf("low job's node %s: stop %+v, want the low job's stop order", lowNode, resp.Stop)
	}
	h.beat(lowNode, exited(keys[low.ID], 143, ""))
	h.sync()
	got := h.job(low.ID)
	if got.State != store.Pending || got.Explanation == nil || got.Explanation.Code != "power-capped" {
		t.Fatalf("stopped job: %q %+v, want pending, power-capped", got.State, got.Explanation)
	}

	// A restart builds the core with the cap: the job still waits.
	h = h.restartOn(func(c *Config) { c.HeartbeatTimeout = time.Hour })
	h.beat("n1", running(keys[high.ID]))
	h.beat("n2", running(keys[high.ID]))
	h.clock.Advance(time.Second)
	h.sync()
	if s := h.site("us/z1"); s.CapKW == nil || *s.CapKW != 8 || s.CapSource != "admin" {
		t.Fatalf("site after a restart: %+v, want the admin's cap of 8 kW", s)
	}
	got = h.job(low.ID)
	if got.State != store.Pending || got.Explanation == nil || got.Explanation.Code != "power-capped" {
		t.Fatalf("after a restart: %q %+v, want pending, power-capped", got.State, got.Explanation)
	}

	// Lifting the cap lets it run.
	if _, err := h.admin.SetSiteCap(h.ctx(), "us/z1", "0"); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if got := h.job(low.ID); got.State != store.Running {
		t.Errorf("after the cap was lifted: %q (%s), want running", got.State, got.Reason)
	}
}

func TestSiteCapRefusesBadInputByName(t *testing.T) {
	h := start(t, "")
	h.siteNode("n1")
	for name, tc := range map[string]struct {
		site, body, field string
		status            int
	}{
		"negative":     {"us/z1", `{"kw": -1}`, "kw", http.StatusUnprocessableEntity},
		"not a number": {"us/z1", `{"kw": "lots"}`, "kw", http.StatusUnprocessableEntity},
		"missing":      {"us/z1", `{}`, "kw", http.StatusUnprocessableEntity},
		"unknown":      {"us/z1", `{"kw": 1, "mw": 2}`, "mw", http.StatusUnprocessableEntity},
		"no such site": {"eu/z9", `{"kw": 1}`, "", http.StatusNotFound},
		"empty part":   {"us//z1", `{"kw": 1}`, "site", http.StatusUnprocessableEntity},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPut, h.url+"/v1/sites/"+strings.ReplaceAll(tc.site, "/", "%2F")+"/cap", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+h.admin.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e api.Error
			_ = decodeBody(resp, &e)
			if resp.StatusCode != tc.status || e.Field != tc.field {
				t.Errorf("status %d field %q (%s), want %d field %q", resp.StatusCode, e.Field, e.Message, tc.status, tc.field)
			}
		})
	}
	if s := h.site("us/z1"); s.CapKW != nil {
		t.Errorf("after refused requests: %+v, want no cap", s)
	}
}

func TestSitesShowTheForecastAndTheMetricsPassLint(t *testing.T) {
	fc, err := carbon.NewForecast(1800)
	if err != nil {
		t.Fatal(err)
	}
	if err := fc.Set("us/z1", carbon.Constant(312.5, 1800)); err != nil {
		t.Fatal(err)
	}
	h := start(t, "", func(c *Config) {
		c.Sched.Sites = []sched.Site{{Domain: "us/z1", PowerCapKW: 100, PUE: 1.25}}
		c.Sched.Forecast = fc
		c.Sched.Admission = []string{"carbon"}
		c.HeartbeatTimeout = time.Hour
	})
	h.siteNode("n1")
	h.clock.Advance(time.Minute)
	h.sync()
	l, err := h.admin.Sites(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	want := api.SiteList{CarbonAware: true, Sites: []api.Site{{Site: "us/z1", CapKW: ptr(100.0), CapSource: "fleet", DrawKW: ptr(0.7), PUE: 1.25, IntensityGPerKWh: ptr(312.5), Nodes: 1}}}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
	page := string(h.scrape())
	for _, line := range []string{`gpufleet_site_power_committed_watts{site="us/z1"} 700`, `gpufleet_site_power_cap_watts{site="us/z1"} 100000`, `gpufleet_carbon_intensity_g_per_kwh{site="us/z1"} 312.5`} {
		if !strings.Contains(page, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	problems, err := promlint.New(bytes.NewReader(h.scrape())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func decodeBody(resp *http.Response, e *api.Error) error {
	var b api.ErrorBody
	err := json.NewDecoder(resp.Body).Decode(&b)
	if b.Error != nil {
		*e = *b.Error
	}
	return err
}

func TestDeferredJobSaysWhenAndWhyLive(t *testing.T) {
	// The clock starts at 2027-01-15T08:00:00Z; the grid is dirty for two
	// hours, clean for two, then dirty again.
	now := int64(1_800_000_000)
	vals := []float64{400, 400, 400, 400, 100, 100, 100, 100, 400, 400, 400, 400, 400, 400, 400, 400}
	fc, err := carbon.NewForecast(1800)
	if err != nil {
		t.Fatal(err)
	}
	if err := fc.Set("us/z1", carbon.Series{Start: now, Step: 1800, Values: vals}); err != nil {
		t.Fatal(err)
	}
	h := start(t, "", func(c *Config) {
		c.Sched.Forecast = fc
		c.Sched.Admission = []string{"carbon"}
		c.HeartbeatTimeout = time.Hour
	})
	acme := h.client("acme")
	h.siteNode("n1")
	j := h.submit(acme, `name: nightly
queue: acme-train
kind: batch
estimatedRuntime: 2h
deadline: 2027-01-15T16:00:00Z
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sleep, "1000"]
`)
	h.sync()
	got := h.job(j.ID)
	if got.State != store.Pending || got.Explanation == nil || got.Explanation.Code != "deferred" {
		t.Fatalf("job %q %+v, want pending, deferred", got.State, got.Explanation)
	}
	want := "deferred to the cleanest window before its deadline 2027-01-15T16:00:00Z: starts at 2027-01-15T10:00:00Z on us/z1; its capacity is held for it (forecast 100.0 gCO2/kWh over its run, 400.0 if it ran now)"
	if got.Explanation.Reason != want {
		t.Errorf("reason:\n got %s\nwant %s", got.Explanation.Reason, want)
	}
	if r := h.beat("n1"); len(r.Run) != 0 {
		t.Fatalf("a deferred job was started: %+v", r.Run)
	}
	// Its window comes: it starts on the capacity held for it.
	h.clock.Advance(2 * time.Hour)
	h.sync()
	r := h.beat("n1")
	if len(r.Run) != 1 || r.Run[0].Job != j.ID {
		t.Fatalf("at its window: run %+v, want the job", r.Run)
	}
	h.beat("n1", running(r.Run[0].ReplicaKey))
	h.clock.Advance(time.Hour)
	h.beat("n1", running(r.Run[0].ReplicaKey))
	h.sync()
	// Its holding carries the intensity its start was planned on.
	ju, err := h.admin.JobUsage(h.ctx(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ju.Records) != 1 || ju.Records[0].IntensityGPerKWh != 100 || ju.Records[0].Site != "us/z1" {
		t.Errorf("usage records %+v, want one on us/z1 planned at 100 gCO2/kWh", ju.Records)
	}
}
