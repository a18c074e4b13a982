package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/quota"
)

func build(name string) func(uint64) Job {
	return func(seq uint64) Job {
		return Job{ID: fmt.Sprintf("%s-%d", name, seq), Name: name, Tenant: "acme", Queue: "acme-batch", State: Pending}
	}
}

func TestSubmitIdempotentAndDurable(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !db.Created() {
		t.Errorf("Created() = false for a new store")
	}
	first, created, err := db.Submit(Submission{Tenant: "acme", Key: "k1", BodyHash: "h1", Build: build("train")})
	if err != nil || !created {
		t.Fatalf("first submit: created=%v err=%v", created, err)
	}
	again, created, err := db.Submit(Submission{Tenant: "acme", Key: "k1", BodyHash: "h1", Build: build("train")})
	if err != nil || created {
		t.Fatalf("replay: created=%v err=%v, want the earlier job", created, err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("replay returned another job (-want +got):\n%s", diff)
	}
	if _, _, err := db.Submit(Submission{Tenant: "acme", Key: "k1", BodyHash: "other", Build: build("train")}); !errors.Is(err, ErrKeyReused) {
		t.Errorf("key reuse with another body: err = %v, want ErrKeyReused", err)
	}
	// The same key in another tenant is another submission.
	if _, created, err := db.Submit(Submission{Tenant: "globex", Key: "k1", BodyHash: "h1", Build: build("train")}); err != nil || !created {
		t.Errorf("same key, other tenant: created=%v err=%v", created, err)
	}
	if err := db.PutQueues([]quota.Spec{{Name: "acme"}, {Name: "acme-batch", Parent: "acme"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Created() {
		t.Errorf("Created() = true on reopen")
	}
	got, err := db.Job(first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("job after reopen (-want +got):\n%s", diff)
	}
	specs, err := db.Queues()
	if err != nil || len(specs) != 2 {
		t.Errorf("queues after reopen: %v, %v", specs, err)
	}
}

func TestConcurrentSubmissionsKeepOrderAndUniqueIDs(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := db.Submit(Submission{Tenant: "acme", Key: fmt.Sprint(i), Build: build("j")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var seqs []uint64
	ids := map[string]bool{}
	if err := db.Jobs(func(j *Job) bool {
		seqs = append(seqs, j.Seq)
		ids[j.ID] = true
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != n || len(ids) != n {
		t.Fatalf("got %d jobs with %d distinct ids, want %d", len(seqs), len(ids), n)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("jobs not in submission order: %v", seqs)
		}
	}
}

func TestTokensAndDelete(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, _ := db.HasRole(RoleAdmin); ok {
		t.Errorf("new store has an admin token")
	}
	if err := db.PutToken(Token{Hash: "abc", Role: RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.HasRole(RoleAdmin); !ok {
		t.Errorf("HasRole(admin) = false after PutToken")
	}
	if _, err := db.Token("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: err = %v, want ErrNotFound", err)
	}
	j, _, err := db.Submit(Submission{Tenant: "acme", Key: "k", Build: build("x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteJob(&j); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Job(j.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted job: err = %v, want ErrNotFound", err)
	}
	if _, created, _ := db.Submit(Submission{Tenant: "acme", Key: "k", Build: build("x")}); !created {
		t.Errorf("key of a deleted job still replays")
	}
}

// PruneJobs sweeps the store a slice at a time: it reads at most scan
// records, deletes those done asks for (with their ids and keys), says
// where to go on, and starts over after the end.
func TestPruneJobsInSlices(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 7 {
		if _, _, err := db.Submit(Submission{Tenant: "acme", Key: fmt.Sprint(i), Build: build("j")}); err != nil {
			t.Fatal(err)
		}
	}
	odd := func(j *Job) bool { return j.Seq%2 == 1 }
	from := uint64(0)
	for _, want := range []struct {
		gone []string
		next uint64
	}{{[]string{"j-1", "j-3"}, 3}, {[]string{"j-5"}, 6}, {[]string{"j-7"}, 0}} {
		gone, next, err := db.PruneJobs(from, 3, odd)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range gone {
			ids = append(ids, j.ID)
		}
		if !cmp.Equal(ids, want.gone) || next != want.next {
			t.Errorf("from %d: pruned %v, next %d; want %v, %d", from, ids, next, want.gone, want.next)
		}
		from = next
	}
	var left []string
	if err := db.Jobs(func(j *Job) bool { left = append(left, j.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(left, []string{"j-2", "j-4", "j-6"}) {
		t.Errorf("left %v", left)
	}
	if _, err := db.Job("j-3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("pruned job by id: %v, want not found", err)
	}
	if _, created, err := db.Submit(Submission{Tenant: "acme", Key: "0", Build: build("j")}); err != nil || !created {
		t.Errorf("key of a pruned job: created %v, %v; want a new job", created, err)
	}
}
