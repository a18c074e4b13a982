package ledger

import "sort"

// JobUsage is what one replica of a job used of one tier, type and site.
type JobUsage struct {
	Job              string
	Gang, Replica    int
	Tenant, Queue    string
	Tier, Type, Site string
	Totals
}

// jobTable keeps each job's usage per replica and line, found by a 128-bit
// hash of the job's name in an open-addressing table, with the job's
// entries chained in one slice: no strings and no pointers, so a record
// finds its entry with one probe and the collector skips it all.
type jobTable struct {
	heads   []jobHead // a power of two long
	n       int
	entries entryStore
	// last is the job of the record fed last, by name: a gang's records
	// come together.
	last struct {
		name string
		key  idKey
		head int // index into heads; -1 after growing
	}
}

// entryStore keeps job entries in fixed chunks, so that adding one never
// copies the others.
type entryStore struct {
	chunks [][]jobEntry
	n      int32
}

const entryChunk = 8192

func (s *entryStore) at(i int32) *jobEntry { return &s.chunks[i/entryChunk][i%entryChunk] }

func (s *entryStore) add(e jobEntry) int32 {
	if int(s.n)%entryChunk == 0 {
		s.chunks = append(s.chunks, make([]jobEntry, 0, entryChunk))
	}
	c := &s.chunks[len(s.chunks)-1]
	*c = append(*c, e)
	s.n++
	return s.n - 1
}

type jobHead struct {
	key     idKey // zero: empty
	first   int32 // 1 + the index of the job's first entry
	open    int32 // records of the job still open
	lastEnd int64
}

type jobEntry struct {
	gang, replica int32
	line          int32
	next          int32 // 1 + the index of the job's next entry
	Totals
}

// head returns the index of a job's head, adding it.
func (t *jobTable) head(k idKey) int {
	if k == (idKey{}) {
		k[1] = 1
	}
	if (t.n+1)*4 > len(t.heads)*3 {
		t.grow()
	}
	mask := uint64(len(t.heads) - 1)
	for i := k.spread() & mask; ; i = (i + 1) & mask {
		h := &t.heads[i]
		if h.key == k {
			return int(i)
		}
		if h.key == (idKey{}) {
			h.key = k
			t.n++
			return int(i)
		}
	}
}

// find returns a job's head, or nil.
func (t *jobTable) find(k idKey) *jobHead {
	if k == (idKey{}) {
		k[1] = 1
	}
	if len(t.heads) == 0 {
		return nil
	}
	mask := uint64(len(t.heads) - 1)
	for i := k.spread() & mask; ; i = (i + 1) & mask {
		h := &t.heads[i]
		if h.key == k {
			return h
		}
		if h.key == (idKey{}) {
			return nil
		}
	}
}

func (t *jobTable) grow() {
	t.last.head = -1
	old := t.heads
	t.heads = make([]jobHead, max(1024, 2*len(old)))
	t.n = 0
	for i := range old {
		if old[i].key != (idKey{}) {
			t.insert(old[i])
		}
	}
}

func (t *jobTable) insert(h jobHead) {
	mask := uint64(len(t.heads) - 1)
	for i := h.key.spread() & mask; ; i = (i + 1) & mask {
		if t.heads[i].key == (idKey{}) {
			t.heads[i] = h
			t.n++
			return
		}
	}
}

// entry returns the index of a job's entry for a replica and line, adding
// it.
func (t *jobTable) entry(h *jobHead, gang, replica, line int32) int32 {
	last := int32(0)
	for e := h.first; e != 0; e = t.entries.at(e - 1).next {
		x := t.entries.at(e - 1)
		if x.line == line && x.gang == gang && x.replica == replica {
			return e - 1
		}
		last = e
	}
	i := t.entries.add(jobEntry{gang: gang, replica: replica, line: line}) + 1
	if last == 0 {
		h.first = i
	} else {
		t.entries.at(last - 1).next = i
	}
	return i - 1
}

// jobKey returns the hash of a job's name, remembering the last one.
func (l *Ledger) jobKey(name string) idKey {
	t := &l.jobs
	if t.last.name == name && name != "" {
		return t.last.key
	}
	t.last.name, t.last.key, t.last.head = name, idHash(name), -1
	return t.last.key
}

func (l *Ledger) jobEntry(st *meterState, u *Usage) {
	t := &l.jobs
	st.job = l.jobKey(u.Job)
	if t.last.head < 0 || len(t.heads) == 0 {
		t.last.head = t.head(st.job)
	}
	st.je = t.entry(&t.heads[t.last.head], int32(u.Gang), int32(u.Replica), st.line)
}

// flushJob adds what a record metered since the last flush to its job's
// usage: once per metering call, not once per piece.
func (l *Ledger) flushJob(st *meterState) {
	if st.jd != (Totals{}) {
		l.jobs.entries.at(st.je).add(st.jd)
		st.jd = Totals{}
	}
}

// jobOpen counts a job's open records up or down, and notes its end.
func (l *Ledger) jobOpen(job idKey, delta int32, end int64) {
	if h := l.jobs.find(job); h != nil {
		h.open += delta
		h.lastEnd = max(h.lastEnd, end)
	}
}

// Job returns what a job used, per replica and per tier, type and site, in
// gang, replica, tier, type and site order; open records count up to where
// they are metered. A job is forgotten once the seal passes all of its
// records.
func (l *Ledger) Job(job string) []JobUsage {
	h := l.jobs.find(idHash(job))
	if h == nil {
		return nil
	}
	var out []JobUsage
	for e := h.first; e != 0; e = l.jobs.entries.at(e - 1).next {
		x := l.jobs.entries.at(e - 1)
		k := l.lines[x.line].key
		out = append(out, JobUsage{Job: job, Gang: int(x.gang), Replica: int(x.replica), Tenant: l.tenants.s[k.tenant], Queue: l.queues.s[k.queue],
			Tier: k.tier.String(), Type: l.types[k.typ].name, Site: l.sites[k.site].name, Totals: x.Totals})
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := &out[a], &out[b]
		if x.Gang != y.Gang {
			return x.Gang < y.Gang
		}
		if x.Replica != y.Replica {
			return x.Replica < y.Replica
		}
		for _, p := range [][2]string{{x.Tier, y.Tier}, {x.Type, y.Type}, {x.Site, y.Site}, {x.Tenant, y.Tenant}, {x.Queue, y.Queue}} {
			if p[0] != p[1] {
				return p[0] < p[1]
			}
		}
		return false
	})
	return out
}

// pruneJobs forgets jobs with no open record whose records all ended by
// t, and compacts the entries of the others. Open records point at their
// entries; entryMap tells them where theirs moved.
func (l *Ledger) pruneJobs(t int64) (entryMap []int32) {
	old := l.jobs
	l.jobs = jobTable{}
	entryMap = make([]int32, old.entries.n)
	for i := range old.heads {
		h := old.heads[i]
		if h.key == (idKey{}) || h.open == 0 && h.lastEnd <= t {
			continue
		}
		nh := &l.jobs.heads[l.jobs.head(h.key)]
		nh.open, nh.lastEnd = h.open, h.lastEnd
		for e := h.first; e != 0; e = old.entries.at(e - 1).next {
			x := old.entries.at(e - 1)
			ni := l.jobs.entry(nh, x.gang, x.replica, x.line)
			l.jobs.entries.at(ni).Totals = x.Totals
			entryMap[e-1] = ni
		}
	}
	return entryMap
}
