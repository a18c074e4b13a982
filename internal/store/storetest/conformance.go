// Package storetest holds what tests of the stores share: a conformance
// suite that every implementation of the server's store passes.
package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Store is the part of the server's store the suite checks.
type Store interface {
	Token(hash string) (store.Token, error)
	Tokens() ([]store.Token, error)
	HasRole(role string) (bool, error)
	PutToken(t store.Token) error
	BindToken(hash, node string) (store.Token, error)
	DeleteTokens(drop func(store.Token) bool, keep func(left []store.Token) error) ([]store.Token, error)
	Queues() ([]quota.Spec, error)
	PutQueues(specs []quota.Spec) error
	Nodes() ([]store.Node, error)
	Job(id string) (store.Job, error)
	Idempotent(tenant, key string) (store.Job, string, error)
	List(f store.Filter, after uint64, fn func(*store.Job) bool) error
	LiveJobs(fn func(*store.Job) bool) error
	Finished(before int64, limit int) ([]store.Job, error)
	LastSeq() (uint64, error)
	Commit(c store.Change) error
	Record(kind, key string) ([]byte, error)
	Records(kind, prefix string, fn func(key string, value []byte) bool) error
}

// Job makes a job record of one gang.
func Job(seq uint64, tenant, queue, state string) *store.Job {
	id := fmt.Sprintf("j-%d", seq)
	return &store.Job{ID: id, Seq: seq, Name: "j", Tenant: tenant, Queue: queue, State: state,
		Spec: sched.Job{ID: sched.JobID(id), Tenant: tenant, Queue: queue, Kind: sched.Batch, Gangs: []sched.Gang{{Replicas: 1}}}}
}

// Run runs the suite; open gives each test a new, empty store.
func Run(t *testing.T, open func(t testing.TB) Store) {
	t.Run("Basics", func(t *testing.T) { basics(t, open(t)) })
	t.Run("Tokens", func(t *testing.T) { tokens(t, open(t)) })
	t.Run("RecordsShareTheCommit", func(t *testing.T) { records(t, open(t)) })
	t.Run("Accounting", func(t *testing.T) { accounting(t, open(t)) })
	t.Run("IndexesAgreeWithAScan", func(t *testing.T) {
		rapid.Check(t, func(rt *rapid.T) { indexes(rt, open(t)) })
	})
}

type fataler interface {
	Helper()
	Fatal(args ...any)
}

func must(t fataler, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func basics(t *testing.T, s Store) {
	a, b := Job(1, "acme", "acme-a", store.Pending), Job(2, "globex", "globex-b", store.Pending)
	a.IdempotencyKey = "k1"
	must(t, s.Commit(store.Change{Jobs: []*store.Job{a, b}, New: []store.NewJob{{Job: a, Key: "k1", BodyHash: "h1"}, {Job: b}}, Seq: 2,
		Nodes: []*store.Node{{Info: api.NodeInfo{Name: "n1", Count: 8}, State: "ready", Registered: 5}}}))
	c := Job(3, "acme", "acme-a", store.Pending)
	c.ID = a.ID
	if err := s.Commit(store.Change{Jobs: []*store.Job{c}, New: []store.NewJob{{Job: c}}, Seq: 3}); err == nil {
		t.Errorf("commit of an existing job id: no error")
	}
	if seq, err := s.LastSeq(); err != nil || seq != 2 {
		t.Errorf("LastSeq = %d, %v; want 2", seq, err)
	}
	got, hash, err := s.Idempotent("acme", "k1")
	if err != nil || hash != "h1" {
		t.Fatalf("Idempotent: %v, %q", err, hash)
	}
	if diff := cmp.Diff(*a, got); diff != "" {
		t.Errorf("job by key (-want +got):\n%s", diff)
	}
	if got, err := s.Job(b.ID); err != nil || got.ID != b.ID {
		t.Errorf("Job(%s) = %s, %v", b.ID, got.ID, err)
	}
	if _, err := s.Job("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}
	if _, _, err := s.Idempotent("globex", "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another tenant's key: %v", err)
	}
	must(t, s.PutQueues([]quota.Spec{{Name: "acme"}, {Name: "acme-a", Parent: "acme", Strict: true}}))
	specs, err := s.Queues()
	must(t, err)
	if diff := cmp.Diff([]quota.Spec{{Name: "acme"}, {Name: "acme-a", Parent: "acme", Strict: true}}, specs); diff != "" {
		t.Errorf("queues (-want +got):\n%s", diff)
	}
	nodes, err := s.Nodes()
	if err != nil || len(nodes) != 1 || nodes[0].Registered != 5 {
		t.Errorf("nodes %+v, %v", nodes, err)
	}
	// Running, then finished with a process left, then gone.
	a.State = store.Running
	must(t, s.Commit(store.Change{Jobs: []*store.Job{a}}))
	a.State, a.FinishedMs, a.Replicas = store.Cancelled, 10, []store.Replica{{State: store.ReplicaRunning}}
	must(t, s.Commit(store.Change{Jobs: []*store.Job{a}}))
	var live []string
	must(t, s.LiveJobs(func(j *store.Job) bool { live = append(live, j.ID); return true }))
	if diff := cmp.Diff([]string{"j-1", "j-2"}, live); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	a.Replicas[0].State = store.ReplicaExited
	must(t, s.Commit(store.Change{Jobs: []*store.Job{a}}))
	old, err := s.Finished(11, 10)
	if err != nil || len(old) != 1 || old[0].ID != a.ID {
		t.Errorf("Finished(11) = %v, %v", old, err)
	}
	if old, _ := s.Finished(10, 10); len(old) != 0 {
		t.Errorf("Finished(10) = %v, want none (it ended at 10)", old)
	}
	must(t, s.Commit(store.Change{Deleted: []*store.Job{a}}))
	if _, _, err := s.Idempotent("acme", "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted job's key: %v", err)
	}
	var all []string
	must(t, s.List(store.Filter{}, 0, func(j *store.Job) bool { all = append(all, j.ID); return true }))
	if diff := cmp.Diff([]string{"j-2"}, all); diff != "" {
		t.Errorf("jobs left (-want +got):\n%s", diff)
	}
}

func tokens(t *testing.T, s Store) {
	if ok, _ := s.HasRole(store.RoleAdmin); ok {
		t.Errorf("empty store has an admin")
	}
	for _, tok := range []store.Token{{Hash: "a", Role: store.RoleAdmin}, {Hash: "n1", Role: store.RoleNode}, {Hash: "n2", Role: store.RoleNode}} {
		must(t, s.PutToken(tok))
	}
	if ok, _ := s.HasRole(store.RoleAdmin); !ok {
		t.Errorf("no admin after PutToken")
	}
	if tok, err := s.BindToken("n1", "node-a"); err != nil || tok.Node != "node-a" {
		t.Errorf("bind: %+v %v", tok, err)
	}
	if _, err := s.BindToken("n1", "node-b"); !errors.Is(err, store.ErrTokenBound) {
		t.Errorf("rebind: %v", err)
	}
	if _, err := s.BindToken("n2", "node-a"); !errors.Is(err, store.ErrNodeClaimed) {
		t.Errorf("second token for a node: %v", err)
	}
	if _, err := s.BindToken("nope", "node-a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	errKeep := errors.New("keep")
	if _, err := s.DeleteTokens(func(store.Token) bool { return true }, func(left []store.Token) error {
		if len(left) == 0 {
			return errKeep
		}
		return nil
	}); !errors.Is(err, errKeep) {
		t.Errorf("refused delete: %v", err)
	}
	gone, err := s.DeleteTokens(func(t store.Token) bool { return t.Role == store.RoleNode }, nil)
	if err != nil || len(gone) != 2 {
		t.Errorf("deleted %v, %v", gone, err)
	}
	toks, err := s.Tokens()
	if err != nil || len(toks) != 1 || toks[0].Hash != "a" {
		t.Errorf("left %v, %v", toks, err)
	}
	if _, err := s.Token("n1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted token: %v", err)
	}
}

// indexes applies random submissions, state changes and deletions, then
// checks every listing against a scan of what was written.
func indexes(t *rapid.T, s Store) {
	model := map[uint64]*store.Job{}
	var seq uint64
	tenants := []string{"acme", "globex"}
	for range rapid.IntRange(1, 40).Draw(t, "steps") {
		switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
		case op < 4 || len(model) == 0:
			var c store.Change
			for range rapid.IntRange(1, 4).Draw(t, "batch") {
				seq++
				tn := rapid.SampledFrom(tenants).Draw(t, "tenant")
				j := Job(seq, tn, tn+"-"+rapid.SampledFrom([]string{"a", "b"}).Draw(t, "queue"), store.Pending)
				model[seq] = j
				c.Jobs = append(c.Jobs, j)
				c.New = append(c.New, store.NewJob{Job: j})
			}
			c.Seq = seq
			must(t, s.Commit(c))
		case op < 9:
			keys := slices.Sorted(mapsKeys(model))
			j := model[rapid.SampledFrom(keys).Draw(t, "job")]
			if store.Terminal(j.State) && !store.Live(j) {
				continue // a finished job's state is final
			}
			if store.Terminal(j.State) {
				j.Replicas = nil // its processes end
			} else {
				j.State = rapid.SampledFrom(store.States).Draw(t, "state")
				if store.Terminal(j.State) {
					j.FinishedMs = rapid.Int64Range(1, 100).Draw(t, "finished")
					if rapid.Bool().Draw(t, "left running") {
						j.Replicas = []store.Replica{{State: store.ReplicaRunning}}
					}
				}
			}
			must(t, s.Commit(store.Change{Jobs: []*store.Job{j}}))
		default:
			keys := slices.Sorted(mapsKeys(model))
			j := model[rapid.SampledFrom(keys).Draw(t, "deleted")]
			delete(model, j.Seq)
			must(t, s.Commit(store.Change{Deleted: []*store.Job{j}}))
		}
	}
	filters := []store.Filter{{}}
	for _, st := range append([]string{""}, store.States...) {
		for _, tn := range []string{"", "acme", "globex"} {
			filters = append(filters, store.Filter{State: st, Tenant: tn})
			if tn != "" {
				filters = append(filters, store.Filter{State: st, Queue: tn + "-a"})
			}
		}
	}
	keys := slices.Sorted(mapsKeys(model))
	for _, f := range filters {
		after := uint64(0)
		if len(keys) > 0 && rapid.Bool().Draw(t, "from a cursor") {
			after = rapid.SampledFrom(keys).Draw(t, "after")
		}
		var want, got []string
		for _, k := range keys {
			if k > after && f.Match(model[k]) {
				want = append(want, model[k].ID)
			}
		}
		must(t, s.List(f, after, func(j *store.Job) bool { got = append(got, j.ID); return true }))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("List(%+v, after %d) (-scan +index):\n%s", f, after, diff)
		}
	}
	var want, got []string
	for _, k := range keys {
		if store.Live(model[k]) {
			want = append(want, model[k].ID)
		}
	}
	must(t, s.LiveJobs(func(j *store.Job) bool { got = append(got, j.ID); return true }))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("LiveJobs (-scan +index):\n%s", diff)
	}
}

func mapsKeys(m map[uint64]*store.Job) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// records: extra records land with the commit that carries them, or not
// at all, and read back by key and by prefix.
func records(t *testing.T, s Store) {
	j := Job(1, "acme", "acme-a", store.Running)
	must(t, s.Commit(store.Change{Jobs: []*store.Job{j}, New: []store.NewJob{{Job: j}}, Seq: 1,
		Records: []store.Record{{Kind: "usage", Key: "r/1", Value: []byte("one")}, {Kind: "usage", Key: "r/2", Value: []byte("two")},
			{Kind: "usage", Key: "s/1", Value: []byte("other")}}}))
	bad := Job(2, "acme", "acme-a", store.Running)
	bad.ID = j.ID
	if err := s.Commit(store.Change{Jobs: []*store.Job{bad}, New: []store.NewJob{{Job: bad}},
		Records: []store.Record{{Kind: "usage", Key: "r/3", Value: []byte("x")}}}); err == nil {
		t.Fatal("commit of an existing id: no error")
	}
	must(t, s.Commit(store.Change{Records: []store.Record{{Kind: "usage", Key: "r/1"}}}))
	var got []string
	must(t, s.Records("usage", "r/", func(k string, v []byte) bool { got = append(got, k+"="+string(v)); return true }))
	if diff := cmp.Diff([]string{"r/2=two"}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if v, err := s.Record("usage", "s/1"); err != nil || string(v) != "other" {
		t.Errorf("Record(s/1) = %q, %v", v, err)
	}
	if _, err := s.Record("usage", "r/3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of a failed commit: %v", err)
	}
}

// accounting: usage records land with the job state that ended them and
// read back in commit order and by job; a grant or commitment whose ID is
// taken is refused, with nothing of its commit written; a budget of 0
// removes the budget.
func accounting(t *testing.T, s Store) {
	recs := []store.UsageRecord{
		{ID: "j-1/1/0/0@10", Job: "j-1", Tenant: "acme", Queue: "acme-a", Attempt: 1, Type: "h100", Node: "n1", Devices: []int{0, 1}, Milli: 1000, FromMs: 10_000, ToMs: 20_000, End: "finished"},
		{ID: "j-10/1/0/0@10", Job: "j-10", Tenant: "acme", Queue: "acme-a", Attempt: 1, Type: "h100", Node: "n2", Devices: []int{0}, Milli: 250, FromMs: 10_000, ToMs: 30_000, End: "cancelled"},
		{ID: "j-1/1/0/1@10", Job: "j-1", Tenant: "acme", Queue: "acme-a", Attempt: 1, Replica: 1, Type: "h100", Node: "n2", Devices: []int{3}, Milli: 1000, FromMs: 10_000, ToMs: 20_000, End: "finished"},
	}
	usage := func(seq uint64, u store.UsageRecord) store.Record {
		r, err := store.UsageChange(u, seq)
		must(t, err)
		return r
	}
	// Commit order is not key order: j-10's record (key j-10/...) sorts
	// before j-1's second, and the third record is committed first.
	j := Job(1, "acme", "acme-a", store.Succeeded)
	must(t, s.Commit(store.Change{Jobs: []*store.Job{j}, New: []store.NewJob{{Job: j}}, Seq: 1,
		Records: []store.Record{usage(1, recs[0]), usage(2, recs[1])}}))
	must(t, s.Commit(store.Change{Records: []store.Record{usage(3, recs[2])}}))
	if err := s.Commit(store.Change{Records: []store.Record{usage(3, recs[2])}}); !errors.Is(err, store.ErrExists) {
		t.Errorf("a usage record committed twice: err %v, want ErrExists", err)
	}
	grant := func(g store.Grant) store.Record {
		r, err := store.GrantChange(g)
		must(t, err)
		return r
	}
	commitment := func(c store.Commitment) store.Record {
		r, err := store.CommitmentChange(c)
		must(t, err)
		return r
	}
	budget := func(b store.Budget) store.Record {
		r, err := store.BudgetChange(b)
		must(t, err)
		return r
	}
	must(t, s.Commit(store.Change{Records: []store.Record{grant(store.Grant{ID: "g1", Tenant: "acme", Kind: "prepaid", Amount: 5_000_000, StartMs: 1})}}))
	j2 := Job(2, "acme", "acme-a", store.Running)
	if err := s.Commit(store.Change{Jobs: []*store.Job{j2}, New: []store.NewJob{{Job: j2}}, Seq: 2,
		Records: []store.Record{grant(store.Grant{ID: "g2", Tenant: "acme", Kind: "prepaid", Amount: 2}), grant(store.Grant{ID: "g1", Tenant: "globex", Kind: "prepaid", Amount: 1})}}); !errors.Is(err, store.ErrExists) {
		t.Errorf("a second grant g1: err %v, want ErrExists", err)
	}
	if _, err := s.Job(j2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the job of the refused commit: %v, want not found", err)
	}
	must(t, s.Commit(store.Change{Records: []store.Record{commitment(store.Commitment{ID: "c1", Tenant: "acme", Type: "h100", Count: 8, StartMs: 1, EndMs: 2, PricePerHour: 1})}}))
	if err := s.Commit(store.Change{Records: []store.Record{commitment(store.Commitment{ID: "c1", Tenant: "acme"})}}); !errors.Is(err, store.ErrExists) {
		t.Errorf("a second commitment c1: err %v, want ErrExists", err)
	}
	for _, b := range []store.Budget{{Tenant: "acme", Monthly: 7}, {Tenant: "globex", Monthly: 9}, {Tenant: "globex"}, {Tenant: "acme", Monthly: 8}} {
		must(t, s.Commit(store.Change{Records: []store.Record{budget(b)}}))
	}

	for i := range recs {
		recs[i].V = 1
	}
	var all []store.UsageRecord
	var seqs []uint64
	must(t, store.Usage(s, func(seq uint64, u *store.UsageRecord) bool {
		all, seqs = append(all, *u), append(seqs, seq)
		return true
	}))
	if diff := cmp.Diff(recs, all); diff != "" {
		t.Errorf("records in commit order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, seqs); diff != "" {
		t.Errorf("commit order (-want +got):\n%s", diff)
	}
	one, err := store.JobUsage(s, "j-1")
	must(t, err)
	if diff := cmp.Diff([]store.UsageRecord{recs[0], recs[2]}, one); diff != "" {
		t.Errorf("records of j-1 (-want +got):\n%s", diff)
	}
	if none, err := store.JobUsage(s, "j"); err != nil || len(none) != 0 {
		t.Errorf("records of job j (a prefix of others): %v, %v; want none", none, err)
	}
	if got, err := s.Job("j-1"); err != nil || got.State != store.Succeeded {
		t.Errorf("the job committed with the records: %q, %v", got.State, err)
	}
	gs, err := store.Grants(s)
	must(t, err)
	if diff := cmp.Diff([]store.Grant{{V: 1, ID: "g1", Tenant: "acme", Kind: "prepaid", Amount: 5_000_000, StartMs: 1}}, gs); diff != "" {
		t.Errorf("grants (-want +got):\n%s", diff)
	}
	cs, err := store.Commitments(s)
	must(t, err)
	if diff := cmp.Diff([]store.Commitment{{V: 1, ID: "c1", Tenant: "acme", Type: "h100", Count: 8, StartMs: 1, EndMs: 2, PricePerHour: 1}}, cs); diff != "" {
		t.Errorf("commitments (-want +got):\n%s", diff)
	}
	bs, err := store.Budgets(s)
	must(t, err)
	if diff := cmp.Diff([]store.Budget{{V: 1, Tenant: "acme", Monthly: 8}}, bs); diff != "" {
		t.Errorf("budgets (-want +got):\n%s; want acme's alone", diff)
	}
	// A record of a version this build does not know is refused, naming it.
	must(t, s.Commit(store.Change{Records: []store.Record{{Kind: store.KindGrant, Key: "g9", Value: []byte(`{"v":99,"id":"g9"}`)}}}))
	if _, err := store.Grants(s); err == nil || !strings.Contains(err.Error(), `grant record "g9": schema version 99`) {
		t.Errorf("a grant of version 99: %v, want an error naming it", err)
	}
}
