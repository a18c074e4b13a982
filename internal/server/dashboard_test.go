package server

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/store"
)

func jobDoc(name, queue, kind string, replicas, count int, estimate string) string {
	return fmt.Sprintf(`name: %s
queue: %s
kind: %s
gangs:
  - replicas: %d
    accelerators: h100
    count: %d
estimatedRuntime: %s
command: [sleep, "600"]
`, name, queue, kind, replicas, count, estimate)
}

// get calls a route with a token and returns the status and body.
func (h *harness) get(token, path string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: checked{t: h.t, next: http.DefaultTransport}}).Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// refused checks that each query is a 422 naming its field.
func (h *harness) refused(token, path string, cases map[string]string) {
	h.t.Helper()
	for query, field := range cases {
		status, body := h.get(token, path+"?"+query)
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, `"field": "`+field+`"`) {
			h.t.Errorf("%s?%s: %d %s; want 422 naming %s", path, query, status, body, field)
		}
	}
}

// pendingRow is what the tests compare of a pending job.
type pendingRow struct {
	ID, Queue, Code string
	Position        int
	Earliest        bool
}

func rows(l api.PendingList) []pendingRow {
	var out []pendingRow
	for _, j := range l.Jobs {
		out = append(out, pendingRow{j.ID, j.Queue, j.Code, j.Position, j.EarliestStart != nil})
	}
	return out
}

// TestPendingListsPlacesReasonsAndEarliestStarts: the pending jobs queue by
// queue in the tree's order, each with its place in its queue, the core's
// code and reason (with dates, not the core's seconds) and, waiting for
// capacity, its earliest start: when the running job's estimate ends.
func TestPendingListsPlacesReasonsAndEarliestStarts(t *testing.T) {
	h := start(t, "")
	acme, globex := h.client("acme"), h.client("globex")
	h.node("n1")
	h.node("n2")
	long := h.submit(acme, jobDoc("long", "acme-train", "training", 2, 8, "1h"))
	a1 := h.submit(acme, jobDoc("a1", "acme-train", "batch", 1, 8, "10m"))
	a2 := h.submit(acme, jobDoc("a2", "acme-train", "training", 1, 8, "10m"))
	g1 := h.submit(globex, jobDoc("g1", "globex-batch", "batch", 1, 4, "10m"))
	h.sync()
	if got := h.job(long.ID).State; got != store.Running {
		t.Fatalf("long: %s, want running", got)
	}
	all, err := h.admin.Pending(h.ctx(), api.PendingFilter{}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []pendingRow{{a1.ID, "acme-train", "no-capacity", 1, true}, {a2.ID, "acme-train", "no-capacity", 2, true},
		{g1.ID, "globex-batch", "no-capacity", 1, true}}
	if diff := cmp.Diff(want, rows(all)); diff != "" || all.Total != 3 || all.Next != "" {
		t.Errorf("admin's pending list (-want +got):\n%s\ntotal %d next %q", diff, all.Total, all.Next)
	}
	// The reservation of the first in line: the long job's estimate.
	end := h.clock.Now().Add(time.Hour).UTC()
	if got := all.Jobs[0].EarliestStart; got == nil || !got.Equal(end) {
		t.Errorf("a1's earliest start: %v, want %v", got, end)
	}
	for _, j := range all.Jobs {
		if !strings.HasPrefix(j.Reason, "needs") || strings.Contains(j.Reason, "t=1") {
			t.Errorf("%s: reason %q, want the capacity it needs, with dates", j.ID, j.Reason)
		}
	}
	mine, err := acme.Pending(h.ctx(), api.PendingFilter{}, 0, 0)
	if diff := cmp.Diff(want[:2], rows(mine)); diff != "" || err != nil || mine.Total != 2 {
		t.Errorf("acme's pending list (-want +got):\n%s\n%v", diff, err)
	}
	for name, f := range map[string]api.PendingFilter{
		"queue": {Queue: "globex-batch"}, "tenant": {Tenant: "globex"}, "kind": {Kind: "training", Tenant: "acme"}, "job": {Job: a2.ID},
	} {
		l, err := h.admin.Pending(h.ctx(), f, 0, 0)
		wantIDs := map[string][]string{"queue": {g1.ID}, "tenant": {g1.ID}, "kind": {a2.ID}, "job": {a2.ID}}[name]
		var got []string
		for _, j := range l.Jobs {
			got = append(got, j.ID)
		}
		if err != nil || !slices.Equal(got, wantIDs) {
			t.Errorf("filter %s: %v, %v; want %v", name, got, err, wantIDs)
		}
	}
	// Pages by offset.
	var paged []pendingRow
	for offset := 0; ; {
		l, err := h.admin.Pending(h.ctx(), api.PendingFilter{}, offset, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, rows(l)...)
		if l.Next == "" {
			break
		}
		fmt.Sscan(l.Next, &offset)
	}
	if diff := cmp.Diff(want, paged); diff != "" {
		t.Errorf("pages of 2 (-want +got):\n%s", diff)
	}
	// The single job's explanation tells dates too.
	if ex := h.job(a1.ID).Explanation; ex == nil || strings.Contains(ex.Reason, "t=1") || ex.Reason == "" {
		t.Errorf("a1's explanation: %+v, want a reason in dates", ex)
	}
	acmeTok, _ := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
	h.refused(acmeTok.Token, "/v1/pending", map[string]string{
		"limit=0": "limit", "limit=501": "limit", "limit=x": "limit", "offset=-1": "offset", "state=running": "state",
		"kind=inference": "kind", "tenant=globex": "tenant", "queue=globex-batch": "queue",
	})
}

// TestJobPagesNewestFirstWithFilters: newest-first pages, by tenant and
// kind, from the loop's live jobs and from the store's finished ones.
func TestJobPagesNewestFirstWithFilters(t *testing.T) {
	h := start(t, "")
	acme, globex := h.client("acme"), h.client("globex")
	var ids []string
	tenantOf, kindOf := map[string]string{}, map[string]string{}
	for i := range 7 {
		c, q, tenant := acme, "acme-train", "acme"
		if i%3 == 2 {
			c, q, tenant = globex, "globex-batch", "globex"
		}
		kind := []string{"batch", "training"}[i%2]
		j := h.submit(c, jobDoc(fmt.Sprintf("j%d", i), q, kind, 1, 1, "1m"))
		ids = append(ids, j.ID)
		tenantOf[j.ID], kindOf[j.ID] = tenant, kind
	}
	// No node: all wait. Two end cancelled, in the store only.
	for _, id := range []string{ids[1], ids[5]} {
		if _, err := h.admin.Cancel(h.ctx(), id); err != nil {
			t.Fatal(err)
		}
	}
	h.sync()
	collect := func(c *api.Client, f api.JobFilter, limit int) []string {
		t.Helper()
		var got []string
		cursor := ""
		for range 20 {
			l, err := c.JobsPage(h.ctx(), f, cursor, limit)
			if err != nil {
				t.Fatalf("%+v: %v", f, err)
			}
			for _, j := range l.Jobs {
				got = append(got, j.ID)
			}
			if l.Next == "" {
				return got
			}
			cursor = l.Next
		}
		t.Fatalf("%+v: more than 20 pages", f)
		return nil
	}
	pick := func(newest bool, keep func(id string) bool) []string {
		var out []string
		for _, id := range ids {
			if keep(id) {
				out = append(out, id)
			}
		}
		if newest {
			slices.Reverse(out)
		}
		return out
	}
	cancelled := func(id string) bool { return id == ids[1] || id == ids[5] }
	for name, c := range map[string]struct {
		client *api.Client
		filter api.JobFilter
		want   []string
	}{
		"admin, newest":             {h.admin, api.JobFilter{Newest: true}, pick(true, func(string) bool { return true })},
		"acme, newest":              {acme, api.JobFilter{Newest: true}, pick(true, func(id string) bool { return tenantOf[id] == "acme" })},
		"admin, globex":             {h.admin, api.JobFilter{Tenant: "globex", Newest: true}, pick(true, func(id string) bool { return tenantOf[id] == "globex" })},
		"acme, training":            {acme, api.JobFilter{Kind: "training"}, pick(false, func(id string) bool { return tenantOf[id] == "acme" && kindOf[id] == "training" })},
		"admin, cancelled, newest":  {h.admin, api.JobFilter{State: store.Cancelled, Newest: true}, pick(true, cancelled)},
		"admin, pending, newest":    {h.admin, api.JobFilter{State: store.Pending, Newest: true}, pick(true, func(id string) bool { return !cancelled(id) })},
		"acme, pending, oldest":     {acme, api.JobFilter{State: store.Pending}, pick(false, func(id string) bool { return !cancelled(id) && tenantOf[id] == "acme" })},
		"acme, pending, batch, new": {acme, api.JobFilter{State: store.Pending, Kind: "batch", Newest: true}, pick(true, func(id string) bool { return !cancelled(id) && tenantOf[id] == "acme" && kindOf[id] == "batch" })},
	} {
		for _, limit := range []int{1, 2, 1000} {
			if diff := cmp.Diff(c.want, collect(c.client, c.filter, limit)); diff != "" {
				t.Errorf("%s, pages of %d (-want +got):\n%s", name, limit, diff)
			}
		}
	}
	acmeTok, _ := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
	h.refused(acmeTok.Token, "/v1/jobs", map[string]string{
		"order=sideways": "order", "before=3": "before", "order=newest&after=3": "after", "order=newest&before=x": "before",
		"tenant=globex": "tenant", "tenant=acme-train": "tenant", "kind=inference": "kind",
	})
}

// TestStoredPagesReadAtMostTheirBudget: a filter few jobs match answers
// short pages, each with the cursor to go on from, in both orders.
func TestStoredPagesReadAtMostTheirBudget(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	var ids []string
	for i := range 10 {
		ids = append(ids, h.submit(acme, jobDoc(fmt.Sprintf("j%d", i), "acme-train", "batch", 1, 1, "1m")).ID)
	}
	if _, err := h.admin.Cancel(h.ctx(), ids[6]); err != nil {
		t.Fatal(err)
	}
	p := principal{role: store.RoleAdmin}
	f := jobFilter{state: store.Cancelled}
	for _, newest := range []bool{false, true} {
		var got []string
		pages := 0
		pg := jobPage{newest: newest, limit: 5}
		for {
			l, err := h.s.storedJobs(f, p, pg, 3)
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
			fmt.Sscan(l.Next, &pg.cursor)
		}
		// Ten records, three a page: four pages, the last one short.
		if !slices.Equal(got, []string{ids[6]}) || pages != 4 {
			t.Errorf("newest %v: %v in %d pages, want [%s] in 4", newest, got, pages, ids[6])
		}
	}
}

// TestJobTimelineFromTheRecord: the events the record of a job from
// before the lifecycle recorded them tells.
func TestJobTimelineFromTheRecord(t *testing.T) {
	at := func(sec int64) *time.Time { v := time.Unix(1_800_000_000+sec, 0).UTC(); return &v }
	ms := func(sec int64) int64 { return (1_800_000_000 + sec) * 1000 }
	rep := func(node string, devs ...int) store.Replica {
		return store.Replica{Node: node, Accel: "h100", Devices: devs, State: store.ReplicaRunning}
	}
	base := store.Job{ID: "j-1", Queue: "acme-train", SubmittedMs: ms(0)}
	submitted := api.JobEvent{Time: at(0), Type: api.EventSubmitted, Detail: "to queue acme-train, priority 0"}
	for name, c := range map[string]struct {
		edit func(j *store.Job)
		want []api.JobEvent
	}{
		"pending": {func(j *store.Job) { j.State = store.Pending }, []api.JobEvent{submitted}},
		"running": {func(j *store.Job) {
			j.State, j.Attempt, j.StartedMs = store.Running, 1, ms(5)
			j.Replicas = []store.Replica{rep("n1", 0, 1), rep("n2", 0, 1)}
		}, []api.JobEvent{submitted, {Time: at(5), Type: api.EventAdmitted, Attempt: 1, Detail: "2 replicas on n1, n2 (2 with 2 x h100)"}}},
		"requeued and waiting": {func(j *store.Job) {
			j.State, j.Attempt, j.StartedMs, j.Reason = store.Pending, 1, ms(5), "requeued: node n1 is down"
		}, []api.JobEvent{submitted, {Time: at(5), Type: api.EventAdmitted, Attempt: 1, Detail: "started"},
			{Type: api.EventRequeued, Attempt: 1, Detail: "requeued: node n1 is down"}}},
		"third attempt, shrunk": {func(j *store.Job) {
			j.State, j.Attempt, j.Restarts, j.StartedMs = store.Running, 3, 1, ms(50)
			r := rep("n1", 3)
			r.Shrunk = true
			j.Replicas = []store.Replica{rep("n1", 2), r}
		}, []api.JobEvent{submitted,
			{Type: api.EventRequeued, Attempt: 2, Detail: "2 earlier attempts ended and the job waited again (1 of them gang restarts after a replica failed; the others preemptions, node failures or evictions); their times are not recorded"},
			{Time: at(50), Type: api.EventAdmitted, Attempt: 3, Detail: "2 replicas on n1 (2 with 1 x h100)"},
			{Type: api.EventShrunk, Attempt: 3, Detail: "gave back 1 replica to make room"}}},
		"preempting": {func(j *store.Job) {
			j.State, j.Attempt, j.StartedMs, j.Reason = store.Preempting, 1, ms(5), "for urgent-2"
		}, []api.JobEvent{submitted, {Time: at(5), Type: api.EventAdmitted, Attempt: 1, Detail: "started"},
			{Type: api.EventPreempted, Attempt: 1, Detail: "for urgent-2"}}},
		"cancelling": {func(j *store.Job) {
			j.State, j.Attempt, j.StartedMs, j.Reason = store.Cancelling, 1, ms(5), "cancelled by request; stopping its processes"
		}, []api.JobEvent{submitted, {Time: at(5), Type: api.EventAdmitted, Attempt: 1, Detail: "started"},
			{Type: api.EventCancelled, Attempt: 1, Detail: "cancelled by request; stopping its processes"}}},
		"failed": {func(j *store.Job) {
			j.State, j.Attempt, j.StartedMs, j.FinishedMs, j.Reason = store.Failed, 1, ms(5), ms(65), "rank 0 exited with code 2"
		}, []api.JobEvent{submitted, {Time: at(5), Type: api.EventAdmitted, Attempt: 1, Detail: "started"},
			{Time: at(65), Type: api.EventFailed, Attempt: 1, Detail: "rank 0 exited with code 2"}}},
		"cancelled before it started": {func(j *store.Job) {
			j.State, j.FinishedMs, j.Reason = store.Cancelled, ms(9), "cancelled by request"
		}, []api.JobEvent{submitted, {Time: at(9), Type: api.EventCancelled, Detail: "cancelled by request"}}},
	} {
		j := base
		c.edit(&j)
		if diff := cmp.Diff(c.want, timeline(&j)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// TestQueueStatsBorrowingAndLending: borrowing is the tree's; lending is
// apportioned from the top down among the queues with idle quota.
func TestQueueStatsBorrowingAndLending(t *testing.T) {
	specs := []quota.Spec{
		{Name: "acme", Quotas: map[string]quota.Limits{"h100": lim(8)}},
		{Name: "a1", Parent: "acme", Quotas: map[string]quota.Limits{"h100": lim(4)}},
		{Name: "a2", Parent: "acme", Quotas: map[string]quota.Limits{"h100": lim(4)}},
		{Name: "globex", Quotas: map[string]quota.Limits{"h100": lim(8)}},
		{Name: "g1", Parent: "globex", Quotas: map[string]quota.Limits{"h100": lim(8)}},
	}
	type stat struct {
		Borrowed, Lent     map[string]int64
		Share, Entitlement float64
	}
	none := map[string]int64{}
	h100 := func(v int64) map[string]int64 { return map[string]int64{"h100": v * 1000} }
	for name, c := range map[string]struct {
		use  map[string]int64
		want map[string]stat
	}{
		"within the tenant": {map[string]int64{"a1": 7}, map[string]stat{
			"acme": {none, none, 7.0 / 16, 0.5}, "a1": {h100(3), none, 7.0 / 16, 0.25}, "a2": {none, h100(3), 0, 0.25},
			"globex": {none, none, 0, 0.5}, "g1": {none, none, 0, 0.5},
		}},
		"across tenants": {map[string]int64{"a1": 12}, map[string]stat{
			"acme": {h100(4), none, 12.0 / 16, 0.5}, "a1": {h100(8), none, 12.0 / 16, 0.25}, "a2": {none, h100(4), 0, 0.25},
			"globex": {none, h100(4), 0, 0.5}, "g1": {none, h100(4), 0, 0.5},
		}},
		"idle": {map[string]int64{}, map[string]stat{
			"acme": {none, none, 0, 0.5}, "a1": {none, none, 0, 0.25}, "a2": {none, none, 0, 0.25},
			"globex": {none, none, 0, 0.5}, "g1": {none, none, 0, 0.5},
		}},
	} {
		tree, err := quota.New(specs)
		if err != nil {
			t.Fatal(err)
		}
		for q, v := range c.use {
			tree.Add(tree.Queue(q), quota.Demand{tree.FlavorIndex("h100"): v * 1000})
		}
		got := map[string]stat{}
		for q, st := range queueStats(tree) {
			got[q] = stat{st.borrowed, st.lent, st.share, st.entitlement}
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// TestHistorySamplesTheFleetAndTheQueues: utilization and fragmentation
// of the fleet for admins, each tenant's own queues for it.
func TestHistorySamplesTheFleetAndTheQueues(t *testing.T) {
	h := start(t, "", func(c *Config) { c.HistoryInterval, c.HeartbeatTimeout = 10*time.Second, time.Hour })
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	h.submit(acme, jobDoc("small", "acme-train", "batch", 1, 4, "1h"))
	h.submit(acme, jobDoc("big", "acme-train", "batch", 2, 8, "1h"))
	h.sync()
	h.clock.Advance(10 * time.Second)
	h.sync()
	hist, err := h.admin.History(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if hist.IntervalSeconds != 10 || hist.MaxSamples != maxHistory || len(hist.Samples) < 2 {
		t.Fatalf("history: %+v", hist)
	}
	last := hist.Samples[len(hist.Samples)-1]
	// 4 of 16 allocated; of the 12 free, 4 lie on the node in use.
	want := &api.FleetSample{Ready: 2, Accelerators: 16, Allocated: 4, Utilization: 0.25, Fragmentation: 0.3333,
		ByType: map[string]api.TypeSample{"h100": {Accelerators: 16, Allocated: 4}}, Pending: 1, Running: 1}
	if diff := cmp.Diff(want, last.Fleet); diff != "" {
		t.Errorf("fleet sample (-want +got):\n%s", diff)
	}
	wantQ := api.QueueSample{Usage: 4, Share: 0.125, Entitlement: 0.5, Pending: 1, Running: 1}
	if diff := cmp.Diff(wantQ, last.Queues["acme-train"]); diff != "" {
		t.Errorf("acme-train sample (-want +got):\n%s", diff)
	}
	if got := last.Queues["acme"]; got.Pending != 1 || got.Running != 1 || got.Usage != 4 {
		t.Errorf("the tenant's sample counts its queues': %+v", got)
	}
	mine, err := acme.History(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range mine.Samples {
		if s.Fleet != nil || len(s.Queues) != 2 || s.Queues["globex"] != (api.QueueSample{}) {
			t.Errorf("a tenant's sample: %+v; want its two queues and no fleet", s)
		}
	}
	if w, err := acme.Whoami(h.ctx()); err != nil || w != (api.Whoami{Role: "tenant", Tenant: "acme"}) {
		t.Errorf("whoami: %+v, %v", w, err)
	}
	if w, err := h.admin.Whoami(h.ctx()); err != nil || w != (api.Whoami{Role: "admin"}) {
		t.Errorf("whoami: %+v, %v", w, err)
	}
}

// TestJobEventsAreTheLifecyclesRecord: a job's timeline is what the live
// lifecycle recorded, with the times.
func TestJobEventsAreTheLifecyclesRecord(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, gangJob)
	if _, err := acme.Cancel(h.ctx(), j.ID); err != nil {
		t.Fatal(err)
	}
	ev, err := acme.JobEvents(h.ctx(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev.Events {
		kinds = append(kinds, e.Type)
		if e.Time == nil || e.Time.IsZero() {
			t.Errorf("event %+v without its time", e)
		}
	}
	if ev.Derived || !slices.Equal(kinds[:2], []string{api.EventSubmitted, api.EventAdmitted}) || !slices.Contains(kinds, api.EventCancelled) {
		t.Errorf("timeline %+v: want the recorded submission, admission and cancel", ev)
	}
}
