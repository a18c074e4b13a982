package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

func open(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newJob(seq uint64, tenant, queue, state string) *Job {
	return &Job{ID: fmt.Sprintf("j-%d", seq), Seq: seq, Name: "j", Tenant: tenant, Queue: queue, State: state,
		Spec: sched.Job{ID: sched.JobID(fmt.Sprintf("j-%d", seq)), Tenant: tenant, Queue: queue, Kind: sched.Batch,
			Gangs: []sched.Gang{{Replicas: 1}}}}
}

func listIDs(t *testing.T, db *DB, f Filter, after uint64) []string {
	t.Helper()
	var ids []string
	if err := db.List(f, after, func(j *Job) bool { ids = append(ids, j.ID); return true }); err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestCommitNewJobsIdempotencyAndReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !db.Created() {
		t.Errorf("Created() = false for a new store")
	}
	a, b := newJob(1, "acme", "acme-batch", Pending), newJob(2, "globex", "globex-batch", Pending)
	a.IdempotencyKey = "k1"
	if err := db.Commit(Change{Jobs: []*Job{a, b}, New: []NewJob{{Job: a, Key: "k1", BodyHash: "h1"}, {Job: b}}, Seq: 2}); err != nil {
		t.Fatal(err)
	}
	// A job id that exists is refused, and nothing of that commit lands.
	c := newJob(3, "acme", "acme-batch", Pending)
	c.ID = a.ID
	if err := db.Commit(Change{Jobs: []*Job{c}, New: []NewJob{{Job: c}}, Seq: 3}); err == nil {
		t.Errorf("commit of an existing job id: no error")
	}
	if err := db.PutQueues([]quota.Spec{{Name: "acme"}, {Name: "acme-batch", Parent: "acme"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open(t, dir)
	if db.Created() {
		t.Errorf("Created() = true on reopen")
	}
	got, hash, err := db.Idempotent("acme", "k1")
	if err != nil || hash != "h1" {
		t.Fatalf("Idempotent: %v, hash %q", err, hash)
	}
	if diff := cmp.Diff(*a, got); diff != "" {
		t.Errorf("job after reopen (-want +got):\n%s", diff)
	}
	if _, _, err := db.Idempotent("globex", "k1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another tenant's key: %v, want ErrNotFound", err)
	}
	if seq, err := db.LastSeq(); err != nil || seq != 2 {
		t.Errorf("LastSeq = %d, %v; want 2 (the refused commit took none)", seq, err)
	}
	if ids := listIDs(t, db, Filter{}, 0); !cmp.Equal(ids, []string{"j-1", "j-2"}) {
		t.Errorf("jobs %v", ids)
	}
	specs, err := db.Queues()
	if err != nil || len(specs) != 2 {
		t.Errorf("queues after reopen: %v, %v", specs, err)
	}
	// Deleting a job takes its id and key with it.
	if err := db.Commit(Change{Deleted: []*Job{a}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Job(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted job: %v", err)
	}
	if _, _, err := db.Idempotent("acme", "k1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted job's key: %v", err)
	}
	if ids := listIDs(t, db, Filter{Tenant: "acme"}, 0); len(ids) != 0 {
		t.Errorf("deleted job still indexed: %v", ids)
	}
}

// The indexes follow a job through its states: each listing reads only
// what it selects, pages continue after a cursor, and a restart reads the
// unfinished jobs and the finished ones with processes left.
func TestIndexesFollowStates(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	var jobs []*Job
	for i := range 6 {
		tenant, queue := "acme", "acme-a"
		if i%2 == 1 {
			tenant, queue = "globex", "globex-b"
		}
		if i == 4 {
			queue = "acme-c"
		}
		j := newJob(uint64(i+1), tenant, queue, Pending)
		jobs = append(jobs, j)
		if err := db.Commit(Change{Jobs: []*Job{j}, New: []NewJob{{Job: j}}, Seq: j.Seq}); err != nil {
			t.Fatal(err)
		}
	}
	set := func(i int, state string, finished int64, replicas ...Replica) {
		j := jobs[i]
		j.State, j.FinishedMs, j.Replicas = state, finished, replicas
		if err := db.Commit(Change{Jobs: []*Job{j}}); err != nil {
			t.Fatal(err)
		}
	}
	set(0, Running, 0)
	set(0, Succeeded, 1000)
	set(1, Running, 0)
	set(2, Cancelled, 500, Replica{State: ReplicaRunning}) // processes left
	set(3, Failed, 2000)
	for name, tc := range map[string]struct {
		f     Filter
		after uint64
		want  []string
	}{
		"all":                 {Filter{}, 0, []string{"j-1", "j-2", "j-3", "j-4", "j-5", "j-6"}},
		"pending":             {Filter{State: Pending}, 0, []string{"j-5", "j-6"}},
		"running":             {Filter{State: Running}, 0, []string{"j-2"}},
		"succeeded":           {Filter{State: Succeeded}, 0, []string{"j-1"}},
		"tenant":              {Filter{Tenant: "acme"}, 0, []string{"j-1", "j-3", "j-5"}},
		"tenant after cursor": {Filter{Tenant: "acme"}, 1, []string{"j-3", "j-5"}},
		"tenant and state":    {Filter{Tenant: "globex", State: Failed}, 0, []string{"j-4"}},
		"queue":               {Filter{Queue: "acme-c"}, 0, []string{"j-5"}},
		"queue and state":     {Filter{Queue: "acme-a", State: Pending}, 0, nil},
		"no such queue":       {Filter{Queue: "nope"}, 0, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, listIDs(t, db, tc.f, tc.after)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	var live []string
	if err := db.LiveJobs(func(j *Job) bool { live = append(live, j.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"j-2", "j-3", "j-5", "j-6"}, live); diff != "" {
		t.Errorf("live jobs (-want +got):\n%s", diff)
	}
	old, err := db.Finished(1500, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range old {
		ids = append(ids, j.ID)
	}
	if diff := cmp.Diff([]string{"j-3", "j-1"}, ids); diff != "" {
		t.Errorf("finished before 1500, oldest first (-want +got):\n%s", diff)
	}
	// The processes end: the job leaves the restart's set; reopening
	// rebuilds the live index from the index keys alone.
	set(2, Cancelled, 500, Replica{State: ReplicaExited})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	set(1, Succeeded, 3000)
	live = nil
	if err := db.LiveJobs(func(j *Job) bool { live = append(live, j.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"j-5", "j-6"}, live); diff != "" {
		t.Errorf("live jobs after reopen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"j-1", "j-2"}, listIDs(t, db, Filter{State: Succeeded}, 0)); diff != "" {
		t.Errorf("succeeded after reopen (-want +got):\n%s", diff)
	}
	if got := listIDs(t, db, Filter{State: Running}, 0); len(got) != 0 {
		t.Errorf("running after the job ended: %v", got)
	}
}

func TestTokens(t *testing.T) {
	db := open(t, t.TempDir())
	if ok, _ := db.HasRole(RoleAdmin); ok {
		t.Errorf("new store has an admin token")
	}
	for _, tok := range []Token{{Hash: "abc", Role: RoleAdmin}, {Hash: "n1", Role: RoleNode}, {Hash: "n2", Role: RoleNode}} {
		if err := db.PutToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := db.HasRole(RoleAdmin); !ok {
		t.Errorf("HasRole(admin) = false after PutToken")
	}
	if _, err := db.Token("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: err = %v, want ErrNotFound", err)
	}
	if tok, err := db.BindToken("n1", "node-a"); err != nil || tok.Node != "node-a" {
		t.Errorf("bind: %+v, %v", tok, err)
	}
	if _, err := db.BindToken("n1", "node-a"); err != nil {
		t.Errorf("bind again to the same node: %v", err)
	}
	if _, err := db.BindToken("n1", "node-b"); !errors.Is(err, ErrTokenBound) {
		t.Errorf("bind to another node: %v, want ErrTokenBound", err)
	}
	if _, err := db.BindToken("n2", "node-a"); !errors.Is(err, ErrNodeClaimed) {
		t.Errorf("bind a second token to a node: %v, want ErrNodeClaimed", err)
	}
	errKeep := errors.New("keep one")
	if _, err := db.DeleteTokens(func(Token) bool { return true }, func(left []Token) error {
		if len(left) == 0 {
			return errKeep
		}
		return nil
	}); !errors.Is(err, errKeep) {
		t.Errorf("delete refused by keep: %v", err)
	}
	gone, err := db.DeleteTokens(func(t Token) bool { return t.Role == RoleNode }, nil)
	if err != nil || len(gone) != 2 {
		t.Errorf("deleted %v, %v", gone, err)
	}
	toks, _ := db.Tokens()
	if diff := cmp.Diff([]Token{{Hash: "abc", Role: RoleAdmin}}, toks); diff != "" {
		t.Errorf("tokens left (-want +got):\n%s", diff)
	}
}

// Extra records land in the commit that carries them, or not at all.
func TestRecordsShareTheCommit(t *testing.T) {
	db := open(t, t.TempDir())
	j := newJob(1, "acme", "acme-a", Running)
	if err := db.Commit(Change{Jobs: []*Job{j}, New: []NewJob{{Job: j}}, Seq: 1,
		Records: []Record{{Kind: "usage", Key: "r/1", Value: []byte("one")}, {Kind: "usage", Key: "r/2", Value: []byte("two")}}}); err != nil {
		t.Fatal(err)
	}
	bad := newJob(2, "acme", "acme-a", Running)
	bad.ID = j.ID
	if err := db.Commit(Change{Jobs: []*Job{bad}, New: []NewJob{{Job: bad}}, Records: []Record{{Kind: "usage", Key: "r/3", Value: []byte("x")}}}); err == nil {
		t.Fatal("commit of an existing id: no error")
	}
	if err := db.Commit(Change{Records: []Record{{Kind: "usage", Key: "r/1"}}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := db.Records("usage", "r/", func(k string, v []byte) bool { got = append(got, k+"="+string(v)); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"r/2=two"}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if _, err := db.Record("usage", "r/3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record of a failed commit: %v", err)
	}
}
