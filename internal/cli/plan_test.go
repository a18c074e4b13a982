package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gpufleet/gpufleet/internal/forecast"
)

// TestPlanScripts runs the planning commands' scripts; they need no
// control plane.
func TestPlanScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/plan"})
}

var m4Sample = filepath.Join("..", "forecast", "testdata", "m4-hourly-sample.csv")

// TestPlanForecastM4 is the command the M4 evaluation runs, on five of
// its series: one line per series, the id and 48 non-negative forecasts.
func TestPlanForecastM4(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"plan", "forecast", "--m4", m4Sample, "--horizon", "48", "-o", "csv"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got, err := forecast.ParseSeries(out.Bytes(), "stdout")
	if err != nil {
		t.Fatalf("output is not a series file: %v\n%s", err, out.String())
	}
	var ids []string
	for _, s := range got {
		ids = append(ids, s.ID)
		if len(s.Values) != 48 {
			t.Errorf("%s: %d forecasts, want 48", s.ID, len(s.Values))
		}
		for _, v := range s.Values {
			if v < 0 {
				t.Errorf("%s: forecast %g below zero", s.ID, v)
			}
		}
	}
	if diff := cmp.Diff([]string{"H1", "H75", "H130", "H253", "H272"}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Errorf("%d lines, want one per series", n)
	}
	// The command forecasts what the package does.
	data, _ := forecast.ParseM4(mustRead(t, m4Sample), "sample")
	f, err := forecast.Run(forecast.Combination(), data[0].Values, forecast.Options{Horizon: 48, Season: 24, Level: 0.95})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.Point, got[0].Values); diff != "" {
		t.Errorf("H1 (-package +command):\n%s", diff)
	}
}

func TestPlanBacktestJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"plan", "forecast", "--m4", m4Sample, "--backtest", "--origins", "2", "-o", "json"}
	if code := Main(args, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got struct {
		Horizon, Season, Origins int
		Methods                  []struct {
			Method    string
			Forecasts int
			OWA       *float64 `json:"owa_snaive"`
			OWANaive2 *float64 `json:"owa_naive2"`
			Coverage  float64
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got.Horizon != 48 || got.Season != 24 || got.Origins != 2 {
		t.Errorf("options: %+v", got)
	}
	var names []string
	for _, m := range got.Methods {
		names = append(names, m.Method)
		if m.Forecasts != 10 || m.OWA == nil || m.OWANaive2 == nil || m.Coverage <= 0 || m.Coverage > 1 {
			t.Errorf("%s: %d forecasts, OWA %v / %v, coverage %v", m.Method, m.Forecasts, m.OWA, m.OWANaive2, m.Coverage)
		}
		if m.Method == "snaive" && *m.OWA != 1 || m.Method == "naive2" && *m.OWANaive2 != 1 {
			t.Errorf("%s against itself: OWA %v / %v, want 1", m.Method, *m.OWA, *m.OWANaive2)
		}
	}
	if diff := cmp.Diff(forecast.Names(), names); diff != "" {
		t.Errorf("methods (-want +got):\n%s", diff)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
