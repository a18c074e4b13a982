package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
)

// testConfig is an agent with short intervals against the fake server.
func testConfig(t *testing.T, f *fakeServer, dir string) Config {
	return Config{
		Server:             f.srv.URL,
		Token:              f.token,
		Name:               "node-1",
		Address:            "127.0.0.1",
		Inventory:          Inventory{Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 20},
		Path:               map[string]string{"region": "r", "zone": "z", "block": "b", "rack": "k"},
		StateDir:           dir,
		Interval:           20 * time.Millisecond,
		StopGrace:          200 * time.Millisecond,
		MaxBackoff:         100 * time.Millisecond,
		StopReplicasOnExit: true,
	}
}

// startAgent runs an agent until the returned stop is called (or the test
// ends) and returns Run's error from stop.
func startAgent(t *testing.T, cfg Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var once bool
	var err error
	stop = func() error {
		if once {
			return err
		}
		once = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("agent did not stop within 15s")
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func key(job string) api.ReplicaKey { return api.ReplicaKey{Job: job, Gang: 0, Replica: 0, Attempt: 1} }

func assign(job string, env map[string]string, command ...string) api.Assignment {
	return api.Assignment{ReplicaKey: key(job), Command: command, Env: env}
}

func TestStartEnvAndProcessGroup(t *testing.T) {
	f := newFakeServer(t)
	t.Setenv("GPUFLEET_TEST_LEAK", "must-not-reach-the-replica")
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{assign("env", map[string]string{"RANK": "3", "CUDA_VISIBLE_DEVICES": "4,5"},
			"sh", "-c", `echo "pid=$$ pgid=$(cut -d' ' -f5 /proc/$$/stat)"; env | sort`)}
	})
	startAgent(t, testConfig(t, f, t.TempDir()))
	st := f.waitState(key("env"), StateExited)
	if st.ExitCode != 0 || st.Signal != "" {
		t.Errorf("exit = %d %q, want 0", st.ExitCode, st.Signal)
	}
	f.waitFor("the whole log", 5*time.Second, func() bool { return strings.Contains(f.log(key("env")), "RANK=") })
	out := f.log(key("env"))
	var pid, pgid int
	if _, err := fmt.Sscanf(out, "pid=%d pgid=%d", &pid, &pgid); err != nil || pid != pgid || pid == 0 {
		t.Errorf("replica's first line %q: want its own process group (pgid = pid)", strings.SplitN(out, "\n", 2)[0])
	}
	var env []string
	for _, l := range strings.Split(out, "\n")[1:] {
		if l == "" {
			continue
		}
		name, _, _ := strings.Cut(l, "=")
		if name == "PWD" || name == "SHLVL" || name == "_" { // set by sh itself
			continue
		}
		env = append(env, name)
	}
	want := []string{"CUDA_VISIBLE_DEVICES", MarkerEnv, "HOME", "LANG", "PATH", "RANK"}
	if os.Getenv("HOME") == "" {
		want = []string{"CUDA_VISIBLE_DEVICES", MarkerEnv, "LANG", "PATH", "RANK"}
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("replica environment names (-want +got):\n%s\nfull output:\n%s", diff, out)
	}
	if !strings.Contains(out, "RANK=3\n") || !strings.Contains(out, "CUDA_VISIBLE_DEVICES=4,5\n") {
		t.Errorf("assignment env missing from the replica:\n%s", out)
	}
}

func TestExitReporting(t *testing.T) {
	tests := map[string]struct {
		command  []string
		code     int
		signal   string
		inLog    string
		noRecord bool
	}{
		"success":          {command: []string{"true"}, code: 0},
		"exit code":        {command: []string{"sh", "-c", "echo failing >&2; exit 3"}, code: 3, inLog: "failing"},
		"killed by signal": {command: []string{"sh", "-c", "kill -USR1 $$"}, code: -1, signal: "SIGUSR1"},
		"not found":        {command: []string{"no-such-command-gpufleet"}, code: 127, inLog: `command "no-such-command-gpufleet" not found`},
		"empty command":    {command: nil, code: 127, inLog: "empty command"},
	}
	f := newFakeServer(t)
	f.set(func(f *fakeServer) {
		for name, tc := range tests {
			f.run = append(f.run, assign(name, nil, tc.command...))
		}
	})
	dir := t.TempDir()
	startAgent(t, testConfig(t, f, dir))
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := f.waitState(key(name), StateExited)
			if st.ExitCode != tc.code || st.Signal != tc.signal {
				t.Errorf("exit = %d %q, want %d %q", st.ExitCode, st.Signal, tc.code, tc.signal)
			}
			if tc.inLog != "" {
				f.waitFor("log line "+tc.inLog, 5*time.Second, func() bool { return strings.Contains(f.log(key(name)), tc.inLog) })
			}
		})
	}
	// Acknowledged and fully shipped replicas leave no record behind.
	f.waitFor("records removed after ack", 5*time.Second, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, replicasDir))
		return len(ents) == 0
	})
}

func TestLogShippingWithOffsets(t *testing.T) {
	f := newFakeServer(t)
	var want strings.Builder
	for i := range 40 {
		fmt.Fprintf(&want, "line %02d\n", i)
	}
	// The replica waits for a file so that its output is shipped in many
	// heartbeats, some of which fail and must be resent at the same offset.
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	f.set(func(f *fakeServer) {
		f.failNext = 3
		f.run = []api.Assignment{assign("logs", nil, "sh", "-c",
			`i=0; while [ $i -lt 40 ]; do printf 'line %02d\n' $i; i=$((i+1)); done; while [ ! -e "$1" ]; do sleep 0.02; done`, "sh", release)}
	})
	cfg := testConfig(t, f, filepath.Join(dir, "state"))
	cfg.LogChunkBytes = 7
	startAgent(t, cfg)
	f.waitFor("the first 20 lines", 10*time.Second, func() bool { return strings.Contains(f.log(key("logs")), "line 19") })
	if st, _ := f.replica(key("logs")); st.State != StateRunning {
		t.Errorf("replica state %q while it waits, want running", st.State)
	}
	f.set(func(f *fakeServer) { f.failNext = 2 })
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.waitState(key("logs"), StateExited)
	f.waitFor("the whole log", 10*time.Second, func() bool { return f.log(key("logs")) == want.String() })
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.chunkSizes {
		if n > 7 || n == 0 {
			t.Fatalf("chunk of %d bytes, want 1..7", n)
		}
	}
	if len(f.chunkSizes) < len(want.String())/7 {
		t.Errorf("%d chunks for %d bytes in chunks of 7", len(f.chunkSizes), len(want.String()))
	}
}

func TestStopOrder(t *testing.T) {
	tests := map[string]struct {
		script     string
		deadline   time.Duration
		wantSignal string
	}{
		"exits on SIGTERM":     {script: "echo ready; exec sleep 30", deadline: 30 * time.Second, wantSignal: "SIGTERM"},
		"ignores SIGTERM":      {script: "trap '' TERM; echo ready; exec sleep 30", deadline: 300 * time.Millisecond, wantSignal: "SIGKILL"},
		"child ignores it too": {script: "trap '' TERM; echo ready; sleep 30; echo survived", deadline: 300 * time.Millisecond, wantSignal: "SIGKILL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeServer(t)
			k := key("stop")
			f.set(func(f *fakeServer) { f.run = []api.Assignment{assign("stop", nil, "sh", "-c", tc.script)} })
			startAgent(t, testConfig(t, f, t.TempDir()))
			f.waitFor("ready", 10*time.Second, func() bool { return strings.Contains(f.log(k), "ready") })
			deadline := time.Now().Add(tc.deadline)
			f.set(func(f *fakeServer) {
				f.run = nil
				f.stop = []api.StopOrder{{ReplicaKey: k, DeadlineUnixMilli: deadline.UnixMilli()}}
			})
			st := f.waitState(k, StateExited)
			if st.ExitCode != -1 || st.Signal != tc.wantSignal {
				t.Errorf("exit = %d %q, want -1 %q", st.ExitCode, st.Signal, tc.wantSignal)
			}
			f.mu.Lock()
			seen := f.exitSeen[k]
			f.mu.Unlock()
			if tc.wantSignal == "SIGKILL" && seen.Before(deadline.Truncate(time.Millisecond)) {
				t.Errorf("killed at %v, before the deadline %v", seen, deadline)
			}
			if strings.Contains(f.log(k), "survived") {
				t.Error("a process of the replica's group outlived the stop")
			}
		})
	}
}

func TestReconcileStopsWhatTheServerDoesNotList(t *testing.T) {
	f := newFakeServer(t)
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{
			assign("kept", nil, "sh", "-c", "echo ready; exec sleep 30"),
			assign("polite", nil, "sh", "-c", "echo ready; exec sleep 30"),
			assign("stubborn", nil, "sh", "-c", "trap '' TERM; echo ready; exec sleep 30"),
		}
	})
	startAgent(t, testConfig(t, f, t.TempDir()))
	for _, j := range []string{"kept", "polite", "stubborn"} {
		f.waitFor(j+" ready", 10*time.Second, func() bool { return strings.Contains(f.log(key(j)), "ready") })
	}
	f.set(func(f *fakeServer) { f.run = f.run[:1] })
	for job, sig := range map[string]string{"polite": "SIGTERM", "stubborn": "SIGKILL"} {
		st := f.waitState(key(job), StateExited)
		if st.ExitCode != -1 || st.Signal != sig {
			t.Errorf("%s: exit = %d %q, want -1 %s", job, st.ExitCode, st.Signal, sig)
		}
	}
	if st, _ := f.replica(key("kept")); st.State != StateRunning {
		t.Errorf("kept: state %q, want running", st.State)
	}
}

func TestAdoptionAfterRestart(t *testing.T) {
	f := newFakeServer(t)
	f.set(func(f *fakeServer) { f.autoAck = false })
	dir := t.TempDir()
	marker := filepath.Join(dir, "starts")
	release := filepath.Join(dir, "release")
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{
			// long: runs across the restart and must not be started twice.
			assign("long", nil, "sh", "-c", `echo start >> "$1"; echo ready; exec sleep 30`, "sh", marker),
			// meanwhile: ends while no agent runs; its status is lost.
			assign("meanwhile", nil, "sh", "-c", `echo ready; while [ ! -e "$1" ]; do sleep 0.02; done; exit 7`, "sh", release),
			// before: ends, unacknowledged, before the restart; its exit
			// code survives in the record.
			assign("before", nil, "sh", "-c", "exit 5"),
		}
	})
	cfg := testConfig(t, f, filepath.Join(dir, "state"))
	cfg.StopReplicasOnExit = false
	stop1 := startAgent(t, cfg)
	first := f.waitState(key("long"), StateRunning)
	f.waitState(key("before"), StateExited)
	f.waitFor("meanwhile ready", 10*time.Second, func() bool { return strings.Contains(f.log(key("meanwhile")), "ready") })
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Wait for "meanwhile" to end with no agent watching.
	var mPID int
	f.waitFor("meanwhile pid", time.Second, func() bool { st, _ := f.replica(key("meanwhile")); mPID = st.PID; return mPID > 0 })
	waitGone(t, mPID)

	f.set(func(f *fakeServer) { f.status = map[api.ReplicaKey]api.ReplicaStatus{} })
	cfg.StopReplicasOnExit = true
	startAgent(t, cfg)
	got := map[string]api.ReplicaStatus{}
	f.waitFor("all three reported by the new agent", 10*time.Second, func() bool {
		for _, j := range []string{"long", "meanwhile", "before"} {
			st, ok := f.replica(key(j))
			if !ok {
				return false
			}
			got[j] = st
		}
		return true
	})
	want := map[string]api.ReplicaStatus{
		"long":      {ReplicaKey: key("long"), State: StateRunning, PID: first.PID},
		"meanwhile": {ReplicaKey: key("meanwhile"), State: StateExited, ExitCode: -1, Signal: SignalLost, PID: mPID},
		"before":    {ReplicaKey: key("before"), State: StateExited, ExitCode: 5, PID: got["before"].PID},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after the restart (-want +got):\n%s", diff)
	}
	// A few more heartbeats: the adopted replica is not started again.
	f.mu.Lock()
	hb := f.heartbeats
	f.mu.Unlock()
	f.waitFor("three more heartbeats", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.heartbeats >= hb+3 })
	if b, _ := os.ReadFile(marker); string(b) != "start\n" {
		t.Errorf("marker %q: the adopted replica was started again", b)
	}
	// The server drops it: the new agent stops the process it adopted.
	f.set(func(f *fakeServer) { f.run = nil; f.autoAck = true })
	st := f.waitState(key("long"), StateExited)
	if st.ExitCode != -1 || st.Signal != SignalLost {
		t.Errorf("adopted replica stopped: exit %d %q, want -1 %q (not this agent's child)", st.ExitCode, st.Signal, SignalLost)
	}
	waitGone(t, first.PID)
}

// waitGone waits until pid has ended (gone or a zombie).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for {
		p, err := procStat(pid)
		if err != nil || p.exited() {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("process %d still running after 10s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerAway(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{assign("away", nil, "sh", "-c", `echo ready; while [ ! -e "$1" ]; do sleep 0.02; done; exit 4`, "sh", release)}
	})
	startAgent(t, testConfig(t, f, filepath.Join(dir, "state")))
	f.waitState(key("away"), StateRunning)
	f.set(func(f *fakeServer) { f.failWith = 503 })
	f.mu.Lock()
	hb := f.heartbeats
	f.mu.Unlock()
	f.waitFor("failed heartbeats", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.heartbeats >= hb+3 })
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The replica ends while the server is away; the agent keeps it to
	// report when the server is back.
	f.mu.Lock()
	hb = f.heartbeats
	f.mu.Unlock()
	f.waitFor("more failed heartbeats", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.heartbeats >= hb+2 })
	if st, _ := f.replica(key("away")); st.State != StateRunning {
		t.Fatalf("state %q recorded while the server was away", st.State)
	}
	f.set(func(f *fakeServer) { f.failWith = 0 })
	st := f.waitState(key("away"), StateExited)
	if st.ExitCode != 4 {
		t.Errorf("exit code %d, want 4", st.ExitCode)
	}
}

func TestReregisterWhenServerForgetsNode(t *testing.T) {
	f := newFakeServer(t)
	startAgent(t, testConfig(t, f, t.TempDir()))
	f.waitFor("registered", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.registers == 1 && f.heartbeats > 0 })
	f.set(func(f *fakeServer) { f.failWith = 404 })
	f.waitFor("registered again", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.registers >= 2 })
}

func TestRunFailsFast(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	tests := map[string]struct {
		mod     func(*Config)
		wantErr string
	}{
		"bad token":  {mod: func(c *Config) { c.Token = "wrong" }, wantErr: "401"},
		"no server":  {mod: func(c *Config) { c.Server = "" }, wantErr: "server URL is empty"},
		"no name":    {mod: func(c *Config) { c.Name = "" }, wantErr: "node name is empty"},
		"no dir":     {mod: func(c *Config) { c.StateDir = "" }, wantErr: "state dir is empty"},
		"type count": {mod: func(c *Config) { c.Inventory = Inventory{Count: 2} }, wantErr: "2 accelerators of no type"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, f, dir)
			tc.mod(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Run(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Run: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestStateDirIsExclusive(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	startAgent(t, testConfig(t, f, dir))
	f.waitFor("first agent heartbeating", 5*time.Second, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.heartbeats > 0 })
	err := Run(context.Background(), testConfig(t, f, dir))
	if err == nil || !strings.Contains(err.Error(), "in use by another agent") {
		t.Errorf("second agent on the same state dir: %v, want an in-use error", err)
	}
}

func TestChattyReplicaDoesNotStarveOthers(t *testing.T) {
	f := newFakeServer(t)
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{
			// Sorted first, and always with more output than one heartbeat takes.
			assign("a-chatty", nil, "sh", "-c", "while :; do echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; sleep 0.005; done"),
			assign("b-quiet", nil, "sh", "-c", "echo hello-b; exec sleep 30"),
		}
	})
	cfg := testConfig(t, f, t.TempDir())
	cfg.LogChunkBytes, cfg.MaxLogBytes = 16, 16
	startAgent(t, cfg)
	f.waitFor("the quiet replica's output", 5*time.Second, func() bool { return strings.Contains(f.log(key("b-quiet")), "hello-b") })
}

func TestSweepLogs(t *testing.T) {
	dir := t.TempDir()
	sd, err := openStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.close()
	now := time.Now()
	old := now.Add(-100 * time.Hour)
	files := map[string]time.Time{"old.log": old, "recent.log": now, "kept.log": old, "other.txt": old}
	for name, mt := range files {
		p := filepath.Join(dir, logsDir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{LogRetention: 72 * time.Hour}
	cfg.defaults()
	a := &agent{cfg: cfg, log: cfg.Logger, dir: sd, replicas: map[string]*replica{
		"kept": {rec: record{LogPath: filepath.Join(dir, logsDir, "kept.log")}},
	}}
	a.sweepLogs(now)
	ents, _ := os.ReadDir(filepath.Join(dir, logsDir))
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if diff := cmp.Diff([]string{"kept.log", "other.txt", "recent.log"}, left); diff != "" {
		t.Errorf("logs left (-want +got):\n%s", diff)
	}
}
