package agent

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the .golden files under testdata/nvidia-smi")

// smiDir holds nvidia-smi captures (NAME.txt) beside what the agent makes of
// them (NAME.golden), written by -rewrite and reviewed as a diff.
const smiDir = "../../testdata/nvidia-smi"

type smiGolden struct {
	GPUs  []GPU  `json:"gpus,omitempty"`
	Accel string `json:"accel,omitempty"`
	Count int    `json:"count"`
	Error string `json:"error,omitempty"`
}

func parseCapture(b []byte) smiGolden {
	var g smiGolden
	gpus, err := ParseNvidiaSMI(b)
	if err != nil {
		g.Error = err.Error()
		return g
	}
	g.GPUs = gpus
	g.Accel, g.Count, err = inventoryFromGPUs(gpus)
	if err != nil {
		g.Error = err.Error()
	}
	return g
}

func TestParseNvidiaSMICaptures(t *testing.T) {
	captures, err := filepath.Glob(filepath.Join(smiDir, "*.txt"))
	if err != nil || len(captures) == 0 {
		t.Fatalf("no captures under %s: %v", smiDir, err)
	}
	for _, capture := range captures {
		name := strings.TrimSuffix(filepath.Base(capture), ".txt")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(capture)
			if err != nil {
				t.Fatal(err)
			}
			got := parseCapture(in)
			golden := strings.TrimSuffix(capture, ".txt") + ".golden"
			if *rewrite {
				b, _ := json.MarshalIndent(got, "", "  ")
				if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestParseNvidiaSMICaptures -rewrite and review the diff)", err)
			}
			var want smiGolden
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("parse %s (-want +got):\n%s", capture, diff)
			}
		})
	}
}

func TestAccelName(t *testing.T) {
	tests := map[string]string{
		"NVIDIA H100 80GB HBM3":   "h100",
		"NVIDIA H100 PCIe":        "h100",
		"NVIDIA H100 NVL":         "h100",
		"NVIDIA H200":             "h200",
		"NVIDIA H200 NVL":         "h200",
		"NVIDIA B200":             "b200",
		"NVIDIA GB200":            "gb200",
		"NVIDIA A100-SXM4-80GB":   "a100",
		"NVIDIA A100 80GB PCIe":   "a100",
		"NVIDIA L40S":             "l40s",
		"NVIDIA L40":              "l40",
		"NVIDIA H800":             "h800",
		"Tesla V100-SXM2-32GB":    "tesla-v100-sxm2-32gb",
		"NVIDIA GeForce RTX 4090": "geforce-rtx-4090",
		"NVIDIA":                  "unknown",
		"  ":                      "unknown",
	}
	for in, want := range tests {
		if got := AccelName(in); got != want {
			t.Errorf("AccelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseNvidiaSMI(f *testing.F) {
	captures, _ := filepath.Glob(filepath.Join(smiDir, "*.txt"))
	for _, c := range captures {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("0, a, b, c, 1, GPU-x\n"))
	f.Add([]byte("0,,1,GPU\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		gpus, err := ParseNvidiaSMI(in)
		if err != nil {
			if gpus != nil {
				t.Errorf("error %v with %d GPUs", err, len(gpus))
			}
			return
		}
		seen := map[int]bool{}
		for i, g := range gpus {
			if g.Name == "" || g.UUID == "" || g.Accel == "" || g.MemoryMiB < 0 || g.Index < 0 {
				t.Errorf("GPU %d = %+v: empty or negative field", i, g)
			}
			if seen[g.Index] {
				t.Errorf("index %d twice", g.Index)
			}
			seen[g.Index] = true
			if i > 0 && gpus[i-1].Index >= g.Index {
				t.Errorf("GPUs not sorted by index: %d then %d", gpus[i-1].Index, g.Index)
			}
		}
		if strings.Count(string(in), "\n")+1 < len(gpus) {
			t.Errorf("%d GPUs from %d lines", len(gpus), strings.Count(string(in), "\n")+1)
		}
	})
}

// fakeSMI puts an nvidia-smi on PATH that prints a capture and exits with
// the given code, and checks that the agent passes the expected arguments.
func fakeSMI(t *testing.T, capture string, code int) {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"[ \"$*\" = \"" + strings.Join(NvidiaSMIArgs, " ") + "\" ] || { echo \"unexpected arguments: $*\" >&2; exit 2; }\n"
	if capture != "" {
		script += "cat '" + filepath.Join(mustAbs(t, smiDir), capture) + "'\n"
	}
	script += "exit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDiscover(t *testing.T) {
	tests := map[string]struct {
		capture string
		code    int
		noSMI   bool
		given   Inventory
		want    Inventory
		wantErr string
	}{
		"8 h100 found":          {capture: "h100-sxm-8x.txt", want: Inventory{Accel: "h100", Count: 8, CPUMilli: 4000, MemoryMiB: 1024}},
		"no nvidia-smi":         {noSMI: true, want: Inventory{CPUMilli: 4000, MemoryMiB: 1024}},
		"given wins":            {capture: "h100-sxm-8x.txt", given: Inventory{Accel: "b200", Count: 4}, want: Inventory{Accel: "b200", Count: 4, CPUMilli: 4000, MemoryMiB: 1024}},
		"none skips the probe":  {capture: "driver-down.txt", code: 9, given: Inventory{Accel: "none"}, want: Inventory{CPUMilli: 4000, MemoryMiB: 1024}},
		"given cpu and memory":  {noSMI: true, given: Inventory{CPUMilli: 500, MemoryMiB: 7}, want: Inventory{CPUMilli: 500, MemoryMiB: 7}},
		"driver down":           {capture: "driver-down.txt", code: 9, wantErr: "couldn't communicate with the NVIDIA driver"},
		"mixed types":           {capture: "mixed.txt", wantErr: "mixed accelerator types (1 x a100, 1 x h100)"},
		"no devices, exit 6":    {capture: "no-devices.txt", code: 6, wantErr: "No devices were found"},
		"no devices, exit zero": {capture: "no-devices.txt", wantErr: "want 4 comma-separated fields"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.noSMI {
				t.Setenv("PATH", t.TempDir())
			} else {
				fakeSMI(t, tc.capture, tc.code)
			}
			given := tc.given
			// Fix CPU and memory where the case does not set them so that
			// the result does not depend on the machine; the OS probes have
			// their own test.
			if given.CPUMilli == 0 {
				given.CPUMilli = 4000
			}
			if given.MemoryMiB == 0 {
				given.MemoryMiB = 1024
			}
			got, err := Discover(context.Background(), given, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Discover: error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.GPUs = nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Discover (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiscoverOSProbes(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	got, err := Discover(context.Background(), Inventory{}, nil)
	if _, statErr := os.Stat("/proc/meminfo"); errors.Is(statErr, os.ErrNotExist) {
		if err == nil {
			t.Fatal("Discover without /proc/meminfo: want an error asking for --memory")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUMilli < 1000 || got.MemoryMiB < 1 || got.Count != 0 || got.Accel != "" {
		t.Errorf("Discover on a machine without nvidia-smi = %+v: want CPU-only with CPUs and memory", got)
	}
}

// TestDiscoverRealNvidiaSMI runs only where nvidia-smi is installed: the
// parser must take what the real tool prints.
func TestDiscoverRealNvidiaSMI(t *testing.T) {
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		t.Skip("nvidia-smi is not on PATH")
	}
	gpus, err := DiscoverGPUs(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) == 0 {
		t.Fatal("nvidia-smi is installed but lists no GPU")
	}
	for _, g := range gpus {
		t.Logf("GPU %d: %q -> %s, %d MiB, %s", g.Index, g.Name, g.Accel, g.MemoryMiB, g.UUID)
	}
}

func TestParseMemTotal(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    int64
		wantErr bool
	}{
		"typical":  {in: "MemTotal:       24683852 kB\nMemFree:         1000 kB\n", want: 24105},
		"not kB":   {in: "MemTotal: 5 MB\n", wantErr: true},
		"missing":  {in: "MemFree: 1 kB\n", wantErr: true},
		"garbage":  {in: "MemTotal: x kB\n", wantErr: true},
		"negative": {in: "MemTotal: -4 kB\n", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseMemTotal([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseMemTotal = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
