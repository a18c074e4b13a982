package report

import (
	"bytes"
	"fmt"
	"image/color"
	"maps"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/gpufleet/gpufleet/internal/sim"
)

// palette is a colour-blind-safe set (Okabe and Ito).
var palette = []color.RGBA{
	{0, 114, 178, 255},   // blue
	{230, 159, 0, 255},   // orange
	{0, 158, 115, 255},   // green
	{204, 121, 167, 255}, // purple
	{86, 180, 233, 255},  // sky
	{213, 94, 0, 255},    // vermillion
	{240, 228, 66, 255},  // yellow
	{0, 0, 0, 255},       // black
}

func colour(i int) color.RGBA { return palette[i%len(palette)] }

const (
	chartW = 8 * vg.Inch
	chartH = 3.2 * vg.Inch
	// maxPoints bounds the points of a line chart; longer series are
	// averaged into buckets.
	maxPoints = 1000
)

// svg renders a plot as an <svg> element for inline use in HTML.
func svg(p *plot.Plot) (string, error) {
	c := vgsvg.New(chartW, chartH)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", err
	}
	out := buf.String()
	// Drop the XML prolog and comments before the element.
	if i := strings.Index(out, "<svg"); i > 0 {
		out = out[i:]
	}
	return out, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	// Top left, growing into the plot: a viewer whose fonts run wider than
	// the ones the layout measured with does not clip it at the edge.
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(4)
	return p
}

// timeAxis chooses hours or days for a series of samples.
func timeAxis(res *sim.Result) (label string, scale float64) {
	if span := res.Summary.End - res.Summary.Start; span > 3*86400 {
		return "days since the first arrival", 86400
	}
	return "hours since the first arrival", 3600
}

// series averages samples into at most maxPoints points of (time, f).
func series(res *sim.Result, scale float64, f func(s *sim.Sample) float64) plotter.XYs {
	n := len(res.Samples)
	per := (n + maxPoints - 1) / maxPoints
	per = max(per, 1)
	var out plotter.XYs
	for i := 0; i < n; i += per {
		var sx, sy float64
		k := 0
		for j := i; j < min(i+per, n); j++ {
			sx += float64(res.Samples[j].T-res.Summary.Start) / scale
			sy += f(&res.Samples[j])
			k++
		}
		out = append(out, plotter.XY{X: sx / float64(k), Y: sy / float64(k)})
	}
	return out
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, i int) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = colour(i)
	l.Width = vg.Points(1.2)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func utilizationChart(res *sim.Result) (*plot.Plot, error) {
	label, scale := timeAxis(res)
	p := newPlot("Utilization and fragmentation", label, "share of capacity (%)")
	p.Y.Min, p.Y.Max = 0, 100
	if err := addLine(p, "utilization", series(res, scale, func(s *sim.Sample) float64 { return 100 * s.Utilization }), 0); err != nil {
		return nil, err
	}
	if err := addLine(p, "fragmentation of free capacity", series(res, scale, func(s *sim.Sample) float64 { return 100 * s.Fragmentation }), 1); err != nil {
		return nil, err
	}
	return p, nil
}

// typeChart is utilization per accelerator type, for fleets of several:
// work that only some types can run loads them unevenly.
func typeChart(res *sim.Result) (*plot.Plot, error) {
	types := slices.Sorted(maps.Keys(res.Summary.UtilizationByType))
	if len(types) < 2 {
		return nil, nil
	}
	label, scale := timeAxis(res)
	p := newPlot("Utilization by accelerator type", label, "share of its capacity (%)")
	p.Y.Min, p.Y.Max = 0, 100
	for i, t := range types {
		if err := addLine(p, t, series(res, scale, func(s *sim.Sample) float64 { return 100 * s.UtilizationByType[t] }), i); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func queueChart(res *sim.Result) (*plot.Plot, error) {
	label, scale := timeAxis(res)
	p := newPlot("Queue length", label, "jobs")
	p.Y.Min = 0
	if err := addLine(p, "pending", series(res, scale, func(s *sim.Sample) float64 { return float64(s.Pending) }), 5); err != nil {
		return nil, err
	}
	if err := addLine(p, "running", series(res, scale, func(s *sim.Sample) float64 { return float64(s.Running) }), 2); err != nil {
		return nil, err
	}
	return p, nil
}

// waitBuckets are the bars of the wait-time distribution.
var waitBuckets = []struct {
	label string
	upTo  int64 // seconds, exclusive; 0 for the last
}{
	{"none", 1}, {"< 1 min", 60}, {"< 10 min", 600}, {"< 1 h", 3600}, {"< 6 h", 6 * 3600}, {"< 1 day", 86400}, {">= 1 day", 0},
}

func waitBucket(w int64) int {
	for i, b := range waitBuckets {
		if b.upTo == 0 || w < b.upTo {
			return i
		}
	}
	return len(waitBuckets) - 1
}

func waitChart(res *sim.Result) (*plot.Plot, error) {
	kinds := kindsPresent(res)
	counts := make([][]float64, len(kinds))
	totals := make([]float64, len(kinds))
	for i := range counts {
		counts[i] = make([]float64, len(waitBuckets))
	}
	idx := map[string]int{}
	for i, k := range kinds {
		idx[k] = i
	}
	for i := range res.Jobs {
		j := &res.Jobs[i]
		if j.Wait < 0 {
			continue
		}
		k := idx[j.Kind]
		counts[k][waitBucket(j.Wait)]++
		totals[k]++
	}
	p := newPlot("Wait before the first start, by kind", "wait", "share of the kind's started jobs (%)")
	p.Y.Min = 0
	w := vg.Points(60 / float64(max(len(kinds), 1)))
	for i, k := range kinds {
		vals := make(plotter.Values, len(waitBuckets))
		for b := range vals {
			if totals[i] > 0 {
				vals[b] = 100 * counts[i][b] / totals[i]
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color = colour(i)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(kinds)-1)/2)
		p.Add(bars)
		p.Legend.Add(k, bars)
	}
	labels := make([]string, len(waitBuckets))
	for i, b := range waitBuckets {
		labels[i] = b.label
	}
	p.NominalX(labels...)
	return p, nil
}

func kindsPresent(res *sim.Result) []string {
	var out []string
	for _, k := range []string{"training", "fine-tuning", "batch", "service"} {
		if res.Summary.Jobs.ByKind[k] > 0 {
			out = append(out, k)
		}
	}
	return out
}

func tenantChart(res *sim.Result) (*plot.Plot, error) {
	ts := res.Summary.Tenants
	p := newPlot("Share of accelerator-time against entitlement, by tenant", "tenant", "share (%)")
	p.Y.Min = 0
	w := vg.Points(24)
	ent, use := make(plotter.Values, len(ts)), make(plotter.Values, len(ts))
	names := make([]string, len(ts))
	for i, t := range ts {
		ent[i], use[i], names[i] = 100*t.Entitlement, 100*t.Share, t.Tenant
	}
	for i, s := range []struct {
		name string
		vals plotter.Values
	}{{"entitlement (nominal quota)", ent}, {"used", use}} {
		if len(s.vals) == 0 {
			continue
		}
		bars, err := plotter.NewBarChart(s.vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color = colour([]int{4, 0}[i])
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-0.5)
		p.Add(bars)
		p.Legend.Add(s.name, bars)
	}
	p.NominalX(names...)
	// Room beside the outer bars, so their labels are not cut.
	p.X.Min, p.X.Max = -0.8, float64(len(ts))-0.2
	return p, nil
}

// charts renders every chart of the report, in order.
func charts(res *sim.Result) ([]chart, error) {
	var out []chart
	for _, c := range []struct {
		id, title string
		f         func(*sim.Result) (*plot.Plot, error)
	}{
		{"utilization", "Utilization over time", utilizationChart},
		{"types", "Utilization by accelerator type", typeChart},
		{"queue", "Queue length over time", queueChart},
		{"wait", "Wait-time distribution", waitChart},
		{"tenants", "Tenant share against entitlement", tenantChart},
		{"credits", "Credit burn-down", burnDownChart},
		{"carbon-sites", "Carbon by site", carbonSiteChart},
		{"carbon-tenants", "Carbon by tenant", carbonTenantChart},
	} {
		p, err := c.f(res)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", c.id, err)
		}
		if p == nil {
			continue // nothing to show for this run
		}
		// Headroom above the data for the legend in the top corner.
		p.Y.Max = p.Y.Min + (p.Y.Max-p.Y.Min)*1.35
		s, err := svg(p)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", c.id, err)
		}
		out = append(out, chart{ID: c.id, Title: c.title, SVG: s})
	}
	return out, nil
}
