package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSimFill(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "openb")
	args := []string{"sim", "fill", "--nodes", filepath.Join(dir, "nodes.csv"), "--tasks", filepath.Join(dir, "tasks.csv")}

	var out, errOut bytes.Buffer
	if code := Main(append(args, "--policy", "fgd", "--seed", "7", "--json"), nil, &out, &errOut); code != 0 {
		t.Fatalf("sim fill --json: exit %d: %s", code, errOut.String())
	}
	var got struct {
		Policy        string  `json:"policy"`
		Seed          uint64  `json:"seed"`
		Tune          float64 `json:"tune"`
		TotalGPUMilli int64   `json:"total_gpu_milli"`
		WallSeconds   float64 `json:"wall_seconds"`
		Curve         []struct {
			ArrivedPct   *int     `json:"arrived_pct"`
			AllocatedPct *float64 `json:"allocated_pct"`
		} `json:"curve"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if got.Policy != "fgd" || got.Seed != 7 || got.Tune != 1.3 || got.TotalGPUMilli != 234000 || got.WallSeconds <= 0 {
		t.Errorf("header fields: %+v", got)
	}
	if len(got.Curve) != 131 {
		t.Fatalf("%d curve points, want 131", len(got.Curve))
	}
	for p, pt := range got.Curve {
		if pt.ArrivedPct == nil || *pt.ArrivedPct != p || pt.AllocatedPct == nil {
			t.Fatalf("curve point %d: %+v", p, pt)
		}
	}

	out.Reset()
	if code := Main(args, nil, &out, &errOut); code != 0 {
		t.Fatalf("sim fill: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"policy sfgd, seed 42, tune 1.3", "46 nodes, 234 GPUs", "arrived%  allocated%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSimFillErrors(t *testing.T) {
	nodes := filepath.Join("..", "..", "testdata", "openb", "nodes.csv")
	tests := map[string]struct {
		args []string
		want string
	}{
		"unknown policy": {[]string{"--nodes", nodes, "--tasks", nodes, "--policy", "tetris"},
			`error: --policy: placement policy "tetris": want one of bestfit, clustering, dotprod, fgd, packing, random, sfgd`},
		"missing tasks": {[]string{"--nodes", nodes}, "error: --nodes and --tasks are required"},
		"tasks file is a node list": {[]string{"--nodes", nodes, "--tasks", nodes},
			`error: nodes.csv:1: header "sn,cpu_milli,memory_mib,gpu,model": want the first 5 or more of`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(append([]string{"sim", "fill"}, tc.args...), nil, &out, &errOut)
			if code == 0 {
				t.Fatal("exit 0, want a failure")
			}
			if got := strings.TrimSpace(errOut.String()); !strings.HasPrefix(got, tc.want) {
				t.Errorf("stderr:\n%s\nwant it to start with\n%s", got, tc.want)
			}
			if diff := cmp.Diff("", out.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
		})
	}
}
