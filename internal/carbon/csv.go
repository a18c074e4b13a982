package carbon

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseError locates a malformed part of a series file.
type ParseError struct {
	File         string
	Line, Column int    // 1-based; Column counts bytes, 0 when the whole line is at fault
	Field        string // "time", "intensity" or "header"
	Err          error
}

func (e *ParseError) Error() string {
	loc := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Column > 0 {
		loc += fmt.Sprintf(":%d", e.Column)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %v", loc, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", loc, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Readings are the rows of a series file: times in Unix seconds, strictly
// increasing, and the intensity (gCO2/kWh) read at each.
type Readings struct {
	Times  []int64
	Values []float64
}

// Limits of a series file, so that a malformed one cannot ask for
// unbounded memory or stretch one reading over weeks.
const (
	// MaxReadings bounds the rows of one file.
	MaxReadings = 10_000_000
	// MaxIntensity is the highest intensity accepted, in gCO2/kWh (coal
	// plants emit about 1,000; the fleet file accepts the same range).
	MaxIntensity = 5000
	// MaxGapSec is the longest time between two readings: a reading holds
	// until the next one, and a day is as far as that is believable.
	MaxGapSec = 24 * 3600
	// MaxSteps bounds the steps of a regular series.
	MaxSteps = 10_000_000
)

// timeNames are the names the first column's header may have.
var timeNames = []string{"time", "timestamp", "datetime", "date"}

// timeLayouts are the time formats a row may use; times without a zone
// are UTC.
var timeLayouts = []string{"2006-01-02 15:04:05", "2006-01-02 15:04", time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04"}

// ParseCSV reads a carbon-intensity series file: a header of two columns,
// the first naming the time (Time, timestamp, datetime or date, in any
// case) and the second the intensity (any name; the unit is gCO2/kWh),
// then one reading a line: a time (2020-01-01 00:30:00, 2020-01-01 00:30,
// or RFC 3339 such as 2020-01-01T00:30:00Z; UTC without a zone) and an
// intensity, a finite number in 0..5000. Times must increase, at most a day
// apart. This is the layout of the "Let's Wait Awhile" datasets (Wiesner et
// al., Middleware '21). Errors name file:line:column and the field.
func ParseCSV(data []byte, file string) (Readings, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return Readings{}, &ParseError{File: file, Line: 1, Err: errors.New("empty file: want a header such as Time,Carbon Intensity and then one reading a line")}
	}
	if err != nil {
		return Readings{}, csvError(file, err)
	}
	if len(header) != 2 {
		return Readings{}, &ParseError{File: file, Line: 1, Field: "header", Err: fmt.Errorf("%d columns: want 2, a time and an intensity (such as Time,Carbon Intensity)", len(header))}
	}
	if !isTimeName(header[0]) {
		_, col := r.FieldPos(0)
		return Readings{}, &ParseError{File: file, Line: 1, Column: col, Field: "header", Err: fmt.Errorf("first column %q: want the time, named one of %s", header[0], strings.Join(timeNames, ", "))}
	}
	if strings.TrimSpace(header[1]) == "" {
		_, col := r.FieldPos(1)
		return Readings{}, &ParseError{File: file, Line: 1, Column: col, Field: "header", Err: errors.New("second column has no name: want the intensity's, such as Carbon Intensity")}
	}
	var out Readings
	prevLine := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Readings{}, csvError(file, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != 2 {
			return Readings{}, &ParseError{File: file, Line: line, Err: fmt.Errorf("%d fields: want 2, a time and an intensity", len(rec))}
		}
		if len(out.Times) == MaxReadings {
			return Readings{}, &ParseError{File: file, Line: line, Err: fmt.Errorf("more than %d readings", MaxReadings)}
		}
		t, err := parseTime(rec[0])
		if err != nil {
			_, col := r.FieldPos(0)
			return Readings{}, &ParseError{File: file, Line: line, Column: col, Field: "time", Err: err}
		}
		if n := len(out.Times); n > 0 {
			prev := out.Times[n-1]
			_, col := r.FieldPos(0)
			switch {
			case t <= prev:
				return Readings{}, &ParseError{File: file, Line: line, Column: col, Field: "time",
					Err: fmt.Errorf("%s is not after %s on line %d: readings must be in time order, each time once", rec[0], formatTime(prev), prevLine)}
			case t-prev > MaxGapSec:
				return Readings{}, &ParseError{File: file, Line: line, Column: col, Field: "time",
					Err: fmt.Errorf("%s is %s after the reading on line %d: at most a day may pass between readings", rec[0], time.Duration(t-prev)*time.Second, prevLine)}
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err == nil && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > MaxIntensity) {
			err = fmt.Errorf("%s: want a number in 0..%d gCO2/kWh", rec[1], MaxIntensity)
		} else if err != nil {
			err = fmt.Errorf("%q: want a number in 0..%d gCO2/kWh", rec[1], MaxIntensity)
		}
		if err != nil {
			_, col := r.FieldPos(1)
			return Readings{}, &ParseError{File: file, Line: line, Column: col, Field: "intensity", Err: err}
		}
		out.Times = append(out.Times, t)
		out.Values = append(out.Values, v)
		prevLine = line
	}
	if len(out.Times) == 0 {
		return Readings{}, &ParseError{File: file, Line: 2, Err: errors.New("no readings: want one time and intensity a line after the header")}
	}
	return out, nil
}

func isTimeName(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, n := range timeNames {
		if s == n {
			return true
		}
	}
	return false
}

func parseTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.Unix(), nil
		}
	}
	return 0, fmt.Errorf("%q: want a time such as 2020-01-01 00:30:00, 2020-01-01 00:30 or 2020-01-01T00:30:00Z", s)
}

func formatTime(t int64) string { return time.Unix(t, 0).UTC().Format("2006-01-02 15:04:05") }

func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: file, Line: pe.Line, Column: pe.Column, Err: pe.Err}
	}
	return &ParseError{File: file, Line: 1, Err: err}
}

// Regular puts the readings on a grid of step seconds: a reading holds
// from its time until the next reading (the last one for as long as the
// one before it did), and each step takes the reading that holds at its
// start. The grid's first step is the first multiple of step at or after
// the first reading; a finer series is sampled, as "Let's Wait Awhile"
// samples its 15-minute data on the half hour, and a coarser one repeats.
func (r Readings) Regular(step int64) (Series, error) {
	if step <= 0 {
		return Series{}, fmt.Errorf("step %d: want a positive number of seconds", step)
	}
	if len(r.Times) == 0 {
		return Series{}, errors.New("no readings")
	}
	n := len(r.Times)
	last := r.Times[n-1]
	hold := step
	if n > 1 {
		hold = last - r.Times[n-2]
	}
	end := last + hold
	start := floorDiv(r.Times[0]+step-1, step) * step
	if start >= end {
		return Series{}, fmt.Errorf("the readings span %d s, less than one step of %d s on the grid", end-r.Times[0], step)
	}
	steps := (end - start + step - 1) / step
	if steps > MaxSteps {
		return Series{}, fmt.Errorf("%d steps of %d s: at most %d", steps, step, MaxSteps)
	}
	s := Series{Start: start, Step: step, Values: make([]float64, 0, steps)}
	k := 0
	for t := start; t < end; t += step {
		for k+1 < n && r.Times[k+1] <= t {
			k++
		}
		s.Values = append(s.Values, r.Values[k])
	}
	return s, nil
}

// ReadSeries parses a series file and puts it on a grid of step seconds.
func ReadSeries(data []byte, file string, step int64) (Series, error) {
	r, err := ParseCSV(data, file)
	if err != nil {
		return Series{}, err
	}
	s, err := r.Regular(step)
	if err != nil {
		return Series{}, fmt.Errorf("%s: %w", file, err)
	}
	return s, nil
}

// FormatCSV writes readings in the layout ParseCSV reads.
func (r Readings) FormatCSV() []byte {
	var b bytes.Buffer
	b.WriteString("Time,Carbon Intensity\n")
	for i, t := range r.Times {
		b.WriteString(formatTime(t))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(r.Values[i], 'g', -1, 64))
		b.WriteByte('\n')
	}
	return b.Bytes()
}
