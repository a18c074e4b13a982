package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
)

const globexBatch = `name: sweep
queue: globex-batch
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 4
command: [sleep, "100000"]
`

// What the ledger meters comes back through GET /v1/usage/records, one
// record per holding: closed ones from the store a page at a time, the
// open one with the last page, each once, with its job's tenant, queue
// and kind; together exactly the accelerator-time the usage report
// metered. A tenant reads its own records only, and the window keeps
// the holdings that overlap it.
func TestUsageRecordsListTheMeteredHoldings(t *testing.T) {
	h := start(t, "", acctPrices)
	acme, globex := h.client("acme"), h.client("globex")
	h.euNode("n1")
	day := h.clock.Now().UTC().Truncate(24 * time.Hour)

	// Two acme jobs of an hour each on n1, one after the other.
	var acmeJobs []string
	for range 2 {
		j, k := h.runJob(acme, wholeNode, "n1")
		acmeJobs = append(acmeJobs, j.ID)
		h.clock.Advance(time.Hour)
		h.beat("n1", exited(k, 0, ""))
	}
	secondStart := h.clock.Now().Add(-time.Hour)
	// A globex job still running, half an hour in.
	g, _ := h.runJob(globex, globexBatch, "n1")
	h.clock.Advance(30 * time.Minute)
	h.sync()

	type rec struct {
		Job, Tenant, Queue, Kind string
		Open                     bool
		MilliMs                  int64
	}
	brief := func(rs []api.UsageRecord) []rec {
		var out []rec
		for _, r := range rs {
			out = append(out, rec{r.Job, r.Tenant, r.Queue, r.Kind, r.To == nil, r.AcceleratorMilliMs})
		}
		return out
	}
	const hour = 3_600_000
	want := []rec{
		{acmeJobs[0], "acme", "acme-train", "training", false, 8 * 1000 * hour},
		{acmeJobs[1], "acme", "acme-train", "training", false, 8 * 1000 * hour},
		{g.ID, "globex", "globex-batch", "batch", true, 4 * 1000 * hour / 2},
	}
	q := api.UsageRecordsQuery{From: day, To: day.Add(24 * time.Hour), Limit: 1}
	first, err := h.admin.UsageRecords(h.ctx(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Records) != 1 || first.Next == "" {
		t.Fatalf("first page of one: %+v, want one record and a cursor", first)
	}
	all, last, err := h.admin.AllUsageRecords(h.ctx(), q)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, brief(all)); diff != "" {
		t.Errorf("records, pages of one (-want +got):\n%s", diff)
	}
	if !last.AsOf.Equal(h.clock.Now()) {
		t.Errorf("asOf %s, want the server's now %s", last.AsOf, h.clock.Now())
	}
	rep, err := h.admin.Usage(h.ctx(), api.UsageQuery{From: day, To: day.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var listed, metered int64
	for _, r := range all {
		listed += r.AcceleratorMilliMs
	}
	for _, r := range rep.Rows {
		if r.Kind == "used" {
			metered += r.AcceleratorMilliMs
		}
	}
	if listed != metered {
		t.Errorf("the records hold %d milli-accelerator-ms, the report metered %d as used", listed, metered)
	}

	// One page when it fits; a tenant's own alone.
	whole, err := h.admin.UsageRecords(h.ctx(), api.UsageRecordsQuery{From: day, To: day.Add(24 * time.Hour)})
	if err != nil || whole.Next != "" || len(whole.Records) != 3 {
		t.Errorf("one page: %d records, next %q, %v", len(whole.Records), whole.Next, err)
	}
	own, _, err := globex.AllUsageRecords(h.ctx(), api.UsageRecordsQuery{From: day, To: day.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[2:], brief(own)); diff != "" {
		t.Errorf("globex's records (-want +got):\n%s", diff)
	}
	if _, err := globex.UsageRecords(h.ctx(), api.UsageRecordsQuery{Tenant: "acme"}); err == nil || !strings.Contains(err.Error(), `no tenant "acme"`) {
		t.Errorf("globex asking for acme's records: %v, want as if acme did not exist", err)
	}
	// From the second acme job's start: the first one ended then.
	later, _, err := h.admin.AllUsageRecords(h.ctx(), api.UsageRecordsQuery{From: secondStart, To: day.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[1:], brief(later)); diff != "" {
		t.Errorf("records from %s (-want +got):\n%s", secondStart, diff)
	}
}

// Bad parameters are refused with the parameter named and what it takes.
func TestUsageRecordsRefuseBadParameters(t *testing.T) {
	h := start(t, "", acctPrices)
	for query, want := range map[string]string{
		"limit=0":                         `limit: "0": want a page size of 1..10000 (default 1000)`,
		"limit=x":                         `limit: "x": want a page size of 1..10000`,
		"after=-1":                        `after: "-1": want the "next" cursor of a previous page`,
		"from=yesterday":                  `from: "yesterday": want a date YYYY-MM-DD (UTC) or an RFC 3339 time`,
		"from=2026-12-02&to=2026-12-01":   `to: 2026-12-01T00:00:00Z is not after from 2026-12-02T00:00:00Z`,
		"from=2020-01-01&to=2026-01-01":   `to: the range is longer than 400 days`,
		"tenant=no%20such":                `tenant`,
		"to=2026-12-02T00:00:00%2B01:00x": `to: "2026-12-02T00:00:00+01:00x"`,
	} {
		req, _ := http.NewRequest("GET", h.url+"/v1/usage/records?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+h.admin.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body api.ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || err != nil || body.Error == nil || !strings.Contains(body.Error.Error(), want) {
			t.Errorf("%s: %d %+v %v, want 422 naming %s", query, resp.StatusCode, body.Error, err, want)
		}
	}
}
