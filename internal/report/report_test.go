package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func smallRun(t *testing.T) *sim.Result {
	t.Helper()
	fs := spec.DefaultFleetSpec()
	g, err := sim.NewGenerator(sim.GenConfig{Jobs: 300, Seed: 5, Fleet: fs.Fleet, Queues: spec.DefaultQueues()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sim.Run(sim.Config{}, fs.Fleet, g.Queues(), g)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestWriteDir(t *testing.T) {
	res := smallRun(t)
	dir := filepath.Join(t.TempDir(), "out")
	if err := WriteDir(dir, res); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	var sum sim.Summary
	if err := json.Unmarshal(read(SummaryFile), &sum); err != nil {
		t.Fatalf("%s: %v", SummaryFile, err)
	}
	if sum.Jobs.Total != 300 {
		t.Errorf("%s: %d jobs, want 300", SummaryFile, sum.Jobs.Total)
	}

	rows, err := csv.NewReader(bytes.NewReader(read(JobsFile))).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", JobsFile, err)
	}
	if len(rows) != 301 || rows[0][0] != "id" {
		t.Errorf("%s: %d rows with header %v, want a header and 300 jobs", JobsFile, len(rows), rows[0])
	}
	rows, err = csv.NewReader(bytes.NewReader(read(TimeseriesFile))).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", TimeseriesFile, err)
	}
	if len(rows) != len(res.Samples)+1 {
		t.Errorf("%s: %d rows, want %d samples and a header", TimeseriesFile, len(rows), len(res.Samples))
	}

	html := string(read(IndexFile))
	// The built-in fleet has three accelerator types, so utilization by
	// type is charted too.
	for _, id := range []string{"utilization", "types", "queue", "wait", "tenants"} {
		if !strings.Contains(html, `<figure id="`+id+`">`) {
			t.Errorf("%s: no %s chart", IndexFile, id)
		}
	}
	if n := strings.Count(html, "<svg"); n != 5 {
		t.Errorf("%s: %d inline SVG charts, want 5", IndexFile, n)
	}
	if !strings.Contains(rows[0][len(rows[0])-1], "utilization_") {
		t.Errorf("%s: header %v has no utilization by type", TimeseriesFile, rows[0])
	}
	if strings.Contains(html, "<?xml") || strings.Contains(html, "&lt;svg") {
		t.Errorf("%s: an SVG is not inlined as markup", IndexFile)
	}
	for _, tenant := range []string{"frontier", "helix", "nimbus", "community"} {
		if !strings.Contains(html, tenant) {
			t.Errorf("%s: tenant %s is missing", IndexFile, tenant)
		}
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, smallRun(t)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Simulated 300 jobs on 260 nodes", "utilization", "wait p50 / p95 / p99", "frontier", "energy"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestDuration(t *testing.T) {
	for sec, want := range map[float64]string{0: "0s", 59: "59s", 60: "1m", 5400: "1.5h", 86400 * 2.5: "2.5d"} {
		if got := Duration(sec); got != want {
			t.Errorf("Duration(%v) = %q, want %q", sec, got, want)
		}
	}
}

// A metered run's report charts its carbon per site and per tenant, day by
// day; an unmetered one has no such chart (TestWriteDir counts its five).
func TestCarbonCharts(t *testing.T) {
	res := smallRun(t)
	res.Summary.Carbon = &sim.CarbonSummary{Daily: []sim.CarbonDay{
		{Day: "2020-01-01", ByTenant: map[string]float64{"acme": 12.5}, BySite: map[string]float64{"gb": 10, "gb12": 2.5}},
		{Day: "2020-01-02", ByTenant: map[string]float64{"acme": 7, "globex": 1}, BySite: map[string]float64{"gb": 8}},
	}}
	dir := filepath.Join(t.TempDir(), "out")
	if err := WriteDir(dir, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, id := range []string{"carbon-sites", "carbon-tenants"} {
		if !strings.Contains(html, `<figure id="`+id+`">`) {
			t.Errorf("%s: no %s chart", IndexFile, id)
		}
	}
	for _, name := range []string{"gb12", "globex"} {
		if !strings.Contains(html, ">"+name+"<") {
			t.Errorf("%s: %s is not in a chart's legend", IndexFile, name)
		}
	}
}
