// Package report turns a simulation's results into what people and
// programs read: a terminal summary, JSON, CSV files and a self-contained
// HTML page with SVG charts. Charting lives here and nowhere else.
package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/sim"
)

// Files written by WriteDir.
const (
	SummaryFile    = "summary.json"
	JobsFile       = "jobs.csv"
	TimeseriesFile = "timeseries.csv"
	IndexFile      = "index.html"
)

// WriteDir writes summary.json, jobs.csv, timeseries.csv and index.html
// into dir, creating it if needed.
func WriteDir(dir string, res *sim.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer, *sim.Result) error
	}{
		{SummaryFile, WriteJSON},
		{JobsFile, WriteJobsCSV},
		{TimeseriesFile, WriteTimeseriesCSV},
		{IndexFile, WriteHTML},
		{CarbonFile, WriteCarbonCSV},
	} {
		if f.name == CarbonFile && res.Summary.Carbon == nil {
			continue
		}
		if err := writeFile(filepath.Join(dir, f.name), func(w io.Writer) error { return f.write(w, res) }); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	bw := bufio.NewWriterSize(fh, 1<<16)
	if err := write(bw); err != nil {
		fh.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		fh.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes the summary as indented JSON.
func WriteJSON(w io.Writer, res *sim.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res.Summary)
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// WriteJobsCSV writes one row per job.
func WriteJobsCSV(w io.Writer, res *sim.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "tenant", "queue", "kind", "accels", "arrival", "start", "end", "wait", "status",
		"preemptions", "requeues", "accel_hours", "lost_accel_hours", "reason"}); err != nil {
		return err
	}
	for i := range res.Jobs {
		j := &res.Jobs[i]
		if err := cw.Write([]string{j.ID, j.Tenant, j.Queue, j.Kind, ftoa(j.Accels),
			strconv.FormatInt(j.Arrival, 10), strconv.FormatInt(j.Start, 10), strconv.FormatInt(j.End, 10),
			strconv.FormatInt(j.Wait, 10), j.Status, strconv.Itoa(j.Preemptions), strconv.Itoa(j.Requeues),
			ftoa(j.AccelHours), ftoa(j.LostAccelHours), j.Reason}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTimeseriesCSV writes one row per sample.
func WriteTimeseriesCSV(w io.Writer, res *sim.Result) error {
	cw := csv.NewWriter(w)
	// One utilization column per accelerator type after the fixed ones,
	// when the fleet has several.
	types := slices.Sorted(maps.Keys(res.Summary.UtilizationByType))
	if len(types) < 2 {
		types = nil
	}
	header := []string{"t", "hours", "utilization", "fragmentation", "pending", "running", "busy_accels", "capacity_accels", "power_kw"}
	for _, t := range types {
		header = append(header, "utilization_"+t)
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, s := range res.Samples {
		hours := float64(s.T-res.Summary.Start) / 3600
		row := []string{strconv.FormatInt(s.T, 10), strconv.FormatFloat(hours, 'f', 4, 64),
			ftoa(s.Utilization), ftoa(s.Fragmentation), strconv.Itoa(s.Pending), strconv.Itoa(s.Running),
			ftoa(s.BusyAccels), ftoa(s.CapacityAccels), ftoa(s.PowerKW)}
		for _, t := range types {
			row = append(row, ftoa(s.UtilizationByType[t]))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Duration renders seconds for people: 0s, 45s, 12m, 3.4h, 2.1d.
func Duration(sec float64) string {
	switch {
	case sec < 60:
		return fmt.Sprintf("%.0fs", sec)
	case sec < 3600:
		return fmt.Sprintf("%.0fm", sec/60)
	case sec < 86400:
		return fmt.Sprintf("%.1fh", sec/3600)
	}
	return fmt.Sprintf("%.1fd", sec/86400)
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

func accelText(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool {
		if m[names[a]] != m[names[b]] {
			return m[names[a]] > m[names[b]]
		}
		return names[a] < names[b]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%d %s", m[n], n)
	}
	return strings.Join(parts, ", ")
}

// byTypeText lists utilization by accelerator type, by name.
func byTypeText(m map[string]float64) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, n+" "+pct(m[n]))
	}
	return strings.Join(parts, ", ")
}

func distText(d sim.Dist) string {
	if d.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s", Duration(d.P50), Duration(d.P95), Duration(d.P99))
}

// WriteText writes the summary people read on a terminal.
func WriteText(w io.Writer, res *sim.Result) error {
	s := &res.Summary
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("Simulated %d jobs on %d nodes (%s)\n", s.Jobs.Total, s.Nodes, accelText(s.Accelerators))
	p("policy        %s\n", s.Policy)
	p("makespan      %s of virtual time\n", Duration(float64(s.MakespanSec)))
	p("jobs          %d finished, %d timed out, %d rejected, %d running and %d pending at the end\n",
		s.Jobs.Finished, s.Jobs.TimedOut, s.Jobs.Rejected, s.Jobs.RunningAtEnd, s.Jobs.PendingAtEnd)
	p("utilization   %s of available accelerator-time; fragmentation of free capacity %s\n", pct(s.Utilization), pct(s.Fragmentation))
	if len(s.UtilizationByType) > 1 {
		p("by type       %s\n", byTypeText(s.UtilizationByType))
	}
	p("\n%-14s %-26s %s\n", "", "wait p50 / p95 / p99", "completion p50 / p95 / p99")
	p("%-14s %-26s %s\n", "all", distText(s.Wait.All), distText(s.Completion.All))
	for _, k := range kindsPresent(res) {
		p("%-14s %-26s %s\n", k, distText(s.Wait.ByKind[k]), distText(s.Completion.ByKind[k]))
	}
	p("\n%-14s %12s %12s %16s\n", "tenant", "entitlement", "share used", "accelerator-h")
	for _, t := range s.Tenants {
		p("%-14s %12s %12s %16.0f\n", t.Tenant, pct(t.Entitlement), pct(t.Share), t.AccelHours)
	}
	p("\npreemptions   %d (work lost: %.0f accelerator-hours), shrinks %d, requeues %d\n",
		s.Preemptions, s.LostAccelHoursPreemption, s.Shrinks, s.Requeues)
	if s.NodeFailures > 0 {
		p("node failures %d, requeuing %d jobs (work lost: %.0f accelerator-hours)\n", s.NodeFailures, s.FailureRequeues, s.LostAccelHoursFailure)
	}
	p("energy        %.0f kWh at the meter (%.0f kWh IT) for %.0f accelerator-hours\n", s.EnergyKWh, s.ITEnergyKWh, s.AccelHours)
	accountText(p, s.Accounting)
	if c := s.Carbon; c != nil {
		writeCarbonText(p, c, s.Suspensions)
	}
	return bw.Flush()
}

// writeCarbonText is the carbon section of a metered run.
func writeCarbonText(p func(string, ...any), c *sim.CarbonSummary, suspensions int64) {
	p("\ncarbon        %.1f kg CO2 for %.0f kWh of the jobs' energy at the meter (%.0f kWh IT)\n", c.CarbonKg, c.FacilityKWh, c.EnergyKWh)
	if c.Unaware != nil {
		p("              %.1f kg without carbon-aware scheduling: %.2f%% saved", c.Unaware.CarbonKg, c.SavingPct)
		if suspensions > 0 {
			p(" (%d suspensions)", suspensions)
		}
		p("\n")
	}
	p("\n%-14s %14s %14s\n", "tenant", "kg CO2", "kWh")
	for _, l := range c.ByTenant {
		p("%-14s %14.1f %14.0f\n", l.Name, l.CarbonKg, l.FacilityKWh)
	}
	p("\n%-14s %14s %14s\n", "site", "kg CO2", "kWh")
	for _, l := range c.BySite {
		p("%-14s %14.1f %14.0f\n", l.Name, l.CarbonKg, l.FacilityKWh)
	}
	for _, w := range c.Warnings {
		p("note: %s\n", w)
	}
}

// CarbonFile is written by WriteDir for a metered run: kg CO2 per day,
// tenant and site.
const CarbonFile = "carbon.csv"

// WriteCarbonCSV writes one row per day and tenant, and per day and site,
// of a metered run's carbon.
func WriteCarbonCSV(w io.Writer, res *sim.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"day", "by", "name", "kg_co2"}); err != nil {
		return err
	}
	c := res.Summary.Carbon
	if c == nil {
		cw.Flush()
		return cw.Error()
	}
	for _, d := range c.Daily {
		for _, part := range []struct {
			by string
			m  map[string]float64
		}{{"tenant", d.ByTenant}, {"site", d.BySite}} {
			for _, n := range slices.Sorted(maps.Keys(part.m)) {
				if err := cw.Write([]string{d.Day, part.by, n, ftoa(part.m[n])}); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// chart is one rendered chart of the HTML report.
type chart struct {
	ID, Title string
	SVG       string
}

type row struct {
	Name string
	Wait sim.Dist
	Done sim.Dist
}

type page struct {
	S      *sim.Summary
	Charts []struct {
		ID, Title string
		SVG       template.HTML
	}
	Text  string
	Kinds []row
	Tens  []row
	// Account is the accounting section (generated here, not user input).
	Account template.HTML
}

// WriteHTML writes a self-contained page: the summary, percentile tables
// and inline SVG charts.
func WriteHTML(w io.Writer, res *sim.Result) error {
	cs, err := charts(res)
	if err != nil {
		return err
	}
	var text strings.Builder
	if err := WriteText(&text, res); err != nil {
		return err
	}
	pg := page{S: &res.Summary, Text: text.String(), Account: template.HTML(accountHTML(res.Summary.Accounting))}
	for _, c := range cs {
		pg.Charts = append(pg.Charts, struct {
			ID, Title string
			SVG       template.HTML
		}{c.ID, c.Title, template.HTML(c.SVG)}) // generated here, not user input
	}
	pg.Kinds = append(pg.Kinds, row{"all", res.Summary.Wait.All, res.Summary.Completion.All})
	for _, k := range kindsPresent(res) {
		pg.Kinds = append(pg.Kinds, row{k, res.Summary.Wait.ByKind[k], res.Summary.Completion.ByKind[k]})
	}
	for _, t := range res.Summary.Tenants {
		pg.Tens = append(pg.Tens, row{t.Tenant, res.Summary.Wait.ByTenant[t.Tenant], res.Summary.Completion.ByTenant[t.Tenant]})
	}
	return pageTmpl.Execute(w, pg)
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"dur":  Duration,
	"secs": func(v int64) string { return Duration(float64(v)) },
	"pct":  pct,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gpufleet simulation report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 62em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.8em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; } figure svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>Simulation report</h1>
<p>{{.S.Jobs.Total}} jobs on {{.S.Nodes}} nodes; placement {{.S.Policy}}; seed {{.S.Seed}}.
Files beside this page: <a href="summary.json">summary.json</a>, <a href="jobs.csv">jobs.csv</a>,
<a href="timeseries.csv">timeseries.csv</a>.</p>
<pre>{{.Text}}</pre>
{{range .Charts}}<figure id="{{.ID}}"><figcaption>{{.Title}}</figcaption>
{{.SVG}}
</figure>
{{end}}
<h2>Wait and completion time by kind</h2>
<table>
<tr><th>kind</th><th>jobs</th><th>wait p50</th><th>p95</th><th>p99</th><th>completed</th><th>completion p50</th><th>p95</th><th>p99</th></tr>
{{range .Kinds}}<tr><td>{{.Name}}</td><td>{{.Wait.Count}}</td><td>{{dur .Wait.P50}}</td><td>{{dur .Wait.P95}}</td><td>{{dur .Wait.P99}}</td><td>{{.Done.Count}}</td><td>{{dur .Done.P50}}</td><td>{{dur .Done.P95}}</td><td>{{dur .Done.P99}}</td></tr>
{{end}}</table>
<h2>Tenants</h2>
<table>
<tr><th>tenant</th><th>entitlement</th><th>share used</th><th>accelerator-hours</th></tr>
{{range .S.Tenants}}<tr><td>{{.Tenant}}</td><td>{{pct .Entitlement}}</td><td>{{pct .Share}}</td><td>{{printf "%.0f" .AccelHours}}</td></tr>
{{end}}</table>
<table>
<tr><th>tenant</th><th>started</th><th>wait p50</th><th>p95</th><th>p99</th><th>completed</th><th>completion p50</th><th>p95</th><th>p99</th></tr>
{{range .Tens}}<tr><td>{{.Name}}</td><td>{{.Wait.Count}}</td><td>{{dur .Wait.P50}}</td><td>{{dur .Wait.P95}}</td><td>{{dur .Wait.P99}}</td><td>{{.Done.Count}}</td><td>{{dur .Done.P50}}</td><td>{{dur .Done.P95}}</td><td>{{dur .Done.P99}}</td></tr>
{{end}}</table>
<h2>Preemption, failures and energy</h2>
<table>
<tr><td>preemptions</td><td>{{.S.Preemptions}}</td></tr>
<tr><td>work lost to preemption (accelerator-hours)</td><td>{{printf "%.1f" .S.LostAccelHoursPreemption}}</td></tr>
<tr><td>shrinks of elastic jobs</td><td>{{.S.Shrinks}}</td></tr>
<tr><td>node failures</td><td>{{.S.NodeFailures}}</td></tr>
<tr><td>work lost to failures (accelerator-hours)</td><td>{{printf "%.1f" .S.LostAccelHoursFailure}}</td></tr>
<tr><td>energy at the meter (kWh)</td><td>{{printf "%.0f" .S.EnergyKWh}}</td></tr>
<tr><td>IT energy (kWh)</td><td>{{printf "%.0f" .S.ITEnergyKWh}}</td></tr>
<tr><td>makespan</td><td>{{secs .S.MakespanSec}}</td></tr>
</table>
{{.Account}}
</body>
</html>
`))
