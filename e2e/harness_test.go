package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gpufleet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "gpufleet")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gpufleet")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gpufleet:", err)
		return 1
	}
	return m.Run()
}

const queuesYAML = `kind: queues
tenants:
  - name: acme
    quotas: {h100: 16}
    queues:
      - name: acme-train
        quotas: {h100: 16}
`

// Timing of the plane under test: fast heartbeats, a short timeout.
const (
	heartbeat = 200 * time.Millisecond
	hbTimeout = 2 * time.Second
)

// plane is a server and its agents, each a separate process.
type plane struct {
	t      *testing.T
	dir    string
	url    string
	listen string
	token  string
	server *exec.Cmd
	agents map[string]*exec.Cmd
	// nodeTokens holds each node's own token, made once.
	nodeTokens map[string]string
	// serverArgs are extra flags for the server.
	serverArgs []string
	// ports holds each agent's range of service replica ports: agents
	// that share this machine must not hand out the same port.
	ports  map[string]string
	client *api.Client
}

func newPlane(t *testing.T) *plane {
	t.Helper()
	p := &plane{t: t, dir: t.TempDir(), listen: "127.0.0.1:0", agents: map[string]*exec.Cmd{}, nodeTokens: map[string]string{},
		ports: map[string]string{}}
	if err := os.WriteFile(filepath.Join(p.dir, "queues.yaml"), []byte(queuesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	p.startServer()
	t.Cleanup(p.stopAll)
	return p
}

func (p *plane) logFile(name string) *os.File {
	f, err := os.OpenFile(filepath.Join(p.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	return f
}

// startServer starts (or restarts, on the same address) the server.
func (p *plane) startServer() {
	p.t.Helper()
	addrFile := filepath.Join(p.dir, "addr")
	os.Remove(addrFile)
	cmd := exec.Command(bin, "server", "--data", filepath.Join(p.dir, "data"), "--listen", p.listen,
		"--addr-file", addrFile, "--admin-token-file", filepath.Join(p.dir, "admin-token"),
		"--queues", filepath.Join(p.dir, "queues.yaml"), "--heartbeat-interval", heartbeat.String(),
		"--heartbeat-timeout", hbTimeout.String(), "--stop-grace", "2s",
		// A job waits this long for room before it preempts (a minute by
		// default).
		"--preempt-after", "2s")
	cmd.Args = append(cmd.Args, p.serverArgs...)
	out := p.logFile("server")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	out.Close()
	p.server = cmd
	p.waitFor("server address", 10*time.Second, func() (bool, string) {
		data, err := os.ReadFile(addrFile)
		if err != nil {
			return false, err.Error()
		}
		p.url = strings.TrimSpace(string(data))
		return true, ""
	})
	p.listen = strings.TrimPrefix(p.url, "http://")
	if p.token == "" {
		data, err := os.ReadFile(filepath.Join(p.dir, "admin-token"))
		if err != nil {
			p.t.Fatal(err)
		}
		p.token = strings.TrimSpace(string(data))
	}
	p.client = api.NewClient(p.url, p.token)
}

// nodeToken returns the node's own token, bound to it.
func (p *plane) nodeToken(name string) string {
	p.t.Helper()
	if tok, ok := p.nodeTokens[name]; ok {
		return tok
	}
	tok, err := p.client.CreateToken(p.ctx(), api.CreateToken{Role: api.RoleNode, Node: name})
	if err != nil {
		p.t.Fatal(err)
	}
	p.nodeTokens[name] = tok.Token
	return tok.Token
}

// startAgent starts a node agent with 8 h100, on its node's own token.
func (p *plane) startAgent(name string) {
	p.t.Helper()
	p.agents[name] = p.agentCmd(name, p.nodeToken(name))
	p.waitNode(name, "ready")
}

// agentCmd starts an agent process for a node with a token.
func (p *plane) agentCmd(name, token string) *exec.Cmd {
	p.t.Helper()
	cmd := exec.Command(bin, "agent", "--server", p.url, "--token", token, "--name", name, "--address", "127.0.0.1",
		"--accelerators", "8xh100", "--cpu", "8", "--memory", "8Gi", "--state-dir", filepath.Join(p.dir, "agent-"+name),
		"--interval", heartbeat.String(), "--stop-grace", "1s", "--stop-replicas-on-exit", "--path", "rack="+name,
		"--port-range", p.portRange(name), "--probe-interval", "100ms")
	out := p.logFile("agent-" + name)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	out.Close()
	return cmd
}

// portRange is the agent's range of service ports, the same across its
// restarts.
func (p *plane) portRange(name string) string {
	if r, ok := p.ports[name]; ok {
		return r
	}
	first := 31000 + 200*len(p.ports)
	p.ports[name] = fmt.Sprintf("%d-%d", first, first+199)
	return p.ports[name]
}

// kill9 kills a process the hard way and reaps it.
func kill9(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

// stop ends a process gracefully, or kills it after a few seconds.
func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (p *plane) stopAll() {
	// Agents first, so they stop their replicas.
	for _, a := range p.agents {
		stop(a)
	}
	stop(p.server)
	if p.t.Failed() {
		for _, name := range []string{"server", "agent-n1", "agent-n2"} {
			if data, err := os.ReadFile(filepath.Join(p.dir, name+".log")); err == nil {
				p.t.Logf("--- %s log (tail) ---\n%s", name, tail(string(data), 3000))
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *plane) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	p.t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func (p *plane) waitFor(what string, limit time.Duration, cond func() (bool, string)) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within %s (last seen: %s)", what, limit, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *plane) waitNode(name, state string) {
	p.t.Helper()
	p.waitFor("node "+name+" "+state, 10*time.Second, func() (bool, string) {
		nodes, err := p.client.Nodes(p.ctx())
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.Name == name {
				return n.State == state, n.State
			}
		}
		return false, "not registered"
	})
}

// waitJob polls until the job satisfies cond and returns it.
func (p *plane) waitJob(id, what string, limit time.Duration, cond func(api.Job) bool) api.Job {
	p.t.Helper()
	var j api.Job
	p.waitFor("job "+id+" "+what, limit, func() (bool, string) {
		var err error
		j, err = p.client.Job(p.ctx(), id)
		if err != nil {
			return false, err.Error()
		}
		return cond(j), fmt.Sprintf("%s attempt %d (%s) replicas %+v", j.State, j.Attempt, j.Reason, j.Replicas)
	})
	return j
}

func (p *plane) waitState(id, state string, limit time.Duration) api.Job {
	p.t.Helper()
	return p.waitJob(id, state, limit, func(j api.Job) bool { return j.State == state })
}

// waitReplicasRunning waits until every replica of the job's current
// attempt runs.
func (p *plane) waitReplicasRunning(id string, attempt int) api.Job {
	p.t.Helper()
	return p.waitJob(id, "replicas running", 15*time.Second, func(j api.Job) bool {
		if j.Attempt != attempt || len(j.Replicas) == 0 {
			return false
		}
		for _, r := range j.Replicas {
			if r.State != "running" {
				return false
			}
		}
		return true
	})
}

func (p *plane) submit(doc string) api.Job {
	p.t.Helper()
	j, _, err := p.client.Submit(p.ctx(), "job.yaml", []byte(doc), "")
	if err != nil {
		p.t.Fatal(err)
	}
	return j
}

// logOf reads a replica's whole log of an attempt (0: the latest).
func (p *plane) logOf(id string, rank, attempt int) string {
	p.t.Helper()
	var b strings.Builder
	var off int64
	for {
		pg, err := p.client.Logs(p.ctx(), id, rank, attempt, off)
		if err != nil {
			p.t.Fatal(err)
		}
		b.Write(pg.Data)
		if len(pg.Data) == 0 {
			return b.String()
		}
		off = pg.Next
	}
}

// waitLog waits until a replica's log matches re and returns the log.
func (p *plane) waitLog(id string, rank, attempt int, re string) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	var log string
	p.waitFor(fmt.Sprintf("log of %s rank %d to match %q", id, rank, re), 15*time.Second, func() (bool, string) {
		log = p.logOf(id, rank, attempt)
		return rx.MatchString(log), log
	})
	return log
}

var pidRE = regexp.MustCompile(`pid (\d+)`)

// pidIn reads the "pid N" line a replica printed.
func pidIn(t *testing.T, log string) int {
	t.Helper()
	m := pidRE.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no pid in log %q", log)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// alive reports whether a process exists (and is not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "State:") {
			return !strings.Contains(sc.Text(), "zombie")
		}
	}
	return true
}

func (p *plane) waitGone(pid int, limit time.Duration) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("process %d to end", pid), limit, func() (bool, string) { return !alive(pid), "alive" })
}
