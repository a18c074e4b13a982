package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// syncBuffer is a buffer the command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The demo replica is not ready until its start delay has passed, then
// streams the tokens asked for as server-sent events with the prompt's
// tokens in a header, and exits once its requests are answered when told
// to stop.
func TestDemoReplica(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	root := NewRoot()
	root.SetArgs([]string{"demo-replica", "--port", "0", "--start-delay", "300ms", "--token-delay", "1ms", "--name", "t/0"})
	root.SetOut(&out)
	root.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	addr := regexp.MustCompile(`listening on \S*:(\d+);`)
	var port string
	deadline := time.Now().Add(10 * time.Second)
	for port == "" {
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			port = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no address in %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := "http://127.0.0.1:" + port
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("health while loading: %d, want 503", resp.StatusCode)
	}
	for {
		resp, err := http.Get(base + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err = http.Post(base+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt": "sixteen bytes!!!", "max_tokens": 3, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get(api.HeaderPromptTokens) != "4" || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("headers %v", resp.Header)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			events = append(events, l)
		}
	}
	resp.Body.Close()
	if len(events) != 4 || !strings.Contains(events[2], `"text":"tok2 "`) || events[3] != "data: [DONE]" {
		t.Errorf("events %q", events)
	}
	resp, err = http.Get(base + "/x?y=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "demo replica t/0: GET /x?y=1\n" {
		t.Errorf("root answer %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
}
