package ledger

// idTable is the set of record IDs fed, keyed by their 128-bit hash. The
// table probed is small: 8 bytes a slot (a 32-bit tag of the hash and the
// index of the entry), open addressing with linear probing; the entries
// (the full hash and what the ledger keeps of the record) are appended in
// the order records come. Feeding a new record costs one probe of the tag
// table and an append, which touches memory the record before touched: the
// one cache miss that remembering millions of IDs costs. Nothing in it is
// a pointer, so the collector skips it.
type idTable struct {
	tags    []uint64 // a power of two long; 0 empty, else tag<<32 | 1+entry
	entries idEntries
	n       int
}

type idEntry struct {
	key idKey
	seenRec
}

// idEntries keeps entries in fixed chunks, so that appending never
// copies the others.
type idEntries struct {
	chunks [][]idEntry
	n      int32
}

const idChunk = 8192

func (e *idEntries) at(i int32) *idEntry { return &e.chunks[i/idChunk][i%idChunk] }

func (e *idEntries) add(x idEntry) int32 {
	if int(e.n)%idChunk == 0 {
		e.chunks = append(e.chunks, make([]idEntry, 0, idChunk))
	}
	c := &e.chunks[len(e.chunks)-1]
	*c = append(*c, x)
	e.n++
	return e.n - 1
}

// idRef is where a key is, or goes, in the table.
type idRef struct {
	pos   uint64
	entry int32 // -1: not there
}

func idTag(k idKey) uint64 { return (k[0]>>32 ^ k[1]<<7>>32) | 1 }

// find returns where k is (found) or the empty slot it would take. The
// table grows first when a new key would fill it past three quarters.
func (t *idTable) find(k idKey) (idRef, bool) {
	if (t.n+1)*4 > len(t.tags)*3 {
		t.grow()
	}
	tag := idTag(k)
	mask := uint64(len(t.tags) - 1)
	for i := k.spread() & mask; ; i = (i + 1) & mask {
		x := t.tags[i]
		if x == 0 {
			return idRef{pos: i, entry: -1}, false
		}
		if x>>32 == tag {
			if e := int32(x&0xffffffff) - 1; t.entries.at(e).key == k {
				return idRef{pos: i, entry: e}, true
			}
		}
	}
}

// rec returns the record of a found key.
func (t *idTable) rec(r idRef) *seenRec { return &t.entries.at(r.entry).seenRec }

// put adds k at the empty slot find returned.
func (t *idTable) put(r idRef, k idKey, s seenRec) {
	e := t.entries.add(idEntry{key: k, seenRec: s})
	t.tags[r.pos] = idTag(k)<<32 | uint64(e+1)
	t.n++
}

// reserve sizes an empty table for n entries.
func (t *idTable) reserve(n int) {
	size := 1024
	for size*3 < n*4 {
		size *= 2
	}
	t.tags = make([]uint64, size)
}

func (t *idTable) grow() { t.rehash(max(1024, 2*len(t.tags))) }

// rehash rebuilds the tag table at a size.
func (t *idTable) rehash(size int) {
	t.tags = make([]uint64, size)
	mask := uint64(size - 1)
	for e := range t.entries.n {
		k := t.entries.at(e).key
		i := k.spread() & mask
		for t.tags[i] != 0 {
			i = (i + 1) & mask
		}
		t.tags[i] = idTag(k)<<32 | uint64(e+1)
	}
}

// keep rebuilds the table with the entries f keeps.
func (t *idTable) keep(f func(*seenRec) bool) {
	old := t.entries
	t.entries = idEntries{}
	t.n = 0
	for e := range old.n {
		if x := old.at(e); f(&x.seenRec) {
			t.entries.add(*x)
			t.n++
		}
	}
	size := 1024
	for size*3 < t.n*4 {
		size *= 2
	}
	t.rehash(size)
}

// seenRec is what the ledger keeps of a record ID, in 16 bytes: a
// fingerprint of its content, the low half of one of its identity (all but
// ToMs and End), and either its slot among the open records or, once
// closed, the day its ToMs falls on (rounded up), which Seal forgets it by.
type seenRec struct {
	full  uint64
	ident uint32
	aux   int32 // >= 0: open, the slot; < 0: closed, -1 - the day
}

func openAux(slot int32) int32 { return slot }

func closedAux(toMs int64) int32 { return int32(-1 - (toMs+msPerDay-1)/msPerDay) }

// isOpen reports whether the record is open, and its slot.
func (s *seenRec) isOpen() (int32, bool) { return s.aux, s.aux >= 0 }

// closedBy reports whether a closed record ended by t (a day boundary).
func (s *seenRec) closedBy(t int64) bool { return s.aux < 0 && int64(-1-s.aux)*msPerDay <= t }

// bucketStore keeps buckets in fixed chunks, so that adding one never
// copies the others.
type bucketStore struct {
	chunks [][]bucket
	n      int32
}

const bucketChunk = 4096

func (s *bucketStore) at(i int32) *bucket { return &s.chunks[i/bucketChunk][i%bucketChunk] }

func (s *bucketStore) add(b bucket) int32 {
	if int(s.n)%bucketChunk == 0 {
		s.chunks = append(s.chunks, make([]bucket, 0, bucketChunk))
	}
	c := &s.chunks[len(s.chunks)-1]
	*c = append(*c, b)
	s.n++
	return s.n - 1
}

func (s *bucketStore) len() int32 { return s.n }
