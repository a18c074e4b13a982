package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
)

const smiUtilDir = "../../testdata/nvidia-smi/utilization"

func TestParseNvidiaSMIUtilization(t *testing.T) {
	capture := func(name string) string {
		b, err := os.ReadFile(filepath.Join(smiUtilDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	u := func(d, p int) api.DeviceUtilization { return api.DeviceUtilization{Device: d, Percent: p} }
	tests := map[string]struct {
		in   string
		want []api.DeviceUtilization
		err  string
	}{
		"eight devices":      {in: capture("h100-8x.txt"), want: []api.DeviceUtilization{u(0, 97), u(1, 97), u(2, 96), u(3, 98), u(4, 0), u(5, 0), u(6, 41), u(7, 100)}},
		"no figure":          {in: capture("na.txt"), want: []api.DeviceUtilization{u(1, 12)}},
		"driver down":        {in: capture("driver-down.txt"), err: "nvidia-smi line 1 \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Ma...\": want 2 comma-separated fields (index, utilization.gpu), got 1"},
		"out of order":       {in: "1, 5\n\n0, 7 %\n", want: []api.DeviceUtilization{u(0, 7), u(1, 5)}},
		"empty":              {in: ""},
		"over 100":           {in: "0, 101\n", err: `nvidia-smi line 1: utilization.gpu "101": want a percentage 0..100`},
		"negative":           {in: "0, -1\n", err: `nvidia-smi line 1: utilization.gpu "-1": want a percentage 0..100`},
		"index twice":        {in: "0, 1\n0, 2\n", err: "nvidia-smi line 2: index 0 listed twice"},
		"index too high":     {in: "64, 1\n", err: `nvidia-smi line 1: index "64": want an integer 0..63`},
		"memory columns too": {in: "0, 50, 81559\n", err: "nvidia-smi line 1 \"0, 50, 81559\": want 2 comma-separated fields (index, utilization.gpu), got 3"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseNvidiaSMIUtilization([]byte(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseNvidiaSMIUtilization(f *testing.F) {
	captures, _ := filepath.Glob(filepath.Join(smiUtilDir, "*.txt"))
	for _, c := range captures {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("0, 50\n1,[Not Supported]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		us, err := ParseNvidiaSMIUtilization(in)
		if err != nil {
			if us != nil {
				t.Errorf("error %v with %d readings", err, len(us))
			}
			return
		}
		seen := map[int]bool{}
		for i, u := range us {
			if u.Device < 0 || u.Device > api.MaxUtilDevice || u.Percent < 0 || u.Percent > 100 || seen[u.Device] || (i > 0 && us[i-1].Device > u.Device) {
				t.Fatalf("reading %+v of %+v: out of range, repeated or out of order", u, us)
			}
			seen[u.Device] = true
		}
	})
}

// The reader runs nvidia-smi with the utilization query at most once every
// UtilizationEvery and returns nothing in between.
func TestNvidiaSMIUtilizationReadsEvery(t *testing.T) {
	dir := t.TempDir()
	// LookPath needs an nvidia-smi on PATH; the runner never executes it.
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	calls := 0
	run := func(_ context.Context, name string, args ...string) ([]byte, error) {
		calls++
		if filepath.Base(name) != "nvidia-smi" || strings.Join(args, " ") != strings.Join(NvidiaSMIUtilizationArgs, " ") {
			t.Errorf("ran %s %v", name, args)
		}
		return []byte("0, 30\n1, 60\n"), nil
	}
	read := NvidiaSMIUtilization(run)
	t0 := time.Unix(1_800_000_000, 0)
	for _, step := range []struct {
		at    time.Duration
		want  int // readings returned
		calls int
	}{{0, 2, 1}, {time.Second, 0, 1}, {UtilizationEvery - time.Millisecond, 0, 1}, {UtilizationEvery, 2, 2}, {UtilizationEvery + time.Second, 0, 2}} {
		us, err := read(context.Background(), t0.Add(step.at))
		if err != nil || len(us) != step.want || calls != step.calls {
			t.Errorf("at +%s: %d readings (%v), %d calls; want %d readings, %d calls", step.at, len(us), err, calls, step.want, step.calls)
		}
	}
}

// An agent with a utilization reader sends its readings with the heartbeat.
func TestHeartbeatCarriesUtilization(t *testing.T) {
	f := newFakeServer(t)
	cfg := testConfig(t, f, t.TempDir())
	want := []api.DeviceUtilization{{Device: 0, Percent: 35}, {Device: 3, Percent: 90}}
	cfg.Utilization = func(context.Context, time.Time) ([]api.DeviceUtilization, error) { return want, nil }
	startAgent(t, cfg)
	f.waitFor("a heartbeat with readings", 5*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return cmp.Equal(f.utilization, want)
	})
}
