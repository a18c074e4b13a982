package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// MaxLineBytes bounds one trace line; a longer line is an error, so a
// corrupt file cannot make the reader hold it whole.
const MaxLineBytes = 1 << 20

// LineError is a problem with one line of a trace file. Column counts bytes
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

// TraceReader reads a native trace line by line, never holding more than
// one line of text. Lines are, in order: an optional header, queue lines,
// node lines (the fleet at the start, then node events by time), then job
// lines sorted by arrival.
type TraceReader struct {
	name string
	br   *bufio.Reader
	line int

	header   Header
	queues   []quota.Spec
	fleet    []fleet.Node
	events   []NodeEvent
	nodeSeen map[string]int // node name -> line of its add
	preamble bool           // the header, queue and node lines have been read
	next     *Job           // a job read ahead while reading the preamble
	nextLine int

	records     int // non-blank lines decoded
	lastArrival int64
	seen        map[string]int // job ID -> line, to reject duplicates
	err         error
}

// NewTraceReader reads a trace from r; name is used in error messages.
func NewTraceReader(name string, r io.Reader) *TraceReader {
	return &TraceReader{name: name, br: bufio.NewReaderSize(r, 64<<10), seen: map[string]int{}}
}

// Fleet returns the nodes of the trace's fleet at the start (node lines
// without a time), once Preamble has read them.
func (r *TraceReader) Fleet() []fleet.Node { return r.fleet }

// NodeEvents returns the trace's node events (node lines with a time) in
// time order, once Preamble has read them.
func (r *TraceReader) NodeEvents() []NodeEvent { return r.events }

// Preamble reads the header, queue and node lines, up to the first job. A
// trace without a header gets version TraceVersion.
func (r *TraceReader) Preamble() (Header, []quota.Spec, error) {
	if r.preamble {
		return r.header, r.queues, nil
	}
	r.preamble = true
	r.header.Version = TraceVersion
	for {
		line, err := r.readLine()
		if err == io.EOF {
			return r.header, r.queues, nil
		}
		if err != nil {
			r.err = err
			return r.header, r.queues, err
		}
		if line == nil {
			continue
		}
		rec, err := r.decode(line)
		if err != nil {
			r.err = err
			return r.header, r.queues, err
		}
		switch {
		case rec.Header != nil:
			if r.records > 1 {
				r.err = r.errAt(line, []any{"header"}, "the header must be the first line")
				return r.header, r.queues, r.err
			}
			if rec.Header.Version != TraceVersion {
				r.err = r.errAt(line, []any{"header", "version"}, fmt.Sprintf("%d, want %d", rec.Header.Version, TraceVersion))
				return r.header, r.queues, r.err
			}
			if o := rec.Header.Origin; o != "" {
				if err := checkOrigin(o); err != nil {
					r.err = r.errAt(line, []any{"header", "origin"}, "header.origin: "+err.Error())
					return r.header, r.queues, r.err
				}
			}
			r.header = *rec.Header
		case rec.Queue != nil:
			if r.nodeSeen != nil {
				r.err = r.errAt(line, []any{"queue"}, "queue lines must come before the first node line")
				return r.header, r.queues, r.err
			}
			if rec.Queue.Name == "" {
				r.err = r.errAt(line, []any{"queue", "name"}, "must not be empty")
				return r.header, r.queues, r.err
			}
			q := *rec.Queue
			if len(q.Quotas) == 0 {
				q.Quotas = nil // an empty map and none read alike
			}
			r.queues = append(r.queues, q)
		case rec.Node != nil:
			if err := r.node(line, rec.Node); err != nil {
				r.err = err
				return r.header, r.queues, err
			}
		case rec.Job != nil:
			j, err := r.job(line, rec.Job)
			if err != nil {
				r.err = err
				return r.header, r.queues, err
			}
			r.next, r.nextLine = &j, r.line
			return r.header, r.queues, nil
		}
	}
}

// Next returns the next job, or io.EOF after the last.
func (r *TraceReader) Next() (Job, error) {
	if !r.preamble {
		if _, _, err := r.Preamble(); err != nil {
			return Job{}, err
		}
	}
	if r.next != nil {
		j := *r.next
		r.next = nil
		return j, nil
	}
	if r.err != nil {
		return Job{}, r.err
	}
	for {
		line, err := r.readLine()
		if err != nil {
			r.err = err
			return Job{}, err
		}
		if line == nil {
			continue
		}
		rec, err := r.decode(line)
		if err != nil {
			r.err = err
			return Job{}, err
		}
		switch {
		case rec.Header != nil:
			r.err = r.errAt(line, []any{"header"}, "the header must be the first line")
		case rec.Queue != nil:
			r.err = r.errAt(line, []any{"queue"}, "queue lines must come before the first job line")
		case rec.Node != nil:
			r.err = r.errAt(line, []any{"node"}, "node lines must come before the first job line")
		default:
			j, err := r.job(line, rec.Job)
			if err != nil {
				r.err = err
				return Job{}, err
			}
			return j, nil
		}
		return Job{}, r.err
	}
}

// readLine returns the next line without its end, nil for a blank line, or
// io.EOF. The slice is valid until the next call.
func (r *TraceReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Lines above the buffer but below the limit are gathered.
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			if len(buf) > MaxLineBytes {
				r.line++
				return nil, &LineError{File: r.name, Line: r.line, Column: MaxLineBytes + 1, Msg: fmt.Sprintf("line is longer than %d bytes", MaxLineBytes)}
			}
			line, err = r.br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", r.name, err)
	}
	if err == io.EOF && len(line) == 0 {
		return nil, io.EOF
	}
	r.line++
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, nil
	}
	return line, nil
}

func (r *TraceReader) decode(line []byte) (*record, error) {
	r.records++
	var rec record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, r.jsonError(line, err)
	}
	off := int(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		return nil, &LineError{File: r.name, Line: r.line, Column: skipSpace(line, off) + 1, Msg: "unexpected data after the object; a line holds one JSON object"}
	}
	n := 0
	for _, set := range []bool{rec.Header != nil, rec.Queue != nil, rec.Node != nil, rec.Job != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, &LineError{File: r.name, Line: r.line, Column: 1, Msg: "a line holds exactly one of header, queue, node or job"}
	}
	return &rec, nil
}

func (r *TraceReader) job(line []byte, w *traceJob) (Job, error) {
	j, err := w.job()
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return j, r.errAt(line, fe.path, fe.Error())
		}
		return j, &LineError{File: r.name, Line: r.line, Column: 1, Msg: err.Error()}
	}
	if j.Arrival < r.lastArrival {
		return j, r.errAt(line, []any{"job", "arrival"}, fmt.Sprintf("job.arrival: %d is before the previous job's %d; jobs must be in arrival order", j.Arrival, r.lastArrival))
	}
	if first, dup := r.seen[w.ID]; dup {
		return j, r.errAt(line, []any{"job", "id"}, fmt.Sprintf("job.id: %q is already used on line %d", w.ID, first))
	}
	r.seen[w.ID] = r.line
	r.lastArrival = j.Arrival
	return j, nil
}

// node reads a node line: a node of the fleet at the start, which come
// first, or a node event, in time order.
func (r *TraceReader) node(line []byte, w *traceNode) error {
	ev, initial, err := w.node()
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return r.errAt(line, fe.path, fe.Error())
		}
		return &LineError{File: r.name, Line: r.line, Column: 1, Msg: err.Error()}
	}
	if r.nodeSeen == nil {
		r.nodeSeen = map[string]int{}
	}
	if initial && len(r.events) > 0 {
		return r.errAt(line, []any{"node"}, "the fleet's nodes (lines without at) must come before the node events")
	}
	if n := len(r.events); n > 0 && ev.At < r.events[n-1].At {
		return r.errAt(line, []any{"node", "at"}, fmt.Sprintf("node.at: %d is before the previous node event's %d; node events must be in time order", ev.At, r.events[n-1].At))
	}
	if ev.Kind == NodeAdd {
		if first, dup := r.nodeSeen[ev.Node.Name]; dup {
			return r.errAt(line, []any{"node", "name"}, fmt.Sprintf("node.name: %q is already added on line %d", ev.Node.Name, first))
		}
		r.nodeSeen[ev.Node.Name] = r.line
	}
	if initial {
		r.fleet = append(r.fleet, ev.Node)
	} else {
		r.events = append(r.events, ev)
	}
	return nil
}

// errAt reports msg at the field named by path; when the field is absent
// from the line, at the nearest enclosing field that is present.
func (r *TraceReader) errAt(line []byte, path []any, msg string) error {
	col := 1
	for p := path; len(p) > 0; p = p[:len(p)-1] {
		if off, ok := locatePath(line, p); ok {
			col = off + 1
			break
		}
	}
	return &LineError{File: r.name, Line: r.line, Column: col, Msg: msg}
}

func (r *TraceReader) jsonError(line []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		col := int(se.Offset)
		if col < 1 {
			col = 1
		}
		return &LineError{File: r.name, Line: r.line, Column: col, Msg: "invalid JSON: " + strings.TrimPrefix(se.Error(), "json: ")}
	case errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF:
		return &LineError{File: r.name, Line: r.line, Column: len(line) + 1, Msg: "invalid JSON: the line ends inside a value"}
	case errors.As(err, &te):
		col := tokenStart(line, int(te.Offset)) + 1
		field := te.Field
		if field == "" {
			field = "value"
		}
		return &LineError{File: r.name, Line: r.line, Column: col, Msg: fmt.Sprintf("%s: a JSON %s, want %s", field, te.Value, te.Type)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		off, key, ok := locateUnknown(line)
		if !ok {
			return &LineError{File: r.name, Line: r.line, Column: 1, Msg: strings.TrimPrefix(err.Error(), "json: ")}
		}
		return &LineError{File: r.name, Line: r.line, Column: off + 1, Msg: fmt.Sprintf("unknown field %q (see docs/TRACE_FORMAT.md for the fields of each line)", key)}
	}
	return &LineError{File: r.name, Line: r.line, Column: 1, Msg: strings.TrimPrefix(err.Error(), "json: ")}
}
