package etcdstore

import (
	"bytes"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufleet/gpufleet/internal/store"
)

// Job reads one job by id.
func (s *Store) Job(id string) (store.Job, error) {
	resp, err := s.get(s.p + "jobids/" + id)
	if err != nil {
		return store.Job{}, err
	}
	if len(resp.Kvs) == 0 {
		return store.Job{}, store.ErrNotFound
	}
	seq, err := strconv.ParseUint(string(resp.Kvs[0].Value), 16, 64)
	if err != nil {
		return store.Job{}, fmt.Errorf("%s: %w", resp.Kvs[0].Key, err)
	}
	return s.jobAt(seq)
}

func (s *Store) jobAt(seq uint64) (store.Job, error) {
	resp, err := s.get(s.jobKey(seq))
	if err != nil {
		return store.Job{}, err
	}
	if len(resp.Kvs) == 0 {
		return store.Job{}, store.ErrNotFound
	}
	return store.DecodeJob(resp.Kvs[0].Value)
}

// Idempotent returns the job a tenant's idempotency key created and the
// hash of its request.
func (s *Store) Idempotent(tenant, key string) (store.Job, string, error) {
	resp, err := s.get(s.p + "idem/" + string(store.IdempotencyKey(tenant, key)))
	if err != nil {
		return store.Job{}, "", err
	}
	if len(resp.Kvs) == 0 {
		return store.Job{}, "", store.ErrNotFound
	}
	r, err := store.DecodeIdempotency(resp.Kvs[0].Value)
	if err != nil {
		return store.Job{}, "", err
	}
	j, err := s.jobAt(r.Seq)
	return j, r.BodyHash, err
}

// LastSeq is the highest job sequence number handed out.
func (s *Store) LastSeq() (uint64, error) {
	resp, err := s.get(s.p + "meta/seq")
	if err != nil || len(resp.Kvs) == 0 {
		return 0, err
	}
	return strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64)
}

// page is how many keys or records one read of a listing takes.
const page = 256

// etcdRange pages through one index prefix.
type etcdRange struct {
	s      *Store
	prefix []byte
	from   uint64
	buf    []uint64
	done   bool
	err    *error
}

func (r *etcdRange) Next() (uint64, bool) {
	if len(r.buf) == 0 && !r.done {
		start := string(append(append([]byte(r.s.p+"idx/"), r.prefix...), store.SeqKey(r.from+1)...))
		end := clientv3.GetPrefixRangeEnd(r.s.p + "idx/" + string(r.prefix))
		resp, err := r.s.get(start, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(page))
		if err != nil {
			*r.err = err
			r.done = true
			return 0, false
		}
		for _, kv := range resp.Kvs {
			r.buf = append(r.buf, store.SeqOfKey(kv.Key))
		}
		if len(r.buf) > 0 {
			r.from = r.buf[len(r.buf)-1]
		}
		r.done = !resp.More
	}
	if len(r.buf) == 0 {
		return 0, false
	}
	seq := r.buf[0]
	r.buf = r.buf[1:]
	return seq, true
}

// records reads job records by sequence number in one transaction.
func (s *Store) records(seqs []uint64) ([]store.Job, error) {
	ops := make([]clientv3.Op, len(seqs))
	for i, seq := range seqs {
		ops[i] = clientv3.OpGet(s.jobKey(seq))
	}
	var out []store.Job
	for len(ops) > 0 {
		n := min(len(ops), s.opt.MaxTxnOps)
		ctx, cancel := s.bg()
		resp, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit()
		cancel()
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				j, err := store.DecodeJob(kv.Value)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", kv.Key, err)
				}
				out = append(out, j)
			}
		}
		ops = ops[n:]
	}
	return out, nil
}

// List calls fn for the jobs a filter selects after a sequence number, in
// submission order, until fn returns false.
func (s *Store) List(f store.Filter, after uint64, fn func(*store.Job) bool) error {
	if f == (store.Filter{}) {
		for {
			end := clientv3.GetPrefixRangeEnd(s.p + "jobs/")
			resp, err := s.get(s.jobKey(after+1), clientv3.WithRange(end), clientv3.WithLimit(page))
			if err != nil {
				return err
			}
			for _, kv := range resp.Kvs {
				j, err := store.DecodeJob(kv.Value)
				if err != nil {
					return fmt.Errorf("%s: %w", kv.Key, err)
				}
				after = j.Seq
				if !fn(&j) {
					return nil
				}
			}
			if !resp.More {
				return nil
			}
		}
	}
	return s.merged(store.FilterPrefixes(f), after, func(j *store.Job) bool { return !f.Match(j) || fn(j) })
}

// merged reads the union of index prefixes in order, records a page at a
// time.
func (s *Store) merged(prefixes [][]byte, after uint64, fn func(*store.Job) bool) error {
	for {
		var err error
		var seqs []uint64
		store.MergeRanges(prefixes, after, func(p []byte, from uint64) store.Range {
			return &etcdRange{s: s, prefix: p, from: from, err: &err}
		}, func(seq uint64) bool {
			seqs = append(seqs, seq)
			return len(seqs) < page
		})
		if err != nil {
			return err
		}
		if len(seqs) == 0 {
			return nil
		}
		jobs, err := s.records(seqs)
		if err != nil {
			return err
		}
		for i := range jobs {
			if !fn(&jobs[i]) {
				return nil
			}
		}
		if len(seqs) < page {
			return nil
		}
		after = seqs[len(seqs)-1]
	}
}

// LiveJobs calls fn for the jobs a restart holds.
func (s *Store) LiveJobs(fn func(*store.Job) bool) error {
	return s.merged(store.LivePrefixes(), 0, fn)
}

// Finished returns up to limit jobs that ended before a time, oldest
// first.
func (s *Store) Finished(before int64, limit int) ([]store.Job, error) {
	pfx := s.p + "idx/" + string(store.FinishedPrefix())
	end := pfx + string(store.SeqKey(uint64(max(before, 0))))
	resp, err := s.get(pfx, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, kv := range resp.Kvs {
		seqs = append(seqs, store.SeqOfKey(kv.Key))
	}
	return s.records(seqs)
}

// Commit writes one change in a transaction fenced by this server's term
// (several, in order, when it holds more than MaxTxnOps operations). With
// nothing to write and Confirm set, the fenced transaction is empty: it
// proves the lead.
func (s *Store) Commit(c store.Change) error {
	if c.Empty() {
		if !c.Confirm {
			return nil
		}
		_, err := s.txn(nil)
		return err
	}
	live := s.live.Load()
	live.Lock()
	defer live.Unlock()
	var ops []clientv3.Op
	for _, n := range c.Nodes {
		data, err := store.EncodeNode(n)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.p+"nodes/"+n.Info.Name, string(data)))
	}
	var cmps []clientv3.Cmp
	for _, n := range c.New {
		key := s.p + "jobids/" + n.Job.ID
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		ops = append(ops, clientv3.OpPut(key, strconv.FormatUint(n.Job.Seq, 16)))
		if n.Key != "" {
			data, err := store.EncodeIdempotency(n.Job.ID, n.Job.Seq, n.BodyHash)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(s.p+"idem/"+string(store.IdempotencyKey(n.Job.Tenant, n.Key)), string(data)))
		}
	}
	idx := func(d store.IndexDiff) {
		for _, k := range d.Del {
			ops = append(ops, clientv3.OpDelete(s.p+"idx/"+string(k)))
		}
		for _, k := range d.Put {
			ops = append(ops, clientv3.OpPut(s.p+"idx/"+string(k), ""))
		}
	}
	for _, j := range c.Jobs {
		data, err := store.EncodeJob(j)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.jobKey(j.Seq), string(data)))
		idx(live.Diff(j, false))
	}
	for _, j := range c.Deleted {
		ops = append(ops, clientv3.OpDelete(s.jobKey(j.Seq)), clientv3.OpDelete(s.p+"jobids/"+j.ID))
		if j.IdempotencyKey != "" {
			ops = append(ops, clientv3.OpDelete(s.p+"idem/"+string(store.IdempotencyKey(j.Tenant, j.IdempotencyKey))))
		}
		idx(live.Diff(j, true))
	}
	for _, r := range c.Records {
		key := s.p + "x/" + r.Kind + "/" + r.Key
		if r.Create {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		}
		if r.Value == nil {
			ops = append(ops, clientv3.OpDelete(key))
		} else {
			ops = append(ops, clientv3.OpPut(key, string(r.Value)))
		}
	}
	if c.Seq > 0 {
		ops = append(ops, clientv3.OpPut(s.p+"meta/seq", strconv.FormatUint(c.Seq, 10)))
	}
	// The compares that new ids are new count against the limit too.
	limit := max(s.opt.MaxTxnOps-len(cmps), 1)
	for first := true; len(ops) > 0 || first; first = false {
		n := min(len(ops), limit)
		var extra []clientv3.Cmp
		if first {
			extra = cmps
		}
		if _, err := s.txn(extra, ops[:n]...); err != nil {
			if err == errConflict {
				return s.conflictOf(c)
			}
			return err
		}
		ops = ops[n:]
	}
	for _, j := range c.Jobs {
		live.Settle(j, false)
	}
	for _, j := range c.Deleted {
		live.Settle(j, true)
	}
	return nil
}

// conflictOf names what a commit refused by its compares would have
// created over an existing record: a record it creates, or a job id.
func (s *Store) conflictOf(c store.Change) error {
	for _, r := range c.Records {
		if !r.Create {
			continue
		}
		if _, err := s.Record(r.Kind, r.Key); err == nil {
			return fmt.Errorf("%s record %s: %w", r.Kind, r.Key, store.ErrExists)
		}
	}
	return fmt.Errorf("a job id of the commit exists")
}

// Record reads an extra record.
func (s *Store) Record(kind, key string) ([]byte, error) {
	resp, err := s.get(s.p + "x/" + kind + "/" + key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(resp.Kvs[0].Value), nil
}

// Records calls fn for the extra records of a kind whose keys start with
// prefix, in key order, until fn returns false.
func (s *Store) Records(kind, prefix string, fn func(key string, value []byte) bool) error {
	base := s.p + "x/" + kind + "/"
	from := base + prefix
	end := clientv3.GetPrefixRangeEnd(from)
	for {
		resp, err := s.get(from, clientv3.WithRange(end), clientv3.WithLimit(page))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			if !fn(string(kv.Key[len(base):]), kv.Value) {
				return nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
