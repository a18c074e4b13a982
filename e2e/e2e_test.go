package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

const gangJob = `name: gang
queue: acme-train
kind: training
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
command: [sh, -c, 'echo "rank $RANK local $LOCAL_RANK world $WORLD_SIZE master $MASTER_ADDR:$MASTER_PORT devices $CUDA_VISIBLE_DEVICES job $GPUFLEET_JOB"; sleep 1']
`

func TestGangOfTwoRunsWithRankEnvironment(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	p.startAgent("n2")
	j := p.submit(gangJob)
	done := p.waitState(j.ID, "succeeded", 20*time.Second)
	if done.Replicas[0].Node == done.Replicas[1].Node {
		t.Errorf("both 8-accelerator replicas on node %s", done.Replicas[0].Node)
	}
	port := ""
	for rank := range 2 {
		log := p.waitLog(j.ID, rank, 0, `rank \d`)
		m := regexp.MustCompile(`^rank (\d) local (\d) world (\d) master ([\d.]+):(\d+) devices ([\d,]+) job (\S+)\n$`).FindStringSubmatch(log)
		if m == nil {
			t.Fatalf("rank %d log %q", rank, log)
		}
		want := []string{fmt.Sprint(rank), "0", "2", "127.0.0.1", m[5], "0,1,2,3,4,5,6,7", j.ID}
		if got := m[1:]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("rank %d saw %v, want %v", rank, got, want)
		}
		if port != "" && m[5] != port {
			t.Errorf("ranks disagree on MASTER_PORT: %s and %s", port, m[5])
		}
		port = m[5]
	}
}

const sleeperJob = `name: sleeper
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 1
command: [sh, -c, 'echo pid $$; exec sleep 60']
`

func TestCancelEndsTheProcess(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	j := p.submit(sleeperJob)
	p.waitReplicasRunning(j.ID, 1)
	pid := pidIn(t, p.waitLog(j.ID, 0, 0, `pid \d+`))
	if !alive(pid) {
		t.Fatalf("replica process %d is not running before the cancel", pid)
	}
	if _, err := p.client.Cancel(p.ctx(), j.ID); err != nil {
		t.Fatal(err)
	}
	p.waitGone(pid, 10*time.Second)
	got := p.waitJob(j.ID, "replica exited", 10*time.Second, func(j api.Job) bool { return j.Replicas[0].State == "exited" })
	if got.State != "cancelled" || got.Replicas[0].Signal != "SIGTERM" {
		t.Errorf("after cancel: state %q, replica signal %q; want cancelled and SIGTERM", got.State, got.Replicas[0].Signal)
	}
}

// The victim traps SIGTERM and keeps working through its notice period;
// the agent kills it at the deadline.
const victimJob = `name: victim
queue: acme-train
kind: batch
priority: low
preemptible: true
noticePeriod: 3s
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
command: [sh, -c, 'trap "echo got TERM" TERM; echo pid $$; i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo tick $i; sleep 0.2; done']
`

const urgentJob = `name: urgent
queue: acme-train
kind: training
priority: critical
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sh, -c, 'echo urgent work; sleep 1']
`

func TestPreemptionGivesNoticeThenKills(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	p.startAgent("n2")
	v := p.submit(victimJob)
	p.waitReplicasRunning(v.ID, 1)
	p.waitLog(v.ID, 0, 1, `tick 3`)
	pid := pidIn(t, p.logOf(v.ID, 0, 1))
	// The core does not preempt work in the second it admitted it.
	time.Sleep(1100 * time.Millisecond)
	u := p.submit(urgentJob)
	p.waitState(v.ID, "preempting", 10*time.Second)
	preempted := time.Now()
	// Both ranks get SIGTERM, trap it and keep ticking during the notice.
	log := p.waitLog(v.ID, 0, 1, `got TERM\n(.*\n)*tick \d+\n(.*\n)*tick \d+\n`)
	if !alive(pid) {
		t.Fatalf("victim died right after SIGTERM; log:\n%s", tail(log, 300))
	}
	p.waitGone(pid, 10*time.Second)
	// The core counts in whole seconds: the notice ends between 2 and 3
	// seconds after the preemption.
	if held := time.Since(preempted); held < 1500*time.Millisecond {
		t.Errorf("victim killed %s after the preemption, before its 3s notice", held)
	}
	got := p.waitJob(v.ID, "back to pending or running again", 10*time.Second, func(j api.Job) bool { return j.State == "pending" || j.Attempt > 1 })
	if got.Attempt == 1 && got.Replicas[0].Signal != "SIGKILL" && got.Replicas[1].Signal != "SIGKILL" {
		t.Errorf("victim's replicas ended by %q and %q; want SIGKILL at the deadline", got.Replicas[0].Signal, got.Replicas[1].Signal)
	}
	p.waitState(u.ID, "succeeded", 15*time.Second)
	if !strings.Contains(p.logOf(u.ID, 0, 0), "urgent work") {
		t.Errorf("urgent job's output is missing")
	}
	// Once the urgent job is done, the victim runs again.
	p.waitJob(v.ID, "running a second attempt", 15*time.Second, func(j api.Job) bool { return j.State == "running" && j.Attempt == 2 })
	p.client.Cancel(p.ctx(), v.ID)
}

const pairJob = `name: pair
queue: acme-train
kind: training
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
command: [sh, -c, 'echo pid $$; exec sleep 60']
`

func TestKilledAgentsNodeGoesDownAndItsJobIsRequeued(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	p.startAgent("n2")
	j := p.submit(pairJob)
	first := p.waitReplicasRunning(j.ID, 1)
	pids := map[string]int{}
	for _, r := range first.Replicas {
		pids[r.Node] = pidIn(t, p.waitLog(j.ID, r.Rank, 1, `pid \d+`))
	}
	kill9(p.agents["n2"])
	p.waitNode("n2", "down")
	got := p.waitState(j.ID, "pending", 5*time.Second)
	if !strings.Contains(got.Reason, "n2") {
		t.Errorf("requeue reason %q does not name the node", got.Reason)
	}
	// The surviving rank on n1 is stopped: the gang restarts as a whole.
	p.waitGone(pids["n1"], 10*time.Second)
	// The agent comes back, finds its orphaned replica, is told nothing of
	// it and stops it; the job runs again on both nodes.
	p.startAgent("n2")
	p.waitGone(pids["n2"], 10*time.Second)
	p.waitReplicasRunning(j.ID, 2)
	p.client.Cancel(p.ctx(), j.ID)
}

const burstJob = `name: burst-%d
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 1
command: [sleep, "1"]
`

func TestServerKilledDuringSubmissionBurstKeepsAcknowledgedJobs(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	p.startAgent("n2")
	var (
		mu    sync.Mutex
		acked = map[string]string{} // idempotency key -> job id
		n     atomic.Int64
		stopC = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := api.NewClient(p.url, p.token)
			c.HTTP.Timeout = 3 * time.Second
			for i := 0; ; i++ {
				select {
				case <-stopC:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				j, _, err := c.Submit(p.ctx(), "burst.yaml", []byte(fmt.Sprintf(burstJob, w)), key)
				if err != nil {
					var e *api.Error
					if errors.As(err, &e) && e.Status < 500 {
						t.Errorf("submission refused: %v", err)
					}
					return // the server is gone
				}
				mu.Lock()
				acked[key] = j.ID
				mu.Unlock()
				n.Add(1)
			}
		}()
	}
	p.waitFor("300 acknowledged submissions", 20*time.Second, func() (bool, string) { return n.Load() >= 300, fmt.Sprint(n.Load()) })
	kill9(p.server)
	close(stopC)
	wg.Wait()

	p.startServer()
	jobs, err := p.client.Jobs(p.ctx(), api.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]api.Job{}
	for _, j := range jobs {
		have[j.ID] = j
	}
	mu.Lock()
	defer mu.Unlock()
	for key, id := range acked {
		if _, ok := have[id]; !ok {
			t.Errorf("acknowledged job %s (key %s) is missing after the restart", id, key)
		}
	}
	t.Logf("%d submissions acknowledged before kill -9, %d jobs after the restart", len(acked), len(jobs))
	// No accelerator is bound twice, now and while the plane works on.
	for range 3 {
		checkNoDoubleBinding(t, p)
		time.Sleep(500 * time.Millisecond)
	}
	// The restarted server schedules again: more jobs finish.
	p.waitFor("jobs finishing after the restart", 20*time.Second, func() (bool, string) {
		js, err := p.client.Jobs(p.ctx(), api.JobFilter{State: "succeeded"})
		return err == nil && len(js) >= 20, fmt.Sprint(len(js))
	})
	checkNoDoubleBinding(t, p)
}

func checkNoDoubleBinding(t *testing.T, p *plane) {
	t.Helper()
	jobs, err := p.client.Jobs(p.ctx(), api.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	for _, j := range jobs {
		if j.State != "running" && j.State != "preempting" {
			continue
		}
		for _, r := range j.Replicas {
			for _, d := range r.Devices {
				k := fmt.Sprintf("%s/%d", r.Node, d)
				if o, taken := owner[k]; taken {
					t.Errorf("device %s bound to %s and %s", k, o, j.ID)
				}
				owner[k] = j.ID
			}
		}
	}
}

// An agent run with another node's token is refused at once and exits: a
// node token speaks for its own node only.
func TestAgentWithAnotherNodesTokenIsRefused(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	cmd := p.agentCmd("n2", p.nodeToken("n1"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the agent exited 0, want an error")
		}
	case <-time.After(30 * time.Second):
		stop(cmd)
		t.Fatal("the agent kept running with another node's token")
	}
	log, _ := os.ReadFile(filepath.Join(p.dir, "agent-n2.log"))
	if !strings.Contains(string(log), "speaks for node n1, not n2") {
		t.Errorf("agent log does not say why:\n%s", log)
	}
	nodes, err := p.client.Nodes(p.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == "n2" {
			t.Errorf("node n2 was registered with n1's token")
		}
	}
}

// An agent killed with SIGKILL just after it started a replica, before it
// recorded the pid (or with the record lost), comes back, finds the
// process by the marker in its environment and adopts it: the process is
// not left running unknown on devices the job keeps, it is not started a
// second time, and a cancel stops it.
func TestAgentKilledWhileStartingAReplicaAdoptsIt(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, record string){
		// What the agent leaves when killed between writing the record
		// and starting the process: a record without a pid.
		"record without a pid": func(t *testing.T, record string) {
			var rec map[string]any
			data, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &rec); err != nil {
				t.Fatal(err)
			}
			rec["state"], rec["pid"], rec["pgid"], rec["startTicks"] = "starting", 0, 0, 0
			data, _ = json.Marshal(rec)
			if err := os.WriteFile(record, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"no record": func(t *testing.T, record string) {
			if err := os.Remove(record); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := newPlane(t)
			p.startAgent("n1")
			j := p.submit(sleeperJob)
			p.waitReplicasRunning(j.ID, 1)
			pid := pidIn(t, p.waitLog(j.ID, 0, 0, `pid \d+`))
			kill9(p.agents["n1"])
			damage(t, filepath.Join(p.dir, "agent-n1", "replicas", j.ID+"_g0_r0_a1.json"))
			p.startAgent("n1")
			// A few heartbeats of the new agent.
			time.Sleep(5 * heartbeat)
			got := p.waitReplicasRunning(j.ID, 1)
			if got.State != "running" || !alive(pid) {
				t.Fatalf("after the agent's restart: job %s, process %d alive %v; want both running", got.State, pid, alive(pid))
			}
			if n := strings.Count(p.logOf(j.ID, 0, 0), "pid "); n != 1 {
				t.Errorf("the replica started %d times, want once:\n%s", n, p.logOf(j.ID, 0, 0))
			}
			if _, err := p.client.Cancel(p.ctx(), j.ID); err != nil {
				t.Fatal(err)
			}
			p.waitGone(pid, 10*time.Second)
			p.waitState(j.ID, "cancelled", 10*time.Second)
		})
	}
}

// The server process closes connections that send nothing, send half a
// body, or idle after an answer, by its --body-timeout and --idle-timeout.
func TestServerCutsOffSlowAndIdleConnections(t *testing.T) {
	p := newPlane(t)
	stop(p.server)
	p.serverArgs = []string{"--body-timeout", "500ms", "--idle-timeout", "500ms", "--read-header-timeout", "500ms"}
	p.startServer()
	addr := strings.TrimPrefix(p.url, "http://")
	for name, send := range map[string]string{
		"idle after an answer":      "GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"half a body, no token":     "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nname: half",
		"half a body, with a token": "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + p.token + "\r\nContent-Length: 1000\r\n\r\nname: half",
		"nothing":                   "",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(send)); err != nil {
				t.Fatal(err)
			}
			// The server answers what it can, then closes; a connection
			// still open after 20 s (forty times the timeouts) is held.
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open; read %q", got)
			}
			if strings.Contains(name, "with a token") && !strings.Contains(string(got), "408 Request Timeout") {
				t.Errorf("answer %q, want a 408", got)
			}
		})
	}
}

// A drained node keeps its running work and takes nothing new; drained
// with evict, its job's process is stopped and the job runs again on
// another node once the process is gone.
func TestDrainKeepsRunningWorkAndEvictMovesIt(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	j := p.submit(sleeperJob)
	p.waitReplicasRunning(j.ID, 1)
	pid := pidIn(t, p.waitLog(j.ID, 0, 0, `pid \d+`))
	if _, err := p.client.DrainNode(p.ctx(), "n1", false); err != nil {
		t.Fatal(err)
	}
	p.waitNode("n1", "draining")
	other := p.submit(strings.Replace(sleeperJob, "name: sleeper", "name: other", 1))
	time.Sleep(5 * heartbeat)
	if got, _ := p.client.Job(p.ctx(), other.ID); got.State != "pending" {
		t.Errorf("a new job on a fleet whose one node is drained: %s, want pending", got.State)
	}
	if !alive(pid) {
		t.Fatalf("the drain stopped the running process")
	}
	p.startAgent("n2")
	p.waitState(other.ID, "running", 10*time.Second)
	if _, err := p.client.DrainNode(p.ctx(), "n1", true); err != nil {
		t.Fatal(err)
	}
	p.waitGone(pid, 10*time.Second)
	moved := p.waitReplicasRunning(j.ID, 2)
	if moved.Replicas[0].Node != "n2" {
		t.Errorf("the evicted job runs on %s, want n2", moved.Replicas[0].Node)
	}
	p.client.Cancel(p.ctx(), j.ID)
	p.client.Cancel(p.ctx(), other.ID)
}
