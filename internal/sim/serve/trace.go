package serve

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Request is one inference request of a trace.
type Request struct {
	// Arrival is the time since the trace's first request.
	Arrival time.Duration
	// Prompt is the number of input (context) tokens, at least 1.
	Prompt int
	// Output is the number of generated tokens, at least 1.
	Output int
}

// MaxTokens bounds the prompt and output of one request. It is far above
// any model's context window and keeps token sums far from overflowing.
const MaxTokens = 10_000_000

// MaxLineBytes bounds one line of a trace file, so a corrupt file cannot
// make a reader hold it whole.
const MaxLineBytes = 1 << 20

// maxTimestampMS bounds a JSON Lines timestamp: a year of milliseconds.
const maxTimestampMS = 365 * 24 * 3600 * 1000

// LineError is a problem at one place of a trace file. Column counts bytes
// from 1.
type LineError struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Format names a request trace format.
type Format string

// The request trace formats.
const (
	// FormatAzure is the Azure LLM inference trace 2023 CSV:
	// TIMESTAMP,ContextTokens,GeneratedTokens, one request a row.
	FormatAzure Format = "azure-csv"
	// FormatJSONL is JSON Lines with timestamp (milliseconds from the
	// start), input_length and output_length, the shape other public LLM
	// request traces use.
	FormatJSONL Format = "jsonl"
)

// Load reads a request trace, choosing the reader by the file's first
// non-blank byte: '{' is JSON Lines, anything else the Azure CSV.
func Load(path string) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load requests: %w", err)
	}
	defer f.Close()
	return Read(filepath.Base(path), f)
}

// Read reads a request trace from r (see Load); name is used in error
// messages.
func Read(name string, r io.Reader) ([]Request, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	format := FormatAzure
	for n := 1; ; n++ {
		p, err := br.Peek(n)
		if len(p) < n {
			if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				if errors.Is(err, io.EOF) {
					return nil, &LineError{File: name, Line: 1, Column: 1, Msg: "no requests: the file is empty or blank"}
				}
				break
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		c := p[n-1]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		if c == '{' {
			format = FormatJSONL
		}
		break
	}
	if format == FormatJSONL {
		return ReadJSONL(name, br)
	}
	return ReadAzure(name, br)
}

// azureLayout is the Azure trace's timestamp: date, time, up to seven
// fractional digits, no zone (UTC).
const azureLayout = "2006-01-02 15:04:05.999999999"

// ReadAzure reads the Azure LLM inference trace CSV. The header must name
// TIMESTAMP, ContextTokens and GeneratedTokens (in any order; other columns
// are refused, so a file of another shape is not misread). Arrivals are
// measured from the earliest timestamp; rows out of order are sorted.
func ReadAzure(name string, r io.Reader) ([]Request, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = 3
	header, err := cr.Read()
	if err != nil {
		return nil, csvError(name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimPrefix(h, "\ufeff")
		switch h {
		case "TIMESTAMP", "ContextTokens", "GeneratedTokens":
			if _, dup := col[h]; dup {
				line, c := cr.FieldPos(i)
				return nil, &LineError{File: name, Line: line, Column: c, Msg: fmt.Sprintf("header: column %q appears twice", h)}
			}
			col[h] = i
		default:
			line, c := cr.FieldPos(i)
			return nil, &LineError{File: name, Line: line, Column: c,
				Msg: fmt.Sprintf("header: unknown column %q: want TIMESTAMP, ContextTokens, GeneratedTokens", h)}
		}
	}
	ti, pi, oi := col["TIMESTAMP"], col["ContextTokens"], col["GeneratedTokens"]
	type row struct {
		at        time.Time
		prompt, o int
	}
	var rows []row
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		at, err := time.Parse(azureLayout, rec[ti])
		if err != nil {
			line, c := cr.FieldPos(ti)
			return nil, &LineError{File: name, Line: line, Column: c,
				Msg: fmt.Sprintf("TIMESTAMP %q: want YYYY-MM-DD HH:MM:SS[.fraction]", rec[ti])}
		}
		p, err := tokens(rec[pi], "ContextTokens")
		if err != nil {
			line, c := cr.FieldPos(pi)
			return nil, &LineError{File: name, Line: line, Column: c, Msg: err.Error()}
		}
		o, err := tokens(rec[oi], "GeneratedTokens")
		if err != nil {
			line, c := cr.FieldPos(oi)
			return nil, &LineError{File: name, Line: line, Column: c, Msg: err.Error()}
		}
		rows = append(rows, row{at, p, o})
	}
	if len(rows) == 0 {
		return nil, &LineError{File: name, Line: 2, Column: 1, Msg: "no requests: the file has a header only"}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at.Before(rows[j].at) })
	t0 := rows[0].at
	if span := rows[len(rows)-1].at.Sub(t0); span > maxTimestampMS*time.Millisecond || span < 0 {
		return nil, &LineError{File: name, Line: 2, Column: ti + 1, Msg: fmt.Sprintf("TIMESTAMP: the trace spans %s, over the limit of a year", span)}
	}
	out := make([]Request, len(rows))
	for i, r := range rows {
		out[i] = Request{Arrival: r.at.Sub(t0), Prompt: r.prompt, Output: r.o}
	}
	return out, nil
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = "want 3 fields: TIMESTAMP,ContextTokens,GeneratedTokens"
		}
		return &LineError{File: name, Line: pe.Line, Column: pe.Column, Msg: msg}
	}
	if errors.Is(err, io.EOF) {
		return &LineError{File: name, Line: 1, Column: 1, Msg: "no requests: the file is empty"}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// tokens parses a token count: a whole number from 1 to MaxTokens.
func tokens(s, field string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > MaxTokens {
		return 0, fmt.Errorf("%s %q: want a whole number from 1 to %d", field, s, MaxTokens)
	}
	return int(n), nil
}

// ReadJSONL reads JSON Lines, one request an object: timestamp (a number
// of milliseconds from the start, 0 or more), input_length and
// output_length (whole numbers from 1 to MaxTokens). Other keys (a trace's
// hash_ids, say) are skipped; a known key twice is an error. Blank lines
// are allowed; rows out of order are sorted by timestamp.
func ReadJSONL(name string, r io.Reader) ([]Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	var out []Request
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		req, err := decodeJSONLine(text)
		if err != nil {
			var pe *posError
			if errors.As(err, &pe) {
				return nil, &LineError{File: name, Line: line, Column: pe.col, Msg: pe.msg}
			}
			return nil, &LineError{File: name, Line: line, Column: 1, Msg: err.Error()}
		}
		out = append(out, req)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{File: name, Line: line + 1, Column: 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, &LineError{File: name, Line: 1, Column: 1, Msg: "no requests: the file has no JSON lines"}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Arrival < out[j].Arrival })
	t0 := out[0].Arrival
	for i := range out {
		out[i].Arrival -= t0
	}
	return out, nil
}

type posError struct {
	col int
	msg string
}

func (e *posError) Error() string { return e.msg }

// decodeJSONLine walks one object's tokens so that every error can name
// the column of the value at fault.
func decodeJSONLine(text []byte) (Request, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	col := func() int { return int(dec.InputOffset()) + 1 }
	syntax := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Offset counts the bytes read before the one at fault.
			return &posError{col: min(int(se.Offset)+1, len(text)+1), msg: "malformed JSON: " + se.Error()}
		}
		return &posError{col: col(), msg: "malformed JSON: the object is cut short"}
	}
	start := col()
	tok, err := dec.Token()
	if err != nil {
		return Request{}, syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Request{}, &posError{col: start, msg: "want a JSON object with timestamp, input_length, output_length"}
	}
	var req Request
	seen := map[string]bool{}
	for dec.More() {
		kcol := valueColumn(text, col())
		tok, err := dec.Token()
		if err != nil {
			return Request{}, syntax(err)
		}
		key := tok.(string) // object keys are always strings
		vcol := col()
		switch key {
		case "timestamp", "input_length", "output_length":
			if seen[key] {
				return Request{}, &posError{col: kcol, msg: fmt.Sprintf("key %q appears twice", key)}
			}
			seen[key] = true
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return Request{}, syntax(err)
			}
			continue
		}
		tok, err = dec.Token()
		if err != nil {
			return Request{}, syntax(err)
		}
		// The decoder reports the offset after the value's leading
		// space; point at the value itself.
		vcol = valueColumn(text, vcol)
		num, ok := tok.(json.Number)
		if !ok {
			if d, isDelim := tok.(json.Delim); isDelim && (d == '[' || d == '{') {
				return Request{}, &posError{col: vcol, msg: fmt.Sprintf("%s: want a number, not an array or object", key)}
			}
			return Request{}, &posError{col: vcol, msg: fmt.Sprintf("%s: want a number, got %v", key, tok)}
		}
		switch key {
		case "timestamp":
			ms, err := num.Float64()
			if err != nil || math.IsNaN(ms) || ms < 0 || ms > maxTimestampMS {
				return Request{}, &posError{col: vcol, msg: fmt.Sprintf("timestamp %s: want milliseconds from the start, 0 to %d", num, maxTimestampMS)}
			}
			req.Arrival = time.Duration(math.Round(ms * float64(time.Millisecond)))
		case "input_length":
			n, err := tokens(num.String(), "input_length")
			if err != nil {
				return Request{}, &posError{col: vcol, msg: err.Error()}
			}
			req.Prompt = n
		case "output_length":
			n, err := tokens(num.String(), "output_length")
			if err != nil {
				return Request{}, &posError{col: vcol, msg: err.Error()}
			}
			req.Output = n
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Request{}, syntax(err)
	}
	if dec.More() {
		return Request{}, &posError{col: valueColumn(text, col()), msg: "want one JSON object a line"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Request{}, &posError{col: col(), msg: "want one JSON object a line"}
	}
	for _, k := range []string{"timestamp", "input_length", "output_length"} {
		if !seen[k] {
			return Request{}, &posError{col: start, msg: fmt.Sprintf("missing %q: want timestamp, input_length, output_length", k)}
		}
	}
	return req, nil
}

// valueColumn skips the separator and blank space before a value.
func valueColumn(text []byte, col int) int {
	i := col - 1
	for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == ':' || text[i] == ',') {
		i++
	}
	return i + 1
}
