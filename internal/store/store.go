// Package store is the live control plane's durable state: tenants and
// queues, access tokens (as hashes), nodes, jobs with their bindings and
// replica states, and secondary indexes of the jobs by state, tenant,
// queue and end time. What it persists are records of its own, versioned
// (package schema); codec.go converts them. This file is the embedded
// store, one bbolt file; package etcdstore keeps the same records and
// indexes in an etcd cluster. Every write is committed with fsync before
// it returns.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/store/schema"
)

// FileName is the store's file inside a data directory.
const FileName = "state.db"

var (
	bucketMeta   = []byte("meta")
	bucketTokens = []byte("tokens")
	bucketQueues = []byte("queues")
	bucketNodes  = []byte("nodes")
	bucketJobs   = []byte("jobs")   // seq (8 bytes, big endian) -> job record
	bucketJobIDs = []byte("jobids") // job id -> seq
	bucketIdem   = []byte("idempotency")
	bucketIndex  = []byte("index") // index key (index.go) -> nothing
	allBuckets   = [][]byte{bucketMeta, bucketTokens, bucketQueues, bucketNodes, bucketJobs, bucketJobIDs, bucketIdem, bucketIndex}

	keyQueues = []byte("specs")
	// keySchema holds the schema version the records were written in;
	// a store without it is of version 0 (and has no indexes).
	keySchema = []byte("schema")
)

// recordBucket is the bucket of an extra record kind.
func recordBucket(kind string) []byte { return []byte("x:" + kind) }

// DB is an open bbolt store.
type DB struct {
	bolt *bolt.DB
	// created is true when Open made a new, empty store.
	created bool
	live    *LiveIndex
	// Migrated counts the job records Open converted from an earlier
	// schema version.
	Migrated int
}

// Options tune an open store.
type Options struct {
	// Timeout bounds the wait for another process's lock on the file
	// (default 2s).
	Timeout time.Duration
}

// Open opens (creating when needed) the store in dir; a store of an
// earlier schema version is converted to this one, and its indexes built,
// first.
func Open(dir string, opt Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	path := filepath.Join(dir, FileName)
	_, statErr := os.Stat(path)
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opt.Timeout,
		// The freelist is rebuilt on open instead of written on every
		// commit: fewer pages per fsync for the same durability.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	d := &DB{bolt: b, created: os.IsNotExist(statErr), live: NewLiveIndex()}
	if err := d.init(); err != nil {
		return nil, errors.Join(fmt.Errorf("store: %s: %w", path, err), b.Close())
	}
	return d, nil
}

func (d *DB) init() error {
	var v int
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		raw := meta.Get(keySchema)
		if raw == nil {
			if d.created || tx.Bucket(bucketJobs).Stats().KeyN == 0 && tx.Bucket(bucketTokens).Stats().KeyN == 0 {
				return meta.Put(keySchema, []byte(strconv.Itoa(schema.Version)))
			}
			return nil // version 0: migrate below
		}
		var err error
		if v, err = strconv.Atoi(string(raw)); err != nil || v > schema.Version {
			return fmt.Errorf("schema version %q: this build reads versions 0..%d; run a newer gpufleet", raw, schema.Version)
		}
		v = schema.Version
		return nil
	})
	if err != nil {
		return err
	}
	if v < schema.Version {
		if err := d.migrate(); err != nil {
			return fmt.Errorf("migrate from schema version %d: %w", v, err)
		}
	}
	return d.loadLive()
}

// migrateBatch is how many job records one transaction of a migration
// converts.
const migrateBatch = 10000

// migrate rewrites a version 0 store in this version's records and builds
// its indexes. It is safe to run again after a crash: records of either
// version read the same, and index writes are idempotent; the schema
// version is recorded last.
func (d *DB) migrate() error {
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTokens, bucketNodes, bucketIdem, bucketQueues} {
			if err := rewrite(tx.Bucket(b), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	from := uint64(0)
	for {
		next := uint64(0)
		err := d.bolt.Update(func(tx *bolt.Tx) error {
			jobs, idx := tx.Bucket(bucketJobs), tx.Bucket(bucketIndex)
			c := jobs.Cursor()
			type rec struct {
				k    []byte
				data []byte
				keys [][]byte
			}
			var recs []rec
			for k, v := c.Seek(be8(from + 1)); k != nil; k, v = c.Next() {
				if len(recs) == migrateBatch {
					next = seqOf(k) - 1
					break
				}
				j, err := DecodeJob(v)
				if err != nil {
					return fmt.Errorf("job record %x: %w", k, err)
				}
				data, err := EncodeJob(&j)
				if err != nil {
					return err
				}
				recs = append(recs, rec{bytes.Clone(k), data, indexedOf(&j).keys()})
			}
			for _, r := range recs {
				if err := jobs.Put(r.k, r.data); err != nil {
					return err
				}
				for _, k := range r.keys {
					if err := idx.Put(k, nil); err != nil {
						return err
					}
				}
			}
			d.Migrated += len(recs)
			return nil
		})
		if err != nil {
			return err
		}
		if next == 0 {
			break
		}
		from = next
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		if err := migrateAccounting(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(schema.Version)))
	})
}

// migrateAccounting moves the accounting buckets of a version 0 store into
// extra records of their kinds (accounting.go): usage records (sequence
// number -> record, in commit order) become JOB/SEQ keys, grants,
// commitments and budgets keep their keys. Their records were versioned
// already and read the same. The old buckets (and the index of usage by
// job, which the keys replace) go in the same transaction.
func migrateAccounting(tx *bolt.Tx) error {
	moves := []struct{ from, kind string }{{"usage", KindUsage}, {"grants", KindGrant}, {"commitments", KindCommitment}, {"budgets", KindBudget}}
	for _, m := range moves {
		old := tx.Bucket([]byte(m.from))
		if old == nil {
			continue
		}
		to, err := tx.CreateBucketIfNotExists(recordBucket(m.kind))
		if err != nil {
			return err
		}
		err = old.ForEach(func(k, v []byte) error {
			key := string(k)
			if m.kind == KindUsage {
				var u struct {
					Job string `json:"job"`
				}
				if len(k) != 8 {
					return fmt.Errorf("usage record %x: the key is not a sequence number", k)
				}
				if err := json.Unmarshal(v, &u); err != nil || u.Job == "" {
					return fmt.Errorf("usage record %x: no job (%v)", k, err)
				}
				key = UsageKey(u.Job, binary.BigEndian.Uint64(k))
			}
			return to.Put([]byte(key), bytes.Clone(v))
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte(m.from)); err != nil {
			return err
		}
	}
	if tx.Bucket([]byte("usagejobs")) != nil {
		return tx.DeleteBucket([]byte("usagejobs"))
	}
	return nil
}

// rewrite converts a bucket's records to this version.
func rewrite(b *bolt.Bucket, name []byte) error {
	type kv struct{ k, v []byte }
	var out []kv
	err := b.ForEach(func(k, v []byte) error {
		var data []byte
		var err error
		switch string(name) {
		case string(bucketTokens):
			var t Token
			if t, err = DecodeToken(v); err == nil {
				data, err = EncodeToken(&t)
			}
		case string(bucketNodes):
			var n Node
			if n, err = DecodeNode(v); err == nil {
				data, err = EncodeNode(&n)
			}
		case string(bucketIdem):
			var r schema.Idempotency
			if r, err = DecodeIdempotency(v); err == nil {
				data, err = EncodeIdempotency(r.Job, r.Seq, r.BodyHash)
			}
		case string(bucketQueues):
			var specs []quota.Spec
			if specs, err = DecodeQueues(v); err == nil {
				data, err = EncodeQueues(specs)
			}
		}
		if err != nil {
			return fmt.Errorf("%s record %q: %w", name, k, err)
		}
		out = append(out, kv{bytes.Clone(k), data})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range out {
		if err := b.Put(r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// loadLive fills the live index from the index keys: the unfinished states'
// ranges, and the finished jobs whose processes may still run (read whole:
// there are few).
func (d *DB) loadLive() error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		return liveJobs(tx, func(j *Job) bool { d.live.Settle(j, false); return true })
	})
}

// Created reports whether Open made a new store.
func (d *DB) Created() bool { return d.created }

// Close closes the file.
func (d *DB) Close() error { return d.bolt.Close() }

// Backup writes a consistent copy of the whole store to w while it runs
// (bbolt's Tx.WriteTo in a read transaction), and returns its size.
func (d *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := d.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// PutToken records a token.
func (d *DB) PutToken(t Token) error {
	return d.bolt.Update(func(tx *bolt.Tx) error { return putToken(tx.Bucket(bucketTokens), &t) })
}

func putToken(b *bolt.Bucket, t *Token) error {
	data, err := EncodeToken(t)
	if err != nil {
		return err
	}
	return b.Put([]byte(t.Hash), data)
}

// BindToken binds an unbound node token to a node, unless another token
// is bound to that node already: a node that some token speaks for is not
// taken over by a token that speaks for none. Binding a token to the node
// it is bound to is a no-op.
func (d *DB) BindToken(hash, node string) (Token, error) {
	var t Token
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		var err error
		if t, err = getToken(b, hash); err != nil {
			return err
		}
		all, err := tokens(b)
		if err != nil {
			return err
		}
		changed, err := BindCheck(&t, node, all)
		if err != nil || !changed {
			return err
		}
		return putToken(b, &t)
	})
	return t, err
}

func getToken(b *bolt.Bucket, hash string) (Token, error) {
	data := b.Get([]byte(hash))
	if data == nil {
		return Token{}, ErrNotFound
	}
	return DecodeToken(data)
}

func tokens(b *bolt.Bucket) ([]Token, error) {
	var out []Token
	err := b.ForEach(func(_, v []byte) error {
		t, err := DecodeToken(v)
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

// Tokens lists every token by hash order.
func (d *DB) Tokens() ([]Token, error) {
	var out []Token
	err := d.bolt.View(func(tx *bolt.Tx) error {
		var err error
		out, err = tokens(tx.Bucket(bucketTokens))
		return err
	})
	return out, err
}

// DeleteTokens removes the tokens for which drop reports true, in one
// commit, unless keep refuses what would be left (it sees the tokens that
// remain); it returns those removed.
func (d *DB) DeleteTokens(drop func(Token) bool, keep func(left []Token) error) ([]Token, error) {
	var gone []Token
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		all, err := tokens(b)
		if err != nil {
			return err
		}
		var left []Token
		gone, left = SplitTokens(all, drop)
		if keep != nil {
			if err := keep(left); err != nil {
				return err
			}
		}
		for _, t := range gone {
			if err := b.Delete([]byte(t.Hash)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return gone, nil
}

// Token looks a token up by hash.
func (d *DB) Token(hash string) (Token, error) {
	var t Token
	err := d.bolt.View(func(tx *bolt.Tx) error {
		var err error
		t, err = getToken(tx.Bucket(bucketTokens), hash)
		return err
	})
	return t, err
}

// HasRole reports whether any token of the role exists.
func (d *DB) HasRole(role string) (bool, error) {
	toks, err := d.Tokens()
	for _, t := range toks {
		if t.Role == role {
			return true, err
		}
	}
	return false, err
}

// Queues returns the queue tree's specs in creation order.
func (d *DB) Queues() ([]quota.Spec, error) {
	var specs []quota.Spec
	err := d.bolt.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketQueues).Get(keyQueues)
		if data == nil {
			return nil
		}
		var err error
		specs, err = DecodeQueues(data)
		return err
	})
	return specs, err
}

// PutQueues replaces the queue tree's specs.
func (d *DB) PutQueues(specs []quota.Spec) error {
	data, err := EncodeQueues(specs)
	if err != nil {
		return err
	}
	return d.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketQueues).Put(keyQueues, data) })
}

// Nodes returns every registered node by name order.
func (d *DB) Nodes() ([]Node, error) {
	var out []Node
	err := d.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(_, v []byte) error {
			n, err := DecodeNode(v)
			if err != nil {
				return err
			}
			out = append(out, n)
			return nil
		})
	})
	return out, err
}

// LastSeq is the highest job sequence number handed out.
func (d *DB) LastSeq() (uint64, error) {
	var seq uint64
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		seq = b.Sequence()
		if k, _ := b.Cursor().Last(); k != nil {
			seq = max(seq, seqOf(k))
		}
		return nil
	})
	return seq, err
}

// Job reads one job by id.
func (d *DB) Job(id string) (Job, error) {
	var j Job
	err := d.bolt.View(func(tx *bolt.Tx) error {
		var err error
		j, err = getJob(tx, id)
		return err
	})
	return j, err
}

func getJob(tx *bolt.Tx, id string) (Job, error) {
	k := tx.Bucket(bucketJobIDs).Get([]byte(id))
	if k == nil {
		return Job{}, ErrNotFound
	}
	data := tx.Bucket(bucketJobs).Get(k)
	if data == nil {
		return Job{}, ErrNotFound
	}
	return DecodeJob(data)
}

// Idempotent returns the job a tenant's idempotency key created, with the
// hash of the request that created it (ErrNotFound when none did).
func (d *DB) Idempotent(tenant, key string) (Job, string, error) {
	var j Job
	var hash string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketIdem).Get(IdempotencyKey(tenant, key))
		if data == nil {
			return ErrNotFound
		}
		r, err := DecodeIdempotency(data)
		if err != nil {
			return err
		}
		hash = r.BodyHash
		j, err = getJob(tx, r.Job)
		return err
	})
	return j, hash, err
}

// IdempotencyKey is where a tenant's idempotency key is kept.
func IdempotencyKey(tenant, key string) []byte { return []byte(tenant + "\x00" + key) }

// List calls fn for the jobs the filter selects that were submitted after
// sequence number after (0: from the first), in submission order, until fn
// returns false. It reads only the jobs selected, through the indexes.
func (d *DB) List(f Filter, after uint64, fn func(*Job) bool) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		if f == (Filter{}) {
			c := jobs.Cursor()
			for k, v := c.Seek(be8(after + 1)); k != nil; k, v = c.Next() {
				j, err := DecodeJob(v)
				if err != nil {
					return fmt.Errorf("job record %x: %w", k, err)
				}
				if !fn(&j) {
					return nil
				}
			}
			return nil
		}
		idx := tx.Bucket(bucketIndex)
		var err error
		MergeRanges(FilterPrefixes(f), after, func(prefix []byte, from uint64) Range {
			return &boltRange{c: idx.Cursor(), prefix: prefix, from: from}
		}, func(seq uint64) bool {
			data := jobs.Get(be8(seq))
			if data == nil {
				return true // deleted under the index: not in a consistent view, but never stop a listing on it
			}
			j, derr := DecodeJob(data)
			if derr != nil {
				err = fmt.Errorf("job record %d: %w", seq, derr)
				return false
			}
			return !f.Match(&j) || fn(&j)
		})
		return err
	})
}

// LiveJobs calls fn, in submission order, for every job a restart holds:
// the unfinished ones and the finished ones whose processes may still run.
func (d *DB) LiveJobs(fn func(*Job) bool) error {
	return d.bolt.View(func(tx *bolt.Tx) error { return liveJobs(tx, fn) })
}

func liveJobs(tx *bolt.Tx, fn func(*Job) bool) error {
	jobs := tx.Bucket(bucketJobs)
	idx := tx.Bucket(bucketIndex)
	var err error
	MergeRanges(LivePrefixes(), 0, func(prefix []byte, from uint64) Range {
		return &boltRange{c: idx.Cursor(), prefix: prefix, from: from}
	}, func(seq uint64) bool {
		data := jobs.Get(be8(seq))
		if data == nil {
			err = fmt.Errorf("index names job %d, which is not in the store", seq)
			return false
		}
		j, derr := DecodeJob(data)
		if derr != nil {
			err = fmt.Errorf("job record %d: %w", seq, derr)
			return false
		}
		return fn(&j)
	})
	return err
}

// Finished returns up to limit finished jobs that ended before the given
// time (Unix ms), oldest first, for the retention sweep.
func (d *DB) Finished(before int64, limit int) ([]Job, error) {
	var out []Job
	err := d.bolt.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketIndex).Cursor()
		prefix := indexPrefix(idxFinished)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			if finishedOf(k) >= before {
				break
			}
			data := jobs.Get(be8(seqOf(k)))
			if data == nil {
				continue
			}
			j, err := DecodeJob(data)
			if err != nil {
				return fmt.Errorf("job record %d: %w", seqOf(k), err)
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// Commit writes a change in one transaction.
func (d *DB) Commit(c Change) error {
	if c.Empty() {
		return nil
	}
	d.live.Lock()
	defer d.live.Unlock()
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		for _, n := range c.Nodes {
			data, err := EncodeNode(n)
			if err != nil {
				return err
			}
			if err := nodes.Put([]byte(n.Info.Name), data); err != nil {
				return err
			}
		}
		jobs, ids, idem, idx := tx.Bucket(bucketJobs), tx.Bucket(bucketJobIDs), tx.Bucket(bucketIdem), tx.Bucket(bucketIndex)
		for _, n := range c.New {
			if ids.Get([]byte(n.Job.ID)) != nil {
				return fmt.Errorf("job %s exists", n.Job.ID)
			}
			if err := ids.Put([]byte(n.Job.ID), be8(n.Job.Seq)); err != nil {
				return err
			}
			if n.Key != "" {
				data, err := EncodeIdempotency(n.Job.ID, n.Job.Seq, n.BodyHash)
				if err != nil {
					return err
				}
				if err := idem.Put(IdempotencyKey(n.Job.Tenant, n.Key), data); err != nil {
					return err
				}
			}
		}
		for _, j := range c.Jobs {
			data, err := EncodeJob(j)
			if err != nil {
				return err
			}
			if err := jobs.Put(be8(j.Seq), data); err != nil {
				return err
			}
			if err := applyDiff(idx, d.live.Diff(j, false)); err != nil {
				return err
			}
		}
		for _, j := range c.Deleted {
			if err := jobs.Delete(be8(j.Seq)); err != nil {
				return err
			}
			if err := ids.Delete([]byte(j.ID)); err != nil {
				return err
			}
			if j.IdempotencyKey != "" {
				if err := idem.Delete(IdempotencyKey(j.Tenant, j.IdempotencyKey)); err != nil {
					return err
				}
			}
			if err := applyDiff(idx, d.live.Diff(j, true)); err != nil {
				return err
			}
		}
		for _, r := range c.Records {
			b, err := tx.CreateBucketIfNotExists(recordBucket(r.Kind))
			if err != nil {
				return err
			}
			if r.Create && b.Get([]byte(r.Key)) != nil {
				return fmt.Errorf("%s record %s: %w", r.Kind, r.Key, ErrExists)
			}
			if r.Value == nil {
				err = b.Delete([]byte(r.Key))
			} else {
				err = b.Put([]byte(r.Key), r.Value)
			}
			if err != nil {
				return err
			}
		}
		if c.Seq > jobs.Sequence() {
			return jobs.SetSequence(c.Seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range c.Jobs {
		d.live.Settle(j, false)
	}
	for _, j := range c.Deleted {
		d.live.Settle(j, true)
	}
	return nil
}

func applyDiff(b *bolt.Bucket, d IndexDiff) error {
	for _, k := range d.Del {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, k := range d.Put {
		if err := b.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// Record reads an extra record (ErrNotFound when there is none).
func (d *DB) Record(kind, key string) ([]byte, error) {
	var out []byte
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordBucket(kind))
		if b == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// Records calls fn for the extra records of a kind whose keys start with
// prefix, in key order, until fn returns false.
func (d *DB) Records(kind, prefix string, fn func(key string, value []byte) bool) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordBucket(kind))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if !fn(string(k), v) {
				return nil
			}
		}
		return nil
	})
}

// boltRange walks one index prefix from a sequence number on.
type boltRange struct {
	c      *bolt.Cursor
	prefix []byte
	from   uint64
	k      []byte
	done   bool
}

func (r *boltRange) Next() (uint64, bool) {
	if r.done {
		return 0, false
	}
	if r.k == nil {
		r.k, _ = r.c.Seek(append(bytes.Clone(r.prefix), be8(r.from+1)...))
	} else {
		r.k, _ = r.c.Next()
	}
	if r.k == nil || !bytes.HasPrefix(r.k, r.prefix) {
		r.done = true
		return 0, false
	}
	return seqOf(r.k), true
}
