package api

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// group is a client's view of a group of servers: one that cannot be
// reached, one that answers 503 (an election under way), one that leads.
type group struct {
	dead, electing, leader string
	// calls counts the requests each server got.
	electingCalls, leaderCalls atomic.Int32
}

func newGroup(t *testing.T) *group {
	t.Helper()
	g := &group{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.dead = "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: a dial fails
	electing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.electingCalls.Add(1)
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"no server leads now"}}`))
	}))
	t.Cleanup(electing.Close)
	g.electing = electing.URL
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		g.leaderCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"` + r.PathValue("id") + `","state":"pending"}`))
	})
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		g.leaderCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"` + r.PathValue("id") + `","state":"cancelled"}`))
	})
	mux.HandleFunc("GET /v1/export", func(w http.ResponseWriter, r *http.Request) {
		g.leaderCalls.Add(1)
		_, _ = w.Write([]byte("{\"trace\":1}\n"))
	})
	mux.HandleFunc("GET /v1/backup", func(w http.ResponseWriter, r *http.Request) {
		g.leaderCalls.Add(1)
		_, _ = w.Write(bytes.Repeat([]byte{7}, 4096))
	})
	leader := httptest.NewServer(mux)
	t.Cleanup(leader.Close)
	g.leader = leader.URL
	return g
}

func (g *group) client(order ...string) *Client {
	c := NewClient(strings.Join(order, ","), "tok")
	c.Failover = 10 * time.Second
	return c
}

// A client given several servers passes over one it cannot reach and one
// that answers 503, for reads, for writes (one that never reached a
// server, or one refused with 503, may go to the next) and for streams,
// and keeps to the server that answered.
func TestClientFindsTheServerThatLeads(t *testing.T) {
	ctx := context.Background()
	g := newGroup(t)
	c := g.client(g.dead, g.electing, g.leader)
	j, err := c.Job(ctx, "j1")
	if err != nil || j.ID != "j1" {
		t.Fatalf("Job through the group: %+v %v", j, err)
	}
	before := g.electingCalls.Load()
	if j, err := c.Cancel(ctx, "j1"); err != nil || j.State != "cancelled" {
		t.Fatalf("Cancel through the group: %+v %v", j, err)
	}
	if g.electingCalls.Load() != before {
		t.Errorf("the client went back to a server that did not lead after one did")
	}
	var trace bytes.Buffer
	if err := g.client(g.dead, g.electing, g.leader).Export(ctx, time.Time{}, time.Time{}, &trace); err != nil || trace.String() != "{\"trace\":1}\n" {
		t.Errorf("Export through the group: %q %v", trace.String(), err)
	}
	var backup bytes.Buffer
	if n, err := g.client(g.electing, g.dead, g.leader).Backup(ctx, &backup); err != nil || n != 4096 {
		t.Errorf("Backup through the group: %d bytes, %v", n, err)
	}
}

// With no server that leads, a stream's request reports the last answer
// (the 503 and what it said), not a success or a hang.
func TestClientStreamWithNoLeader(t *testing.T) {
	g := newGroup(t)
	var out bytes.Buffer
	_, err := g.client(g.dead, g.electing).Backup(context.Background(), &out)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(ae.Message, "no server leads") {
		t.Errorf("Backup with no leader: %v, want the 503", err)
	}
}
