package server

import (
	"context"

	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Store is what the server keeps durably. Two stores implement it: the
// embedded bbolt file (store.DB, the default) and an etcd cluster
// (etcdstore.Store). Records are the store's own (package store's schema);
// the server hands it and gets back the lifecycle's jobs and its own
// nodes and tokens.
type Store interface {
	// Created reports whether the store was new when opened.
	Created() bool
	Close() error

	Token(hash string) (store.Token, error)
	Tokens() ([]store.Token, error)
	HasRole(role string) (bool, error)
	PutToken(t store.Token) error
	BindToken(hash, node string) (store.Token, error)
	DeleteTokens(drop func(store.Token) bool, keep func(left []store.Token) error) ([]store.Token, error)

	Queues() ([]quota.Spec, error)
	PutQueues(specs []quota.Spec) error
	Nodes() ([]store.Node, error)

	Job(id string) (store.Job, error)
	// Idempotent returns the job a tenant's idempotency key created and
	// the hash of its request.
	Idempotent(tenant, key string) (store.Job, string, error)
	// List calls fn for the jobs a filter selects after a sequence
	// number, in submission order, reading only those (indexes).
	List(f store.Filter, after uint64, fn func(*store.Job) bool) error
	// LiveJobs calls fn for the jobs a restart holds.
	LiveJobs(fn func(*store.Job) bool) error
	// Finished returns up to limit jobs that ended before a time (Unix
	// ms), oldest first.
	Finished(before int64, limit int) ([]store.Job, error)
	LastSeq() (uint64, error)
	// Commit writes one change, all of it or nothing: what the loop
	// decided (nodes, jobs, new jobs with their idempotency keys,
	// deletions, extra records such as usage: loop.Record).
	Commit(c store.Change) error
	// Record and Records read the extra records of a kind back.
	Record(kind, key string) ([]byte, error)
	Records(kind, prefix string, fn func(key string, value []byte) bool) error
}

// Elector is the leader election of servers that share one replicated
// store. A store that implements it fences every write of the leader by
// its term: once a term is over, none of its writes lands.
type Elector interface {
	// Campaign blocks until this server leads, announcing addr (its API's
	// URL) as the leader's, or until ctx ends.
	Campaign(ctx context.Context, addr string) (Term, error)
	// Leader is the announced URL of the current leader, "" when none is
	// known.
	Leader() string
}

// Term is one leadership.
type Term interface {
	// Done is closed when the leadership is lost (its lease expired or
	// was revoked); the store refuses the term's writes from then on.
	Done() <-chan struct{}
	// Resign gives the leadership up.
	Resign(ctx context.Context) error
}
