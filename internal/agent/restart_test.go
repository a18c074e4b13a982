package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// TestMain doubles as a standalone agent process for TestKilledAgent, so the
// test can kill it with SIGKILL as an operator or the kernel would.
func TestMain(m *testing.M) {
	if os.Getenv("GPUFLEET_AGENT_PROCESS") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		err := Run(ctx, Config{
			Server:    os.Getenv("GPUFLEET_AGENT_SERVER"),
			Token:     os.Getenv("GPUFLEET_AGENT_TOKEN"),
			Name:      "node-1",
			Inventory: Inventory{CPUMilli: 1000, MemoryMiB: 1024},
			StateDir:  os.Getenv("GPUFLEET_AGENT_DIR"),
			Interval:  20 * time.Millisecond,
			StopGrace: 200 * time.Millisecond,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startAgentProcess(t *testing.T, f *fakeServer, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"GPUFLEET_AGENT_PROCESS=1",
		"GPUFLEET_AGENT_SERVER="+f.srv.URL,
		"GPUFLEET_AGENT_TOKEN="+f.token,
		"GPUFLEET_AGENT_DIR="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestKilledAgentIsReplacedAndAdopts(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "starts")
	k := key("survivor")
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{assign("survivor", nil, "sh", "-c", `echo start >> "$1"; exec sleep 30`, "sh", marker)}
	})
	first := startAgentProcess(t, f, filepath.Join(dir, "state"))
	st := f.waitState(k, StateRunning)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	start, err := procStat(st.PID)
	if err != nil || start.exited() {
		t.Fatalf("replica %d did not outlive its agent: %v", st.PID, err)
	}

	f.set(func(f *fakeServer) { f.status = map[api.ReplicaKey]api.ReplicaStatus{}; f.heartbeats = 0 })
	second := startAgentProcess(t, f, filepath.Join(dir, "state"))
	again := f.waitState(k, StateRunning)
	if again.PID != st.PID {
		t.Errorf("after the restart the replica runs as pid %d, want the adopted %d", again.PID, st.PID)
	}
	f.waitFor("three heartbeats of the new agent", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.heartbeats >= 3 })
	if b, _ := os.ReadFile(marker); string(b) != "start\n" {
		t.Errorf("marker %q: the replica was started again", b)
	}
	f.set(func(f *fakeServer) { f.run = nil })
	end := f.waitState(k, StateExited)
	if end.ExitCode != -1 || end.Signal != SignalLost {
		t.Errorf("exit %d %q, want -1 %q", end.ExitCode, end.Signal, SignalLost)
	}
	waitGone(t, st.PID)
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent after SIGTERM: %v, want a clean exit", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("agent did not exit within 10s of SIGTERM")
	}
}
