package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// v0Records is testdata/v0/records.json: every record of the version 0
// store file as the code that wrote it read it back.
type v0Records struct {
	Queues      []quota.Spec      `json:"queues"`
	Tokens      []Token           `json:"tokens"`
	Nodes       []Node            `json:"nodes"`
	Jobs        []Job             `json:"jobs"`
	Idempotency map[string]string `json:"idempotency"`
}

// copyV0 copies the version 0 store into a fresh data directory (Open
// migrates it in place).
func copyV0(t *testing.T) (string, v0Records) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "v0", FileName))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "v0", "records.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want v0Records
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	return dir, want
}

// A store written before the store had schema versions opens: every
// record reads back as it did, and the indexes are built.
func TestOpenVersion0Store(t *testing.T) {
	dir, want := copyV0(t)
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if db.Created() {
		t.Errorf("an existing store reads as created")
	}
	if db.Migrated != len(want.Jobs) {
		t.Errorf("migrated %d job records, want %d", db.Migrated, len(want.Jobs))
	}
	check := func(t *testing.T, db *DB) {
		t.Helper()
		queues, err := db.Queues()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Queues, queues); diff != "" {
			t.Errorf("queues (-v0 +now):\n%s", diff)
		}
		toks, err := db.Tokens()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Tokens, toks); diff != "" {
			t.Errorf("tokens (-v0 +now):\n%s", diff)
		}
		nodes, err := db.Nodes()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Nodes, nodes); diff != "" {
			t.Errorf("nodes (-v0 +now):\n%s", diff)
		}
		var jobs []Job
		if err := db.List(Filter{}, 0, func(j *Job) bool { jobs = append(jobs, *j); return true }); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Jobs, jobs); diff != "" {
			t.Errorf("jobs (-v0 +now):\n%s", diff)
		}
		for _, w := range want.Jobs {
			got, err := db.Job(w.ID)
			if err != nil {
				t.Errorf("job %s by id: %v", w.ID, err)
				continue
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("job %s by id (-v0 +now):\n%s", w.ID, diff)
			}
		}
		for k, raw := range want.Idempotency {
			tenant, key, _ := strings.Cut(k, "\x00")
			var rec struct{ Job, BodyHash string }
			if err := json.Unmarshal([]byte(raw), &rec); err != nil {
				t.Fatal(err)
			}
			j, hash, err := db.Idempotent(tenant, key)
			if err != nil || j.ID != rec.Job || hash != rec.BodyHash {
				t.Errorf("key %q of %s: job %s hash %q, %v; want %s %q", key, tenant, j.ID, hash, err, rec.Job, rec.BodyHash)
			}
		}
		// The indexes answer what a full read answers.
		for _, st := range States {
			var byIndex, byScan []string
			if err := db.List(Filter{State: st}, 0, func(j *Job) bool { byIndex = append(byIndex, j.ID); return true }); err != nil {
				t.Fatal(err)
			}
			for _, j := range want.Jobs {
				if j.State == st {
					byScan = append(byScan, j.ID)
				}
			}
			if diff := cmp.Diff(byScan, byIndex); diff != "" {
				t.Errorf("state %s by index (-scan +index):\n%s", st, diff)
			}
		}
		var live, wantLive []string
		if err := db.LiveJobs(func(j *Job) bool { live = append(live, j.ID); return true }); err != nil {
			t.Fatal(err)
		}
		for i := range want.Jobs {
			if Live(&want.Jobs[i]) {
				wantLive = append(wantLive, want.Jobs[i].ID)
			}
		}
		if diff := cmp.Diff(wantLive, live); diff != "" {
			t.Errorf("live jobs (-scan +index):\n%s", diff)
		}
		if seq, err := db.LastSeq(); err != nil || seq != want.Jobs[len(want.Jobs)-1].Seq {
			t.Errorf("LastSeq %d, %v", seq, err)
		}
	}
	check(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Opened again, it is of this version: nothing to migrate, the same
	// records.
	db = open(t, dir)
	if db.Migrated != 0 {
		t.Errorf("second open migrated %d records", db.Migrated)
	}
	check(t, db)
}

// A record of a version this build does not know is refused with what to
// do, not misread.
func TestFutureVersionRefused(t *testing.T) {
	for _, data := range []string{`{"v":2,"id":"x"}`, `{"v":x}`} {
		if _, err := DecodeJob([]byte(data)); err == nil {
			t.Errorf("DecodeJob(%s): no error", data)
		}
	}
	_, err := DecodeJob([]byte(`{"v":9,"id":"x"}`))
	if err == nil || !strings.Contains(err.Error(), "reads versions 0..1") {
		t.Errorf("error %v, want one naming the versions this build reads", err)
	}
}

// A version 0 store with accounting (usage records by sequence number,
// their index by job, grants, commitments, budgets in buckets of their
// own) opens with every accounting record moved into the extra records of
// its kind, in the same commit order, and the old buckets gone.
func TestOpenVersion0StoreMovesAccounting(t *testing.T) {
	dir, _ := copyV0(t)
	b, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	usage := []string{
		`{"v":1,"id":"t-1/1/0/0@10","job":"t-1","tenant":"acme","queue":"acme-a","attempt":1,"gang":0,"replica":0,"type":"h100","node":"n1","devices":[0],"milli":1000,"fromMs":10000,"toMs":20000,"end":"finished"}`,
		`{"v":1,"id":"t-10/1/0/0@10","job":"t-10","tenant":"acme","queue":"acme-a","attempt":1,"gang":0,"replica":0,"type":"h100","node":"n1","devices":[1],"milli":500,"fromMs":10000,"toMs":30000,"end":"cancelled"}`,
		`{"v":1,"id":"t-1/2/0/0@40","job":"t-1","tenant":"acme","queue":"acme-a","attempt":2,"gang":0,"replica":0,"type":"h100","node":"n1","devices":[0],"milli":1000,"fromMs":40000,"toMs":50000,"end":"finished"}`,
	}
	err = b.Update(func(tx *bolt.Tx) error {
		put := func(bucket, key, value string) {
			bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err == nil {
				err = bk.Put([]byte(key), []byte(value))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, u := range usage {
			put("usage", string(be8(uint64(i+1))), u)
		}
		put("usagejobs", "t-1\x00"+string(be8(1)), "")
		put("grants", "g1", `{"v":1,"id":"g1","tenant":"acme","kind":"prepaid","amount":5000000,"startMs":1,"createdMs":1}`)
		put("commitments", "c1", `{"v":1,"id":"c1","tenant":"acme","type":"h100","count":8,"startMs":1,"endMs":2,"pricePerHour":1,"createdMs":1}`)
		put("budgets", "acme", `{"v":1,"tenant":"acme","monthly":7,"setMs":1}`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []string
	var seqs []uint64
	if err := Usage(db, func(seq uint64, u *UsageRecord) bool { ids, seqs = append(ids, u.ID), append(seqs, seq); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"t-1/1/0/0@10", "t-10/1/0/0@10", "t-1/2/0/0@40"}, ids); diff != "" {
		t.Errorf("usage records in commit order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, seqs); diff != "" {
		t.Errorf("their places (-want +got):\n%s", diff)
	}
	one, err := JobUsage(db, "t-1")
	if err != nil || len(one) != 2 {
		t.Errorf("usage of t-1: %+v, %v; want 2 records", one, err)
	}
	gs, err := Grants(db)
	if err != nil || len(gs) != 1 || gs[0].Amount != 5_000_000 {
		t.Errorf("grants %+v, %v", gs, err)
	}
	cs, err := Commitments(db)
	if err != nil || len(cs) != 1 || cs[0].Count != 8 {
		t.Errorf("commitments %+v, %v", cs, err)
	}
	bs, err := Budgets(db)
	if err != nil || len(bs) != 1 || bs[0].Monthly != 7 {
		t.Errorf("budgets %+v, %v", bs, err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		for _, old := range []string{"usage", "usagejobs", "grants", "commitments", "budgets"} {
			if tx.Bucket([]byte(old)) != nil {
				t.Errorf("bucket %s is still there", old)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
