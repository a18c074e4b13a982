package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/sim"
)

var updatePlan = flag.Bool("update-plan", false, "rewrite the worked example's golden output (testdata/plan-example.txt)")

// TestPlanWorkedExample runs docs/PLANNING.md's worked example and checks
// its output against the golden file, and that the document shows that
// output as it is.
func TestPlanWorkedExample(t *testing.T) {
	if testing.Short() {
		t.Skip("replays half a year")
	}
	root := filepath.Join("..", "..")
	args := []string{"plan", "--history", filepath.Join(root, "examples", "plan", "demand.csv"), "--step", "24h",
		"--fleet", filepath.Join(root, "examples", "plan", "fleet.yaml"), "--catalog", filepath.Join(root, "examples", "plan", "catalog-lab.yaml"),
		"--horizon", "26w", "--quiet"}
	code, stdout, stderr := simCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden := filepath.Join("testdata", "plan-example.txt")
	if *updatePlan {
		if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Errorf("output differs from %s (rerun with -update-plan and review the diff):\n%s", golden, stdout)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "PLANNING.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "    " + l
		}
	}
	indented := strings.Join(lines, "\n")
	if !strings.Contains(string(doc), indented) {
		t.Errorf("docs/PLANNING.md does not show the worked example's output as the command prints it; put this in, indented by four spaces:\n%s", indented)
	}
}

// writeHistoryTrace writes a native trace of three weeks: a training job
// of one node for two hours every three hours, on a fleet of two nodes it
// brings along.
func writeHistoryTrace(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	w := sim.NewTraceWriter(fh)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Header(sim.Header{Source: "test"}))
	must(w.Queue(quota.Spec{Name: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 16000}}}))
	must(w.Queue(quota.Spec{Name: "acme-q", Parent: "acme"}))
	for i := range 21 * 8 {
		j := sim.Job{Arrival: int64(i) * 3 * 3600, Duration: 7200, Job: sched.Job{ID: sched.JobID(fmt.Sprintf("j%d", i)), Queue: "acme-q",
			Kind: sched.Training, Gangs: []sched.Gang{{Replicas: 1, Shape: place.Request{Accel: []string{"h100"}, Devices: 8}}}}}
		must(w.Job(&j))
	}
	must(w.Flush())
}

// TestPlanReadsJobsAndTraces makes plans from a native trace and from the
// jobs.csv its replay writes: both see acme's training on H100 (the
// jobs.csv names no type, but the fleet and catalog have one).
func TestPlanReadsJobsAndTraces(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "history.jsonl")
	writeHistoryTrace(t, trace)
	fleetFile := filepath.Join(dir, "fleet.yaml")
	catalog := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(fleetFile, []byte("kind: fleet\nnodes:\n  - {name: n1, path: lab/z1/b1/r1, accelerators: 8xh100, cpu: 96, memory: 1Ti}\n  - {name: n2, path: lab/z1/b1/r1, accelerators: 8xh100, cpu: 96, memory: 1Ti}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(catalog, []byte("kind: catalog\nmodels:\n  - {name: m, accelerators: 8xh100, cpu: 96, memory: 1Ti, price: 1, powerKW: 10, leadTimeWeeks: 2}\nsites: [{name: lab/z1}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(dir, "rep")
	if code, _, stderr := simCLI(t, "sim", "run", "--trace", trace, "--fleet", fleetFile, "--quiet", "--report", rep); code != 0 {
		t.Fatalf("sim run: exit %d: %s", code, stderr)
	}
	for _, history := range []string{trace, filepath.Join(rep, "jobs.csv")} {
		code, stdout, stderr := simCLI(t, "plan", "--history", history, "--fleet", fleetFile, "--catalog", catalog, "--horizon", "3w", "--quiet")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", history, code, stderr)
		}
		// 16 accelerator-hours every 3 hours: 5.3 accelerators busy.
		if !strings.Contains(stdout, "\nacme/training/h100                          5.3 ") {
			t.Errorf("%s: the plan does not show acme's training on h100 at 5.3 busy:\n%s", history, stdout)
		}
		// The last arrival is 3 hours short of three weeks: two full weeks,
		// the rest left out.
		if !strings.Contains(stdout, "2 weeks of history") || !strings.Contains(stdout, "note: the last 166 steps of history") {
			t.Errorf("%s: history weeks:\n%s", history, stdout)
		}
	}
	code, _, stderr := simCLI(t, "plan", "--history", trace, "--step", "1h", "--fleet", fleetFile, "--catalog", catalog)
	if code == 0 || !strings.Contains(stderr, "--step goes with a series file") {
		t.Errorf("--step with a trace: exit %d, %s", code, stderr)
	}
}
