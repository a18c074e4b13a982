package server

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// FuzzUsageRecordsParams: any query of GET /v1/usage/records is taken,
// with a window of at most maxReportDays and a page size in range, or
// refused as invalid naming the parameter at fault.
func FuzzUsageRecordsParams(f *testing.F) {
	for _, q := range []string{"", "from=2026-12-01&to=2026-12-22", "from=2026-12-01T08:00:00Z&limit=10", "after=12&limit=10000",
		"limit=0", "after=x", "from=2020-01-01", "to=2026-11-01", "from=2026-12-01T08:00:00%2B02:00&to=2026-12-01T09:00:00Z"} {
		f.Add(q)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	fields := []string{"from", "to", "limit", "after"}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		rq, e := parseUsageRecordsQuery(q, now)
		if e != nil {
			if e.Status != 422 || !slices.Contains(fields, e.Field) {
				t.Fatalf("%q: refusal %+v", raw, e)
			}
			return
		}
		if rq.to <= rq.from || (rq.to-rq.from)/86_400_000 > maxReportDays {
			t.Fatalf("%q: took the window %d..%d", raw, rq.from, rq.to)
		}
		if rq.limit < 1 || rq.limit > api.MaxUsagePage {
			t.Fatalf("%q: took limit %d", raw, rq.limit)
		}
	})
}
