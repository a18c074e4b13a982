package sched

import (
	"math"
	"math/bits"
	"strings"

	"github.com/gpufleet/gpufleet/internal/place"
)

// Scoreboards. A chain that ranks every feasible node with one scorer
// (Config.Candidates -1, as the fragmentation experiments do) scores every
// node of the fleet for every replica: O(nodes) scorer calls a placement.
// When the scorer is place.Local (its score depends on the node's own state
// and the request alone), a node's score for a request shape stays right
// for as long as the node does not change, and a placement changes one
// node. A scoreboard keeps, per request shape and set of eligible types,
// every node's best score and a tournament tree over the nodes, so a
// placement rescoring only the nodes changed since the shape was last
// placed, and reading the winner at the root: O(changed x log nodes).
//
// It answers exactly as place.Select over the candidates pickOne would
// collect: the highest score wins; equal scores go to the lowest node
// index, then (within the node, recomputed for the winner only) to the
// lowest device. It is used only where those candidates are every
// schedulable node of the eligible types that fits the request: no
// reservation or kept node in play, no filter beyond the built-in ones.

// changeLog records the nodes that changed, in order, so a board can catch
// up on what changed since it last looked. It keeps the last maxChanges
// entries; a board further behind rescans by node versions.
type changeLog struct {
	base  uint64 // sequence number of nodes[0]
	nodes []int32
}

const maxChanges = 1 << 16

func (l *changeLog) add(n int) {
	if len(l.nodes) == maxChanges {
		keep := copy(l.nodes, l.nodes[maxChanges/2:])
		l.nodes = l.nodes[:keep]
		l.base += maxChanges / 2
	}
	l.nodes = append(l.nodes, int32(n))
}

func (l *changeLog) end() uint64 { return l.base + uint64(len(l.nodes)) }

// boardKey names what a board ranks: a request shape and its eligible
// nodes (mode all: every schedulable node; otherwise those whose type is
// in the mask).
type boardKey struct {
	devices   int
	milli     int32
	cpu, mem  int64
	accel     string
	all       bool
	typesMask uint64
}

// tracked is what a board knows of the nodes it last looked at: the change
// log's end then and each node's version.
type tracked struct {
	seen   uint64
	ver    []uint64
	primed bool
}

// catchUp calls visit for every node that changed since t last caught up
// (every node the first time, or when t is further behind than the log
// reaches), after noting the node's version.
func (c *Core) catchUp(t *tracked, visit func(n int)) {
	nodes := len(c.idx.nodes)
	if len(t.ver) < nodes {
		t.ver = append(t.ver, make([]uint64, nodes-len(t.ver))...)
	}
	one := func(n int) {
		t.ver[n] = c.idx.ver[n]
		visit(n)
	}
	log := c.idx.changed
	if !t.primed || t.seen < log.base {
		for n := range nodes {
			if !t.primed || t.ver[n] != c.idx.ver[n] {
				one(n)
			}
		}
		t.primed = true
	} else {
		for _, n := range log.nodes[t.seen-log.base:] {
			if t.ver[n] != c.idx.ver[n] {
				one(int(n))
			}
		}
	}
	t.seen = log.end()
}

// trackChanges starts the index's change log, which boards catch up from.
func (c *Core) trackChanges() {
	if c.idx.changed == nil {
		c.idx.changed = &changeLog{}
	}
}

// scoreboard is the ranking of every node for one boardKey.
type scoreboard struct {
	tracked
	score []float64
	tree  []int32 // tournament: tree[1] the winner, leaves at size+node
	size  int
	// byState holds the best score per node state number of the epoch
	// (see stateOf).
	byState map[uint32]float64
	epoch   uint64
}

// boardFor returns the board for request r on the eligible nodes, or nil
// when the chain or the attempt cannot use one.
func (c *Core) boardFor(t *try, r *place.Request, ti, d int) (*scoreboard, boardKey) {
	if c.pipe.local == nil || !c.plainCandidates(t, d) {
		return nil, boardKey{}
	}
	k, ok := keyFor(t, r, ti)
	if !ok {
		return nil, boardKey{}
	}
	if c.boards == nil {
		c.boards = map[boardKey]*scoreboard{}
		c.trackChanges()
	}
	b := c.boards[k]
	if b == nil {
		b = &scoreboard{}
		c.boards[k] = b
	}
	return b, k
}

// keyFor is the board key of request r on attempt t's eligible nodes (ti:
// one type, anyType: the attempt's types, below 0: every node); false when
// a type's index does not fit the key's mask.
func keyFor(t *try, r *place.Request, ti int) (boardKey, bool) {
	k := boardKey{devices: r.Devices, milli: r.Milli, cpu: r.CPUMilli, mem: r.MemoryMiB, accel: strings.Join(r.Accel, "|")}
	switch {
	case ti == anyType:
		for ty, ok := range t.anyOK {
			if ok {
				if ty >= 64 {
					return boardKey{}, false
				}
				k.typesMask |= 1 << ty
			}
		}
	case ti < 0:
		k.all = true
	default:
		if ti >= 64 {
			return boardKey{}, false
		}
		k.typesMask = 1 << ti
	}
	return k, true
}

// plainCandidates reports whether the candidates of attempt t below domain
// d are every schedulable node of the eligible types that fits: the whole
// fleet, no node kept for a preemptor, no reservation, no added filter.
func (c *Core) plainCandidates(t *try, d int) bool {
	return d == 0 && len(c.pipe.filters) == 0 && c.nominated.n == 0 && len(t.hold) == 0 && t.within == 0 && c.power == nil
}

// boardEligible reports whether node n is one a board of key k ranks.
func (c *Core) boardEligible(k *boardKey, n int) bool {
	if !c.idx.nodes[n].Schedulable {
		return false
	}
	if k.all {
		return true
	}
	nt := c.idx.nodeType[n]
	return nt >= 0 && nt < 64 && k.typesMask&(1<<nt) != 0
}

// pick is pickOne through board b: it brings the board up to date and
// returns the winner's best choice.
func (c *Core) pick(b *scoreboard, k boardKey, r *place.Request) (place.Choice, bool) {
	if p, ok := c.pipe.local.(place.Preparer); ok {
		p.Prepare(r)
	}
	if nodes := len(c.idx.nodes); b.size < nodes {
		b.grow(nodes)
	}
	c.catchUp(&b.tracked, func(n int) { c.rescore(b, &k, n, r) })
	w := b.tree[1]
	if w < 0 || math.IsInf(b.score[w], -1) {
		return place.Choice{}, false
	}
	c.pnodes = append(c.pnodes[:0], c.idx.nodes[w])
	return place.Choose(c.pnodes, r, c.pipe.local, c.choiceBuf[:0])
}

// grow makes room for nodes added since the board was made.
func (b *scoreboard) grow(nodes int) {
	size := 1
	for size < nodes {
		size *= 2
	}
	old := b.score
	b.score = append(b.score, make([]float64, nodes-len(b.score))...)
	for n := len(old); n < nodes; n++ {
		b.score[n] = math.Inf(-1)
	}
	b.size = size
	b.tree = make([]int32, 2*size)
	for i := range b.tree {
		b.tree[i] = -1
	}
	for n := range nodes {
		b.tree[size+n] = int32(n)
	}
	for i := size - 1; i >= 1; i-- {
		b.tree[i] = b.winner(b.tree[2*i], b.tree[2*i+1])
	}
}

// winner of two tournament entries: the higher score, the lower node
// index on a tie.
func (b *scoreboard) winner(x, y int32) int32 {
	switch {
	case x < 0:
		return y
	case y < 0:
		return x
	case b.score[y] > b.score[x] || b.score[y] == b.score[x] && y < x:
		return y
	}
	return x
}

// rescore scores node n afresh (its best choice for r; -Inf when it is not
// eligible or cannot take r) and replays its path of the tournament.
func (c *Core) rescore(b *scoreboard, k *boardKey, n int, r *place.Request) {
	best := math.Inf(-1)
	if nd := c.idx.nodes[n]; c.boardEligible(k, n) && place.Fits(nd, r) {
		best = c.bestScore(b, n, r)
	}
	if best == b.score[n] {
		return // the tournament is as it was
	}
	b.score[n] = best
	// Replay n's path up to where the winner stays one that did not change:
	// above that, every match compares the same entries as before.
	for i := (b.size + n) / 2; i >= 1; i /= 2 {
		w := b.winner(b.tree[2*i], b.tree[2*i+1])
		if w == b.tree[i] && w != int32(n) {
			return
		}
		b.tree[i] = w
	}
}

// Scores by node state. A local scorer's best score for a shape depends on
// the node's state alone, not on which node it is, and a fleet holds many
// nodes in the same state: idle nodes of one type, full ones, nodes that
// took the same replicas. The core numbers the node states it meets (once
// per change of a node, not per board), and each board keeps the best
// score per state number, so rescoring a node whose state the board scored
// before on another node is a map read. When the numbering reaches
// maxStates it starts afresh and every board forgets its states, so a
// long-running core holds no more than that.
type nodeState struct {
	accel          string
	cpuCap, memCap int64
	cpuFree        int64
	memFree        int64
	devices        int
	free           [memoDevices]int32
	mix            [place.MixSlots]int32
}

// memoDevices is the most devices of a node whose states are numbered;
// larger nodes are scored every time.
const memoDevices = 16

// maxStates bounds the numbered states (a variable for the test of a
// fresh start).
var maxStates = 1 << 18

// stateNumbers numbers node states: everything of a place.Node a scorer may
// read, but its index and schedulability (boards check those apart).
type stateNumbers struct {
	ids   map[nodeState]uint32
	of    []uint32 // each node's state number, when at[n] is its version + 1
	at    []uint64 // 0: not numbered in this epoch
	epoch uint64   // counts fresh starts
}

// stateOf returns node n's state number and the numbering's epoch, or
// false when n's states are not numbered.
func (c *Core) stateOf(n int) (uint32, bool) {
	nd := c.idx.nodes[n]
	if len(nd.Free) > memoDevices {
		return 0, false
	}
	s := &c.states
	if n >= len(s.of) {
		grow := n + 1 - len(s.of)
		s.of = append(s.of, make([]uint32, grow)...)
		s.at = append(s.at, make([]uint64, grow)...)
	}
	if s.at[n] == c.idx.ver[n]+1 {
		return s.of[n], true
	}
	if s.ids == nil || len(s.ids) >= maxStates {
		s.ids = make(map[nodeState]uint32)
		clear(s.at)
		s.epoch++
	}
	st := nodeState{accel: nd.Accel, cpuCap: nd.CPUCap, memCap: nd.MemCap, cpuFree: nd.CPUFree,
		memFree: nd.MemFree, devices: len(nd.Free), mix: nd.Mix}
	copy(st.free[:], nd.Free)
	id, ok := s.ids[st]
	if !ok {
		id = uint32(len(s.ids))
		s.ids[st] = id
	}
	s.of[n], s.at[n] = id, c.idx.ver[n]+1
	return id, true
}

// bestScore is the best score the local scorer gives any choice of r on
// node n, which fits r.
func (c *Core) bestScore(b *scoreboard, n int, r *place.Request) float64 {
	id, numbered := c.stateOf(n)
	if numbered {
		if b.epoch != c.states.epoch || b.byState == nil {
			b.byState, b.epoch = map[uint32]float64{}, c.states.epoch
		}
		if v, ok := b.byState[id]; ok {
			return v
		}
	}
	nd := c.idx.nodes[n]
	best := math.Inf(-1)
	c.choiceBuf = place.Choices(nd, r, c.choiceBuf[:0])
	for _, ch := range c.choiceBuf {
		best = max(best, c.pipe.local.Score(nd, r, ch))
	}
	if numbered {
		b.byState[id] = best
	}
	return best
}

// pickRanked is pickOne for a chain whose one scorer ranks every feasible
// node and is place.Ranked (the random policy). Which nodes fit a request
// shape changes only where a node changed, so a fit board keeps, per shape
// and set of eligible types, the set of eligible nodes that fit, brought up
// to date through the change log as scoreboards are. One pass over that set
// reads each node's key (a draw for the decision) and keeps the nodes that
// share the best key; they are then scored as place.Select scores them. It
// answers exactly as Select over every feasible node, at the cost of a key
// a fitting node.
func (c *Core) pickRanked(rk place.Ranked, r *place.Request, k boardKey) (place.Choice, bool) {
	// The plain scan draws the decision's numbers only when some node is a
	// candidate; the keys need them first, so a pass that finds none puts
	// the source back as it was.
	saved := *c.pcg
	if p, ok := rk.(place.Preparer); ok {
		p.Prepare(r)
	}
	fb := c.fitBoard(k, r)
	best, found := uint64(0), false
	ties := c.pnodes[:0]
	for wi, w := range fb.fit.words {
		for ; w != 0; w &= w - 1 {
			n := wi<<6 | bits.TrailingZeros64(w)
			key := rk.Key(n)
			if found && key < best {
				continue
			}
			if !found || key > best {
				best, found, ties = key, true, ties[:0]
			}
			ties = append(ties, c.idx.nodes[n])
		}
	}
	c.pnodes = ties
	if !found {
		*c.pcg = saved
		return place.Choice{}, false
	}
	return place.Choose(ties, r, rk, c.choiceBuf[:0])
}

// fitBoard is the set of eligible nodes that fit one request shape.
type fitBoard struct {
	tracked
	fit bitset
}

// fitBoard returns the fit board of key k, up to date.
func (c *Core) fitBoard(k boardKey, r *place.Request) *fitBoard {
	if c.fitBoards == nil {
		c.fitBoards = map[boardKey]*fitBoard{}
		c.trackChanges()
	}
	fb := c.fitBoards[k]
	if fb == nil {
		fb = &fitBoard{}
		c.fitBoards[k] = fb
	}
	fb.fit.grow(len(c.idx.nodes))
	c.catchUp(&fb.tracked, func(n int) {
		if c.boardEligible(&k, n) && place.Fits(c.idx.nodes[n], r) {
			fb.fit.set(n)
		} else {
			fb.fit.clear(n)
		}
	})
	return fb
}
