// Package server is the live control plane: the REST API, the durable
// store, and the one goroutine that owns the scheduling core. The loop
// applies events from the API and the node agents, runs a scheduling cycle
// after each batch of events and at least every second, persists the
// core's decisions before any agent hears of them, and hands each agent its
// node's desired state in the heartbeat answer. The server decides nothing
// itself: every admission, placement and preemption is the core's.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Config sets up a server.
type Config struct {
	// DataDir holds the replicas' logs, and the store unless Store is set.
	DataDir string
	// Store is the store to use (default: the bbolt file in DataDir). A
	// store that is also an Elector makes the server one of a group: it
	// leads (runs the loop) only while elected, and stands by otherwise,
	// forwarding requests to the leader.
	Store Store
	// Advertise is the URL other servers of a group forward requests to
	// while this one leads (default: the listener's).
	Advertise string
	// AdminTokenCreated, when set, is told the first admin token when the
	// server creates it: in Open for a server on its own, when it first
	// leads a new store for one of a group.
	AdminTokenCreated func(token string)
	// Sched configures the scheduling core.
	Sched sched.Config
	// InitialQueues are created when the store is new.
	InitialQueues []quota.Spec
	// HeartbeatInterval is what agents are told to use (default 1s).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout marks a silent node down (default 10s).
	HeartbeatTimeout time.Duration
	// StopGrace is how long a replica stopped for a cancel, a failure or a
	// gang restart has between SIGTERM and SIGKILL (default 5s).
	StopGrace time.Duration
	// Tick is the longest time between scheduling cycles (default 1s).
	Tick time.Duration
	// Retain is how long a finished job (its record, idempotency key and
	// logs) is kept after it ends; negative keeps everything (default 30
	// days).
	Retain time.Duration
	// ReadHeaderTimeout bounds the wait for a request's headers (default
	// 10s).
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds the wait for a request's body once its headers
	// are in (default 30s: a heartbeat's 16 MiB at half a megabyte a
	// second). A body not in by then is answered 408.
	BodyTimeout time.Duration
	// WriteTimeout bounds the writing of a response (default 30s). A
	// route that streams its answer sets its own deadline.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that brings no request
	// for this long (default 30s; agents send one every heartbeat).
	IdleTimeout time.Duration
	// HistoryInterval is how often the fleet and the queues are sampled
	// for GET /v1/history and the dashboard's charts (default 15s; the
	// latest 960 samples, four hours at the default, are kept).
	HistoryInterval time.Duration
	// NoGroupCommit commits after every request the loop takes, and waits
	// for the commit, instead of once for all that are waiting with the
	// next commit sent while one is in flight (benchmarks).
	NoGroupCommit bool
	// Accounting configures metering, prices and the enforcement of
	// credits and budgets (accounting.go).
	Accounting Accounting
	// ForecastReload, when set, is called on the loop about once a minute
	// to read the carbon forecast again from its files if they changed
	// (it changes the forecast the core holds in place, on the loop's
	// goroutine); it says whether anything changed.
	ForecastReload func() (bool, error)
	// ReplicaStartTimeout is how long a service replica may take to become
	// ready when its spec names no start timeout (default 30m; see
	// DefaultReplicaStartTimeout).
	ReplicaStartTimeout time.Duration
	// Logger receives operational messages (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 5 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = time.Second
	}
	if c.Retain == 0 {
		c.Retain = 30 * 24 * time.Hour
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.HistoryInterval <= 0 {
		c.HistoryInterval = 15 * time.Second
	}
	if c.ReplicaStartTimeout <= 0 {
		c.ReplicaStartTimeout = DefaultReplicaStartTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server is a running control plane.
type Server struct {
	cfg     Config
	db      Store
	elector Elector
	log     *slog.Logger
	queues  atomic.Pointer[queueIndex]
	metrics *metrics
	// acctMetrics are the accounting's, one set for every term's ledger.
	acctMetrics *accountMetrics
	reg         *prometheus.Registry
	// gw is the services' request gateway.
	gw *gateway
	// term is the loop of the current leadership: always there for a
	// server on its own, nil while a server of a group stands by.
	term atomic.Pointer[term]
	// feed streams what the loop commits (GET /v1/events), across
	// terms.
	feed *feed
	// done is closed when Run returns: open streams end.
	done chan struct{}
	// adminToken is set when Open created the first admin token.
	adminToken string
	started    atomic.Bool
	runErr     error
}

// term is one run of the loop: its inbox, and done closed when it is over.
type term struct {
	loop  *loop
	inbox chan op
	done  chan struct{}
}

// Open opens the store (the data directory's, unless Config.Store names
// one), creates the first admin token and the initial queues when the
// store is new, and rebuilds the scheduling core from the store. Call Run
// to start the loop. A server of a group (a store that elects) does none
// of that until it is elected: see Serve.
func Open(cfg Config) (*Server, error) {
	cfg.defaults()
	db := cfg.Store
	if db == nil {
		bdb, err := store.Open(cfg.DataDir, store.Options{})
		if err != nil {
			return nil, err
		}
		if bdb.Migrated > 0 {
			cfg.Logger.Info("store converted to this schema version", "jobs", bdb.Migrated)
		}
		db = bdb
	}
	s := &Server{cfg: cfg, db: db, log: cfg.Logger, done: make(chan struct{})}
	s.elector, _ = db.(Elector)
	s.feed = newFeed(s)
	s.reg = prometheus.NewRegistry()
	s.metrics = newMetrics(s.reg)
	s.acctMetrics = newAccountMetrics(s.reg)
	s.gw = newGateway(s, newServiceMetrics(s.reg))
	if s.elector != nil {
		return s, nil
	}
	if err := s.startTerm(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s.metrics.leader.Set(1)
	return s, nil
}

// startTerm readies the store and rebuilds the loop from it.
func (s *Server) startTerm() error {
	if err := s.bootstrap(); err != nil {
		return err
	}
	l, err := restore(s)
	if err != nil {
		return err
	}
	// The feed watches this term's loop from a fresh look: the previous
	// term's loop, over by now, held other records.
	s.feed.newTerm()
	l.afterCommit(s.feed.hook(l))
	s.term.Store(l.term)
	return nil
}

func (s *Server) bootstrap() error {
	if s.db.Created() && len(s.cfg.InitialQueues) > 0 {
		if _, err := quota.New(s.cfg.InitialQueues); err != nil {
			return fmt.Errorf("initial queues: %w", err)
		}
		if err := s.db.PutQueues(s.cfg.InitialQueues); err != nil {
			return err
		}
	}
	has, err := s.db.HasRole(store.RoleAdmin)
	if err != nil {
		return err
	}
	if !has {
		tok, err := s.CreateToken(store.RoleAdmin, "", "")
		if err != nil {
			return err
		}
		s.adminToken = tok
		if s.cfg.AdminTokenCreated != nil {
			s.cfg.AdminTokenCreated(tok)
		}
	}
	return nil
}

// AdminToken returns the admin token Open created, or "" when the store
// already had one (only its hash is kept).
func (s *Server) AdminToken() string { return s.adminToken }

// CreateToken makes a token of a role (for a tenant's, the tenant; for a
// node's, the node it is bound to, or "" to bind it at its first
// registration) and stores its hash.
func (s *Server) CreateToken(role, tenant, node string) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := "gft_" + base64.RawURLEncoding.EncodeToString(raw[:])
	err := s.db.PutToken(store.Token{Hash: hashToken(tok), Role: role, Tenant: tenant, Node: node, Created: s.cfg.Now().Unix()})
	if err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return tok, nil
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// Run runs the loop until ctx is done or the store fails. A server of a
// group campaigns for leadership, runs the loop while it leads and stands
// by again when it loses it, until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("server: Run called twice")
	}
	defer close(s.done)
	if s.elector != nil {
		s.runErr = s.lead(ctx)
		return s.runErr
	}
	t := s.term.Load()
	defer close(t.done)
	s.runErr = t.loop.run(ctx)
	return s.runErr
}

// lead campaigns, runs the loop for each term won and stands by between.
func (s *Server) lead(ctx context.Context) error {
	for ctx.Err() == nil {
		lt, err := s.elector.Campaign(ctx, s.cfg.Advertise)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("campaign for leadership failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.log.Info("leading: rebuilding the core from the store", "advertise", s.cfg.Advertise)
		start := time.Now()
		if err := s.startTerm(); err != nil {
			s.log.Error("cannot take the lead; resigning", "err", err)
			s.resign(lt)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.metrics.leader.Set(1)
		s.log.Info("leading", "restore", time.Since(start).Round(time.Millisecond))
		tctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lt.Done():
				s.log.Warn("leadership lost; standing by")
			case <-tctx.Done():
			}
			cancel()
		}()
		t := s.term.Load()
		err = t.loop.run(tctx)
		cancel()
		s.term.Store(nil)
		close(t.done)
		s.metrics.leader.Set(0)
		if err != nil {
			s.log.Warn("the loop stopped; standing by", "err", err)
		}
		s.resign(lt)
	}
	return nil
}

func (s *Server) resign(t Term) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := t.Resign(ctx); err != nil {
		s.log.Debug("resign", "err", err)
	}
}

// Leading reports whether this server runs the loop now.
func (s *Server) Leading() bool { return s.term.Load() != nil }

// Close closes the store; call it after Run has returned.
func (s *Server) Close() error { return s.db.Close() }

// Serve runs the loop and the HTTP API on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// The read and write deadlines of each request are set by Handler,
	// so that a route that streams can set its own.
	if s.cfg.Advertise == "" {
		s.cfg.Advertise = "http://" + ln.Addr().String()
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, IdleTimeout: s.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loopErr := make(chan error, 1)
	go func() { loopErr <- s.Run(ctx) }()
	httpErr := make(chan error, 1)
	go func() { httpErr <- hs.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-loopErr:
		loopErr <- err
	case err = <-httpErr:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if serr := hs.Shutdown(sctx); err == nil && serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		err = serr
	}
	if lerr := <-loopErr; err == nil {
		err = lerr
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (s *Server) logDir() string { return filepath.Join(s.cfg.DataDir, "logs") }

// op is work for the loop goroutine.
type op func(l *loop)

// exec runs fn on the loop and waits for it to call done.
func exec[T any](ctx context.Context, s *Server, fn func(l *loop, reply func(T))) (T, error) {
	ch := make(chan T, 1)
	var zero T
	t := s.term.Load()
	if t == nil {
		return zero, api.Unavailable("this server does not lead now; ask another of the group")
	}
	// Every answer waits for the commit of what was decided before it.
	o := func(l *loop) { fn(l, func(v T) { l.whenDurable(func() { ch <- v }) }) }
	select {
	case t.inbox <- o:
	case <-t.done:
		return zero, api.Unavailable("the server is shutting down")
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case v := <-ch:
		return v, nil
	case <-t.done:
		// The loop may have answered just before it stopped.
		select {
		case v := <-ch:
			return v, nil
		default:
		}
		return zero, api.Unavailable("the server is shutting down")
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
