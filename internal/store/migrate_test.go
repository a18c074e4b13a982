package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
