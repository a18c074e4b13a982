package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/report"
	"github.com/gpufleet/gpufleet/internal/sim"
)

// simCLI runs the command line and returns its exit code and output.
func simCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSimGenThenRun(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "w.jsonl")
	code, _, stderr := simCLI(t, "sim", "gen", "--jobs", "300", "--seed", "2", "--tenants", "3", "-o", trace)
	if code != 0 {
		t.Fatalf("sim gen: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "wrote 300 jobs") {
		t.Errorf("sim gen said %q", stderr)
	}
	first := func() []byte {
		code, stdout, stderr := simCLI(t, "sim", "run", "--trace", trace, "--json", "--quiet", "--failures", "0.05")
		if code != 0 {
			t.Fatalf("sim run: exit %d: %s", code, stderr)
		}
		if stderr != "" {
			t.Errorf("--quiet run wrote to standard error: %q", stderr)
		}
		return []byte(stdout)
	}
	a, b := first(), first()
	if !bytes.Equal(a, b) {
		t.Error("two runs of the same trace and seed printed different JSON")
	}
	var s sim.Summary
	if err := json.Unmarshal(a, &s); err != nil {
		t.Fatal(err)
	}
	if s.Jobs.Total != 300 || len(s.Tenants) != 3 {
		t.Errorf("summary has %d jobs and %d tenants, want 300 and 3", s.Jobs.Total, len(s.Tenants))
	}
}

func TestSimRunDefaultsWriteAReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rep")
	code, stdout, stderr := simCLI(t, "sim", "run", "--jobs", "200", "--report", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "Simulated 200 jobs on 260 nodes") {
		t.Errorf("summary:\n%s", stdout)
	}
	if !strings.Contains(stderr, "report written to") {
		t.Errorf("standard error: %q", stderr)
	}
	for _, f := range []string{report.SummaryFile, report.JobsFile, report.TimeseriesFile, report.IndexFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestSimRunHandWrittenTrace(t *testing.T) {
	code, stdout, stderr := simCLI(t, "sim", "run", "--trace", "../../testdata/sim/small.jsonl", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s sim.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	// Four jobs end; the service serves until then.
	if s.Jobs.Finished != 4 || s.Jobs.RunningAtEnd != 1 || s.MakespanSec != 7200 {
		t.Errorf("finished %d, running %d, makespan %d; want 4, 1, 7200", s.Jobs.Finished, s.Jobs.RunningAtEnd, s.MakespanSec)
	}
}

func TestSimRunErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"bad trace line": {
			args: []string{"--trace", "../../testdata/sim/bad.jsonl"},
			want: `bad.jsonl:3:96: unknown field "cout"`,
		},
		"unknown policy": {
			args: []string{"--jobs", "10", "--policy", "tetris"},
			want: `placement stage "tetris": want one of`,
		},
		"missing trace": {
			args: []string{"--trace", "../../testdata/sim/none.jsonl"},
			want: "no such file",
		},
		"jobs with a trace": {
			args: []string{"--trace", "../../testdata/sim/small.jsonl", "--jobs", "5"},
			want: "--jobs and --trace",
		},
		"negative failure rate": {
			args: []string{"--failures", "-1"},
			want: "--failures -1: must not be negative",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := simCLI(t, append([]string{"sim", "run", "--quiet"}, tc.args...)...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, tc.want)
			}
		})
	}
}

func TestSimRunOpenbTimeMode(t *testing.T) {
	code, stdout, stderr := simCLI(t, "sim", "run", "--fleet", "../../testdata/sim/openb-nodes.csv",
		"--trace", "../../testdata/sim/openb-tasks.csv", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s sim.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Jobs.Finished != 4 || s.Nodes != 4 || len(s.Tenants) != 1 || s.Tenants[0].Tenant != "openb" {
		t.Errorf("finished %d on %d nodes, tenants %+v; want 4 on 4 nodes, tenant openb", s.Jobs.Finished, s.Nodes, s.Tenants)
	}
}

func TestSimRunTraceWithItsOwnFleet(t *testing.T) {
	// testdata/sim/nodes.jsonl: n1 at the start, n2 delivered at 600, n1
	// retired at 3600; the header's scheduler uses "spread".
	dir := t.TempDir()
	code, stdout, stderr := simCLI(t, "sim", "run", "--trace", "../../testdata/sim/nodes.jsonl", "--json", "--quiet", "--report", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s sim.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Nodes != 2 || s.Policy != "spread" {
		t.Errorf("summary: %d nodes, policy %q; want the trace's 2 nodes and its scheduler's spread", s.Nodes, s.Policy)
	}
	jobs, err := os.ReadFile(filepath.Join(dir, report.JobsFile))
	if err != nil {
		t.Fatal(err)
	}
	// The gang waits for n2; after n1's retirement the two one-node jobs
	// take turns on n2.
	for _, want := range []string{"gang,acme,acme-train,training,16,0,600,1800,", "after,acme,acme-train,batch,8,4000,4000,4600,", "one,acme,acme-train,batch,8,4000,4600,5200,"} {
		if !strings.Contains(string(jobs), want) {
			t.Errorf("jobs.csv lacks %q:\n%s", want, jobs)
		}
	}
	// A flag overrides the recorded scheduler.
	code, stdout, stderr = simCLI(t, "sim", "run", "--trace", "../../testdata/sim/nodes.jsonl", "--json", "--quiet", "--policy", "bestfit")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Policy != "bestfit" {
		t.Errorf("policy %q with --policy bestfit", s.Policy)
	}
}
