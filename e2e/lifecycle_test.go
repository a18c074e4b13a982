package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// stubborn is a replica that ignores SIGTERM, as a job checkpointing on its
// way out would; only SIGKILL at its deadline ends it.
const stubbornJob = `name: stubborn
queue: acme-train
kind: training
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sh, -c, 'trap "echo got TERM" TERM; echo pid $$; i=0; while [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done']
`

// A replica whose node went down (its agent killed with -9) and came back
// with the replica still running keeps its devices: no job starts on them
// until that process is gone. Every job started after the node came back
// checks, as it starts, that the old process is dead.
func TestReturningNodeKeepsTheDevicesOfItsLiveProcesses(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	old := p.submit(stubbornJob)
	p.waitReplicasRunning(old.ID, 1)
	pid := pidIn(t, p.waitLog(old.ID, 0, 1, `pid \d+`))
	pidFile := filepath.Join(p.dir, "old.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	kill9(p.agents["n1"])
	p.waitNode("n1", "down")
	p.waitState(old.ID, "pending", 5*time.Second)
	// Requeued, it would start again first; it is cancelled so the job
	// below is next.
	if _, err := p.client.Cancel(p.ctx(), old.ID); err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatalf("the old replica %d did not outlive its agent", pid)
	}
	checker := fmt.Sprintf(`name: checker
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sh, -c, 'P=$(cat %s); if grep -qs "^State:[[:space:]]*[RSDTtWIP]" /proc/$P/status; then echo OVERLAP; else echo CLEAN; fi; sleep 0.5']
`, pidFile)
	next := p.submit(checker)
	// The agent comes back and adopts the old process, which ignores the
	// SIGTERM it is sent and dies at its SIGKILL deadline.
	p.startAgent("n1")
	p.waitGone(pid, 15*time.Second)
	done := p.waitState(next.ID, "succeeded", 20*time.Second)
	if log := p.logOf(next.ID, 0, 0); !strings.Contains(log, "CLEAN") {
		t.Errorf("a job started on the node while the old process held its devices: %q (job %+v)", log, done)
	}
}

// An elastic job (min 2, max 4) shrinks for a higher-priority job of its
// queue and grows back when that one ends: the grown replicas have fresh
// identities that the agents start, the ranks are 0..3 again, the running
// replicas see the membership change in their membership file, each rank's
// log is its own, and a cancel ends the job promptly.
func TestElasticJobShrinksAndGrowsBack(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	p.startAgent("n2")
	elastic := p.submit(`name: elastic
queue: acme-train
kind: fine-tuning
preemptible: true
noticePeriod: 1s
gangs:
  - replicas: 4
    minReplicas: 2
    accelerators: h100
    count: 4
command: [sh, -c, 'echo rank $RANK replica $GPUFLEET_REPLICA; while true; do cat "$GPUFLEET_MEMBERSHIP_FILE" | tr -d " \n"; echo; sleep 0.3; done']
`)
	p.waitJob(elastic.ID, "4 replicas running", 15*time.Second, func(j api.Job) bool { return running(j) == 4 })
	urgent := p.submit(`name: urgent
queue: acme-train
kind: training
priority: high
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sh, -c, 'sleep 3']
`)
	p.waitState(urgent.ID, "running", 15*time.Second)
	p.waitJob(elastic.ID, "shrunk to 2", 10*time.Second, func(j api.Job) bool { return running(j) == 2 })
	p.waitState(urgent.ID, "succeeded", 20*time.Second)
	grown := p.waitJob(elastic.ID, "grown back to 4", 20*time.Second, func(j api.Job) bool { return running(j) == 4 })
	ranks := map[int]bool{}
	for _, r := range grown.Replicas {
		if r.State == "running" {
			ranks[r.Rank] = true
			if r.Rank >= 2 && r.Replica < 4 {
				t.Errorf("rank %d runs as replica %d again: a grown replica needs a fresh identity", r.Rank, r.Replica)
			}
		}
	}
	if len(ranks) != 4 || !ranks[0] || !ranks[3] {
		t.Errorf("running ranks %v, want 0..3", ranks)
	}
	// Rank 0 ran throughout: its membership went from 4 to 2 to 4.
	log0 := p.waitLog(elastic.ID, 0, 0, `"generation":2,"worldSize":4`)
	if !regexp.MustCompile(`"worldSize":2`).MatchString(log0) {
		t.Errorf("rank 0 never saw the gang at 2 replicas:\n%s", tail(log0, 2000))
	}
	// Rank 2's log is the grown replica's, not the one that ended.
	if log2 := p.waitLog(elastic.ID, 2, 0, `rank 2 replica`); !regexp.MustCompile(`^rank 2 replica [45]\n`).MatchString(log2) {
		t.Errorf("rank 2's log is not the grown replica's: %q", tail(log2, 300))
	}
	if _, err := p.client.Cancel(p.ctx(), elastic.ID); err != nil {
		t.Fatal(err)
	}
	p.waitState(elastic.ID, "cancelled", 10*time.Second)
}

func running(j api.Job) int {
	n := 0
	for _, r := range j.Replicas {
		if r.State == "running" {
			n++
		}
	}
	return n
}

// An array job's replicas run, fail and are retried on their own: the one
// that fails its first attempt is run again alone, and the job succeeds
// once every replica has.
func TestArrayJobRetriesAFailedReplicaAlone(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	j := p.submit(`name: array
queue: acme-train
kind: batch
replicaPolicy: independent
restartPolicy: onFailure
maxRestarts: 1
gangs:
  - replicas: 3
    accelerators: h100
    count: 1
command: [sh, -c, 'echo index $GPUFLEET_ARRAY_INDEX of $GPUFLEET_ARRAY_SIZE attempt $GPUFLEET_ATTEMPT; if [ "$GPUFLEET_ARRAY_INDEX" = 1 ] && [ "$GPUFLEET_ATTEMPT" = 1 ]; then exit 3; fi; sleep 0.5']
`)
	done := p.waitState(j.ID, "succeeded", 30*time.Second)
	attempts := map[int]int{}
	for _, r := range done.Replicas {
		attempts[r.Rank] = max(attempts[r.Rank], r.Attempt)
	}
	if attempts[0] != 1 || attempts[1] != 2 || attempts[2] != 1 {
		t.Errorf("attempts per replica %v, want 1, 2, 1: only the failed one runs again", attempts)
	}
	if log := p.logOf(j.ID, 1, 0); !strings.Contains(log, "index 1 of 3 attempt 2") {
		t.Errorf("replica 1's latest log %q", log)
	}
	raw, _ := json.Marshal(done)
	if done.Restarts != 1 {
		t.Errorf("restarts %d, want 1: %s", done.Restarts, raw)
	}
}
