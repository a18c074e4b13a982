package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// UsageAfter calls fn for every stored usage record committed after the
// one with sequence number seq (0: from the first), in commit order, with
// each record's own sequence number, until fn returns false. Sequence
// numbers only grow, so a reader that pages by the last one it saw reads
// every record once, those committed meanwhile included.
func (d *DB) UsageAfter(seq uint64, fn func(seq uint64, r *UsageRecord) bool) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsage).Cursor()
		for k, v := c.Seek(seqKey(seq + 1)); k != nil; k, v = c.Next() {
			var u UsageRecord
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("usage record %x: %w", k, err)
			}
			if !fn(binary.BigEndian.Uint64(k), &u) {
				return nil
			}
		}
		return nil
	})
}
