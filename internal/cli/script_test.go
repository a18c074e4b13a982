package cli

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gpufleet/gpufleet/internal/agent"
	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/server"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"gpufleet": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the command line against a real server and two real
// node agents in this process; jobs start real processes.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:   "testdata/script",
		Setup: setupLivePlane,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"waitjob": waitJob, "waitfile": waitFile,
			"waitservice": waitService},
	})
}

func scriptQueues() []quota.Spec {
	l := func(n int64) map[string]quota.Limits { return map[string]quota.Limits{"h100": {Nominal: n * 1000}} }
	return []quota.Spec{
		{Name: "acme", Quotas: l(16)}, {Name: "acme-train", Parent: "acme", Quotas: l(16)},
		{Name: "globex", Quotas: l(16)}, {Name: "globex-batch", Parent: "globex", Quotas: l(16)},
	}
}

// setupLivePlane starts a server and two agents (n1, n2 with 8 h100 each)
// and points the command line at them: GPUFLEET_SERVER and GPUFLEET_TOKEN
// (admin), ACME_TOKEN and GLOBEX_TOKEN for the two tenants.
func setupLivePlane(env *testscript.Env) error { return startPlane(env, nil) }

// startPlane is setupLivePlane with the server's configuration tuned.
func startPlane(env *testscript.Env, tune func(*server.Config)) error {
	dir := filepath.Join(env.WorkDir, ".plane")
	cfg := server.Config{DataDir: filepath.Join(dir, "server"), InitialQueues: scriptQueues(),
		HeartbeatInterval: 100 * time.Millisecond, StopGrace: 2 * time.Second, Tick: 100 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	s, err := server.Open(cfg)
	if err != nil {
		return err
	}
	ts := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { s.Run(ctx); close(loopDone) }()
	agentsDone := make(chan struct{}, 2)
	for _, name := range []string{"n1", "n2"} {
		cfg := agent.Config{Server: ts.URL, Token: s.AdminToken(), Name: name, Address: "127.0.0.1",
			Inventory: agent.Inventory{Accel: "h100", Count: 8, CPUMilli: 8000, MemoryMiB: 8192},
			StateDir:  filepath.Join(dir, name), WorkDir: env.WorkDir, Interval: 100 * time.Millisecond, StopGrace: time.Second, StopReplicasOnExit: true}
		go func() { agent.Run(ctx, cfg); agentsDone <- struct{}{} }()
	}
	env.Defer(func() {
		cancel()
		<-agentsDone
		<-agentsDone
		<-loopDone
		ts.Close()
		s.Close()
	})
	admin := api.NewClient(ts.URL, s.AdminToken())
	for _, tenant := range []string{"acme", "globex"} {
		tok, err := admin.CreateToken(ctx, api.CreateToken{Role: api.RoleTenant, Tenant: tenant})
		if err != nil {
			return err
		}
		env.Setenv(map[string]string{"acme": "ACME_TOKEN", "globex": "GLOBEX_TOKEN"}[tenant], tok.Token)
	}
	// Both nodes registered before the script starts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, err := admin.Nodes(ctx)
		if err == nil && len(nodes) == 2 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agents did not register: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.Setenv("GPUFLEET_SERVER", ts.URL)
	env.Setenv("GPUFLEET_TOKEN", s.AdminToken())
	env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
	env.Setenv("HOME", env.WorkDir)
	return nil
}

// waitJob: waitjob ID[/RANK] STATE [SECONDS] polls until the job (or the
// replica of that rank) is in STATE.
func waitJob(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: waitjob ID[/RANK] STATE [SECONDS]")
	}
	id, rankText, byRank := strings.Cut(args[0], "/")
	rank, _ := strconv.Atoi(rankText)
	limit := 15 * time.Second
	if len(args) == 3 {
		n, err := strconv.Atoi(args[2])
		ts.Check(err)
		limit = time.Duration(n) * time.Second
	}
	server, token := ts.Getenv("GPUFLEET_SERVER"), ts.Getenv("GPUFLEET_TOKEN")
	if server == "" {
		// As the command line does: the config file gpufleet up wrote.
		var cfg clientConfig
		data, err := os.ReadFile(filepath.Join(ts.Getenv("XDG_CONFIG_HOME"), "gpufleet", "config.yaml"))
		ts.Check(err)
		ts.Check(yaml.Unmarshal(data, &cfg))
		server, token = cfg.Server, cfg.Token
	}
	c := api.NewClient(server, token)
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		j, err := c.Job(context.Background(), id)
		if err == nil {
			state := j.State
			if byRank {
				state = "unbound"
				for _, r := range j.Replicas {
					if r.Rank == rank {
						state = r.State
					}
				}
			}
			if state == args[1] {
				return
			}
			last = state + " " + j.Reason
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("job %s not %s within %s (last: %s)", args[0], args[1], limit, last)
}

// waitFile: waitfile FILE waits (up to 30s) until FILE exists.
func waitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
	}
	ts.Fatalf("%s did not appear within 30s", args[0])
}

// waitService: waitservice NAME READY waits (up to 30s) until the service
// has READY ready replicas.
func waitService(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitservice NAME READY")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	c := api.NewClient(ts.Getenv("GPUFLEET_SERVER"), ts.Getenv("GPUFLEET_TOKEN"))
	last := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s, err := c.Service(context.Background(), args[0])
		if err == nil && s.Ready == want {
			return
		}
		last = fmt.Sprint(s.Reason, err)
	}
	ts.Fatalf("service %s: not %d ready within 30s (last: %s)", args[0], want, last)
}
