package store

import (
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
		return UsageRecord{V: UsageVersion, ID: id, Job: id, Tenant: "acme", Queue: "acme-batch", Type: "h100", Node: "n1", Devices: []int{0}, Milli: 1000, FromMs: 1000, ToMs: 2000, End: "finished"}
	}
	if err := db.CommitUsage(nil, nil, []UsageRecord{rec("a"), rec("b"), rec("c")}); err != nil {
		t.Fatal(err)
	}
	page := func(after uint64, n int) (ids []string, last uint64) {
		last = after
		if err := db.UsageAfter(after, func(seq uint64, r *UsageRecord) bool {
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
	if err := db.CommitUsage(nil, nil, []UsageRecord{rec("d")}); err != nil {
		t.Fatal(err)
	}
	second, cur := page(cur, 2)
	third, _ := page(cur, 2)
	got := [][]string{first, second, third}
	want := [][]string{{"a", "b"}, {"c", "d"}, nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
}
