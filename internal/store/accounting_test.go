package store

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Usage records are committed with the job state that ended them, read
// back in commit order and by job, and kept through a reopen; grants and
// commitments keep their IDs unique; a budget of 0 removes the budget.
func TestAccountingRecordsAreDurable(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	job, _, err := db.Submit(Submission{Tenant: "acme", Build: build("train")})
	if err != nil {
		t.Fatal(err)
	}
	job.State = Succeeded
	recs := []UsageRecord{
		{ID: "train-1/1/0/0@10", Job: "train-1", Tenant: "acme", Queue: "acme-batch", Attempt: 1, Type: "h100", Node: "n1", Devices: []int{0, 1}, Milli: 1000, FromMs: 10_000, ToMs: 20_000, End: "finished"},
		{ID: "train-10/1/0/0@10", Job: "train-10", Tenant: "acme", Queue: "acme-batch", Attempt: 1, Type: "h100", Node: "n2", Devices: []int{0}, Milli: 250, FromMs: 10_000, ToMs: 30_000, End: "cancelled"},
		{ID: "train-1/1/0/1@10", Job: "train-1", Tenant: "acme", Queue: "acme-batch", Attempt: 1, Replica: 1, Type: "h100", Node: "n2", Devices: []int{3}, Milli: 1000, FromMs: 10_000, ToMs: 20_000, End: "finished"},
	}
	if err := db.CommitUsage(nil, []*Job{&job}, recs[:2]); err != nil {
		t.Fatal(err)
	}
	if err := db.CommitUsage(nil, nil, recs[2:]); err != nil {
		t.Fatal(err)
	}
	if err := db.PutGrant(Grant{ID: "g1", Tenant: "acme", Kind: "prepaid", Amount: 5_000_000, StartMs: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutGrant(Grant{ID: "g1", Tenant: "globex", Kind: "prepaid", Amount: 1}); !errors.Is(err, ErrExists) {
		t.Errorf("a second grant g1: err %v, want ErrExists", err)
	}
	if err := db.PutCommitment(Commitment{ID: "c1", Tenant: "acme", Type: "h100", Count: 8, StartMs: 1, EndMs: 2, PricePerHour: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCommitment(Commitment{ID: "c1", Tenant: "acme"}); !errors.Is(err, ErrExists) {
		t.Errorf("a second commitment c1: err %v, want ErrExists", err)
	}
	for _, b := range []Budget{{Tenant: "acme", Monthly: 7}, {Tenant: "globex", Monthly: 9}, {Tenant: "globex"}} {
		if err := db.PutBudget(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range recs {
		recs[i].V = UsageVersion
	}
	var all []UsageRecord
	if err := db.Usage(func(u *UsageRecord) bool { all = append(all, *u); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(recs, all); diff != "" {
		t.Errorf("records in commit order (-want +got):\n%s", diff)
	}
	one, err := db.JobUsage("train-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]UsageRecord{recs[0], recs[2]}, one); diff != "" {
		t.Errorf("records of train-1 (-want +got):\n%s", diff)
	}
	if none, err := db.JobUsage("train"); err != nil || len(none) != 0 {
		t.Errorf("records of job train (a prefix of others): %v, %v; want none", none, err)
	}
	if got, err := db.Job("train-1"); err != nil || got.State != Succeeded {
		t.Errorf("the job committed with the records: %q, %v", got.State, err)
	}
	gs, err := db.Grants()
	if err != nil || len(gs) != 1 || gs[0].Amount != 5_000_000 {
		t.Errorf("grants %+v, %v", gs, err)
	}
	cs, err := db.Commitments()
	if err != nil || len(cs) != 1 || cs[0].Count != 8 {
		t.Errorf("commitments %+v, %v", cs, err)
	}
	bs, err := db.Budgets()
	if err != nil || len(bs) != 1 || bs[0].Tenant != "acme" || bs[0].Monthly != 7 {
		t.Errorf("budgets %+v, %v; want acme's alone", bs, err)
	}
}
