package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/gpufleet/gpufleet/internal/plan"
)

// Plan is a capacity plan with what it was made from, for the plan
// report.
type Plan struct {
	// Source says where the history came from.
	Source string `json:"source"`
	// HistoryWeeks is the weeks of history each series had; DroppedSteps
	// the steps of a last, partial week left out.
	HistoryWeeks int   `json:"historyWeeks"`
	DroppedSteps int   `json:"droppedSteps"`
	StepSec      int64 `json:"stepSec"`
	// Demand is every series with its forecast.
	Demand []plan.Demand `json:"demand"`
	Result *plan.Result  `json:"plan"`
}

// Files of a plan report.
const (
	PlanFile     = "plan.json"
	PlanTextFile = "plan.txt"
)

// WritePlanDir writes plan.json, plan.txt and index.html into dir.
func WritePlanDir(dir string, p *Plan) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer, *Plan) error
	}{{PlanFile, WritePlanJSON}, {PlanTextFile, WritePlanText}, {IndexFile, WritePlanHTML}} {
		if err := writeFile(filepath.Join(dir, f.name), func(w io.Writer) error { return f.write(w, p) }); err != nil {
			return err
		}
	}
	return nil
}

// WritePlanJSON writes the whole plan as indented JSON.
func WritePlanJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// weekAccels turns accelerator-hours in a week into accelerators kept
// busy.
func weekAccels(h float64) float64 { return h / (plan.WeekSec / 3600) }

func weekText(w int) string {
	if w == 0 {
		return "-"
	}
	return fmt.Sprintf("week %d", w)
}

// money renders a cost with thousands separators.
func money(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// WritePlanText writes the plan for people: the forecast, when each type
// runs out, the buy plan, the shortfalls and the sites.
func WritePlanText(w io.Writer, p *Plan) error {
	var bw strings.Builder
	pr := func(format string, args ...any) { fmt.Fprintf(&bw, format, args...) }
	r := p.Result
	pr("Capacity plan for %d weeks after the history (%d series, %d weeks of history from %s)\n", r.Horizon, len(p.Demand), p.HistoryWeeks, p.Source)
	pr("target: the %s wait of each week's jobs of each accelerator type; the buy plan is for %s demand\n", r.Target, r.Scenario)
	if p.DroppedSteps > 0 {
		pr("note: the last %d steps of history, less than a week, are left out\n", p.DroppedSteps)
	}
	pr("\nForecast, accelerators kept busy (p50 [p10, p90]):\n")
	var marks []int
	for _, m := range []int{1, 13, 26, r.Horizon} {
		if m <= r.Horizon && (len(marks) == 0 || m > marks[len(marks)-1]) {
			marks = append(marks, m)
		}
	}
	pr("%-34s %12s", "series", "last week")
	for _, m := range marks {
		pr(" %22s", fmt.Sprintf("week %d", m))
	}
	pr("\n")
	for _, d := range p.Demand {
		last := 0.0
		if n := len(d.History); n > 0 {
			last = d.History[n-1]
		}
		pr("%-34s %12.1f", d.Key, weekAccels(last))
		for _, m := range marks {
			pr(" %22s", fmt.Sprintf("%.1f [%.1f, %.1f]", weekAccels(d.Point[m-1]), weekAccels(d.Lower[m-1]), weekAccels(d.Upper[m-1])))
		}
		pr("\n")
	}
	pr("\nRun-out without purchases (first week the target breaks; nodes on order included):\n")
	pr("%-10s %-10s %-10s\n", "type", "p50", "p90")
	for _, ro := range r.RunOut {
		pr("%-10s %-10s %-10s\n", ro.Class, weekText(ro.P50), weekText(ro.P90))
	}
	pr("\nBuy plan (%s in all):\n", money(r.Cost))
	if len(r.Orders) == 0 {
		pr("  nothing to buy: the fleet keeps the target through the horizon\n")
	} else {
		pr("%-10s %-14s %-16s %6s %-10s %14s  %s\n", "order in", "model", "site", "nodes", "delivered", "cost", "for")
		for _, o := range r.Orders {
			pr("%-10s %-14s %-16s %6d %-10s %14s  %s\n", weekText(o.OrderWeek), o.Model, o.Site, o.Count, weekText(o.Week), money(o.Cost), o.Class)
		}
		pr("\nWhy:\n")
		for i, o := range r.Orders {
			pr("  %d. %s.\n", i+1, o.Reason)
		}
	}
	pr("\nShortfalls with the plan:\n")
	if len(r.Shortfalls) == 0 {
		pr("  none: every type keeps the target in every week\n")
	}
	for _, s := range r.Shortfalls {
		weeks := fmt.Sprintf("week %d", s.From)
		if s.To > s.From {
			weeks = fmt.Sprintf("weeks %d-%d", s.From, s.To)
		}
		pr("  %s %s: %s\n", s.Class, weeks, s.Why)
	}
	if len(r.Sites) > 0 {
		pr("\nSites at their peak with the plan:\n")
		for _, s := range r.Sites {
			pr("  %-20s %-14s %10.1f of %10.1f\n", s.Domain, s.What, s.Peak, s.Limit)
		}
	}
	pr("\nreplays: %d\n", r.Replays)
	// Columns padded to the right leave spaces at line ends: drop them.
	lines := strings.Split(bw.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// classSum adds the series of a class (all of them, when all is set):
// history, point, lower, upper.
func classSum(p *Plan, class string, all bool) (hist, point, lower, upper []float64) {
	h := p.Result.Horizon
	point, lower, upper = make([]float64, h), make([]float64, h), make([]float64, h)
	for _, d := range p.Demand {
		if d.Key.Class() != class && !all {
			continue
		}
		if len(d.History) > len(hist) {
			hist = append(make([]float64, len(d.History)-len(hist)), hist...)
		}
		off := len(hist) - len(d.History)
		for i, v := range d.History {
			hist[off+i] += v
		}
		for i := range point {
			point[i] += d.Point[i]
			lower[i] += d.Lower[i]
			upper[i] += d.Upper[i]
		}
	}
	return hist, point, lower, upper
}

func weekLine(from int, v []float64) plotter.XYs {
	out := make(plotter.XYs, len(v))
	for i, x := range v {
		out[i] = plotter.XY{X: float64(from + i), Y: weekAccels(x)}
	}
	return out
}

// band shades the area between lower and upper.
func band(p *plot.Plot, name string, lower, upper []float64, i int) error {
	pts := make(plotter.XYs, 0, 2*len(lower))
	for w := range lower {
		pts = append(pts, plotter.XY{X: float64(w + 1), Y: weekAccels(lower[w])})
	}
	for w := len(upper) - 1; w >= 0; w-- {
		pts = append(pts, plotter.XY{X: float64(w + 1), Y: weekAccels(upper[w])})
	}
	poly, err := plotter.NewPolygon(pts)
	if err != nil {
		return err
	}
	c := colour(i)
	poly.Color = color.RGBA{c.R, c.G, c.B, 60}
	poly.Width = 0
	p.Add(poly)
	p.Legend.Add(name, poly)
	return nil
}

func forecastChart(p *Plan, class string) (*plot.Plot, error) {
	hist, point, lower, upper := classSum(p, class, false)
	title := "Demand for " + class
	if class == plan.AnyAccel {
		title = "Demand that takes any type"
	}
	pl := newPlot(title, "week (history up to 0)", "accelerators kept busy")
	pl.Y.Min = 0
	if err := band(pl, "80% interval (p10 to p90)", lower, upper, 0); err != nil {
		return nil, err
	}
	if err := addLine(pl, "history", weekLine(1-len(hist), hist), 7); err != nil {
		return nil, err
	}
	if err := addLine(pl, "forecast (p50)", weekLine(1, point), 0); err != nil {
		return nil, err
	}
	return pl, nil
}

func capacityChart(p *Plan, class string) (*plot.Plot, error) {
	r := p.Result
	// Capacity of all types serves the demand of all: compare them for
	// the jobs that take any type.
	_, point, _, upper := classSum(p, class, class == plan.AnyAccel)
	pl := newPlot("Capacity against demand: "+class, "week", "effective accelerators")
	pl.Y.Min = 0
	steps := func(v []float64) plotter.XYs {
		var out plotter.XYs
		for w, x := range v {
			out = append(out, plotter.XY{X: float64(w + 1), Y: x}, plotter.XY{X: float64(w + 2), Y: x})
		}
		return out
	}
	if err := addLine(pl, "capacity with the plan", steps(r.FinalCapacity[class]), 2); err != nil {
		return nil, err
	}
	if err := addLine(pl, "capacity without", steps(r.BaseCapacity[class]), 7); err != nil {
		return nil, err
	}
	if err := addLine(pl, "demand p50", weekLine(1, point), 0); err != nil {
		return nil, err
	}
	if err := addLine(pl, "demand p90", weekLine(1, upper), 5); err != nil {
		return nil, err
	}
	return pl, nil
}

func ordersChart(p *Plan) (*plot.Plot, error) {
	r := p.Result
	if len(r.Orders) == 0 {
		return nil, nil
	}
	pl := newPlot("Orders and deliveries", "week", "")
	var names []string
	for i, o := range r.Orders {
		y := float64(len(r.Orders) - 1 - i)
		l, err := plotter.NewLine(plotter.XYs{{X: float64(o.OrderWeek), Y: y}, {X: float64(o.Week), Y: y}})
		if err != nil {
			return nil, err
		}
		l.Color = colour(0)
		l.Width = vg.Points(3)
		pl.Add(l)
		pts, err := plotter.NewScatter(plotter.XYs{{X: float64(o.OrderWeek), Y: y}, {X: float64(o.Week), Y: y}})
		if err != nil {
			return nil, err
		}
		pts.Color = colour(5)
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(3)
		pl.Add(pts)
		names = append([]string{fmt.Sprintf("%d x %s, %s", o.Count, o.Model, o.Site)}, names...)
	}
	pl.NominalY(names...)
	pl.X.Min, pl.X.Max = 0, float64(r.Horizon+1)
	pl.Legend.Top = false
	return pl, nil
}

// planCharts renders the charts of the plan report.
func planCharts(p *Plan) ([]chart, error) {
	var out []chart
	add := func(id, title string, pl *plot.Plot, err error) error {
		if err != nil {
			return fmt.Errorf("chart %s: %w", id, err)
		}
		if pl == nil {
			return nil
		}
		if id != "orders" {
			pl.Y.Max = pl.Y.Min + (pl.Y.Max-pl.Y.Min)*1.35
		}
		s, err := svg(pl)
		if err != nil {
			return fmt.Errorf("chart %s: %w", id, err)
		}
		out = append(out, chart{ID: id, Title: title, SVG: s})
		return nil
	}
	var classes []string
	for _, ro := range p.Result.RunOut {
		classes = append(classes, ro.Class)
	}
	for _, c := range classes {
		pl, err := forecastChart(p, c)
		if err := add("forecast-"+c, "Forecast of "+c+" demand with its interval", pl, err); err != nil {
			return nil, err
		}
	}
	for _, c := range classes {
		pl, err := capacityChart(p, c)
		if err := add("capacity-"+c, "Capacity against demand, "+c, pl, err); err != nil {
			return nil, err
		}
	}
	pl, err := ordersChart(p)
	if err := add("orders", "The buy plan: each order from the week it is placed to its delivery", pl, err); err != nil {
		return nil, err
	}
	return out, nil
}

type planPage struct {
	P      *Plan
	Text   string
	Charts []struct {
		ID, Title string
		SVG       template.HTML
	}
}

// WritePlanHTML writes a self-contained page: the summary, the orders and
// the charts.
func WritePlanHTML(w io.Writer, p *Plan) error {
	cs, err := planCharts(p)
	if err != nil {
		return err
	}
	var text strings.Builder
	if err := WritePlanText(&text, p); err != nil {
		return err
	}
	pg := planPage{P: p, Text: text.String()}
	for _, c := range cs {
		pg.Charts = append(pg.Charts, struct {
			ID, Title string
			SVG       template.HTML
		}{c.ID, c.Title, template.HTML(c.SVG)}) // generated here, not user input
	}
	return planTmpl.Execute(w, pg)
}

var planTmpl = template.Must(template.New("plan").Funcs(template.FuncMap{"money": money, "week": weekText}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gpufleet capacity plan</title>
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
<h1>Capacity plan</h1>
<p>{{.P.Result.Horizon}} weeks, target {{.P.Result.Target}}, buy plan for {{.P.Result.Scenario}} demand;
{{.P.Result.Replays}} replays through the simulator. The plan as data: <a href="plan.json">plan.json</a>.</p>
<h2>Buy plan</h2>
<table>
<tr><th>order in</th><th>model</th><th>site</th><th>nodes</th><th>delivered</th><th>cost</th><th>for</th></tr>
{{range .P.Result.Orders}}<tr><td>{{week .OrderWeek}}</td><td>{{.Model}}</td><td>{{.Site}}</td><td>{{.Count}}</td><td>{{week .Week}}</td><td>{{money .Cost}}</td><td>{{.Class}}</td></tr>
{{end}}<tr><td>total</td><td></td><td></td><td></td><td></td><td>{{money .P.Result.Cost}}</td><td></td></tr>
</table>
<h2>Run-out without purchases</h2>
<table>
<tr><th>type</th><th>p50</th><th>p90</th></tr>
{{range .P.Result.RunOut}}<tr><td>{{.Class}}</td><td>{{week .P50}}</td><td>{{week .P90}}</td></tr>
{{end}}</table>
{{range .Charts}}<figure id="{{.ID}}"><figcaption>{{.Title}}</figcaption>
{{.SVG}}
</figure>
{{end}}
<h2>Summary</h2>
<pre>{{.Text}}</pre>
</body>
</html>
`))
