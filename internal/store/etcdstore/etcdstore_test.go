package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/store"
	"github.com/gpufleet/gpufleet/internal/store/etcdstore"
	"github.com/gpufleet/gpufleet/internal/store/etcdstore/etcdtest"
	"github.com/gpufleet/gpufleet/internal/store/storetest"
)

var prefixes atomic.Int64

func open(t testing.TB, c *etcdtest.Cluster, prefix string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: c.Endpoints(), Prefix: prefix, LeaseTTL: time.Second,
		MaxTxnOps: etcdtest.MaxTxnOps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	c := etcdtest.Start(t, 1, t.TempDir())
	storetest.Run(t, func(t testing.TB) storetest.Store {
		s := open(t, c, fmt.Sprintf("/conformance-%d/", prefixes.Add(1)))
		term, err := s.Campaign(context.Background(), "http://leader")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { term.Resign(context.Background()) })
		return s
	})
}

// Two servers campaign; one leads. When its term ends (its lease
// revoked, as when it expires), none of its writes lands, the other leads
// and writes, and both see who leads.
func TestElectionFencesTheDeposedLeader(t *testing.T) {
	c := etcdtest.Start(t, 1, t.TempDir())
	a, b := open(t, c, "/fence/"), open(t, c, "/fence/")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ta, err := a.Campaign(ctx, "http://a")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Created() {
		t.Errorf("first term of an empty store: Created() = false")
	}
	won := make(chan *etcdstore.Term, 1)
	go func() {
		tb, err := b.Campaign(ctx, "http://b")
		if err != nil {
			t.Error(err)
		}
		won <- tb
	}()
	j := storetest.Job(1, "acme", "acme-a", store.Pending)
	if err := a.Commit(store.Change{Jobs: []*store.Job{j}, New: []store.NewJob{{Job: j}}, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(store.Change{Confirm: true}); !errors.Is(err, etcdstore.ErrNotLeader) {
		t.Errorf("a candidate that has not won writes: %v", err)
	}
	waitFor(t, func() bool { return b.Leader() == "http://a" })
	// The lease goes (as when the leader froze past its TTL).
	lease := ta.Lease()
	if _, err := a.Client().Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ta.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("term not over 10s after its lease was revoked")
	}
	tb := <-won
	if tb == nil {
		t.FailNow()
	}
	j.State = store.Running
	if err := a.Commit(store.Change{Jobs: []*store.Job{j}}); !errors.Is(err, etcdstore.ErrNotLeader) {
		t.Errorf("deposed leader's commit: %v, want ErrNotLeader", err)
	}
	if err := a.PutToken(store.Token{Hash: "x", Role: store.RoleAdmin}); !errors.Is(err, etcdstore.ErrNotLeader) {
		t.Errorf("deposed leader's token: %v, want ErrNotLeader", err)
	}
	if got, _ := b.Job(j.ID); got.State != store.Pending {
		t.Errorf("job state %q after the deposed leader's write, want pending", got.State)
	}
	if b.Created() {
		t.Errorf("second term: Created() = true")
	}
	j.State = store.Succeeded
	if err := b.Commit(store.Change{Jobs: []*store.Job{j}}); err != nil {
		t.Errorf("new leader's commit: %v", err)
	}
	waitFor(t, func() bool { return a.Leader() == "http://b" })
}

// A commit larger than a transaction may be is written whole, in order.
func TestCommitLargerThanATransaction(t *testing.T) {
	c := etcdtest.Start(t, 1, t.TempDir())
	s, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "/big/", MaxTxnOps: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Campaign(context.Background(), "http://x"); err != nil {
		t.Fatal(err)
	}
	var ch store.Change
	for i := range 50 {
		j := storetest.Job(uint64(i+1), "acme", "acme-a", store.Pending)
		ch.Jobs = append(ch.Jobs, j)
		ch.New = append(ch.New, store.NewJob{Job: j, Key: fmt.Sprint(i)})
	}
	ch.Seq = 50
	if err := s.Commit(ch); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.List(store.Filter{State: store.Pending}, 0, func(*store.Job) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Errorf("%d pending jobs listed, want 50", n)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("condition not met in 10s")
}
