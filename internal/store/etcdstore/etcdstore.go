// Package etcdstore keeps the control plane's state in an etcd cluster,
// for servers that share it: the same records (package store's schema)
// and secondary indexes as the embedded bbolt store, under one key prefix,
// and the servers' leader election (etcd's concurrency election, on a
// lease of a few seconds). Every write of the leader is a transaction
// conditional on its election key still being the one it won with, so a
// leader that was deposed, frozen past its lease or cut off from the
// cluster writes nothing once another may lead.
//
// Keys under the prefix (default /gpufleet/):
//
//	meta/schema            schema version of the records
//	meta/seq               highest job sequence number handed out
//	queues                 the queue tree
//	tokens/HASH            access tokens (hashes only)
//	nodes/NAME             registered nodes
//	jobs/SEQ               job records (SEQ: 16 hex digits)
//	jobids/ID              job id -> SEQ
//	idem/TENANT NUL KEY    idempotency keys
//	idx/KEY                secondary indexes (store/index.go)
//	x/KIND/KEY             extra records (usage)
//	election/LEASE         the election's candidates; the oldest leads
package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/store"
	"github.com/gpufleet/gpufleet/internal/store/schema"
)

// Options configure the store.
type Options struct {
	// Endpoints are the cluster's client URLs (host:port or URLs).
	Endpoints []string
	// TLS, when set, is used for every connection (client certificates
	// for etcd's --client-cert-auth, the cluster's CA).
	TLS *tls.Config
	// Username and Password authenticate to a cluster with auth enabled.
	Username, Password string
	// Prefix is where the store's keys live (default /gpufleet/).
	Prefix string
	// LeaseTTL is the election lease: a leader that stops renewing it is
	// replaced this long after its last renewal (default 2s; etcd counts
	// whole seconds, at least 1).
	LeaseTTL time.Duration
	// DialTimeout bounds the first connection (default 5s).
	DialTimeout time.Duration
	// RequestTimeout bounds each request to the cluster (default 5s).
	RequestTimeout time.Duration
	// MaxTxnOps is the most operations one transaction may hold: etcd's
	// --max-txn-ops (default 128, etcd's default). A commit that needs
	// more is written as several fenced transactions, in order; give
	// etcd a larger limit (OPERATIONS.md) so that commits stay whole.
	MaxTxnOps int
}

// ErrNotLeader is returned for a write of a server that does not lead, or
// no longer does.
var ErrNotLeader = errors.New("this server does not lead: its election key is gone or it never won")

// Store is an open etcd store.
type Store struct {
	cli  *clientv3.Client
	opt  Options
	p    string
	live atomic.Pointer[store.LiveIndex]
	// fence is the election key and revision of the term this server
	// leads, nil while it does not.
	fence   atomic.Pointer[fence]
	created atomic.Bool
	leader  atomic.Value // string: the announced URL of the current leader
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

type fence struct {
	key string
	rev int64
}

// Open connects to the cluster and starts following its election.
func Open(ctx context.Context, opt Options) (*Store, error) {
	if len(opt.Endpoints) == 0 {
		return nil, errors.New("etcd store: no endpoints")
	}
	if opt.Prefix == "" {
		opt.Prefix = "/gpufleet/"
	}
	if !strings.HasSuffix(opt.Prefix, "/") {
		opt.Prefix += "/"
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 2 * time.Second
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 5 * time.Second
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = 5 * time.Second
	}
	if opt.MaxTxnOps <= 0 {
		opt.MaxTxnOps = 128
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: opt.Endpoints, TLS: opt.TLS, Username: opt.Username, Password: opt.Password,
		DialTimeout: opt.DialTimeout, DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second,
		Logger: zap.NewNop(), Context: ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd store: connect %v: %w", opt.Endpoints, err)
	}
	s := &Store{cli: cli, opt: opt, p: opt.Prefix}
	s.live.Store(store.NewLiveIndex())
	s.leader.Store("")
	rctx, cancel := s.rctx(ctx)
	defer cancel()
	resp, err := cli.Get(rctx, s.p+"meta/schema")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("etcd store: read %smeta/schema at %v: %w", s.p, opt.Endpoints, err), cli.Close())
	}
	if len(resp.Kvs) == 1 {
		v, err := strconv.Atoi(string(resp.Kvs[0].Value))
		if err != nil || v > schema.Version {
			return nil, errors.Join(fmt.Errorf("etcd store: schema version %q: this build reads versions 1..%d; run a newer gpufleet", resp.Kvs[0].Value, schema.Version), cli.Close())
		}
	}
	octx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(1)
	go s.follow(octx)
	return s, nil
}

func (s *Store) rctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opt.RequestTimeout)
}

func (s *Store) bg() (context.Context, context.CancelFunc) { return s.rctx(context.Background()) }

// Close stops following the election and closes the connection.
func (s *Store) Close() error {
	s.stop()
	s.wg.Wait()
	return s.cli.Close()
}

// Client is the store's etcd client (for tests and tools).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Created reports whether the store was empty when this server's first
// term began (set by Campaign).
func (s *Store) Created() bool { return s.created.Load() }

// Leader is the announced URL of the current leader ("" when none).
func (s *Store) Leader() string { return s.leader.Load().(string) }

// follow keeps Leader current: the value of the oldest election key.
func (s *Store) follow(ctx context.Context) {
	defer s.wg.Done()
	pfx := s.p + "election/"
	for ctx.Err() == nil {
		gctx, cancel := s.rctx(ctx)
		resp, err := s.cli.Get(gctx, pfx, clientv3.WithFirstCreate()...)
		cancel()
		if err != nil {
			s.leader.Store("")
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		leader := ""
		if len(resp.Kvs) > 0 {
			leader = string(resp.Kvs[0].Value)
		}
		s.leader.Store(leader)
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := s.cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil || len(wr.Events) > 0 {
				break
			}
		}
		wcancel()
	}
}

// Campaign blocks until this server leads (or ctx ends): it takes a lease
// of LeaseTTL and runs in etcd's election with addr as its value. From
// then on every write is fenced by the election key won.
func (s *Store) Campaign(ctx context.Context, addr string) (*Term, error) {
	ttl := max(int((s.opt.LeaseTTL+time.Second-1)/time.Second), 1)
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("etcd store: lease: %w", err)
	}
	el := concurrency.NewElection(sess, s.p+"election/")
	if err := el.Campaign(ctx, addr); err != nil {
		return nil, errors.Join(fmt.Errorf("etcd store: campaign: %w", err), sess.Close())
	}
	t := &Term{s: s, sess: sess, el: el, f: &fence{key: el.Key(), rev: el.Rev()}}
	// The live index is this term's: rebuilt from the indexes as the
	// last leader left them.
	live := store.NewLiveIndex()
	err = s.LiveJobs(func(j *store.Job) bool { live.Settle(j, false); return true })
	if err == nil {
		err = s.initSchema(t.f)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("etcd store: take the lead: %w", err), t.Resign(context.Background()))
	}
	s.live.Store(live)
	s.fence.Store(t.f)
	s.leader.Store(addr)
	return t, nil
}

// initSchema records the schema version in a new store.
func (s *Store) initSchema(f *fence) error {
	ctx, cancel := s.bg()
	defer cancel()
	key := s.p + "meta/schema"
	resp, err := s.cli.Txn(ctx).If(fenced(f), clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, strconv.Itoa(schema.Version))).Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		s.created.Store(true)
	}
	return nil
}

// Term is one leadership won in the election.
type Term struct {
	s    *Store
	sess *concurrency.Session
	el   *concurrency.Election
	f    *fence
	once sync.Once
}

// Done is closed when the term's lease is gone (expired, revoked, or not
// renewed within its TTL).
func (t *Term) Done() <-chan struct{} { return t.sess.Done() }

// Resign ends the term: no write of it lands from now on.
func (t *Term) Resign(ctx context.Context) error {
	var err error
	t.once.Do(func() {
		t.s.fence.CompareAndSwap(t.f, nil)
		rctx, cancel := t.s.rctx(ctx)
		defer cancel()
		err = errors.Join(t.el.Resign(rctx), t.sess.Close())
	})
	return err
}

func fenced(f *fence) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev)
}

// txn runs ops in one transaction fenced by this server's term.
func (s *Store) txn(extra []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	f := s.fence.Load()
	if f == nil {
		return nil, ErrNotLeader
	}
	ctx, cancel := s.bg()
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(append([]clientv3.Cmp{fenced(f)}, extra...)...).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		if len(extra) > 0 {
			// Which compare failed? The fence, unless the key still is
			// the one won.
			if g, err := s.cli.Get(ctx, f.key); err == nil && len(g.Kvs) == 1 && g.Kvs[0].CreateRevision == f.rev {
				return resp, errConflict
			}
		}
		s.fence.CompareAndSwap(f, nil)
		return resp, ErrNotLeader
	}
	return resp, nil
}

// errConflict: a compare other than the fence failed (a record changed
// between a read and the write).
var errConflict = errors.New("the record changed meanwhile")

func (s *Store) get(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := s.bg()
	defer cancel()
	return s.cli.Get(ctx, key, opts...)
}

func (s *Store) jobKey(seq uint64) string { return fmt.Sprintf("%sjobs/%016x", s.p, seq) }

// Tokens.

// Token looks a token up by hash, in the member's own copy (a
// serializable read: every request authenticates, and a linearizable read
// would cost each a round of the cluster's consensus). A token revoked is
// refused by every member once it has applied the revocation, within
// milliseconds of its commit.
func (s *Store) Token(hash string) (store.Token, error) {
	resp, err := s.get(s.p+"tokens/"+hash, clientv3.WithSerializable())
	if err == nil && len(resp.Kvs) == 0 {
		// Not there, or not yet applied by this member (a token made a
		// moment ago): ask the cluster.
		resp, err = s.get(s.p + "tokens/" + hash)
	}
	if err != nil {
		return store.Token{}, err
	}
	if len(resp.Kvs) == 0 {
		return store.Token{}, store.ErrNotFound
	}
	return store.DecodeToken(resp.Kvs[0].Value)
}

// Tokens lists every token by hash order.
func (s *Store) Tokens() ([]store.Token, error) {
	toks, _, err := s.tokens()
	return toks, err
}

func (s *Store) tokens() ([]store.Token, int64, error) {
	resp, err := s.get(s.p+"tokens/", clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	var out []store.Token
	for _, kv := range resp.Kvs {
		t, err := store.DecodeToken(kv.Value)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", kv.Key, err)
		}
		out = append(out, t)
	}
	return out, resp.Header.Revision, nil
}

// HasRole reports whether any token of the role exists.
func (s *Store) HasRole(role string) (bool, error) {
	toks, err := s.Tokens()
	for _, t := range toks {
		if t.Role == role {
			return true, err
		}
	}
	return false, err
}

// PutToken records a token.
func (s *Store) PutToken(t store.Token) error {
	data, err := store.EncodeToken(&t)
	if err != nil {
		return err
	}
	_, err = s.txn(nil, clientv3.OpPut(s.p+"tokens/"+t.Hash, string(data)))
	return err
}

// tokensUnchanged compares the token prefix with what was read at rev.
func (s *Store) tokensUnchanged(rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(s.p+"tokens/").WithPrefix(), "<", rev+1)
}

// BindToken binds an unbound node token to a node (store.BindCheck).
func (s *Store) BindToken(hash, node string) (store.Token, error) {
	for {
		all, rev, err := s.tokens()
		if err != nil {
			return store.Token{}, err
		}
		var t *store.Token
		for i := range all {
			if all[i].Hash == hash {
				t = &all[i]
			}
		}
		if t == nil {
			return store.Token{}, store.ErrNotFound
		}
		changed, err := store.BindCheck(t, node, all)
		if err != nil || !changed {
			return *t, err
		}
		data, err := store.EncodeToken(t)
		if err != nil {
			return store.Token{}, err
		}
		_, err = s.txn([]clientv3.Cmp{s.tokensUnchanged(rev)}, clientv3.OpPut(s.p+"tokens/"+hash, string(data)))
		if errors.Is(err, errConflict) {
			continue
		}
		return *t, err
	}
}

// DeleteTokens removes the tokens drop selects, unless keep refuses what
// would be left.
func (s *Store) DeleteTokens(drop func(store.Token) bool, keep func(left []store.Token) error) ([]store.Token, error) {
	for {
		all, rev, err := s.tokens()
		if err != nil {
			return nil, err
		}
		gone, left := store.SplitTokens(all, drop)
		if keep != nil {
			if err := keep(left); err != nil {
				return nil, err
			}
		}
		var ops []clientv3.Op
		for _, t := range gone {
			ops = append(ops, clientv3.OpDelete(s.p+"tokens/"+t.Hash))
		}
		_, err = s.txn([]clientv3.Cmp{s.tokensUnchanged(rev)}, ops...)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return gone, nil
	}
}

// Queues and nodes.

// Queues returns the queue tree.
func (s *Store) Queues() ([]quota.Spec, error) {
	resp, err := s.get(s.p + "queues")
	if err != nil || len(resp.Kvs) == 0 {
		return nil, err
	}
	return store.DecodeQueues(resp.Kvs[0].Value)
}

// PutQueues replaces the queue tree.
func (s *Store) PutQueues(specs []quota.Spec) error {
	data, err := store.EncodeQueues(specs)
	if err != nil {
		return err
	}
	_, err = s.txn(nil, clientv3.OpPut(s.p+"queues", string(data)))
	return err
}

// Nodes returns every registered node by name order.
func (s *Store) Nodes() ([]store.Node, error) {
	resp, err := s.get(s.p+"nodes/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []store.Node
	for _, kv := range resp.Kvs {
		n, err := store.DecodeNode(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Lease is the term's lease (tests revoke it to end the term as an
// expiry would).
func (t *Term) Lease() clientv3.LeaseID { return t.sess.Lease() }
