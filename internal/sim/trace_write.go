package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// TraceWriter writes a native trace line by line through a buffer; call
// Flush at the end.
type TraceWriter struct {
	w    *bufio.Writer
	jobs bool // a job line was written; queue lines may no longer follow
	last int64
	n    int
}

// NewTraceWriter writes a trace to w.
func NewTraceWriter(w io.Writer) *TraceWriter {
	return &TraceWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

func (t *TraceWriter) line(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = t.w.Write(b)
	t.n++
	return err
}

// Header writes the header line; it must come first.
func (t *TraceWriter) Header(h Header) error {
	if t.n > 0 {
		return fmt.Errorf("trace header: must be the first line")
	}
	if h.Version == 0 {
		h.Version = TraceVersion
	}
	return t.line(record{Header: &h})
}

// Queue writes a queue line; queues come before jobs.
func (t *TraceWriter) Queue(q quota.Spec) error {
	if t.jobs {
		return fmt.Errorf("trace queue %q: queue lines must come before job lines", q.Name)
	}
	return t.line(record{Queue: &q})
}

// Job writes a job line; jobs come in arrival order.
func (t *TraceWriter) Job(j *Job) error {
	if t.jobs && j.Arrival < t.last {
		return fmt.Errorf("trace job %s: arrival %d is before the previous job's %d", j.ID, j.Arrival, t.last)
	}
	t.jobs, t.last = true, j.Arrival
	w := j.wire()
	return t.line(record{Job: &w})
}

// Flush writes out what is buffered.
func (t *TraceWriter) Flush() error { return t.w.Flush() }
