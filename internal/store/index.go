package store

import (
	"bytes"
	"encoding/binary"
	"sync"
)

// The secondary indexes, one key space that both stores keep beside the
// job records, so that no listing, restart or sweep reads every job. Keys
// (components joined by NUL, which no name holds; sequence numbers and
// times 8 bytes big endian, so that keys sort as their numbers):
//
//	s NUL state NUL seq                 every job, by state
//	t NUL tenant NUL state NUL seq      by tenant and state
//	q NUL queue NUL state NUL seq       by queue and state
//	f NUL finishedMs NUL seq            finished jobs, by when they ended
//	l NUL seq                           finished jobs whose processes may still run
//
// Each prefix lists its jobs in submission order; a listing by tenant or
// queue without a state merges the states' ranges. A restart reads the
// unfinished states' ranges and l; the retention sweep reads f up to its
// cutoff.

const sep = 0

// Index key kinds.
const (
	idxState    = 's'
	idxTenant   = 't'
	idxQueue    = 'q'
	idxFinished = 'f'
	idxLive     = 'l'
)

// unfinished are the states a job passes before it ends.
var unfinished = []string{Pending, Running, Preempting, Cancelling}

// indexed is what a job's index keys are made of.
type indexed struct {
	seq           uint64
	tenant, queue string
	state         string
	live          bool
	finishedMs    int64
	terminal      bool
}

func indexedOf(j *Job) indexed {
	t := Terminal(j.State)
	return indexed{seq: j.Seq, tenant: j.Tenant, queue: j.Queue, state: j.State, live: t && Live(j), finishedMs: j.FinishedMs, terminal: t}
}

func be8(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// Prefix is the index prefix of a kind and its components.
func indexPrefix(kind byte, parts ...string) []byte {
	k := []byte{kind, sep}
	for _, p := range parts {
		k = append(k, p...)
		k = append(k, sep)
	}
	return k
}

func (x indexed) keys() [][]byte {
	seq := be8(x.seq)
	out := [][]byte{
		append(indexPrefix(idxState, x.state), seq...),
		append(indexPrefix(idxTenant, x.tenant, x.state), seq...),
		append(indexPrefix(idxQueue, x.queue, x.state), seq...),
	}
	if x.terminal {
		f := append(indexPrefix(idxFinished), be8(uint64(max(x.finishedMs, 0)))...)
		out = append(out, append(append(f, sep), seq...))
	}
	if x.live {
		out = append(out, append(indexPrefix(idxLive), seq...))
	}
	return out
}

// seqOf reads the sequence number at the end of an index key.
func seqOf(key []byte) uint64 {
	if len(key) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

// finishedOf reads the end time of an f key.
func finishedOf(key []byte) int64 {
	if len(key) < 2+8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(key[2:10]))
}

// IndexDiff is what writing a job changes in the indexes: keys to delete,
// keys to put.
type IndexDiff struct{ Del, Put [][]byte }

// LiveIndex remembers what the indexes hold for the jobs whose index keys
// can still change (unfinished jobs, and finished ones whose processes may
// still run), so that a write knows which keys to drop without reading the
// record it replaces. A finished job's keys never change: its state is
// final and its end time set.
//
// A store holds it locked (Lock, Unlock) across a write: Diff before, Settle
// once the write is durable.
type LiveIndex struct {
	sync.Mutex
	jobs map[uint64]indexed
}

// NewLiveIndex makes an empty live index; Settle fills it (with every
// job LiveJobs yields, when a store opens).
func NewLiveIndex() *LiveIndex { return &LiveIndex{jobs: map[uint64]indexed{}} }

// Diff is what writing j (deleting it, when gone) changes.
func (li *LiveIndex) Diff(j *Job, gone bool) IndexDiff {
	now := indexedOf(j)
	old, known := li.jobs[j.Seq]
	var d IndexDiff
	if gone {
		if known {
			d.Del = old.keys()
		} else {
			d.Del = now.keys()
		}
		return d
	}
	nk := now.keys()
	if !known {
		return IndexDiff{Put: nk}
	}
	ok := old.keys()
	for _, k := range ok {
		if !containsKey(nk, k) {
			d.Del = append(d.Del, k)
		}
	}
	for _, k := range nk {
		if !containsKey(ok, k) {
			d.Put = append(d.Put, k)
		}
	}
	return d
}

// Settle records what a committed write left in the indexes.
func (li *LiveIndex) Settle(j *Job, gone bool) {
	x := indexedOf(j)
	if gone || (x.terminal && !x.live) {
		delete(li.jobs, j.Seq)
		return
	}
	li.jobs[j.Seq] = x
}

func containsKey(list [][]byte, k []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}
