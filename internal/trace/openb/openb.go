// Package openb reads the "openb" GPU cluster trace of the Alibaba Cluster
// Trace Program (cluster-trace-gpu-v2023, released with Weng et al.,
// "Beware of Fragmentation", USENIX ATC '23): a node list and task lists of
// GPU-sharing, multi-GPU and CPU-only tasks. Readers are strict: a row that
// does not parse is an error naming the file, line and column.
package openb

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/place"
)

// Node is one row of a node list.
type Node struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	GPUs      int
	Model     string // accelerator type; "" for CPU-only nodes
}

// Place returns the node's allocatable state, empty, at fleet index i.
func (n *Node) Place(i int) *place.Node {
	free := make([]int32, n.GPUs)
	for d := range free {
		free[d] = place.Whole
	}
	return &place.Node{
		Index: i, Accel: n.Model, Free: free,
		CPUCap: n.CPUMilli, MemCap: n.MemoryMiB, CPUFree: n.CPUMilli, MemFree: n.MemoryMiB,
		Schedulable: true,
	}
}

// Task is one row of a task list: its name and the shape it asks for, and,
// from a list with all its columns, its class and times.
type Task struct {
	Name string
	Req  place.Request
	// QoS is LS, Guaranteed, Burstable or BE; Phase the pod's last phase
	// ("" when the list has no such columns).
	QoS, Phase string
	// Created, Deleted and Scheduled are the task's times in seconds; -1
	// when empty (a task never scheduled has no scheduled_time) or absent.
	Created, Deleted, Scheduled int64
	// Line is the task's line in its file.
	Line int
}

// Error locates a malformed row.
type Error struct {
	File   string
	Line   int // 1-based
	Column int // 1-based; 0 when the whole row is at fault
	// Char is the 1-based character position of the field in its line.
	Char  int
	Field string
	Err   error
}

func (e *Error) Error() string {
	if e.Column == 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: column %d (%s): %v", e.File, e.Line, e.Column, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var (
	nodeHeader = []string{"sn", "cpu_milli", "memory_mib", "gpu", "model"}
	// Task lists come with the first five columns, or with all of them.
	taskHeader = []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli",
		"gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time"}
	taskMinColumns = 5
)

// MaxGPUs bounds the GPUs of a node and of a task.
const MaxGPUs = 64

// LoadNodes reads the node list at path.
func LoadNodes(path string) ([]Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load nodes: %w", err)
	}
	defer f.Close()
	return ReadNodes(f, filepath.Base(path))
}

// LoadTasks reads the task list at path.
func LoadTasks(path string) ([]Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load tasks: %w", err)
	}
	defer f.Close()
	return ReadTasks(f, filepath.Base(path))
}

// ReadNodes reads a node list (columns sn, cpu_milli, memory_mib, gpu,
// model); file names the source in errors.
func ReadNodes(r io.Reader, file string) ([]Node, error) {
	rows, err := newRows(r, file, func(h []string) error {
		if !slices.Equal(h, nodeHeader) {
			return fmt.Errorf("header %q: want %q", strings.Join(h, ","), strings.Join(nodeHeader, ","))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Node
	seen := map[string]int{}
	for rows.next() {
		var n Node
		n.Name = rows.name(0)
		n.CPUMilli = rows.int(1, 0, 1<<40)
		n.MemoryMiB = rows.int(2, 0, 1<<40)
		n.GPUs = int(rows.int(3, 0, MaxGPUs))
		n.Model = rows.field(4)
		if rows.err == nil {
			switch {
			case n.GPUs > 0 && !validType(n.Model):
				rows.fail(4, fmt.Errorf("%q: a node with GPUs needs a type of letters, digits, '-' or '_'", n.Model))
			case n.GPUs == 0 && n.Model != "":
				rows.fail(4, fmt.Errorf("%q: a node without GPUs has no type", n.Model))
			}
		}
		if rows.err == nil {
			if l, dup := seen[n.Name]; dup {
				rows.fail(0, fmt.Errorf("%q: also on line %d", n.Name, l))
			}
			seen[n.Name] = rows.line
		}
		if rows.err != nil {
			return nil, rows.err
		}
		out = append(out, n)
	}
	return out, rows.err
}

// ReadTasks reads a task list (columns name, cpu_milli, memory_mib,
// num_gpu, gpu_milli, and optionally gpu_spec, qos, pod_phase and the
// creation, deletion and scheduled times); file names the source in errors.
// A task asks for num_gpu whole GPUs (gpu_milli 1000), or, with num_gpu 1
// and gpu_milli below 1000, that fraction of one shared GPU; gpu_spec lists
// the GPU types it accepts, separated by '|' (empty or "nan": any).
func ReadTasks(r io.Reader, file string) ([]Task, error) {
	rows, err := newRows(r, file, func(h []string) error {
		if len(h) < taskMinColumns || len(h) > len(taskHeader) || !slices.Equal(h, taskHeader[:len(h)]) {
			return fmt.Errorf("header %q: want the first %d or more of %q",
				strings.Join(h, ","), taskMinColumns, strings.Join(taskHeader, ","))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return readTasks(rows, nil)
}

// task reads the current row as a task; ok is false when it is malformed.
func (rows *rows) task() (t Task, ok bool) {
	t.Name = rows.name(0)
	t.Req.CPUMilli = rows.int(1, 0, 1<<40)
	t.Req.MemoryMiB = rows.int(2, 0, 1<<40)
	gpus := int(rows.int(3, 0, MaxGPUs))
	milli := int32(rows.int(4, 0, place.Whole))
	if rows.err == nil {
		switch {
		case gpus == 0 && milli != 0:
			rows.fail(4, fmt.Errorf("%d: a task without GPUs asks 0 milli", milli))
		case gpus == 1 && milli == 0:
			rows.fail(4, errors.New("0: a task with one GPU asks 1..1000 milli"))
		case gpus > 1 && milli != place.Whole:
			rows.fail(4, fmt.Errorf("%d: a task with %d GPUs asks whole ones (1000 milli)", milli, gpus))
		case gpus == 1 && milli < place.Whole:
			t.Req.Milli = milli
		default:
			t.Req.Devices = gpus
		}
	}
	if len(rows.header) > 5 {
		t.Req.Accel = rows.spec(5)
		if gpus == 0 && len(t.Req.Accel) > 0 && rows.err == nil {
			rows.fail(5, fmt.Errorf("%q: a task without GPUs accepts no GPU type", rows.field(5)))
		}
	}
	t.Created, t.Deleted, t.Scheduled, t.Line = -1, -1, -1, rows.line
	if len(rows.header) > 7 {
		t.QoS, t.Phase = rows.name(6), rows.name(7)
	}
	if len(rows.header) > 8 {
		t.Created = rows.optInt(8)
	}
	if len(rows.header) > 9 {
		t.Deleted = rows.optInt(9)
	}
	if len(rows.header) > 10 {
		t.Scheduled = rows.optInt(10)
	}
	return t, rows.err == nil
}

// QoS classes of the trace's tasks.
var qosClasses = []string{"LS", "Guaranteed", "Burstable", "BE"}

// ReadTimedTasks reads a task list with all its columns, for replays in
// time: every task has a unique name, a QoS class, a creation time, and, if
// it was ever scheduled, a deletion time no earlier than its creation and a
// scheduled time between the two. A task never scheduled keeps Scheduled
// -1.
func ReadTimedTasks(r io.Reader, file string) ([]Task, error) {
	rows, err := newRows(r, file, func(h []string) error {
		if !slices.Equal(h, taskHeader) {
			return fmt.Errorf("header %q: time mode needs the columns %s", strings.Join(h, ","), strings.Join(taskHeader, ","))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	return readTasks(rows, func(t *Task) {
		if first, dup := seen[t.Name]; dup {
			rows.fail(0, fmt.Errorf("%q is already used on line %d", t.Name, first))
			return
		}
		seen[t.Name] = t.Line
		switch {
		case !slices.Contains(qosClasses, t.QoS):
			rows.fail(6, fmt.Errorf("%q, want LS, Guaranteed, Burstable or BE", t.QoS))
		case t.Created < 0:
			rows.fail(8, fmt.Errorf("%q, want an integer in 0..%d", rows.field(8), int64(1)<<40))
		case t.Scheduled < 0:
			// Never scheduled: its runtime is unknown.
		case t.Deleted < t.Created:
			rows.fail(9, fmt.Errorf("%q, want an integer in %d..%d", rows.field(9), t.Created, int64(1)<<40))
		case t.Scheduled > t.Deleted:
			rows.fail(10, fmt.Errorf("%q, want an integer in %d..%d", rows.field(10), t.Created, t.Deleted))
		}
	})
}

// readTasks reads the rows of a task list; check, when set, adds checks
// of each task while its row is current.
func readTasks(rows *rows, check func(t *Task)) ([]Task, error) {
	var out []Task
	for rows.next() {
		t, ok := rows.task()
		if ok && check != nil {
			check(&t)
		}
		if rows.err != nil {
			return nil, rows.err
		}
		out = append(out, t)
	}
	return out, rows.err
}

func validType(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// rows walks the records of one CSV file, keeping the first error.
type rows struct {
	r      *csv.Reader
	file   string
	header []string
	rec    []string
	line   int
	err    error
}

func newRows(r io.Reader, file string, checkHeader func([]string) error) (*rows, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	h, err := cr.Read()
	if err == io.EOF {
		return nil, &Error{File: file, Line: 1, Err: errors.New("empty file: want a header")}
	}
	if err != nil {
		return nil, csvError(file, err)
	}
	h = slices.Clone(h)
	if len(h) > 0 {
		h[0] = strings.TrimPrefix(h[0], "\ufeff")
	}
	if err := checkHeader(h); err != nil {
		return nil, &Error{File: file, Line: 1, Err: err}
	}
	return &rows{r: cr, file: file, header: h}, nil
}

func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.Line, Column: pe.Column, Field: "csv", Err: pe.Err}
	}
	return &Error{File: file, Err: err}
}

func (rs *rows) next() bool {
	if rs.err != nil {
		return false
	}
	rec, err := rs.r.Read()
	if err == io.EOF {
		return false
	}
	if err != nil {
		rs.err = csvError(rs.file, err)
		return false
	}
	rs.rec = rec
	rs.line, _ = rs.r.FieldPos(0)
	return true
}

func (rs *rows) fail(col int, err error) {
	if rs.err != nil {
		return
	}
	e := &Error{File: rs.file, Line: rs.line, Err: err}
	if col >= 0 && col < len(rs.header) {
		e.Column, e.Field = col+1, rs.header[col]
		_, e.Char = rs.r.FieldPos(col)
	}
	rs.err = e
}

func (rs *rows) field(col int) string { return rs.rec[col] }

// name is a non-empty field without surrounding space.
func (rs *rows) name(col int) string {
	s := rs.rec[col]
	if s == "" || strings.TrimSpace(s) != s {
		rs.fail(col, fmt.Errorf("%q: want a non-empty value without surrounding spaces", s))
	}
	return s
}

// int is a decimal integer in [lo, hi].
func (rs *rows) int(col int, lo, hi int64) int64 {
	s := rs.rec[col]
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		rs.fail(col, fmt.Errorf("%q: want an integer in %d..%d", s, lo, hi))
		return 0
	}
	return v
}

// optInt is empty (-1) or a decimal integer, 0 or more.
func (rs *rows) optInt(col int) int64 {
	s := rs.rec[col]
	if s == "" {
		return -1
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		rs.fail(col, fmt.Errorf("%q: want an integer, 0 or more, or nothing", s))
		return -1
	}
	return v
}

// spec is a list of GPU types separated by '|'; empty or "nan" is none.
func (rs *rows) spec(col int) []string {
	s := rs.rec[col]
	if s == "" || s == "nan" {
		return nil
	}
	types := strings.Split(s, "|")
	for _, t := range types {
		if !validType(t) {
			rs.fail(col, fmt.Errorf("%q: want GPU types of letters, digits, '-' or '_' separated by '|'", s))
			return nil
		}
	}
	return types
}
