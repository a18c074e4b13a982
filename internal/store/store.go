// Package store is the live control plane's durable state: tenants and
// queues, access tokens (as hashes), nodes, and jobs with their bindings and
// replica states, in one embedded bbolt file. Every write is committed with
// fsync before it returns; concurrent job submissions share commits through
// bbolt's batching, so many clients pay for one disk flush.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// FileName is the store's file inside a data directory.
const FileName = "state.db"

var (
	bucketMeta   = []byte("meta")
	bucketTokens = []byte("tokens")
	bucketQueues = []byte("queues")
	bucketNodes  = []byte("nodes")
	bucketJobs   = []byte("jobs")   // seq (8 bytes, big endian) -> Job
	bucketJobIDs = []byte("jobids") // job id -> seq
	bucketIdem   = []byte("idempotency")
	allBuckets   = [][]byte{bucketMeta, bucketTokens, bucketQueues, bucketNodes, bucketJobs, bucketJobIDs, bucketIdem}

	keyQueues = []byte("specs")
)

// ErrNotFound is returned for a missing record.
var ErrNotFound = errors.New("not found")

// DB is an open store.
type DB struct {
	bolt    *bolt.DB
	noBatch bool
	// created is true when Open made a new, empty store.
	created bool
}

// Options tune an open store.
type Options struct {
	// BatchDelay is how long a submission waits for others to share its
	// commit; 0 keeps bbolt's default.
	BatchDelay time.Duration
	// NoGroupCommit gives every submission its own commit (to measure
	// what group commit buys).
	NoGroupCommit bool
}

// Open opens (creating when needed) the store in dir.
func Open(dir string, opt Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	_, statErr := os.Stat(path)
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second,
		// The freelist is rebuilt on open instead of written on every
		// commit: fewer pages per fsync for the same durability.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if opt.BatchDelay > 0 {
		b.MaxBatchDelay = opt.BatchDelay
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: init %s: %w", path, err), b.Close())
	}
	return &DB{bolt: b, created: os.IsNotExist(statErr), noBatch: opt.NoGroupCommit}, nil
}

// Created reports whether Open made a new store.
func (d *DB) Created() bool { return d.created }

// Close closes the file.
func (d *DB) Close() error { return d.bolt.Close() }

// Token roles.
const (
	RoleAdmin  = "admin"
	RoleTenant = "tenant"
	RoleNode   = "node"
	// RoleMetrics may only read the Prometheus metrics.
	RoleMetrics = "metrics"
)

// Token is an access token as stored: only its SHA-256 hash is kept.
type Token struct {
	Hash   string `json:"hash"`
	Role   string `json:"role"`
	Tenant string `json:"tenant,omitempty"`
	// Node is the one node a node token may act for; empty until the
	// token first registers a node, when it is bound to that node.
	Node    string `json:"node,omitempty"`
	Created int64  `json:"created"`
}

// TokenIDLen is how many hex digits of a token's hash name it in listings
// and revocations: enough to tell tokens apart, nothing to authenticate.
const TokenIDLen = 16

// ID names the token without revealing it.
func (t Token) ID() string { return t.Hash[:min(TokenIDLen, len(t.Hash))] }

// Errors of BindToken.
var (
	// ErrTokenBound: the token is bound to another node.
	ErrTokenBound = errors.New("the token is bound to another node")
	// ErrNodeClaimed: another token is bound to the node.
	ErrNodeClaimed = errors.New("another token is bound to the node")
)

// PutToken records a token.
func (d *DB) PutToken(t Token) error {
	return d.bolt.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketTokens), []byte(t.Hash), t)
	})
}

// BindToken binds an unbound node token to a node, unless another token
// is bound to that node already: a node that some token speaks for is not
// taken over by a token that speaks for none. Binding a token to the node
// it is bound to is a no-op.
func (d *DB) BindToken(hash, node string) (Token, error) {
	var t Token
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if err := getJSON(b, []byte(hash), &t); err != nil {
			return err
		}
		switch t.Node {
		case node:
			return nil
		case "":
		default:
			return ErrTokenBound
		}
		err := b.ForEach(func(k, v []byte) error {
			var o Token
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			if o.Role == RoleNode && o.Node == node {
				return ErrNodeClaimed
			}
			return nil
		})
		if err != nil {
			return err
		}
		t.Node = node
		return putJSON(b, []byte(hash), t)
	})
	return t, err
}

// Tokens lists every token by hash order.
func (d *DB) Tokens() ([]Token, error) {
	var out []Token
	err := d.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(_, v []byte) error {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
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
		var left []Token
		err := b.ForEach(func(_, v []byte) error {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			if drop(t) {
				gone = append(gone, t)
			} else {
				left = append(left, t)
			}
			return nil
		})
		if err != nil {
			return err
		}
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
		return getJSON(tx.Bucket(bucketTokens), []byte(hash), &t)
	})
	return t, err
}

// HasRole reports whether any token of the role exists.
func (d *DB) HasRole(role string) (bool, error) {
	found := false
	err := d.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(_, v []byte) error {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			if t.Role == role {
				found = true
			}
			return nil
		})
	})
	return found, err
}

// Queues returns the queue tree's specs in creation order.
func (d *DB) Queues() ([]quota.Spec, error) {
	var specs []quota.Spec
	err := d.bolt.View(func(tx *bolt.Tx) error {
		err := getJSON(tx.Bucket(bucketQueues), keyQueues, &specs)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	return specs, err
}

// PutQueues replaces the queue tree's specs.
func (d *DB) PutQueues(specs []quota.Spec) error {
	return d.bolt.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketQueues), keyQueues, specs)
	})
}

// Node is a registered node.
type Node struct {
	Info       api.NodeInfo `json:"info"`
	State      string       `json:"state"` // ready, draining, down
	Registered int64        `json:"registered"`
	// Drained records an administrator's drain: the node takes no new
	// work until undrained, through restarts and a spell down.
	Drained bool `json:"drained,omitempty"`
}

// Nodes returns every registered node by name order.
func (d *DB) Nodes() ([]Node, error) {
	var out []Node
	err := d.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(_, v []byte) error {
			var n Node
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			out = append(out, n)
			return nil
		})
	})
	return out, err
}

// The job records are the live lifecycle's (package lifecycle); the store
// keeps them as JSON.
type (
	Job      = lifecycle.Job
	Replica  = lifecycle.Replica
	Stopping = lifecycle.Stopping
	Run      = lifecycle.Run
	Unit     = lifecycle.Unit
)

// Job and replica states, as package lifecycle names them.
const (
	Pending         = lifecycle.Pending
	Running         = lifecycle.Running
	Preempting      = lifecycle.Preempting
	Cancelling      = lifecycle.Cancelling
	Succeeded       = lifecycle.Succeeded
	Failed          = lifecycle.Failed
	Cancelled       = lifecycle.Cancelled
	ReplicaStarting = lifecycle.ReplicaStarting
	ReplicaRunning  = lifecycle.ReplicaRunning
	ReplicaExited   = lifecycle.ReplicaExited
	ReplicaLost     = lifecycle.ReplicaLost
	ReplicaSkipped  = lifecycle.ReplicaSkipped
)

// States lists every job state, in the order a job passes them.
var States = lifecycle.States

// Terminal reports whether a job state is final.
func Terminal(state string) bool { return lifecycle.Terminal(state) }

// Submission is one job to add, with its idempotency scope.
type Submission struct {
	Tenant string
	// Key is the idempotency key; BodyHash tells a replay from a different
	// request that reuses the key.
	Key      string
	BodyHash string
	// Build makes the job record once its sequence number is known.
	Build func(seq uint64) Job
}

// ErrKeyReused is returned when an idempotency key comes back with a
// different request body.
var ErrKeyReused = errors.New("idempotency key was used for a different request")

type idemRecord struct {
	Job      string `json:"job"`
	BodyHash string `json:"bodyHash"`
}

// Submit durably adds a job, or returns the job an earlier submission with
// the same idempotency key created (created false). Concurrent calls share
// commits.
func (d *DB) Submit(s Submission) (job Job, created bool, err error) {
	write := d.bolt.Batch
	if d.noBatch {
		write = d.bolt.Update
	}
	err = write(func(tx *bolt.Tx) error {
		created = false
		idem := tx.Bucket(bucketIdem)
		var ikey []byte
		if s.Key != "" {
			ikey = []byte(s.Tenant + "\x00" + s.Key)
			var rec idemRecord
			switch err := getJSON(idem, ikey, &rec); {
			case err == nil:
				if rec.BodyHash != s.BodyHash {
					return ErrKeyReused
				}
				return getJob(tx, rec.Job, &job)
			case !errors.Is(err, ErrNotFound):
				return err
			}
		}
		jobs := tx.Bucket(bucketJobs)
		seq, err := jobs.NextSequence()
		if err != nil {
			return err
		}
		job = s.Build(seq)
		job.Seq = seq
		job.Tenant = s.Tenant
		job.IdempotencyKey = s.Key
		ids := tx.Bucket(bucketJobIDs)
		if ids.Get([]byte(job.ID)) != nil {
			return fmt.Errorf("job %s exists", job.ID)
		}
		if err := putJob(tx, &job); err != nil {
			return err
		}
		if ikey != nil {
			if err := putJSON(idem, ikey, idemRecord{Job: job.ID, BodyHash: s.BodyHash}); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	return job, created, err
}

// PutJobs writes job records in one commit.
func (d *DB) PutJobs(jobs []*Job) error {
	if len(jobs) == 0 {
		return nil
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		for _, j := range jobs {
			if err := putJob(tx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteJob removes a job and its idempotency record (a submission the
// core refused).
func (d *DB) DeleteJob(j *Job) error {
	return d.bolt.Update(func(tx *bolt.Tx) error { return deleteJob(tx, j) })
}

// deleteJob removes a job's record, its id and its idempotency key.
func deleteJob(tx *bolt.Tx, j *Job) error {
	if err := tx.Bucket(bucketJobs).Delete(seqKey(j.Seq)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketJobIDs).Delete([]byte(j.ID)); err != nil {
		return err
	}
	if j.IdempotencyKey != "" {
		return tx.Bucket(bucketIdem).Delete([]byte(j.Tenant + "\x00" + j.IdempotencyKey))
	}
	return nil
}

// PruneJobs deletes jobs for which done reports true, reading at most
// scan records from the first job submitted after sequence number from.
// It returns the jobs deleted and where the next call should start (0
// when it reached the end, to start again from the beginning).
func (d *DB) PruneJobs(from uint64, scan int, done func(*Job) bool) ([]Job, uint64, error) {
	var gone []Job
	next := uint64(0)
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobs).Cursor()
		n := 0
		for k, v := c.Seek(seqKey(from + 1)); k != nil; k, v = c.Next() {
			if n == scan {
				next = binary.BigEndian.Uint64(k) - 1
				break
			}
			n++
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("job record %x: %w", k, err)
			}
			if done(&j) {
				gone = append(gone, j)
			}
		}
		// Deleted after the walk: a cursor's bucket must not change under it.
		for i := range gone {
			if err := deleteJob(tx, &gone[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, from, err
	}
	return gone, next, nil
}

// Job reads one job by id.
func (d *DB) Job(id string) (Job, error) {
	var j Job
	err := d.bolt.View(func(tx *bolt.Tx) error { return getJob(tx, id, &j) })
	return j, err
}

// Jobs calls fn for every job in submission order until fn returns false.
func (d *DB) Jobs(fn func(*Job) bool) error { return d.JobsAfter(0, fn) }

// JobsAfter is Jobs from the first job submitted after the one with
// sequence number seq (0: from the start).
func (d *DB) JobsAfter(seq uint64, fn func(*Job) bool) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobs).Cursor()
		for k, v := c.Seek(seqKey(seq + 1)); k != nil; k, v = c.Next() {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("job record %x: %w", k, err)
			}
			if !fn(&j) {
				return nil
			}
		}
		return nil
	})
}

// PutNode records a node.
func (d *DB) PutNode(n Node) error {
	return d.bolt.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketNodes), []byte(n.Info.Name), n)
	})
}

// Commit writes nodes and jobs in one transaction.
func (d *DB) Commit(nodes []*Node, jobs []*Job) error {
	if len(nodes) == 0 && len(jobs) == 0 {
		return nil
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		for _, n := range nodes {
			if err := putJSON(tx.Bucket(bucketNodes), []byte(n.Info.Name), n); err != nil {
				return err
			}
		}
		for _, j := range jobs {
			if err := putJob(tx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func putJob(tx *bolt.Tx, j *Job) error {
	if err := putJSON(tx.Bucket(bucketJobs), seqKey(j.Seq), j); err != nil {
		return err
	}
	return tx.Bucket(bucketJobIDs).Put([]byte(j.ID), seqKey(j.Seq))
}

func getJob(tx *bolt.Tx, id string, j *Job) error {
	k := tx.Bucket(bucketJobIDs).Get([]byte(id))
	if k == nil {
		return ErrNotFound
	}
	return getJSON(tx.Bucket(bucketJobs), k, j)
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func getJSON(b *bolt.Bucket, k []byte, v any) error {
	data := b.Get(k)
	if data == nil {
		return ErrNotFound
	}
	return json.Unmarshal(data, v)
}
