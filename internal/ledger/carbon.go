package ledger

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/gpufleet/gpufleet/internal/carbon"
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

// ParseCarbonCSV reads a carbon intensity series from CSV text in the
// layout carbon.ParseCSV reads (the one reader of the format), such as
//
//	Time,Carbon Intensity
//	2020-01-01 00:00:00,187.2
//	2020-01-01 00:30:00,181.9
//
// Errors name the file, line and column.
func ParseCarbonCSV(name string, data []byte) (*Series, error) {
	rd, err := carbon.ParseCSV(data, name)
	if err != nil {
		return nil, err
	}
	s, err := CarbonSeriesOf(rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// CarbonSeriesOf is the series of a file's readings, each holding until
// the next.
func CarbonSeriesOf(rd carbon.Readings) (*Series, error) {
	if len(rd.Times) == 0 {
		return nil, errors.New("no readings")
	}
	points := make([]Point, len(rd.Times))
	for i, t := range rd.Times {
		if g := rd.Values[i]; g < 0 || g > MaxCarbonGPerKWh {
			return nil, fmt.Errorf("reading %d: intensity %v: want 0..%d gCO2e/kWh", i+1, g, MaxCarbonGPerKWh)
		}
		points[i] = Point{AtMs: t * 1000, GPerKWh: rd.Values[i]}
	}
	if span := points[len(points)-1].AtMs - points[0].AtMs; span > maxSeriesSpanMs {
		return nil, errors.New("the series spans more than 50 years")
	}
	return NewSeries(points)
}
