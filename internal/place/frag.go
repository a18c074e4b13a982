package place

import (
	"cmp"
	"slices"
	"strings"
)

// Fragmentation in the sense of Weng et al. (ATC '23): a node's free
// accelerator milli counts as fragmented for a task class when that class
// could not use it there. The node's fragmentation is the expectation over
// the target workload's classes:
//
//	F(node) = sum over classes t of  p_t * unusable_t(node)
//
// where unusable_t is all of the node's free milli when t cannot run on the
// node at all (CPU-only classes, a GPU type it does not accept, too few
// devices with enough free milli, too little CPU), and otherwise the free
// milli on devices too small for one of t's devices. Writing G for the
// node's free milli and S_t for the free milli on devices big enough for t,
// this is F = G - sum over classes t that fit of p_t * S_t, which is how
// it is computed below.

// fragClass is one task class of the target workload.
type fragClass struct {
	cpu   int64
	mem   int64 // 0 unless the model checks memory
	milli int32 // milli per device: 1..999 shared, 1000 whole, 0 CPU-only
	count int   // devices
	accel string
	p     float64
}

// fragOptions say which classes a model keeps and what it checks.
type fragOptions struct {
	// coverage keeps the most frequent classes until they hold at least
	// this share of the workload's weight (the paper: 0.95).
	coverage float64
	// memory also requires a class's memory to fit; the paper's measure
	// looks at CPU and accelerators only.
	memory bool
}

// fragModel measures fragmentation against a fixed set of classes.
type fragModel struct {
	opts    fragOptions
	classes []fragClass
	byType  map[string]*typeFrag
}

// typeFrag is the part of the model that applies to one accelerator type:
// the GPU classes that accept it, grouped by device threshold.
type typeFrag struct {
	weight     float64 // of all classes: 1, or 0 for an empty model
	thresholds []int32 // distinct per-device milli, ascending
	classes    []typeClass
}

type typeClass struct {
	th    int // index into thresholds
	count int
	cpu   int64
	mem   int64
	p     float64
}

// newFragModel keeps the most frequent classes of w until they cover at
// least opts.coverage of its weight (the paper's "typical pods": coverage
// 0.95) and renormalises their weights to sum to 1. Classes are keyed by
// CPU, per-device milli, device count and accepted types, and by memory if
// opts.memory.
func newFragModel(w *Workload, opts fragOptions) *fragModel {
	m := &fragModel{opts: opts, byType: map[string]*typeFrag{}}
	if w == nil {
		return m
	}
	coverage := opts.coverage
	type key struct {
		cpu   int64
		mem   int64
		milli int32
		count int
		accel string
	}
	weights := map[key]float64{}
	var total float64
	for _, c := range w.Classes {
		if c.Weight <= 0 {
			continue
		}
		k := key{cpu: c.Req.CPUMilli, accel: strings.Join(c.Req.Accel, "|")}
		if opts.memory {
			k.mem = c.Req.MemoryMiB
		}
		switch {
		case c.Req.Devices > 0:
			k.milli, k.count = Whole, c.Req.Devices
		case c.Req.Milli > 0:
			k.milli, k.count = c.Req.Milli, 1
		default:
			k.accel = ""
		}
		weights[k] += c.Weight
		total += c.Weight
	}
	for k, p := range weights {
		m.classes = append(m.classes, fragClass{cpu: k.cpu, mem: k.mem, milli: k.milli, count: k.count, accel: k.accel, p: p})
	}
	// Most frequent first; equal weights in the paper's order (larger
	// CPU, then larger milli, more devices, later type name first).
	slices.SortFunc(m.classes, func(a, b fragClass) int {
		return cmp.Or(cmp.Compare(b.p, a.p), cmp.Compare(b.cpu, a.cpu), cmp.Compare(b.milli, a.milli),
			cmp.Compare(b.count, a.count), cmp.Compare(b.accel, a.accel), cmp.Compare(b.mem, a.mem))
	})
	var kept float64
	for i, c := range m.classes {
		kept += c.p
		if kept >= coverage*total {
			m.classes = m.classes[:i+1]
			break
		}
	}
	for i := range m.classes {
		m.classes[i].p /= kept
	}
	return m
}

// forType returns the part of the model that applies to accelerator type t.
func (m *fragModel) forType(t string) *typeFrag {
	if tf, ok := m.byType[t]; ok {
		return tf
	}
	tf := &typeFrag{}
	if len(m.classes) > 0 {
		tf.weight = 1
	}
	for _, c := range m.classes {
		if c.milli == 0 || t == "" || !acceptsSpec(c.accel, t) {
			continue
		}
		tf.thresholds = append(tf.thresholds, c.milli)
	}
	slices.Sort(tf.thresholds)
	tf.thresholds = slices.Compact(tf.thresholds)
	for _, c := range m.classes {
		if c.milli == 0 || t == "" || !acceptsSpec(c.accel, t) {
			continue
		}
		th, _ := slices.BinarySearch(tf.thresholds, c.milli)
		tf.classes = append(tf.classes, typeClass{th: th, count: c.count, cpu: c.cpu, mem: c.mem, p: c.p})
	}
	m.byType[t] = tf
	return tf
}

func acceptsSpec(spec, t string) bool {
	if spec == "" {
		return true
	}
	for s := range strings.SplitSeq(spec, "|") {
		if s == t {
			return true
		}
	}
	return false
}

// maxThresholds bounds the stack arrays of frag; models with more distinct
// device sizes fall back to the heap.
const maxThresholds = 64

// frag is the fragmentation of a node of type tf with cpu free milli-CPU,
// mem free MiB (checked only by models with the memory option) and free
// milli per device.
func (tf *typeFrag) frag(cpu, mem int64, free []int32) float64 {
	var g int64
	for _, f := range free {
		g += int64(f)
	}
	if g == 0 {
		return 0
	}
	var cntBuf [maxThresholds]int32
	var sumBuf [maxThresholds]int64
	cnt, sum := cntBuf[:0], sumBuf[:0]
	if len(tf.thresholds) > maxThresholds {
		cnt, sum = make([]int32, 0, len(tf.thresholds)), make([]int64, 0, len(tf.thresholds))
	}
	for _, th := range tf.thresholds {
		var c int32
		var s int64
		for _, f := range free {
			if f >= th {
				c++
				s += int64(f)
			}
		}
		cnt, sum = append(cnt, c), append(sum, s)
	}
	usable := 0.0
	for i := range tf.classes {
		c := &tf.classes[i]
		if int(cnt[c.th]) >= c.count && cpu >= c.cpu && mem >= c.mem {
			usable += c.p * float64(sum[c.th])
		}
	}
	return tf.weight*float64(g) - usable
}
