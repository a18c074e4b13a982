package e2e

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/sim"
)

// twinJob is a job of real processes whose runtime does not depend on
// where it runs: each replica sleeps.
func twinJob(name string, replicas, count int, sleep string) string {
	return fmt.Sprintf(`name: %s
queue: acme-train
kind: batch
gangs:
  - replicas: %d
    accelerators: h100
    count: %d
command: [sleep, "%s"]
`, name, replicas, count, sleep)
}

// TestDigitalTwinReplaysTheLiveStarts runs a live workload of real
// processes that queue behind each other on two nodes, exports the
// fleet's history, and replays it with sim run: with the same policy and
// fleet, every job starts within one scheduling cycle (the live loop's
// tick, a second) of when it started live. A replay on a fleet of four
// nodes with twice the quota then answers what would have happened with
// more: less than half the waiting.
func TestDigitalTwinReplaysTheLiveStarts(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	p.startAgent("n2")
	// A gang takes both nodes; the rest queue behind it and each other.
	var ids []string
	for _, j := range []string{
		twinJob("gang", 2, 8, "3"),
		twinJob("a", 1, 8, "2"),
		twinJob("b", 1, 8, "4"),
		twinJob("c", 1, 4, "2"),
		twinJob("d", 1, 4, "3"),
		twinJob("e", 2, 8, "1"),
		twinJob("f", 1, 2, "2"),
	} {
		ids = append(ids, p.submit(j).ID)
	}
	// A job submitted a little later, once the queue has moved.
	time.Sleep(1500 * time.Millisecond)
	ids = append(ids, p.submit(twinJob("late", 1, 8, "1")).ID)
	for _, id := range ids {
		p.waitState(id, "succeeded", 60*time.Second)
	}

	dir := t.TempDir()
	trace := filepath.Join(dir, "twin.jsonl")
	cmd := exec.Command(bin, "export", "--server", p.url, "--token", p.token, "-o", trace)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	observed := observedStarts(t, trace)
	if len(observed) != len(ids) {
		t.Fatalf("the trace holds %d jobs, want %d", len(observed), len(ids))
	}

	// The replay: the trace's fleet and scheduler, a cycle every second.
	replayed := replayWith(t, dir, "replay", "--trace", trace)
	waited := 0
	for _, id := range ids {
		live, ok := observed[id]
		if !ok {
			t.Errorf("job %s is not in the trace", id)
			continue
		}
		got, ok := replayed[id]
		if !ok {
			t.Errorf("job %s is not in the replay", id)
			continue
		}
		if d := got.start - live.start; d < -1 || d > 1 {
			t.Errorf("job %s: replay starts at %d s, live at %d s: more than one cycle (1 s) apart", id, got.start, live.start)
		}
		if live.start > live.arrival+1 {
			waited++
		}
	}
	if waited < 4 {
		t.Errorf("only %d jobs waited live: the workload should queue", waited)
	}
	if t.Failed() {
		data, _ := os.ReadFile(trace)
		t.Logf("trace:\n%s", data)
	}

	// What if the fleet had had four nodes, and the queue twice the
	// quota? The gangs no longer hold the rest up.
	fleetFile := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(fleetFile, []byte("kind: fleet\ngenerate:\n  - {region: default, zone: default, block: default, racks: 4, nodes: 1, accelerators: 8xh100, cpu: 8, memory: 8Gi}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	queues := filepath.Join(dir, "queues.yaml")
	if err := os.WriteFile(queues, []byte("kind: queues\ntenants:\n  - name: acme\n    quotas: {h100: 32}\n    queues:\n      - {name: acme-train, quotas: {h100: 32}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wider := replayWith(t, dir, "wider", "--trace", trace, "--fleet", fleetFile, "--queues", queues)
	sum := func(rs map[string]startAt) (w int64) {
		for _, r := range rs {
			w += r.start - r.arrival
		}
		return w
	}
	if a, b := sum(replayed), sum(wider); b >= a/2 {
		t.Errorf("four nodes and twice the quota: %d s of waiting in all, want less than half the %d s on two", b, a)
	}
}

// replayWith runs sim run with args and a cycle a second, and reads the
// starts of its jobs.
func replayWith(t *testing.T, dir, name string, args ...string) map[string]startAt {
	t.Helper()
	rep := filepath.Join(dir, name)
	cmd := exec.Command(bin, append(append([]string{"sim", "run"}, args...), "--cycle", "1", "--quiet", "--report", rep)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sim run %v: %v\n%s", args, err, out)
	}
	return replayStarts(t, filepath.Join(rep, "jobs.csv"))
}

type startAt struct{ arrival, start int64 }

// observedStarts reads the live starts the export recorded.
func observedStarts(t *testing.T, path string) map[string]startAt {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r := sim.NewTraceReader(path, fh)
	out := map[string]startAt{}
	for {
		j, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if j.Observed == nil || j.Observed.Start == nil || j.Observed.Outcome != "succeeded" {
			t.Fatalf("job %s: observed %+v, want a start and success", j.ID, j.Observed)
		}
		out[string(j.ID)] = startAt{arrival: j.Arrival, start: *j.Observed.Start}
	}
}

// replayStarts reads the starts of a replay's jobs.csv.
func replayStarts(t *testing.T, path string) map[string]startAt {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	out := map[string]startAt{}
	for _, row := range rows[1:] {
		if row[col["status"]] != "finished" {
			t.Errorf("replayed job %s: %s (%s)", row[col["id"]], row[col["status"]], strings.TrimSpace(row[col["reason"]]))
		}
		arr, _ := strconv.ParseInt(row[col["arrival"]], 10, 64)
		start, _ := strconv.ParseInt(row[col["start"]], 10, 64)
		out[row[col["id"]]] = startAt{arrival: arr, start: start}
	}
	return out
}
