package store

// UsageAfter calls fn for every stored usage record committed after the
// one with sequence number seq (0: from the first), in commit order, with
// each record's own sequence number, until fn returns false. Sequence
// numbers only grow, so a reader that pages by the last one it saw reads
// every record once, those committed meanwhile included. Usage records
// are keyed by job (UsageKey), so a page reads and orders every record
// (Usage): its cost grows with the usage stored.
func UsageAfter(r RecordReader, seq uint64, fn func(seq uint64, u *UsageRecord) bool) error {
	return Usage(r, func(s uint64, u *UsageRecord) bool {
		if s <= seq {
			return true
		}
		return fn(s, u)
	})
}
