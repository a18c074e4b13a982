package ledger

// idTable is the set of record IDs fed, keyed by their 128-bit hash: an
// open-addressing table with linear probing. A lookup that misses leaves
// the slot where the ID goes, so that feeding a new record costs one probe
// of the table (the one cache miss that remembering millions of IDs
// costs), where a map costs a lookup and then an insert. It holds no
// pointer, so the collector skips it.
type idTable struct {
	slots []idSlot // a power of two long
	n     int
}

type idSlot struct {
	key idKey // zero: empty
	seenRec
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

// slot returns the slot of k: its own when present (found), else the
// empty slot it would take. The table grows first when a new key would
// fill it past three quarters.
func (t *idTable) slot(k idKey) (s *idSlot, found bool) {
	if k == (idKey{}) {
		k[1] = 1 // zero marks an empty slot
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := k.spread() & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == k {
			return s, true
		}
		if s.key == (idKey{}) {
			return s, false
		}
	}
}

// put fills a slot slot returned empty.
func (t *idTable) put(s *idSlot, k idKey, r seenRec) {
	if k == (idKey{}) {
		k[1] = 1
	}
	if s.key == (idKey{}) {
		t.n++
	}
	s.key, s.seenRec = k, r
}

// reserve sizes an empty table for n entries.
func (t *idTable) reserve(n int) {
	size := 1024
	for size*3 < n*4 {
		size *= 2
	}
	t.slots = make([]idSlot, size)
}

func (t *idTable) grow() {
	old := t.slots
	size := max(1024, 2*len(old))
	t.slots = make([]idSlot, size)
	t.n = 0
	for i := range old {
		if old[i].key != (idKey{}) {
			t.insert(old[i])
		}
	}
}

func (t *idTable) insert(e idSlot) {
	mask := uint64(len(t.slots) - 1)
	for i := e.key.spread() & mask; ; i = (i + 1) & mask {
		if t.slots[i].key == (idKey{}) {
			t.slots[i] = e
			t.n++
			return
		}
	}
}

// keep rebuilds the table with the entries f keeps.
func (t *idTable) keep(f func(*seenRec) bool) {
	old := t.slots
	size := 1024
	for size*3 < t.n*4*2 {
		size *= 2
	}
	t.slots = make([]idSlot, size)
	t.n = 0
	for i := range old {
		if old[i].key != (idKey{}) && f(&old[i].seenRec) {
			if (t.n+1)*4 > len(t.slots)*3 {
				t.grow()
			}
			t.insert(old[i])
		}
	}
}

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
