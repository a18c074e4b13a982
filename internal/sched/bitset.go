package sched

import "math/bits"

// bitset is a growable set of small integers with a summary level, so that
// finding the next member costs O(n/4096) words at worst instead of O(n/64).
// Iteration is by value, so the order never depends on the history of
// insertions and removals; that keeps what-if probes (which remove and
// restore) from changing later decisions.
type bitset struct {
	words []uint64
	sum   []uint64 // bit i set iff words[i] != 0
	n     int      // members
}

func (b *bitset) grow(size int) {
	need := (size + 63) / 64
	for len(b.words) < need {
		b.words = append(b.words, 0)
	}
	for len(b.sum) < (len(b.words)+63)/64 {
		b.sum = append(b.sum, 0)
	}
}

func (b *bitset) has(i int) bool {
	w := i >> 6
	return w < len(b.words) && b.words[w]&(1<<(uint(i)&63)) != 0
}

func (b *bitset) set(i int) {
	b.grow(i + 1)
	w := i >> 6
	m := uint64(1) << (uint(i) & 63)
	if b.words[w]&m != 0 {
		return
	}
	b.words[w] |= m
	b.sum[w>>6] |= 1 << (uint(w) & 63)
	b.n++
}

func (b *bitset) clear(i int) {
	w := i >> 6
	if w >= len(b.words) {
		return
	}
	m := uint64(1) << (uint(i) & 63)
	if b.words[w]&m == 0 {
		return
	}
	b.words[w] &^= m
	if b.words[w] == 0 {
		b.sum[w>>6] &^= 1 << (uint(w) & 63)
	}
	b.n--
}

// next returns the smallest member >= i, or -1.
func (b *bitset) next(i int) int {
	if i < 0 {
		i = 0
	}
	w := i >> 6
	if w >= len(b.words) {
		return -1
	}
	if x := b.words[w] >> (uint(i) & 63); x != 0 {
		return i + bits.TrailingZeros64(x)
	}
	// Find the next non-empty word through the summary.
	w++
	s := w >> 6
	if s >= len(b.sum) {
		return -1
	}
	x := b.sum[s] >> (uint(w) & 63)
	if x != 0 {
		w += bits.TrailingZeros64(x)
		return w<<6 + bits.TrailingZeros64(b.words[w])
	}
	for s++; s < len(b.sum); s++ {
		if b.sum[s] != 0 {
			w = s<<6 + bits.TrailingZeros64(b.sum[s])
			return w<<6 + bits.TrailingZeros64(b.words[w])
		}
	}
	return -1
}
