package store

import (
	"container/heap"
	"slices"
)

// Shared by both stores: which index ranges answer a query, and the merge
// of several ranges into one listing in submission order.

// Range yields the sequence numbers of one index prefix in increasing
// order.
type Range interface {
	Next() (seq uint64, ok bool)
}

// FilterPrefixes are the index prefixes whose union is what a filter
// selects (a filter with a state reads one range; without, one per state).
// The filter must select something (not Filter{}).
func FilterPrefixes(f Filter) [][]byte {
	states := []string{f.State}
	if f.State == "" {
		states = States
	}
	var out [][]byte
	for _, st := range states {
		switch {
		case f.Queue != "":
			out = append(out, indexPrefix(idxQueue, f.Queue, st))
		case f.Tenant != "":
			out = append(out, indexPrefix(idxTenant, f.Tenant, st))
		default:
			out = append(out, indexPrefix(idxState, st))
		}
	}
	return out
}

// LivePrefixes are the index prefixes of the jobs a restart holds.
func LivePrefixes() [][]byte {
	var out [][]byte
	for _, st := range unfinished {
		out = append(out, indexPrefix(idxState, st))
	}
	return append(out, indexPrefix(idxLive))
}

// IndexKeys are the index keys of a job as written now (for a store that
// builds its indexes from scratch).
func IndexKeys(j *Job) [][]byte { return indexedOf(j).keys() }

// FinishedPrefix is the prefix of the index of finished jobs by end time;
// FinishedKeyTime reads an end time back from such a key.
func FinishedPrefix() []byte           { return indexPrefix(idxFinished) }
func FinishedKeyTime(key []byte) int64 { return finishedOf(key) }

// SeqOfKey reads the sequence number an index key ends with.
func SeqOfKey(key []byte) uint64 { return seqOf(key) }

// SeqKey is a sequence number as index keys and job keys spell it.
func SeqKey(seq uint64) []byte { return be8(seq) }

type rangeHead struct {
	seq uint64
	r   Range
}

type rangeHeap []rangeHead

func (h rangeHeap) Len() int           { return len(h) }
func (h rangeHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h rangeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *rangeHeap) Push(x any)        { *h = append(*h, x.(rangeHead)) }
func (h *rangeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// MergeRanges opens a range per prefix from sequence number after on and
// calls fn with their union in increasing order (a job in two ranges, as
// a moment's inconsistency could show it, once), until fn returns false.
func MergeRanges(prefixes [][]byte, after uint64, open func(prefix []byte, after uint64) Range, fn func(seq uint64) bool) {
	h := make(rangeHeap, 0, len(prefixes))
	for _, p := range slices.Clone(prefixes) {
		r := open(p, after)
		if seq, ok := r.Next(); ok {
			h = append(h, rangeHead{seq, r})
		}
	}
	heap.Init(&h)
	last, any := uint64(0), false
	for h.Len() > 0 {
		top := &h[0]
		seq := top.seq
		if next, ok := top.r.Next(); ok {
			top.seq = next
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
		if any && seq == last {
			continue
		}
		last, any = seq, true
		if !fn(seq) {
			return
		}
	}
}

// BindCheck binds an unbound node token to a node, unless another token
// is bound to that node already: a node that some token speaks for is not
// taken over by a token that speaks for none. It reports whether t
// changed (binding a token to its own node changes nothing).
func BindCheck(t *Token, node string, all []Token) (bool, error) {
	switch t.Node {
	case node:
		return false, nil
	case "":
	default:
		return false, ErrTokenBound
	}
	for _, o := range all {
		if o.Role == RoleNode && o.Node == node && o.Hash != t.Hash {
			return false, ErrNodeClaimed
		}
	}
	t.Node = node
	return true, nil
}

// SplitTokens splits tokens into those drop selects and the rest.
func SplitTokens(all []Token, drop func(Token) bool) (gone, left []Token) {
	for _, t := range all {
		if drop(t) {
			gone = append(gone, t)
		} else {
			left = append(left, t)
		}
	}
	return gone, left
}
