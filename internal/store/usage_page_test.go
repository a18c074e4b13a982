package store

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Paging by the last sequence number seen reads every record once, in
// commit order, those committed between two pages included.
func TestUsageAfterPagesInCommitOrder(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := func(id string) UsageRecord {
		return UsageRecord{V: 1, ID: id, Job: id, Tenant: "acme", Queue: "acme-batch", Type: "h100", Node: "n1", Devices: []int{0}, Milli: 1000, FromMs: 1000, ToMs: 2000, End: "finished"}
	}
	var seq uint64
	commit := func(us ...UsageRecord) {
		t.Helper()
		var c Change
		for _, u := range us {
			seq++
			r, err := UsageChange(u, seq)
			if err != nil {
				t.Fatal(err)
			}
			c.Records = append(c.Records, r)
		}
		if err := db.Commit(c); err != nil {
			t.Fatal(err)
		}
	}
	// Keys sort by job, not by commit order: "c" before "b" here.
	commit(rec("a"), rec("c"), rec("b"))
	page := func(after uint64, n int) (ids []string, last uint64) {
		last = after
		if err := UsageAfter(db, after, func(seq uint64, r *UsageRecord) bool {
			if seq <= last {
				t.Errorf("sequence %d after %d", seq, last)
			}
			ids, last = append(ids, r.ID), seq
			return len(ids) < n
		}); err != nil {
			t.Fatal(err)
		}
		return ids, last
	}
	first, cur := page(0, 2)
	commit(rec("0"))
	second, cur := page(cur, 2)
	third, _ := page(cur, 2)
	got := [][]string{first, second, third}
	want := [][]string{{"a", "c"}, {"b", "0"}, nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
}

// BenchmarkUsagePage reads one page of GET /v1/usage/records from a store
// of 50,000 records: 5,000 of them (maxUsageScan) from a cursor in the
// middle, which UsageAfter finds by reading and ordering all 50,000.
func BenchmarkUsagePage(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const total, page = 50_000, 5000
	batch := make([]Record, 0, 1000)
	for i := range total {
		rec, err := UsageChange(UsageRecord{ID: fmt.Sprintf("job-%d/1/0/0@%d", i, 1_800_000_000+i), Job: fmt.Sprintf("job-%d", i), Tenant: "acme",
			Queue: "acme-train", Kind: "training", Attempt: 1, Type: "h100", Site: "eu/z1", Node: fmt.Sprintf("n%d", i%64),
			Devices: []int{0, 1, 2, 3, 4, 5, 6, 7}, Milli: 1000, FromMs: int64(i) * 1000, ToMs: int64(i)*1000 + 3_600_000, End: "finished"}, uint64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, rec)
		if len(batch) == cap(batch) {
			if err := db.Commit(Change{Records: batch}); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := UsageAfter(db, total/2, func(uint64, *UsageRecord) bool { n++; return n < page }); err != nil {
			b.Fatal(err)
		}
		if n != page {
			b.Fatalf("read %d", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/page, "ns/record")
}
