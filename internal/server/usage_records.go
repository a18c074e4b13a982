package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// GET /v1/usage/records lists the metered holdings themselves, one record
// per replica's holding, for what reads usage at a grain finer than a
// report's: a capacity plan's demand history (`gpufleet plan --history
// server`), an export to another accounting system. Like /v1/usage, a
// tenant's token reads its own records and an admin's every tenant's.
//
// Closed records are read from the store in commit order, at most
// maxUsageScan of them answered or passed over a page, with the last one's
// sequence number as the cursor (the store keys usage records by job, so
// putting them in commit order reads every stored one: store.UsageAfter). The loop's own records (holdings still open, records closed
// since the last commit) come with the last page. They are taken from the
// loop before the store is read: the loop commits on its own goroutine,
// so a record it held then is either still its own or in the store by
// the time the scan reaches it, and the page keeps the store's copy of
// any record both hold (the closed one). None is missed and none is
// listed twice.

// maxUsageScan bounds the records one page looks at when few of them
// match (another tenant's, outside the window): a page answers fewer
// records with a cursor to go on. The store still reads and orders every
// usage record for each page: about 0.5 s at 50,000 stored records on two
// shared cores (BenchmarkUsagePage, docs/BENCHMARKS.md), outside the loop.
const maxUsageScan = 5000

type usageRecordsQuery struct {
	tenant   string
	from, to int64 // Unix ms
	after    uint64
	limit    int
}

// parseUsageTime reads a bound: a date (UTC midnight) or an RFC 3339 time.
func parseUsageTime(field, v string) (int64, *api.Error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UnixMilli(), nil
	}
	if t, err := time.Parse(api.DateLayout, v); err == nil {
		return t.UnixMilli(), nil
	}
	return 0, api.Invalid(field, "%q: want a date YYYY-MM-DD (UTC) or an RFC 3339 time", v)
}

// parseUsageRecordsQuery reads the parameters but the tenant.
func parseUsageRecordsQuery(q url.Values, now time.Time) (usageRecordsQuery, *api.Error) {
	rq := usageRecordsQuery{limit: api.DefaultUsagePage}
	var e *api.Error
	rq.from = ledger.MonthOf(now.UnixMilli()).Start()
	rq.to = now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour).UnixMilli()
	if v := q.Get("from"); v != "" {
		if rq.from, e = parseUsageTime("from", v); e != nil {
			return rq, e
		}
	}
	if v := q.Get("to"); v != "" {
		if rq.to, e = parseUsageTime("to", v); e != nil {
			return rq, e
		}
	}
	switch {
	case rq.to <= rq.from:
		return rq, api.Invalid("to", "%s is not after from %s", ledger.FormatTime(rq.to), ledger.FormatTime(rq.from))
	case (rq.to-rq.from)/86_400_000 > maxReportDays:
		return rq, api.Invalid("to", "the range is longer than %d days", maxReportDays)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxUsagePage {
			return rq, api.Invalid("limit", "%q: want a page size of 1..%d (default %d)", v, api.MaxUsagePage, api.DefaultUsagePage)
		}
		rq.limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return rq, api.Invalid("after", "%q: want the \"next\" cursor of a previous page", v)
		}
		rq.after = n
	}
	return rq, nil
}

// overlaps reports whether a record held anything in [from, to); an open
// one (ToMs 0) holds up to now.
func (q *usageRecordsQuery) overlaps(r *store.UsageRecord) bool {
	return r.FromMs < q.to && (r.ToMs == 0 || r.ToMs > q.from) && (q.tenant == "" || r.Tenant == q.tenant)
}

// liveUsage is what the loop holds of usage: records not yet committed
// and open holdings, with the loop's time.
type liveUsage struct {
	closed, open []store.UsageRecord
	now          time.Time
}

func (s *Server) usageRecords(w http.ResponseWriter, r *http.Request, p principal) {
	tenant, e := s.tenantParam(r, p, false)
	if e != nil {
		writeErr(w, e)
		return
	}
	rq, e := parseUsageRecordsQuery(r.URL.Query(), s.cfg.Now())
	if e != nil {
		writeErr(w, e)
		return
	}
	rq.tenant = tenant
	live, err := exec(r.Context(), s, func(l *loop, reply func(liveUsage)) {
		// Records closed since the last commit wait in the loop's next one
		// (those of a commit in flight are stored before the answer).
		lu := liveUsage{now: l.now()}
		for _, rec := range l.records {
			if rec.Kind != store.KindUsage {
				continue
			}
			var u store.UsageRecord
			if err := json.Unmarshal(rec.Value, &u); err == nil {
				lu.closed = append(lu.closed, u)
			}
		}
		l.core.Holdings(func(u sched.Usage) bool {
			if u.Type != "" && len(u.Devices) > 0 {
				rec := storeRecord(&u)
				rec.ToMs, rec.End = 0, "" // the core says up to now
				lu.open = append(lu.open, rec)
			}
			return true
		})
		reply(lu)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	out := api.UsageRecordPage{From: time.UnixMilli(rq.from).UTC(), To: time.UnixMilli(rq.to).UTC(), AsOf: live.now.UTC(),
		Records: []api.UsageRecord{}}
	nowMs := live.now.UnixMilli()
	seen := map[string]bool{}
	scanned, last, more := 0, rq.after, false
	if err := store.UsageAfter(s.db, rq.after, func(seq uint64, rec *store.UsageRecord) bool {
		if scanned == max(rq.limit, maxUsageScan) || len(out.Records) == rq.limit {
			more = true
			return false
		}
		scanned, last = scanned+1, seq
		seen[rec.ID] = true
		if rq.overlaps(rec) {
			out.Records = append(out.Records, listedRecord(rec, nowMs))
		}
		return true
	}); err != nil {
		writeErr(w, api.Internal("read usage records: %v", err))
		return
	}
	if more {
		out.Next = strconv.FormatUint(last, 10)
		writeJSON(w, http.StatusOK, out)
		return
	}
	for _, recs := range [][]store.UsageRecord{live.closed, live.open} {
		for i := range recs {
			rec := &recs[i]
			if !seen[rec.ID] && rq.overlaps(rec) {
				seen[rec.ID] = true
				out.Records = append(out.Records, listedRecord(rec, nowMs))
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// listedRecord is a record as the listing shows it. A record always
// carries its job's kind (the core's, from the job's kind field); one
// without (written by hand or by another tool) reads as its queue's name,
// so that its usage still falls in a series of its own.
func listedRecord(rec *store.UsageRecord, nowMs int64) api.UsageRecord {
	v := api.UsageRecord{ID: rec.ID, Job: rec.Job, Tenant: rec.Tenant, Queue: rec.Queue, Kind: rec.Kind, Attempt: rec.Attempt,
		Gang: rec.Gang, Replica: rec.Replica, Node: rec.Node, Type: rec.Type, Tier: tierName(rec.Tier), Site: rec.Site,
		Devices: rec.Devices, Milli: rec.Milli, From: time.UnixMilli(rec.FromMs).UTC(), IntensityGPerKWh: rec.Intensity}
	if v.Kind == "" {
		v.Kind = rec.Queue
	}
	if v.Devices == nil {
		v.Devices = []int{}
	}
	to := nowMs
	if rec.ToMs != 0 {
		t := time.UnixMilli(rec.ToMs).UTC()
		v.To, v.End, to = &t, rec.End, rec.ToMs
	}
	v.AcceleratorMilliMs = max(0, to-rec.FromMs) * int64(len(rec.Devices)) * int64(rec.Milli)
	return v
}
