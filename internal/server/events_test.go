package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

type sseEvent struct {
	id, typ, data string
}

// sseClient reads a server-sent event stream.
type sseClient struct {
	t      *testing.T
	events chan sseEvent
	cancel func()
	mu     sync.Mutex
	seen   []sseEvent
	pings  int
}

func (h *harness) stream(token, path, lastID string) *sseClient {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		h.t.Fatalf("GET %s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: h.t, events: make(chan sseEvent, 4096), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.typ != "" {
					c.mu.Lock()
					c.seen = append(c.seen, ev)
					c.mu.Unlock()
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				c.mu.Lock()
				c.pings++
				c.mu.Unlock()
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	h.t.Cleanup(cancel)
	return c
}

// next waits (up to 20 s) for an event of a type that match takes,
// passing over the others.
func (c *sseClient) next(typ string, match func(data string) bool) sseEvent {
	c.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatalf("the stream ended while waiting for a %s event", typ)
			}
			if ev.typ == typ && (match == nil || match(ev.data)) {
				return ev
			}
		case <-timeout:
			c.t.Fatalf("no %s event in 20 s; saw %v", typ, c.all())
		}
	}
}

func (c *sseClient) all() []sseEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sseEvent(nil), c.seen...)
}

func jobChangeOf(t *testing.T, data string) api.JobChange {
	t.Helper()
	var c api.JobChange
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		t.Fatalf("job event %s: %v", data, err)
	}
	return c
}

func isJob(id, state string) func(string) bool {
	return func(data string) bool {
		var c api.JobChange
		return json.Unmarshal([]byte(data), &c) == nil && c.ID == id && (state == "" || c.State == state)
	}
}

// TestEventStream: job and node changes as they are committed, to those
// who may see them; resumption from an event id; a reset when the id is
// not this server's.
func TestEventStream(t *testing.T) {
	h := start(t, "")
	acme, globex := h.client("acme"), h.client("globex")
	globexTok, _ := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleTenant, Tenant: "globex"})
	h.node("n1")
	h.node("n2")
	all := h.stream(h.s.AdminToken(), "/v1/events", "")
	other := h.stream(globexTok.Token, "/v1/events", "")

	j := h.submit(acme, gangJob)
	ev := all.next(api.StreamJob, isJob(j.ID, ""))
	first := jobChangeOf(t, ev.data)
	// Submitted and bound in one loop turn: it is first seen running.
	if first.Previous != "" || first.State != store.Running || first.Tenant != "acme" || first.Replicas != 2 || first.Running != 0 {
		t.Errorf("first event of the job: %+v", first)
	}
	k1, k2 := h.beat("n1").Run[0].ReplicaKey, h.beat("n2").Run[0].ReplicaKey
	h.beat("n1", running(k1))
	h.beat("n2", running(k2))
	all.next(api.StreamJob, func(d string) bool { c := jobChangeOf(t, d); return c.ID == j.ID && c.Running == 2 })

	// The other tenant hears of its own job, and of none of acme's.
	g := h.submit(globex, strings.NewReplacer("name: train", "name: g", "acme-train", "globex-batch").Replace(gangJob))
	other.next(api.StreamJob, isJob(g.ID, store.Pending))
	last := all.next(api.StreamJob, isJob(g.ID, store.Pending)).id
	for _, e := range other.all() {
		if strings.Contains(e.data, "acme") {
			t.Errorf("globex's stream carries acme's change: %+v", e)
		}
	}

	// A client that left comes back with the last id it saw and gets what
	// it missed.
	all.cancel()
	h.admin.Cancel(h.ctx(), j.ID)
	h.beat("n1", exited(k1, 0, "SIGTERM"))
	h.beat("n2", exited(k2, 0, "SIGTERM"))
	// Acme's job gave its nodes back: globex's starts.
	other.next(api.StreamJob, isJob(g.ID, store.Running))
	back := h.stream(h.s.AdminToken(), "/v1/events", last)
	back.next(api.StreamJob, isJob(j.ID, store.Cancelling))
	back.next(api.StreamJob, isJob(j.ID, store.Cancelled))

	// A drain is a node event.
	if _, err := h.admin.DrainNode(h.ctx(), "n1", false); err != nil {
		t.Fatal(err)
	}
	back.next(api.StreamNode, func(d string) bool { return strings.Contains(d, `"name":"n1","state":"draining"`) })

	// An id of another run of the server, or too old, gets a reset first.
	stale := h.stream(h.s.AdminToken(), "/v1/events", "0000abcd-5")
	if ev := stale.next(api.StreamReset, nil); ev.id != "" {
		t.Errorf("reset event with an id: %+v", ev)
	}
}

// TestEventStreamOutlivesTheServersDeadlines: a stream stays open past the
// write and body timeouts that bound every other answer, kept alive by
// comments, and still carries events.
func TestEventStreamOutlivesTheServersDeadlines(t *testing.T) {
	h := start(t, "", func(c *Config) { c.WriteTimeout, c.BodyTimeout = 400*time.Millisecond, 400*time.Millisecond })
	acme := h.client("acme")
	s := h.stream(h.s.AdminToken(), "/v1/events", "")
	// Keep-alives come every 200 ms: four of them put the stream past both
	// 400 ms deadlines. Wait for them, not for a length of time.
	for end := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		pings := s.pings
		s.mu.Unlock()
		if pings >= 4 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d keep-alive comments in a minute with a 400 ms write timeout; want 4", pings)
		}
	}
	j := h.submit(acme, gangJob)
	s.next(api.StreamJob, isJob(j.ID, store.Pending))
}

// TestLogStream: a replica's output as it arrives, a character cut
// between two heartbeats sent whole, then the end once the job is over.
func TestLogStream(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	acmeTok, _ := h.admin.CreateToken(h.ctx(), api.CreateToken{Role: api.RoleTenant, Tenant: "acme"})
	h.node("n1")
	h.node("n2")
	j := h.submit(acme, gangJob)
	k1, k2 := h.beat("n1").Run[0].ReplicaKey, h.beat("n2").Run[0].ReplicaKey
	rank := 0
	for _, r := range h.job(j.ID).Replicas {
		if r.Node == "n1" {
			rank = r.Rank
		}
	}
	h.beat("n1", running(k1))
	s := h.stream(acmeTok.Token, "/v1/jobs/"+j.ID+"/logs/stream?rank="+string(rune('0'+rank)), "")
	first := s.next(api.LogStreamState, nil)
	if !strings.Contains(first.data, `"state":"running","attempt":1`) {
		t.Errorf("first event: %+v", first)
	}
	text := "hello wörld\n"
	cut := strings.Index(text, "ö") + 1 // inside the two bytes of ö
	send := func(off int, data string) {
		t.Helper()
		if _, err := h.admin.Heartbeat(h.ctx(), api.HeartbeatRequest{Node: "n1", Replicas: []api.ReplicaStatus{running(k1)},
			Logs: []api.LogChunk{{ReplicaKey: k1, Offset: int64(off), Data: []byte(data)}}}); err != nil {
			t.Fatal(err)
		}
	}
	var got strings.Builder
	var next int64
	read := func(until int64) {
		t.Helper()
		for next < until {
			var ev api.LogEvent
			if err := json.Unmarshal([]byte(s.next(api.LogStreamLog, nil).data), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Offset != next || !utf8.ValidString(ev.Text) || strings.ContainsRune(ev.Text, utf8.RuneError) {
				t.Errorf("log event %+v after offset %d", ev, next)
			}
			got.WriteString(ev.Text)
			next = ev.Next
		}
	}
	send(0, text[:cut])
	read(int64(cut - 1))
	send(cut, text[cut:])
	read(int64(len(text)))
	if got.String() != text {
		t.Errorf("streamed %q, want %q", got.String(), text)
	}
	h.beat("n1", exited(k1, 0, ""))
	h.beat("n2", exited(k2, 0, ""))
	end := s.next(api.LogStreamEnd, nil)
	if !strings.Contains(end.data, `"state":"succeeded"`) {
		t.Errorf("end event: %+v", end)
	}
	h.refused(acmeTok.Token, "/v1/jobs/"+j.ID+"/logs/stream", map[string]string{
		"rank=-1": "rank", "rank=9": "rank", "attempt=2": "attempt", "offset=-3": "offset",
	})
}

// completeRunes keeps a prefix of its input that ends on a whole
// character when the input is text cut anywhere.
func TestCompleteRunesCutsOnlyIncompleteCharacters(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.StringMatching(`[a-zé€😀\n]{0,20}`).Draw(t, "text")
		cut := rapid.IntRange(0, len(s)).Draw(t, "cut")
		got := completeRunes([]byte(s[:cut]))
		if !strings.HasPrefix(s, string(got)) || !utf8.Valid(got) || cut-len(got) >= utf8.UTFMax {
			t.Fatalf("completeRunes(%q) = %q", s[:cut], got)
		}
		if utf8.ValidString(s[:cut]) && string(got) != s[:cut] {
			t.Fatalf("completeRunes(%q) cut whole text to %q", s[:cut], got)
		}
	})
}

func FuzzCompleteRunes(f *testing.F) {
	for _, s := range []string{"", "abc", "wö", "w\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xff\xfe", "a\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := completeRunes(b)
		if len(got) > len(b) || string(got) != string(b[:len(got)]) || len(b)-len(got) >= utf8.UTFMax {
			t.Fatalf("completeRunes(%q) = %q", b, got)
		}
		if utf8.Valid(b) && len(got) != len(b) {
			t.Fatalf("completeRunes(%q) cut valid text to %q", b, got)
		}
	})
}
