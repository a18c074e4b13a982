package forecast

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseError locates a malformed part of a series file.
type ParseError struct {
	File         string
	Line, Column int    // 1-based; Column counts bytes, 0 when the whole line is at fault
	Field        string // the column's name: "V3" in an M4 file, "value 2" in a series file
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

// MaxSeriesLength bounds the observations of one series, so a malformed
// file cannot ask for unbounded memory per row.
const MaxSeriesLength = 10_000_000

// ParseM4 reads the M4 competition's CSV layout (Hourly-train.csv and its
// kin): a header "V1","V2",...,"Vk"; then one series a line, V1 its id and
// the observations in the columns after it, a shorter series padded with
// empty fields to the header's width. Fields may be quoted. It is strict:
// the header must name V1..Vk in order, every line must have k fields, an
// id must be unique and non-empty, each observation a finite decimal
// number, and no value may follow the empty padding. file names the
// source in errors (file:line:column: field: what is wrong).
func ParseM4(data []byte, file string) ([]Series, error) {
	r := newReader(data)
	header, err := r.Read()
	if err == io.EOF {
		return nil, &ParseError{File: file, Line: 1, Err: errors.New(`empty file: want a header "V1","V2" and so on`)}
	}
	if err != nil {
		return nil, csvError(file, err)
	}
	header = append([]string(nil), header...)
	for i, h := range header {
		if want := "V" + strconv.Itoa(i+1); h != want {
			line, col := r.FieldPos(i)
			return nil, &ParseError{File: file, Line: line, Column: col, Field: "header",
				Err: fmt.Errorf("column %d is %q: want %q (the header is V1, V2, ... in order)", i+1, h, want)}
		}
	}
	if len(header) < 2 {
		return nil, &ParseError{File: file, Line: 1, Field: "header", Err: errors.New("only V1: want V1 (the id) and at least one observation column")}
	}
	if len(header)-1 > MaxSeriesLength {
		return nil, &ParseError{File: file, Line: 1, Field: "header", Err: fmt.Errorf("%d observation columns: at most %d", len(header)-1, MaxSeriesLength)}
	}
	field := func(i int) string { return header[i] }
	var out []Series
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, csvError(file, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			return nil, &ParseError{File: file, Line: line,
				Err: fmt.Errorf("%d fields: want %d, as many as the header (pad a shorter series with empty fields)", len(rec), len(header))}
		}
		s, err := parseRecord(r, rec, file, field, seen)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

// ParseSeries reads gpufleet's series CSV: one series a line, its id and
// then its observations in time order, as many as it has (a line may end
// in empty fields, which are ignored); no header; a line starting with #
// is a comment. The same rules as ParseM4 hold for ids and observations.
// The forecasts that `gpufleet plan forecast -o csv` writes are in this
// layout.
func ParseSeries(data []byte, file string) ([]Series, error) {
	r := newReader(data)
	r.Comment = '#'
	field := func(i int) string {
		if i == 0 {
			return "id"
		}
		return "value " + strconv.Itoa(i)
	}
	var out []Series
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			if len(out) == 0 {
				return nil, &ParseError{File: file, Line: 1, Err: errors.New("no series: want lines of an id and then its values")}
			}
			return out, nil
		}
		if err != nil {
			return nil, csvError(file, err)
		}
		if len(rec)-1 > MaxSeriesLength {
			line, _ := r.FieldPos(0)
			return nil, &ParseError{File: file, Line: line, Err: fmt.Errorf("%d values: at most %d", len(rec)-1, MaxSeriesLength)}
		}
		s, err := parseRecord(r, rec, file, field, seen)
		if err != nil {
			if len(out) == 0 {
				err = fmt.Errorf("%w (a series file has no header: each line is an id, then values)", err)
			}
			return nil, err
		}
		out = append(out, s)
	}
}

// newReader reads CSV records from data, after a byte order mark if it
// starts with one (spreadsheets write them).
func newReader(data []byte) *csv.Reader {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.FieldsPerRecord = -1 // checked here, with a clearer message
	r.ReuseRecord = true
	return r
}

func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: file, Line: pe.Line, Column: pe.Column, Field: "csv", Err: pe.Err}
	}
	return &ParseError{File: file, Err: err}
}

// parseRecord reads one line: the id, then observations up to the first
// empty field, then nothing but empty fields.
func parseRecord(r *csv.Reader, rec []string, file string, field func(int) string, seen map[string]int) (Series, error) {
	fail := func(i int, err error) error {
		line, col := r.FieldPos(i)
		return &ParseError{File: file, Line: line, Column: col, Field: field(i), Err: err}
	}
	line, _ := r.FieldPos(0)
	id := rec[0]
	if id == "" || strings.TrimSpace(id) != id {
		return Series{}, fail(0, fmt.Errorf("%q: want a non-empty id without surrounding spaces", id))
	}
	if prev, ok := seen[id]; ok {
		return Series{}, fail(0, fmt.Errorf("%q: also the id on line %d; ids must be unique", id, prev))
	}
	seen[id] = line
	end := len(rec)
	for end > 1 && rec[end-1] == "" {
		end--
	}
	if end == 1 {
		return Series{}, fail(0, fmt.Errorf("series %q has no observations", id))
	}
	values := make([]float64, end-1)
	for i := 1; i < end; i++ {
		v, err := parseNumber(rec[i])
		if err != nil {
			if rec[i] == "" {
				err = fmt.Errorf("empty, but a value follows at %s: a series has no gaps", field(firstAfter(rec, i)))
			}
			return Series{}, fail(i, err)
		}
		values[i-1] = v
	}
	// A clone, so the series does not keep the whole line's text alive.
	return Series{ID: strings.Clone(id), Values: values}, nil
}

func firstAfter(rec []string, i int) int {
	for j := i + 1; j < len(rec); j++ {
		if rec[j] != "" {
			return j
		}
	}
	return i
}

// parseNumber accepts a finite decimal number: an optional sign, digits
// with an optional fraction, an optional exponent. Not hexadecimal, not
// "NaN" or "Inf", no underscores or spaces.
func parseNumber(s string) (float64, error) {
	bad := fmt.Errorf("%q: want a finite decimal number", s)
	if !decimal(s) {
		return 0, bad
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, bad
	}
	return v, nil
}

func decimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}
