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

// Task is one row of a task list: its name and the shape it asks for.
type Task struct {
	Name string
	Req  place.Request
}

// Error locates a malformed row.
type Error struct {
	File   string
	Line   int // 1-based
	Column int // 1-based; 0 when the whole row is at fault
	Field  string
	Err    error
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
	var out []Task
	for rows.next() {
		var t Task
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
		for c := 6; c < len(rows.header); c++ {
			if c < 8 {
				rows.name(c) // qos, pod_phase: present but unused
			} else {
				rows.optInt(c)
			}
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

// optInt is empty or a decimal integer.
func (rs *rows) optInt(col int) {
	if s := rs.rec[col]; s != "" {
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			rs.fail(col, fmt.Errorf("%q: want an integer or nothing", s))
		}
	}
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
