package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// TraceWriter writes a native trace line by line through a buffer; call
// Flush at the end.
type TraceWriter struct {
	w      *bufio.Writer
	jobs   bool // a job line was written; queue and node lines may no longer follow
	nodes  bool // a node line was written; queue lines may no longer follow
	events bool // a node event was written; fleet nodes may no longer follow
	lastEv int64
	last   int64
	n      int
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
	if t.jobs || t.nodes {
		return fmt.Errorf("trace queue %q: queue lines must come before node and job lines", q.Name)
	}
	return t.line(record{Queue: &q})
}

// Node writes a node of the fleet at the start; they come after the
// queues and before node events and jobs.
func (t *TraceWriter) Node(n fleet.Node) error {
	if t.jobs || t.events {
		return fmt.Errorf("trace node %q: the fleet's nodes must come before node events and jobs", n.Name)
	}
	t.nodes = true
	w := wireNode(NodeEvent{Kind: NodeAdd, Node: n}, true)
	return t.line(record{Node: &w})
}

// NodeEvent writes a node event; they come in time order, before jobs.
func (t *TraceWriter) NodeEvent(ev NodeEvent) error {
	switch {
	case t.jobs:
		return fmt.Errorf("trace node event %s %s: node lines must come before job lines", ev.Kind, ev.Node.Name)
	case t.events && ev.At < t.lastEv:
		return fmt.Errorf("trace node event %s %s: at %d is before the previous event's %d", ev.Kind, ev.Node.Name, ev.At, t.lastEv)
	case ev.Kind != NodeAdd && ev.Kind != NodeRetire:
		return fmt.Errorf("trace node event %s: kind %s, want add or retire", ev.Node.Name, ev.Kind)
	}
	t.nodes, t.events, t.lastEv = true, true, ev.At
	w := wireNode(ev, false)
	return t.line(record{Node: &w})
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
