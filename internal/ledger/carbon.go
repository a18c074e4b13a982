package ledger

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Series is a grid's carbon intensity over time: a step function, each
// point's value holding from its time until the next point's. Before the
// first point the first value holds and after the last the last value does
// (a report notes usage outside the series). Values are kept in mg CO2e per
// kWh (0.001 g), the resolution of the ledger's carbon figures.
type Series struct {
	times []int64
	vals  []int64 // mg/kWh
	pre   []int64 // integral of vals from times[0] to times[i], mg/kWh x ms
}

// Point is one step of a Series.
type Point struct {
	AtMs    int64
	GPerKWh float64
}

// MaxCarbonGPerKWh bounds carbon intensity; the dirtiest grids are near
// 1,000 g/kWh.
const MaxCarbonGPerKWh = 5000

// maxSeriesSpanMs bounds a series' span so that its integral stays in an
// int64: 50 years at the largest intensity is 7.9e18 mg/kWh x ms.
const maxSeriesSpanMs = 50 * 365 * msPerDay

// NewSeries builds a series from points in strictly increasing time.
func NewSeries(points []Point) (*Series, error) {
	if len(points) == 0 {
		return nil, errors.New("carbon series: no points")
	}
	s := &Series{times: make([]int64, len(points)), vals: make([]int64, len(points)), pre: make([]int64, len(points))}
	for i, p := range points {
		v, err := carbonMg(p.GPerKWh)
		if err != nil {
			return nil, fmt.Errorf("carbon series: point %d (%s): %w", i, FormatTime(p.AtMs), err)
		}
		if i > 0 && p.AtMs <= points[i-1].AtMs {
			return nil, fmt.Errorf("carbon series: point %d (%s) is not after the one before (%s)", i, FormatTime(p.AtMs), FormatTime(points[i-1].AtMs))
		}
		if p.AtMs-points[0].AtMs > maxSeriesSpanMs {
			return nil, fmt.Errorf("carbon series: spans more than 50 years")
		}
		s.times[i], s.vals[i] = p.AtMs, v
		if i > 0 {
			s.pre[i] = s.pre[i-1] + s.vals[i-1]*(p.AtMs-points[i-1].AtMs)
		}
	}
	return s, nil
}

// ConstantSeries is a series with one value at all times.
func ConstantSeries(gPerKWh float64) (*Series, error) {
	return NewSeries([]Point{{AtMs: 0, GPerKWh: gPerKWh}})
}

func carbonMg(g float64) (int64, error) {
	if math.IsNaN(g) || g < 0 || g > MaxCarbonGPerKWh {
		return 0, fmt.Errorf("carbon intensity %v g/kWh: want 0..%d", g, MaxCarbonGPerKWh)
	}
	return int64(math.Round(g * 1000)), nil
}

// Len returns the number of points.
func (s *Series) Len() int { return len(s.times) }

// Span returns the time of the first point and of the last.
func (s *Series) Span() (first, last int64) { return s.times[0], s.times[len(s.times)-1] }

// At returns the intensity in force at t, in g/kWh at the series'
// resolution.
func (s *Series) At(t int64) float64 { return float64(s.vals[s.index(t)]) / 1000 }

// index returns the point in force at t (0 before the first).
func (s *Series) index(t int64) int {
	i := sort.Search(len(s.times), func(i int) bool { return s.times[i] > t }) - 1
	return max(i, 0)
}

// integral returns the integral of the intensity from the first point to t
// (negative before it), in mg/kWh x ms.
func (s *Series) integral(t int64) int64 {
	i := s.index(t)
	return s.pre[i] + s.vals[i]*(t-s.times[i])
}

// steps calls f for each piece of [a, b) with a constant intensity.
func (s *Series) steps(a, b int64, f func(a, b, mg int64)) {
	i := s.index(a)
	for a < b {
		end := b
		if i+1 < len(s.times) && s.times[i+1] < end {
			end = s.times[i+1]
		}
		f(a, end, s.vals[i])
		a = end
		i++
		if i >= len(s.times) {
			i = len(s.times) - 1
		}
	}
}

// carbonTimeLayouts are the time formats a carbon CSV may use; times with
// no zone are UTC.
var carbonTimeLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", time.RFC3339}

// ParseCarbonCSV reads a carbon intensity series from CSV text: a header
// row, then one row per step with a time and an intensity in gCO2e/kWh,
// times strictly increasing, such as
//
//	Time,Carbon Intensity
//	2020-01-01 00:00:00,187.2
//	2020-01-01 00:30:00,181.9
//
// Times are "YYYY-MM-DD hh:mm[:ss]" in UTC or RFC 3339. Errors name the
// file, line and column.
func ParseCarbonCSV(name string, data []byte) (*Series, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	fail := func(line, col int, format string, args ...any) error {
		return fmt.Errorf("%s:%d:%d: %s", name, line, col, fmt.Sprintf(format, args...))
	}
	header, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: is empty; want a header row (Time,Carbon Intensity) and one row per step", name)
	}
	if err != nil {
		return nil, csvError(name, err)
	}
	if len(header) != 2 {
		return nil, fail(1, 1, "header has %d columns, want 2: a time and an intensity in gCO2e/kWh (Time,Carbon Intensity)", len(header))
	}
	if _, err := strconv.ParseFloat(strings.TrimSpace(header[1]), 64); err == nil {
		return nil, fail(1, 1, "the first row is data; want a header row (Time,Carbon Intensity) first")
	}
	var points []Point
	layout := 0 // the layout the rows before used, tried first
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, col := r.FieldPos(0)
		if len(rec) != 2 {
			return nil, fail(line, col, "%d columns, want 2 (time, intensity)", len(rec))
		}
		at, ok := parseCarbonTime(strings.TrimSpace(rec[0]), &layout)
		if !ok {
			return nil, fail(line, col, "time %q: want YYYY-MM-DD hh:mm:ss (UTC) or RFC 3339", rec[0])
		}
		vl, vc := r.FieldPos(1)
		g, err := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err != nil || math.IsInf(g, 0) || math.IsNaN(g) {
			return nil, fail(vl, vc, "intensity %q: want a number of gCO2e/kWh", rec[1])
		}
		if g < 0 || g > MaxCarbonGPerKWh {
			return nil, fail(vl, vc, "intensity %v: want 0..%d gCO2e/kWh", g, MaxCarbonGPerKWh)
		}
		if n := len(points); n > 0 && at <= points[n-1].AtMs {
			return nil, fail(line, col, "time %s is not after the row before (%s); want rows in increasing time", FormatTime(at), FormatTime(points[n-1].AtMs))
		}
		if len(points) > 0 && at-points[0].AtMs > maxSeriesSpanMs {
			return nil, fail(line, col, "the series spans more than 50 years")
		}
		points = append(points, Point{AtMs: at, GPerKWh: g})
	}
	if len(points) == 0 {
		return nil, fmt.Errorf("%s: has a header and no rows; want one row per step", name)
	}
	return NewSeries(points)
}

func parseCarbonTime(s string, layout *int) (int64, bool) {
	for k := range carbonTimeLayouts {
		i := (*layout + k) % len(carbonTimeLayouts)
		if t, err := time.Parse(carbonTimeLayouts[i], s); err == nil {
			if y := t.Year(); y < 1970 || y > 2199 {
				return 0, false
			}
			*layout = i
			return t.UnixMilli(), true
		}
	}
	return 0, false
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d:%d: %v", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s: %w", name, err)
}
