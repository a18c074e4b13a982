package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/testscript"
)

// serveTraces holds the trace slices the serving simulator's own tests use.
var serveTraces = filepath.Join("..", "sim", "serve", "testdata")

// TestSimServeScripts runs the command-line scripts of sim serve; $TRACES
// names the directory of the trace slices.
func TestSimServeScripts(t *testing.T) {
	dir, err := filepath.Abs(serveTraces)
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "serve"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("TRACES", dir)
			return nil
		},
	})
}

// TestSimServeJSON checks the JSON object's keys for every policy, and
// that the same inputs give byte-identical output.
func TestSimServeJSON(t *testing.T) {
	trace := filepath.Join(serveTraces, "azure_conv_400.csv")
	want := []string{
		"accelerator", "cold_start_p50_s", "cold_start_p99_s", "cold_starts", "dropped", "duration_s",
		"gpu_hours", "killed_starting", "loading_gpu_hours", "met", "peak_replicas", "policy", "profile",
		"replicas_by_minute", "requests", "service", "slo_attainment_pct", "slo_ttft_s", "target_met",
		"target_pct", "ttft_p50_s", "ttft_p99_s",
	}
	for _, policy := range []string{"gpufleet", "kpa", "static", "oracle"} {
		run := func() []byte {
			var out, errOut bytes.Buffer
			if code := Main([]string{"sim", "serve", "--requests", trace, "--policy", policy, "--json"}, nil, &out, &errOut); code != 0 {
				t.Fatalf("%s: exit %d: %s", policy, code, errOut.String())
			}
			return out.Bytes()
		}
		first := run()
		var got map[string]any
		if err := json.Unmarshal(first, &got); err != nil {
			t.Fatalf("%s: not one JSON object: %v\n%s", policy, err, first)
		}
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		wantKeys := want
		if policy == "static" {
			wantKeys = append(slices.Clone(want), "static_replicas")
			slices.Sort(wantKeys)
		}
		if diff := cmp.Diff(wantKeys, keys); diff != "" {
			t.Errorf("%s: keys (-want +got):\n%s", policy, diff)
		}
		if got["policy"] != policy || got["requests"] != float64(400) {
			t.Errorf("%s: policy %v, requests %v", policy, got["policy"], got["requests"])
		}
		if pct, ok := got["slo_attainment_pct"].(float64); !ok || pct < 0 || pct > 100 {
			t.Errorf("%s: slo_attainment_pct %v", policy, got["slo_attainment_pct"])
		}
		if second := run(); !bytes.Equal(first, second) {
			t.Errorf("%s: two runs printed different output:\n%s\n%s", policy, first, second)
		}
	}
}
