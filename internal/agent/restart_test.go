package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// TestMain doubles as a standalone agent process for TestKilledAgent, so the
// test can kill it with SIGKILL as an operator or the kernel would.
func TestMain(m *testing.M) {
	if os.Getenv("GPUFLEET_AGENT_PROCESS") == "1" {
		if os.Getenv("GPUFLEET_AGENT_CRASH_AFTER_START") == "1" {
			// Killed as an operator or the kernel might, at the worst
			// moment: the replica started, its pid not yet recorded.
			afterStart = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		}
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

func startAgentProcess(t *testing.T, f *fakeServer, dir string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...),
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

// An agent killed between starting a replica and recording its pid leaves
// a record that says a start was under way; the next agent finds the
// process by the marker in its environment and adopts it: it is neither
// left running unknown nor started a second time, and the server's stop
// reaches it.
func TestAgentKilledWhileStartingAdoptsTheReplica(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	k := key("caught")
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{assign("caught", nil, "sh", "-c", `echo $$ >> "$1"; exec sleep 30`, "sh", starts)}
	})
	state := filepath.Join(dir, "state")
	first := startAgentProcess(t, f, state, "GPUFLEET_AGENT_CRASH_AFTER_START=1")
	if err := first.Wait(); err == nil {
		t.Fatal("the agent exited cleanly; want it killed right after the start")
	}
	var pid int
	f.waitFor("the replica to run", 10*time.Second, func() bool {
		b, _ := os.ReadFile(starts)
		_, err := fmt.Sscan(string(b), &pid)
		return err == nil && pid > 0
	})
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	// The record was written before the start, and names no pid.
	b, err := os.ReadFile(filepath.Join(state, replicasDir, keyName(k)+".json"))
	if err != nil {
		t.Fatalf("no record of the replica the killed agent started: %v", err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.State != stateStarting || rec.PID != 0 {
		t.Fatalf("record %s: want state %q and no pid", b, stateStarting)
	}

	second := startAgentProcess(t, f, state)
	st := f.waitState(k, StateRunning)
	if st.PID != pid {
		t.Errorf("the new agent reports pid %d, want the adopted %d", st.PID, pid)
	}
	f.waitFor("three heartbeats of the new agent", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.heartbeats >= 3 })
	if b, _ := os.ReadFile(starts); strings.Count(string(b), "\n") != 1 {
		t.Errorf("starts %q: the replica was started again", b)
	}
	f.set(func(f *fakeServer) { f.run = nil })
	f.waitState(k, StateExited)
	waitGone(t, pid)
	second.Process.Signal(syscall.SIGTERM)
	second.Wait()
}

// A process a previous agent started but has no record of (the record was
// lost) is adopted by its marker too; what is left of a replica that is
// over is killed; another agent's replicas on the same machine are left
// alone.
func TestRestartFindsUnrecordedProcessesByMarker(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	f.set(func(f *fakeServer) {
		f.autoAck = false
		f.run = []api.Assignment{
			assign("unrecorded", nil, "sh", "-c", "exec sleep 30"),
			// over: its leader exits, leaving a child behind in the group,
			// while no agent runs.
			assign("over", nil, "sh", "-c", `sleep 30 & echo $! > "$1"; read x < "$2"; exit 0`, "sh", filepath.Join(dir, "child"), filepath.Join(dir, "fifo")),
		}
	})
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := newFakeServer(t)
	other.set(func(o *fakeServer) { o.run = []api.Assignment{assign("neighbour", nil, "sh", "-c", "exec sleep 30")} })
	otherCfg := testConfig(t, other, filepath.Join(dir, "other"))
	startAgent(t, otherCfg)
	neighbour := other.waitState(key("neighbour"), StateRunning)

	cfg := testConfig(t, f, filepath.Join(dir, "state"))
	cfg.StopReplicasOnExit = false
	stop := startAgent(t, cfg)
	un := f.waitState(key("unrecorded"), StateRunning)
	f.waitState(key("over"), StateRunning)
	var child int
	f.waitFor("the child of over", 10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "child"))
		_, err := fmt.Sscan(string(b), &child)
		return err == nil
	})
	t.Cleanup(func() { syscall.Kill(-un.PID, syscall.SIGKILL); syscall.Kill(child, syscall.SIGKILL) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The record of one is lost; the leader of the other ends unseen.
	if err := os.Remove(filepath.Join(cfg.StateDir, replicasDir, keyName(key("unrecorded"))+".json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fifo"), []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var overPID int
	f.waitFor("over's pid", time.Second, func() bool { st, _ := f.replica(key("over")); overPID = st.PID; return overPID > 0 })
	waitGone(t, overPID)

	f.set(func(f *fakeServer) { f.status = map[api.ReplicaKey]api.ReplicaStatus{}; f.heartbeats = 0 })
	startAgent(t, cfg)
	if st := f.waitState(key("unrecorded"), StateRunning); st.PID != un.PID {
		t.Errorf("unrecorded replica reported as pid %d, want the adopted %d", st.PID, un.PID)
	}
	if st := f.waitState(key("over"), StateExited); st.Signal != SignalLost {
		t.Errorf("over: %+v, want exited lost", st)
	}
	waitGone(t, child)
	f.waitFor("three heartbeats of the new agent", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.heartbeats >= 3 })
	if p, err := procStat(un.PID); err != nil || p.exited() {
		t.Errorf("the adopted replica %d is gone: %v", un.PID, err)
	}
	if p, err := procStat(neighbour.PID); err != nil || p.exited() {
		t.Errorf("another agent's replica %d was stopped: %v", neighbour.PID, err)
	}
	// The server drops it: the adopted process is stopped.
	f.set(func(f *fakeServer) { f.run = nil; f.autoAck = true })
	f.waitState(key("unrecorded"), StateExited)
	waitGone(t, un.PID)
}

func TestParseKeyName(t *testing.T) {
	for _, k := range []api.ReplicaKey{
		{Job: "train-17", Gang: 0, Replica: 3, Attempt: 2},
		{Job: "a.b_c-d", Gang: 12, Replica: 0, Attempt: 1},
		{Job: "x%y", Gang: 1, Replica: 1, Attempt: 1},
		{Job: "j_g1_r2_a3", Gang: 4, Replica: 5, Attempt: 6},
	} {
		got, ok := parseKeyName(keyName(k))
		if !ok || got != k {
			t.Errorf("parseKeyName(keyName(%+v)) = %+v, %v", k, got, ok)
		}
	}
	long := api.ReplicaKey{Job: strings.Repeat("x", 190), Attempt: 1}
	if _, ok := parseKeyName(keyName(long)); ok {
		t.Errorf("a cut and hashed name read back as a key")
	}
}
