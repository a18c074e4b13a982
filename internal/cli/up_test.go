package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func TestLoopbackURL(t *testing.T) {
	for url, want := range map[string]bool{
		"http://127.0.0.1:7070":         true,
		"http://localhost:7070":         true,
		"http://[::1]:7070":             true,
		"http://127.0.0.2:7070":         true,
		"https://fleet.example.com":     false,
		"http://10.0.0.5:7070":          false,
		"http://0.0.0.0:7070":           false,
		"not a url with a \x7f control": false,
	} {
		if got := loopbackURL(url); got != want {
			t.Errorf("loopbackURL(%q) = %v, want %v", url, got, want)
		}
	}
}

// up prints commands that work from where it was run.
func TestInvocation(t *testing.T) {
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "cmd", "gpufleet"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "cmd", "gpufleet", "main.go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	onPath := func(name string) (string, error) {
		if name == "gpufleet" {
			return "/usr/local/bin/gpufleet", nil
		}
		return "", os.ErrNotExist
	}
	goRun := "/tmp/go-build1234/b001/exe/gpufleet"
	for _, tc := range []struct{ arg0, dir, want string }{
		{"gpufleet", repo, "gpufleet"},
		{"bin/gpufleet", repo, "bin/gpufleet"},
		{"./gpufleet", repo, "./gpufleet"},
		{"/usr/local/bin/gpufleet", repo, "gpufleet"},
		{"/opt/gpufleet/gpufleet", repo, "/opt/gpufleet/gpufleet"},
		{goRun, repo, "go run ./cmd/gpufleet"},
		{goRun, t.TempDir(), "go run github.com/gpufleet/gpufleet/cmd/gpufleet"},
	} {
		if got := invocation(tc.arg0, tc.dir, onPath); got != tc.want {
			t.Errorf("invocation(%q) = %q, want %q", tc.arg0, got, tc.want)
		}
	}
}

// Every example job starts on up's fleet, all of them at once, each with
// all its replicas running. The examples' programs (python, torchrun,
// vllm) stand for a user's code; here they are stand-ins that sleep.
func TestUpRunsEveryExample(t *testing.T) {
	dir := t.TempDir()
	stubs := filepath.Join(dir, "stubs")
	if err := os.MkdirAll(stubs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"python", "torchrun", "vllm"} {
		if err := os.WriteFile(filepath.Join(stubs, prog), []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", stubs+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("HOME", dir)
	data, addr := filepath.Join(dir, "data"), filepath.Join(dir, "addr")
	root := NewRoot()
	// The demo service's replicas would run this test binary.
	root.SetArgs([]string{"up", "--listen", "127.0.0.1:0", "--addr-file", addr, "--data", data, "--heartbeat-interval", "100ms", "--stop-grace", "1s",
		"--demo-service=false"})
	// up's output and its agents' logs come from many goroutines.
	out := &lockedWriter{}
	root.SetOut(out)
	root.SetErr(out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("up: %v", err)
		}
	}()
	var url []byte
	waitUntil(t, "up's address", func() (bool, string) {
		var err error
		url, err = os.ReadFile(addr)
		return err == nil, fmt.Sprint(err)
	})
	tok, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	cl := api.NewClient(strings.TrimSpace(string(url)), strings.TrimSpace(string(tok)))
	want := map[string]int{}
	for _, e := range spec.Examples() {
		doc, err := os.ReadFile(filepath.Join(data, "examples", filepath.Base(e.Name)))
		if err != nil {
			t.Fatal(err)
		}
		j, _, err := cl.Submit(ctx, filepath.Base(e.Name), doc, "")
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		for _, g := range j.Gangs {
			want[j.ID] += g.Replicas
		}
	}
	// Stop the examples' processes before up goes: up leaves replicas
	// running for the next up to adopt.
	defer func() {
		for id := range want {
			cl.Cancel(context.Background(), id)
		}
		waitUntil(t, "the examples to be cancelled", func() (bool, string) {
			for id := range want {
				if j, err := cl.Job(context.Background(), id); err != nil || j.State != "cancelled" {
					return false, id + " " + j.State
				}
			}
			return true, ""
		})
	}()
	waitUntil(t, "every example running with all its replicas", func() (bool, string) {
		for id, n := range want {
			j, err := cl.Job(ctx, id)
			if err != nil {
				return false, err.Error()
			}
			running := 0
			for _, r := range j.Replicas {
				if r.State == "running" {
					running++
				}
			}
			if j.State != "running" || running != n {
				return false, fmt.Sprintf("%s: %s, %d of %d replicas running (%s)", id, j.State, running, n, jobReason(j))
			}
		}
		return true, ""
	})
}

func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within 60s (last: %s)", what, last)
}

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
