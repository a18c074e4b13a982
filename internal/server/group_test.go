package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
	"github.com/gpufleet/gpufleet/internal/store/etcdstore"
	"github.com/gpufleet/gpufleet/internal/store/etcdstore/etcdtest"
)

// groupServer is one server of a group on a shared etcd store, in this
// test's process.
type groupServer struct {
	s   *Server
	url string
	h   *harness
}

func startGroupServer(t *testing.T, eps []string) *groupServer {
	t.Helper()
	st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: eps, Prefix: "/group/", LeaseTTL: time.Second,
		MaxTxnOps: etcdtest.MaxTxnOps})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := Open(Config{DataDir: dir, Store: elected{st}, InitialQueues: testQueues(), HeartbeatTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s.Handler())
	s.cfg.Advertise = "http://" + ts.Listener.Addr().String()
	ts.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; ts.Close(); s.Close() })
	return &groupServer{s: s, url: ts.URL, h: &harness{t: t, dir: dir, s: s, url: ts.URL}}
}

// revokeLeader revokes the lease of the election's winner, as etcd does
// when a leader stops renewing it.
func revokeLeader(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/group/election/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("the election's winner: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
}

// waitLeading waits until want leads and the others stand by. (A
// deposed leader may believe it leads a moment after another won: its
// writes are fenced meanwhile, and it stands by once it hears its lease
// is gone.)
func waitLeading(t *testing.T, want *groupServer, others ...*groupServer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		settled := want.s.Leading()
		for _, o := range others {
			settled = settled && !o.s.Leading()
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s does not lead alone after 20 s", want.url)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The lead goes from one server to the other and back: each term rebuilds
// the core from the store (jobs taken by the other server are there), a
// request to the server that stands by is forwarded, and the change feed
// of a server's second term streams what that term commits, until that
// term ends.
func TestGroupHandsTheLeadOverAndBack(t *testing.T) {
	c := etcdtest.Start(t, 1, t.TempDir())
	a := startGroupServer(t, c.Endpoints())
	waitLeading(t, a)
	b := startGroupServer(t, c.Endpoints())
	waitLeading(t, a, b)
	token := a.s.AdminToken()
	if token == "" || b.s.AdminToken() != "" {
		t.Fatalf("admin tokens %q and %q: want the first leader's only", token, b.s.AdminToken())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	viaB := api.NewClient(b.url, token)
	j1, _, err := viaB.Submit(ctx, "job.yaml", []byte(benchJob), "k1")
	if err != nil {
		t.Fatalf("a submission to the server standing by: %v", err)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	revokeLeader(t, cli)
	waitLeading(t, b, a)
	both := api.NewClient(a.url+","+b.url, token)
	j2, _, err := both.Submit(ctx, "job.yaml", []byte(strings.Replace(benchJob, "name: bench", "name: two", 1)), "k2")
	if err != nil {
		t.Fatal(err)
	}

	revokeLeader(t, cli)
	waitLeading(t, a, b)
	for _, id := range []string{j1.ID, j2.ID} {
		j, err := both.Job(ctx, id)
		if err != nil || j.State != store.Pending {
			t.Errorf("job %s in a's second term: %+v %v, want pending", id, j, err)
		}
	}
	// The key k1 is remembered across terms: the same request is the same
	// job.
	again, _, err := both.Submit(ctx, "job.yaml", []byte(benchJob), "k1")
	if err != nil || again.ID != j1.ID {
		t.Errorf("k1 replayed in a's second term: %s %v, want %s", again.ID, err, j1.ID)
	}
	events := a.h.stream(token, "/v1/events", "")
	j3, _, err := both.Submit(ctx, "job.yaml", []byte(strings.Replace(benchJob, "name: bench", "name: three", 1)), "k3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := both.Cancel(ctx, j3.ID); err != nil {
		t.Fatal(err)
	}
	events.next(api.StreamJob, isJob(j3.ID, store.Cancelled))

	// When a's term ends its stream does, so that the client goes to the
	// new leader.
	revokeLeader(t, cli)
	waitLeading(t, b, a)
	timeout := time.After(20 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-events.events:
		case <-timeout:
			t.Fatal("a's event stream still open 20 s after a lost the lead")
		}
	}
}

// Accounting lives in the shared store: a grant, a commitment and a budget
// made in one server's term are the next leader's (its ledger is rebuilt
// from the store), and a grant ID taken in the first term is refused in
// the second.
func TestGroupKeepsAccountingAcrossTerms(t *testing.T) {
	c := etcdtest.Start(t, 1, t.TempDir())
	a := startGroupServer(t, c.Endpoints())
	waitLeading(t, a)
	b := startGroupServer(t, c.Endpoints())
	waitLeading(t, a, b)
	token := a.s.AdminToken()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	both := api.NewClient(a.url+","+b.url, token)
	if _, err := both.Grant(ctx, api.CreateGrant{ID: "acme-credits", Tenant: "acme", Amount: "50"}); err != nil {
		t.Fatal(err)
	}
	if _, err := both.SetBudget(ctx, "globex", "20"); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	if _, err := both.CreateCommitment(ctx, api.CreateCommitment{ID: "acme-h100", Tenant: "acme", Type: "h100", Count: 8, End: end, PricePerHour: "2"}); err != nil {
		t.Fatal(err)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	revokeLeader(t, cli)
	waitLeading(t, b, a)
	cl, err := both.Credits(ctx, "acme")
	if err != nil || len(cl.Grants) != 1 || cl.Grants[0].ID != "acme-credits" || cl.Grants[0].Amount != api.Money(50_000_000) {
		t.Errorf("acme's grants in b's term: %+v %v, want acme-credits of 50", cl.Grants, err)
	}
	bl, err := both.Budgets(ctx)
	if err != nil || len(bl.Budgets) != 1 || bl.Budgets[0].Tenant != "globex" || bl.Budgets[0].Monthly != api.Money(20_000_000) {
		t.Errorf("budgets in b's term: %+v %v, want globex's 20", bl.Budgets, err)
	}
	cs, err := both.Commitments(ctx, "acme")
	if err != nil || len(cs.Commitments) != 1 || cs.Commitments[0].ID != "acme-h100" || !cs.Commitments[0].End.Equal(end) {
		t.Errorf("acme's commitments in b's term: %+v %v, want acme-h100 to %s", cs.Commitments, err, end)
	}
	_, err = both.Grant(ctx, api.CreateGrant{ID: "acme-credits", Tenant: "acme", Amount: "1"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("a grant acme-credits again in b's term: %v, want 409", err)
	}
}
