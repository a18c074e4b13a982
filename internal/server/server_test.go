package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

const gangJob = `name: train
queue: acme-train
kind: training
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
command: [sh, -c, "echo rank $RANK"]
env: {STEPS: "10"}
`

func TestGangRunsBothRanksWithEnvAndSucceeds(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, gangJob)
	if j.State != store.Pending {
		t.Fatalf("submitted job state %q, want pending", j.State)
	}
	r1, r2 := h.beat("n1"), h.beat("n2")
	if len(r1.Run) != 1 || len(r2.Run) != 1 {
		t.Fatalf("assignments: n1 %d, n2 %d; want one replica on each node", len(r1.Run), len(r2.Run))
	}
	byRank := map[string]api.Assignment{r1.Run[0].Env["RANK"]: r1.Run[0], r2.Run[0].Env["RANK"]: r2.Run[0]}
	if _, ok := byRank["0"]; !ok {
		t.Fatalf("ranks %v, want 0 and 1", byRank)
	}
	master := "n1.local"
	if r2.Run[0].Env["RANK"] == "0" {
		master = "n2.local"
	}
	for rank, a := range byRank {
		want := map[string]string{
			"STEPS": "10", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7", "RANK": rank, "LOCAL_RANK": "0", "WORLD_SIZE": "2",
			"MASTER_ADDR": master, "MASTER_PORT": a.Env["MASTER_PORT"], "GPUFLEET_JOB": j.ID, "GPUFLEET_GANG": "0",
			"GPUFLEET_REPLICA": rank, "GPUFLEET_ATTEMPT": "1",
		}
		if diff := cmp.Diff(want, a.Env); diff != "" {
			t.Errorf("rank %s env (-want +got):\n%s", rank, diff)
		}
		if a.Env["MASTER_PORT"] == "" || a.Attempt != 1 {
			t.Errorf("rank %s: port %q attempt %d", rank, a.Env["MASTER_PORT"], a.Attempt)
		}
		if diff := cmp.Diff([]string{"sh", "-c", "echo rank $RANK"}, a.Command); diff != "" {
			t.Errorf("command (-want +got):\n%s", diff)
		}
	}
	k1, k2 := r1.Run[0].ReplicaKey, r2.Run[0].ReplicaKey
	h.beat("n1", running(k1))
	if got := h.job(j.ID); got.State != store.Running || got.Explanation == nil || got.Explanation.State != "running" {
		t.Fatalf("job after bind: %+v", got)
	}
	resp := h.beat("n1", exited(k1, 0, ""))
	if diff := cmp.Diff([]api.ReplicaKey{k1}, resp.Ack); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}
	if len(resp.Run) != 0 {
		t.Errorf("exited replica still asked to run: %+v", resp.Run)
	}
	if got := h.job(j.ID); got.State != store.Running {
		t.Errorf("job with one rank left: state %q, want running", got.State)
	}
	h.beat("n2", exited(k2, 0, ""))
	if got := h.job(j.ID); got.State != store.Succeeded {
		t.Errorf("job after both ranks exited 0: state %q (%s), want succeeded", got.State, got.Reason)
	}
}

func TestFailedReplicaFailsTheJobOrRestartsTheGang(t *testing.T) {
	for name, tc := range map[string]struct {
		extra     string
		wantState string
		attempt   int
	}{
		"never":          {"", store.Failed, 1},
		"gang restarted": {"restartPolicy: gang\nmaxRestarts: 1\n", store.Running, 2},
	} {
		t.Run(name, func(t *testing.T) {
			h := start(t, "")
			acme := h.client("acme")
			h.node("n1")
			h.node("n2")
			j := h.submit(acme, gangJob+tc.extra)
			k1, k2 := h.beat("n1").Run[0].ReplicaKey, h.beat("n2").Run[0].ReplicaKey
			resp := h.beat("n1", exited(k1, 3, ""))
			if len(resp.Run) != 0 {
				t.Errorf("failed replica's node still runs %+v", resp.Run)
			}
			// The other rank is stopped before anything else happens.
			r2 := h.beat("n2", running(k2))
			if len(r2.Stop) != 1 || r2.Stop[0].ReplicaKey != k2 || len(r2.Run) != 0 {
				t.Fatalf("surviving rank: run %+v stop %+v, want a stop order", r2.Run, r2.Stop)
			}
			h.beat("n2", exited(k2, -1, "SIGTERM"))
			got := h.job(j.ID)
			if got.State != tc.wantState || got.Attempt != tc.attempt {
				t.Fatalf("job: state %q attempt %d (%s), want %q attempt %d", got.State, got.Attempt, got.Reason, tc.wantState, tc.attempt)
			}
			if tc.wantState == store.Running {
				if a := h.beat("n1").Run; len(a) != 1 || a[0].Attempt != 2 {
					t.Errorf("restarted gang's assignment: %+v, want attempt 2", a)
				}
			} else if !strings.Contains(got.Reason, "exited with code 3") {
				t.Errorf("reason %q does not say which rank failed how", got.Reason)
			}
		})
	}
}

func TestCancelStopsReplicas(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, gangJob)
	k := h.beat("n1").Run[0].ReplicaKey
	got, err := acme.Cancel(h.ctx(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.Cancelling {
		t.Errorf("cancel answered state %q, want cancelling while its process runs", got.State)
	}
	resp := h.beat("n1", running(k))
	if len(resp.Run) != 0 || len(resp.Stop) != 1 || resp.Stop[0].ReplicaKey != k {
		t.Fatalf("after cancel: run %+v stop %+v", resp.Run, resp.Stop)
	}
	if want := h.clock.Now().Add(5 * time.Second).UnixMilli(); resp.Stop[0].DeadlineUnixMilli != want {
		t.Errorf("stop deadline %d, want %d (grace)", resp.Stop[0].DeadlineUnixMilli, want)
	}
	// n2 never heard of its replica: nothing to stop there.
	if resp := h.beat("n2"); len(resp.Stop)+len(resp.Run) != 0 {
		t.Errorf("n2, whose replica was never sent: run %+v stop %+v", resp.Run, resp.Stop)
	}
	h.beat("n1", exited(k, -1, "SIGTERM"))
	if resp := h.beat("n1"); len(resp.Stop) != 0 {
		t.Errorf("stop orders after the exit: %+v", resp.Stop)
	}
	if got := h.job(j.ID).State; got != store.Cancelled {
		t.Errorf("state after the process exited: %q, want cancelled", got)
	}
	states := map[string]string{}
	for _, r := range h.job(j.ID).Replicas {
		states[r.Node] = r.State
	}
	if diff := cmp.Diff(map[string]string{"n1": "exited", "n2": "skipped"}, states); diff != "" {
		t.Errorf("replica states after cancel (-want +got):\n%s", diff)
	}
	if _, err := acme.Cancel(h.ctx(), j.ID); apiStatus(err) != http.StatusConflict {
		t.Errorf("second cancel: %v, want 409", err)
	}
}

const victimJob = `name: low
queue: globex-batch
kind: batch
priority: low
preemptible: true
noticePeriod: 30s
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
command: [sleep, "600"]
`

const urgentJob = `name: urgent
queue: globex-batch
kind: training
priority: critical
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sleep, "1"]
`

func TestPreemptionWithNotice(t *testing.T) {
	// Heartbeats may lapse while the clock jumps a minute.
	h := start(t, "", func(c *Config) { c.HeartbeatTimeout = time.Hour })
	globex := h.client("globex")
	h.node("n1")
	h.node("n2")
	low := h.submit(globex, victimJob)
	k1, k2 := h.beat("n1").Run[0].ReplicaKey, h.beat("n2").Run[0].ReplicaKey
	h.beat("n1", running(k1))
	h.beat("n2", running(k2))
	h.clock.Advance(time.Second) // the core does not preempt work it admitted in the same second
	urgent := h.submit(globex, urgentJob)
	h.sync()
	if got := h.job(low.ID); got.State != store.Running {
		t.Fatalf("victim state %q before the urgent job waited a minute, want running", got.State)
	}
	h.clock.Advance(time.Minute) // a job waits a minute for room before it preempts
	h.sync()
	if got := h.job(low.ID); got.State != store.Preempting {
		t.Fatalf("victim state %q (%s), want preempting; urgent: %+v", got.State, got.Reason, h.job(urgent.ID).Explanation)
	}
	resp := h.beat("n1", running(k1))
	if len(resp.Stop) != 1 || len(resp.Run) != 0 {
		t.Fatalf("victim's node: run %+v stop %+v, want one stop order", resp.Run, resp.Stop)
	}
	if want := h.clock.Now().Add(30 * time.Second).UnixMilli(); resp.Stop[0].DeadlineUnixMilli != want {
		t.Errorf("stop deadline %d, want the notice period's end %d", resp.Stop[0].DeadlineUnixMilli, want)
	}
	if u := h.job(urgent.ID); u.State != store.Pending {
		t.Errorf("urgent job %q before the victim left, want pending", u.State)
	}
	h.beat("n1", exited(k1, 143, ""))
	h.beat("n2", exited(k2, -1, "SIGKILL"))
	h.sync()
	if got := h.job(low.ID); got.State != store.Pending {
		t.Errorf("victim after its processes exited: %q, want pending", got.State)
	}
	if u := h.job(urgent.ID); u.State != store.Running {
		t.Errorf("urgent job after the victim left: %q (%s), want running", u.State, u.Reason)
	}
}

func TestSilentNodeIsMarkedDownAndItsJobRequeued(t *testing.T) {
	h := start(t, "", func(c *Config) { c.Tick = 10 * time.Millisecond })
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, gangJob)
	k := h.beat("n1").Run[0].ReplicaKey
	h.beat("n2")
	h.clock.Advance(8 * time.Second)
	h.beat("n1", running(k))
	h.clock.Advance(4 * time.Second) // n2 silent for 12s, n1 for 4s
	h.sync()
	nodes, err := h.admin.Nodes(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, n := range nodes {
		states[n.Name] = n.State
	}
	if diff := cmp.Diff(map[string]string{"n1": "ready", "n2": "down"}, states); diff != "" {
		t.Errorf("node states (-want +got):\n%s", diff)
	}
	if got := h.job(j.ID); got.State != store.Pending || !strings.Contains(got.Reason, "n2") {
		t.Errorf("job on the dead node: %q (%s), want pending naming n2", got.State, got.Reason)
	}
	if resp := h.beat("n1", running(k)); len(resp.Stop) != 1 || len(resp.Run) != 0 {
		t.Errorf("surviving rank: run %+v stop %+v, want it stopped", resp.Run, resp.Stop)
	}
	// The node comes back: it is schedulable again and the job restarts.
	h.beat("n1", exited(k, -1, "SIGTERM"))
	h.beat("n2")
	h.sync()
	if got := h.job(j.ID); got.State != store.Running || got.Attempt != 2 {
		t.Errorf("job after the node returned: %q attempt %d, want running attempt 2", got.State, got.Attempt)
	}
}

func TestRestartRestoresJobsAndBindings(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	run := h.submit(acme, gangJob)
	k1 := h.beat("n1").Run[0].ReplicaKey
	k2 := h.beat("n2").Run[0].ReplicaKey
	waiting := h.submit(acme, strings.Replace(gangJob, "name: train", "name: second", 1))
	before := h.job(run.ID)
	h.stop()

	h2 := start(t, h.dir)
	if h2.s.AdminToken() != "" {
		t.Errorf("restart made a new admin token")
	}
	h2.admin.Token = h.admin.Token
	after := h2.job(run.ID)
	if diff := cmp.Diff(before.Replicas, after.Replicas); diff != "" || after.State != store.Running {
		t.Errorf("running job after restart: state %q, replicas (-before +after):\n%s", after.State, diff)
	}
	if w := h2.job(waiting.ID); w.State != store.Pending {
		t.Errorf("waiting job after restart: %q, want pending (the devices are taken)", w.State)
	}
	// The agents are told to keep what runs.
	if r := h2.beat("n1", running(k1)); len(r.Run) != 1 || r.Run[0].ReplicaKey != k1 {
		t.Errorf("n1 after restart: %+v", r.Run)
	}
	h2.beat("n1", exited(k1, 0, ""))
	h2.beat("n2", exited(k2, 0, ""))
	h2.sync()
	if w := h2.job(waiting.ID); w.State != store.Running {
		t.Errorf("waiting job once the first finished: %q (%s), want running", w.State, w.Reason)
	}
}

func TestIdempotentSubmit(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	a, created, err := acme.Submit(h.ctx(), "job.yaml", []byte(gangJob), "key-1")
	if err != nil || !created {
		t.Fatalf("first: created %v err %v", created, err)
	}
	b, created, err := acme.Submit(h.ctx(), "job.yaml", []byte(gangJob), "key-1")
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("replay: id %s created %v err %v, want %s", b.ID, created, err, a.ID)
	}
	if _, _, err := acme.Submit(h.ctx(), "job.yaml", []byte(gangJob+"maxRestarts: 0\n"), "key-1"); apiStatus(err) != http.StatusConflict {
		t.Errorf("key reused for another document: %v, want 409", err)
	}
	jobs, err := acme.Jobs(h.ctx(), api.JobFilter{})
	if err != nil || len(jobs) != 1 {
		t.Errorf("jobs: %d, %v; want 1", len(jobs), err)
	}
}

func TestSubmitErrorsNameTheField(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	for name, tc := range map[string]struct {
		doc, field string
		status     int
	}{
		"bad count":         {strings.Replace(gangJob, "count: 8", "count: 99", 1), "gangs[0].count", 422},
		"other tenant":      {strings.Replace(gangJob, "acme-train", "globex-batch", 1), "queue", 422},
		"tenant not a leaf": {strings.Replace(gangJob, "acme-train", "acme", 1), "queue", 422},
		"no command":        {strings.Replace(gangJob, "command: [sh, -c, \"echo rank $RANK\"]\n", "", 1), "command", 422},
		"not yaml":          {"{{{", "", 422},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := acme.Submit(h.ctx(), "job.yaml", []byte(tc.doc), "")
			var e *api.Error
			if !asErr(err, &e) || e.Status != tc.status || e.Field != tc.field {
				t.Fatalf("got %#v, want status %d field %q", err, tc.status, tc.field)
			}
		})
	}
}

func TestLogsAreStoredPerReplicaAndOnlyFromItsNode(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, gangJob)
	k1, k2 := h.beat("n1").Run[0].ReplicaKey, h.beat("n2").Run[0].ReplicaKey
	send := func(node string, chunks ...api.LogChunk) {
		t.Helper()
		if _, err := h.admin.Heartbeat(h.ctx(), api.HeartbeatRequest{Node: node, Logs: chunks}); err != nil {
			t.Fatal(err)
		}
	}
	send("n1", api.LogChunk{ReplicaKey: k1, Offset: 0, Data: []byte("hello ")})
	send("n1", api.LogChunk{ReplicaKey: k1, Offset: 6, Data: []byte("world\n")},
		api.LogChunk{ReplicaKey: k2, Offset: 0, Data: []byte("forged by the wrong node\n")})
	send("n2", api.LogChunk{ReplicaKey: api.ReplicaKey{Job: "nosuch-1", Attempt: 1}, Data: []byte("x")})
	rank := func(k api.ReplicaKey) int {
		for _, r := range h.job(j.ID).Replicas {
			if r.Gang == k.Gang && r.Replica == k.Replica {
				return r.Rank
			}
		}
		t.Fatalf("no rank for %+v", k)
		return -1
	}
	p, err := acme.Logs(h.ctx(), j.ID, rank(k1), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Data) != "hello world\n" || p.Next != 12 || p.Attempt != 1 || p.JobState != store.Running {
		t.Errorf("log page: %q next %d attempt %d state %q", p.Data, p.Next, p.Attempt, p.JobState)
	}
	if p, err := acme.Logs(h.ctx(), j.ID, rank(k1), 0, 6); err != nil || string(p.Data) != "world\n" {
		t.Errorf("log from offset 6: %q, %v", p.Data, err)
	}
	if p, err := acme.Logs(h.ctx(), j.ID, rank(k2), 0, 0); err != nil || len(p.Data) != 0 {
		t.Errorf("rank on n2 got output another node sent: %q, %v", p.Data, err)
	}
	if _, err := acme.Logs(h.ctx(), j.ID, 7, 0, 0); apiStatus(err) != http.StatusUnprocessableEntity {
		t.Errorf("rank 7 of a 2-replica job: %v, want 422", err)
	}
}

func TestMetrics(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	h.submit(acme, gangJob)
	blocked := h.submit(acme, strings.Replace(gangJob, "name: train", "name: second", 1))
	// A submission is acknowledged once it is durable, which can be before
	// the cycle that tries it: let that cycle pass before the gauges
	// refresh (once a second, before the cycle of the loop's iteration).
	h.sync()
	h.clock.Advance(time.Second)
	h.sync()
	body := h.scrape()
	ex, err := acme.Job(h.ctx(), blocked.ID)
	if err != nil || ex.Explanation == nil {
		t.Fatalf("blocked job: %v", err)
	}
	for _, want := range []string{
		`gpufleet_accelerators{type="h100"} 16`,
		`gpufleet_accelerators_allocated{type="h100"} 16`,
		`gpufleet_admissions_total{queue="acme-train"} 1`,
		`gpufleet_tenant_accelerators{flavor="h100",tenant="acme"} 16`,
		`gpufleet_pending_jobs{queue="acme-train",reason="` + ex.Explanation.Code + `"} 1`,
		`gpufleet_nodes{state="ready"} 2`,
		`gpufleet_submissions_total 2`,
		`gpufleet_schedule_seconds_count`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// The pending gauge's reason labels are the core's status codes: a fixed
// set, whatever the reasons' words.
func TestPendingReasonLabelsAreCodes(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	h.submit(acme, gangJob)
	h.submit(acme, strings.Replace(gangJob, "name: train", "name: second", 1))
	h.sync()
	h.clock.Advance(time.Second)
	h.sync()
	body := string(h.scrape())
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "gpufleet_pending_jobs{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `reason="`)
		code, _, _ := strings.Cut(rest, `"`)
		if !slices.Contains(sched.CodeNames(), code) {
			t.Errorf("pending reason label %q is not a status code (%v)", code, sched.CodeNames())
		}
	}
	if !strings.Contains(body, `gpufleet_pending_jobs{queue="acme-train",reason="no-capacity"} 1`) {
		t.Errorf("metrics lack the pending job waiting for capacity:\n%s", body)
	}
}

// A scrape never sees a refresh of the gauges half done: while the loop
// refreshes them over and over, every scrape still counts both nodes.
func TestMetricsScrapeSeesWholeRefreshes(t *testing.T) {
	h := start(t, "")
	h.node("n1")
	h.node("n2")
	h.clock.Advance(time.Second)
	h.sync()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			h.clock.Advance(time.Second)
			h.sync()
		}
	}()
	for scrapes := 0; ; scrapes++ {
		select {
		case <-done:
			if scrapes == 0 {
				t.Fatal("no scrape ran")
			}
			return
		default:
		}
		body := h.scrape()
		// The nodes go down as the clock runs without heartbeats; in
		// whatever state, there are two.
		total := 0
		for _, l := range strings.Split(grepLines(string(body), "gpufleet_nodes{"), "\n") {
			if _, v, ok := strings.Cut(l, "} "); ok {
				n, _ := strconv.Atoi(v)
				total += n
			}
		}
		if total != 2 {
			t.Fatalf("scrape %d counts %d nodes, not 2:\n%s", scrapes, total, grepLines(string(body), "gpufleet_nodes"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// scrape reads /metrics with an admin token.
func (h *harness) scrape() []byte {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.url+MetricsPath, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.s.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET %s: %s: %s", MetricsPath, resp.Status, body)
	}
	return body
}

// The job list comes a page at a time, in submission order: every job
// once, "next" set until the last page, another tenant's jobs never
// counted into a page; a bad page size or cursor names its parameter.
func TestListJobsPages(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	globex := h.client("globex")
	var want []string
	for i := range 5 {
		j := h.submit(acme, strings.Replace(gangJob, "name: train", fmt.Sprintf("name: t%d", i), 1))
		want = append(want, j.ID)
	}
	for _, c := range []*api.Client{acme, h.admin} {
		var got []string
		after, pages := "", 0
		for {
			l, err := c.JobsPage(h.ctx(), api.JobFilter{}, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, j := range l.Jobs {
				got = append(got, j.ID)
			}
			if l.Next == "" {
				break
			}
			if len(l.Jobs) != 2 {
				t.Fatalf("page %d has %d jobs and a next cursor", pages, len(l.Jobs))
			}
			after = l.Next
		}
		if pages != 3 || !slices.Equal(got, want) {
			t.Errorf("%d pages of %v, want 3 pages of %v", pages, got, want)
		}
	}
	if l, err := globex.JobsPage(h.ctx(), api.JobFilter{}, "", 2); err != nil || len(l.Jobs) != 0 || l.Next != "" {
		t.Errorf("another tenant's page: %+v, %v; want empty and last", l, err)
	}
	if all, err := acme.Jobs(h.ctx(), api.JobFilter{}); err != nil || len(all) != 5 {
		t.Errorf("all jobs through the pages: %d, %v", len(all), err)
	}
	for _, bad := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=10001", "limit"}, {"limit=x", "limit"}, {"after=abc", "after"},
	} {
		req, _ := http.NewRequest("GET", h.url+"/v1/jobs?"+bad.query, nil)
		req.Header.Set("Authorization", "Bearer "+h.s.AdminToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field": "`+bad.field+`"`) && !strings.Contains(string(body), `"field":"`+bad.field+`"`) {
			t.Errorf("?%s: %d %s; want 422 naming %s", bad.query, resp.StatusCode, body, bad.field)
		}
	}
}

// A finished job is kept for the retention period, then its record, its
// idempotency key and its logs go; a job still running is never pruned.
func TestFinishedJobsArePrunedAfterRetention(t *testing.T) {
	h := start(t, "", func(c *Config) { c.Retain = time.Hour })
	acme := h.client("acme")
	h.node("n1")
	done, _, err := acme.Submit(h.ctx(), "job.yaml", []byte(benchJob), "key-1")
	if err != nil {
		t.Fatal(err)
	}
	kept := h.submit(acme, strings.Replace(benchJob, "name: bench", "name: two", 1))
	r := h.beat("n1")
	if len(r.Run) != 2 {
		t.Fatalf("%d assignments, want 2", len(r.Run))
	}
	var k api.ReplicaKey
	for _, a := range r.Run {
		if a.Job == done.ID {
			k = a.ReplicaKey
		}
	}
	if _, err := h.admin.Heartbeat(h.ctx(), api.HeartbeatRequest{Node: "n1",
		Replicas: []api.ReplicaStatus{running(r.Run[0].ReplicaKey), running(r.Run[1].ReplicaKey)},
		Logs:     []api.LogChunk{{ReplicaKey: k, Data: []byte("hello\n")}}}); err != nil {
		t.Fatal(err)
	}
	h.beat("n1", exited(k, 0, ""), running(otherKey(r.Run, k)))
	if got := h.job(done.ID); got.State != store.Succeeded {
		t.Fatalf("job state %q, want succeeded", got.State)
	}
	logs := filepath.Join(h.dir, "logs", done.ID)
	if _, err := os.Stat(logs); err != nil {
		t.Fatalf("logs of the finished job: %v", err)
	}
	// Within the retention period nothing goes.
	h.clock.Advance(30 * time.Minute)
	h.beat("n1", running(otherKey(r.Run, k)))
	h.sync()
	if _, err := acme.Job(h.ctx(), done.ID); err != nil {
		t.Fatalf("job gone within its retention: %v", err)
	}
	// Past it, the record, the key and the logs go; the running job stays.
	h.clock.Advance(31 * time.Minute)
	h.beat("n1", running(otherKey(r.Run, k)))
	h.sync()
	if _, err := acme.Job(h.ctx(), done.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("pruned job: %v, want 404", err)
	}
	if _, err := os.Stat(logs); !os.IsNotExist(err) {
		t.Errorf("logs of the pruned job: %v, want gone", err)
	}
	if got := h.job(kept.ID); got.State != store.Running {
		t.Errorf("running job after the prune: %q", got.State)
	}
	again, _, err := acme.Submit(h.ctx(), "job.yaml", []byte(benchJob), "key-1")
	if err != nil || again.ID == done.ID {
		t.Errorf("idempotency key after the prune: %v, %v; want a new job", again.ID, err)
	}
}

func otherKey(run []api.Assignment, k api.ReplicaKey) api.ReplicaKey {
	for _, a := range run {
		if a.ReplicaKey != k {
			return a.ReplicaKey
		}
	}
	return k
}

// Bad values are refused with a 4xx that names the field and what it
// takes; nothing of the server's own file system shows in an answer.
func TestBadValuesAreRefusedByName(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	j := h.submit(acme, benchJob)
	h.beat("n1")
	withNUL := strings.Replace(benchJob, `command: [sleep, "60"]`, `command: [sh, "-c", "echo \0"]`, 1)
	for name, tc := range map[string]struct {
		method, path, ctype, body string
		status                    int
		field, says               string
	}{
		"unknown job state": {"GET", "/v1/jobs?state=bogus", "", "", 422, "state",
			`"bogus": want one of pending, running, preempting, cancelling, succeeded, failed, cancelled`},
		"unknown queue filter": {"GET", "/v1/jobs?queue=nosuch", "", "", 422, "queue", `no queue "nosuch"`},
		"quota of an unknown flavor": {"POST", "/v1/tenants", "application/json", `{"name":"x","quotas":{"h999":{"nominal":1}}}`, 422,
			"quotas.h999", "want an accelerator type of the catalog (h100, h200, b200, a100, l40s, mi300x)"},
		"job as text/plain": {"POST", "/v1/jobs", "text/plain", benchJob, 415, "Content-Type",
			`want application/json, application/x-yaml, application/yaml, text/x-yaml, text/yaml`},
		"tenant as YAML":   {"POST", "/v1/tenants", "application/yaml", `{"name":"x"}`, 415, "Content-Type", "want application/json"},
		"NUL in a command": {"POST", "/v1/jobs", "application/yaml", withNUL, 422, "command[2]", "holds a NUL byte"},
		"malformed JSON job": {"POST", "/v1/jobs?filename=job.json", "application/json", `{"name": "x",}`, 422, "",
			"job.json:1:14: JSON syntax: invalid character '}'"},
		"log offset past any log": {"GET", "/v1/jobs/" + j.ID + "/logs?offset=9223372036854775807", "", "", 422, "offset",
			"want a byte offset of 0..1073741824"},
		"log attempt": {"GET", "/v1/jobs/" + j.ID + "/logs?attempt=2", "", "", 422, "attempt", `"2": want 1..1`},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+h.s.AdminToken())
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := (&http.Client{Transport: checked{t: t, next: http.DefaultTransport}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body api.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == nil {
				t.Fatalf("status %d, body not an error: %v", resp.StatusCode, err)
			}
			e := body.Error
			if resp.StatusCode != tc.status || e.Field != tc.field || !strings.Contains(e.Message, tc.says) {
				t.Errorf("got %d field %q: %s\nwant %d field %q saying %q", resp.StatusCode, e.Field, e.Message, tc.status, tc.field, tc.says)
			}
			if strings.Contains(e.Message, h.dir) {
				t.Errorf("the answer names the server's files: %s", e.Message)
			}
		})
	}
}

// The metrics follow Prometheus's naming rules, as promtool check metrics
// applies them: counters end in _total, nothing else does, units are base
// units.
func TestMetricNamesPassPromlint(t *testing.T) {
	h := start(t, "")
	h.node("n1")
	h.submit(h.client("acme"), benchJob)
	h.clock.Advance(time.Second)
	h.sync()
	problems, err := promlint.New(bytes.NewReader(h.scrape())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// A backlog of finished jobs past their retention (a store opened after
// a long stop) goes a slice a tick, not in one commit that would hold up
// every answer waiting on it.
func TestRetentionBacklogIsPrunedASliceATick(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutQueues(testQueues()); err != nil {
		t.Fatal(err)
	}
	const backlog = 2*pruneSlice + 200
	var c store.Change
	for seq := uint64(1); seq <= backlog; seq++ {
		j := finishedJob(seq) // ended months before the harness's clock
		c.Jobs = append(c.Jobs, j)
		c.New = append(c.New, store.NewJob{Job: j})
	}
	c.Seq = backlog
	if err := db.Commit(c); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	h := start(t, dir)
	stored := func() int {
		n := 0
		if err := h.s.db.List(store.Filter{}, 0, func(*store.Job) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var got []int
	for range 4 {
		h.clock.Advance(h.s.cfg.Tick)
		h.sync()
		h.sync()
		got = append(got, stored())
	}
	want := []int{backlog - pruneSlice, backlog - 2*pruneSlice, 0, 0}
	if !slices.Equal(got, want) {
		t.Errorf("jobs stored after each tick: %v, want %v", got, want)
	}
}
