package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func init() { addCommand(newServerCmd) }

// serverFlags configure a server; up and server share them.
type serverFlags struct {
	data, listen, addrFile           string
	store                            storeFlags
	hbInterval, hbTimeout, stopGrace time.Duration
	retain, preemptAfter             time.Duration
	headerTimeout, bodyTimeout       time.Duration
	writeTimeout, idleTimeout        time.Duration
	historyInterval                  time.Duration
	debug                            bool
	acct                             *accountingFlags
	energy                           *energyFlags
	gatewayListen                    string
	startTimeout                     time.Duration
}

func addServerFlags(c *cobra.Command, defaultData string) *serverFlags {
	f := &serverFlags{}
	c.Flags().StringVar(&f.data, "data", defaultData, "data `DIR`: the replicas' logs, and the store unless --store names an etcd cluster")
	c.Flags().StringVar(&f.listen, "listen", "127.0.0.1:7070", "`ADDR` the API listens on (port 0 picks a free one)")
	c.Flags().StringVar(&f.addrFile, "addr-file", "", "write the API's URL to `FILE` once listening (for scripts)")
	c.Flags().DurationVar(&f.hbInterval, "heartbeat-interval", time.Second, "how often node agents report")
	c.Flags().DurationVar(&f.hbTimeout, "heartbeat-timeout", 10*time.Second, "a node silent this long is marked down and its jobs requeued")
	c.Flags().DurationVar(&f.stopGrace, "stop-grace", 5*time.Second, "SIGTERM-to-SIGKILL grace for cancelled and failed jobs' replicas")
	c.Flags().DurationVar(&f.retain, "retain", 30*24*time.Hour, "keep a finished job's record, idempotency key and logs this long after it ends (negative: for ever)")
	c.Flags().DurationVar(&f.preemptAfter, "preempt-after", time.Minute, "how long a job waits for room before it may preempt (0: at once)")
	c.Flags().DurationVar(&f.headerTimeout, "read-header-timeout", 10*time.Second, "a request's headers must arrive within this time")
	c.Flags().DurationVar(&f.bodyTimeout, "body-timeout", 30*time.Second, "a request's body must arrive within this time once its headers are in (else 408)")
	c.Flags().DurationVar(&f.writeTimeout, "write-timeout", 30*time.Second, "an answer must be written within this time")
	c.Flags().DurationVar(&f.idleTimeout, "idle-timeout", 30*time.Second, "a kept-alive connection idle this long is closed")
	c.Flags().DurationVar(&f.historyInterval, "history-interval", 15*time.Second, "how often the fleet and the queues are sampled for the dashboard's charts (the latest 960 samples are kept)")
	c.Flags().BoolVar(&f.debug, "debug", false, "log at debug level")
	f.acct = addAccountingFlags(c)
	f.energy = addEnergyFlags(c)
	c.Flags().StringVar(&f.gatewayListen, "gateway-listen", "", "also serve the services' gateway (/serve/...) alone on `ADDR`, without the API's timeouts; it is on the API's listener in any case")
	c.Flags().DurationVar(&f.startTimeout, "replica-start-timeout", server.DefaultReplicaStartTimeout, "how long a service replica may take to become ready when its spec names no startTimeout")
	return f
}

func (f *serverFlags) config(stderr io.Writer, queues []quota.Spec) server.Config {
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	return server.Config{
		DataDir: f.data, InitialQueues: queues,
		HeartbeatInterval: f.hbInterval, HeartbeatTimeout: f.hbTimeout, StopGrace: f.stopGrace,
		Retain:            f.retain,
		ReadHeaderTimeout: f.headerTimeout, BodyTimeout: f.bodyTimeout, WriteTimeout: f.writeTimeout, IdleTimeout: f.idleTimeout,
		HistoryInterval:     f.historyInterval,
		Sched:               sched.Config{PreemptAfterSec: preemptAfterSec(f.preemptAfter)},
		ReplicaStartTimeout: f.startTimeout,
		Logger:              slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
}

// listen opens the API's socket and reports its URL.
func (f *serverFlags) listenURL() (net.Listener, string, error) {
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %s: %w", f.listen, err)
	}
	return ln, "http://" + ln.Addr().String(), nil
}

// announce writes the API's URL to --addr-file, which tells scripts that
// everything the command sets up is in place.
func (f *serverFlags) announce(url string) error {
	if f.addrFile == "" {
		return nil
	}
	return writeFileAtomic(f.addrFile, []byte(url+"\n"), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func newServerCmd() *cobra.Command {
	var sf *serverFlags
	var tokenFile, queuesFile string
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane server: REST API, durable store, scheduling loop",
		Long: `Server runs the live control plane for a real deployment: node agents
register with it and run the replicas it assigns, users submit jobs to it.

On the first start in a new data directory it creates an admin token, prints
it once (or writes it to --admin-token-file) and keeps only its hash, and
creates the queue tree of --queues (default: none; add tenants with
gpufleet admin create tenant). After a crash or kill -9 it rebuilds its
state from the store: every acknowledged job is still there.

With --fleet, the fleet file's sites give the scheduling core its power caps
(work that would take a site over its cap waits as power-capped), PUE and
carbon forecast (a constant, or a carbonSeries file), and the meter its PUE
and carbon intensity; --carbon-aware turns on the carbon rule, which defers
jobs with a deadline to the cleanest window before it, and the carbon
placement stage. gpufleet admin cap changes a cap at run time.`,
		Example: `  gpufleet server --data /var/lib/gpufleet --listen 0.0.0.0:7070 --admin-token-file /root/admin-token
  gpufleet server --fleet fleet.yaml --carbon-aware`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			var queues []quota.Spec
			if queuesFile != "" {
				data, err := readFile(queuesFile, spec.MaxFileBytes)
				if err != nil {
					return err
				}
				if queues, err = spec.ParseQueues(queuesFile, data); err != nil {
					return err
				}
			}
			cfg := sf.config(cmd.ErrOrStderr(), queues)
			if err := sf.acct.apply(&cfg); err != nil {
				return err
			}
			if err := sf.energy.apply(&cfg, sf.acct.prices); err != nil {
				return err
			}
			st, where, err := sf.store.open(cmd.Context(), sf.data)
			if err != nil {
				return err
			}
			cfg.Store = st
			// The token file is in place before the address file tells
			// scripts the server is up (for a server of a group, when it
			// first leads a new store).
			out := cmd.OutOrStdout()
			var tokenErr error
			cfg.AdminTokenCreated = func(tok string) {
				if tokenFile != "" {
					if tokenErr = writeFileAtomic(tokenFile, []byte(tok+"\n"), 0o600); tokenErr == nil {
						fmt.Fprintf(out, "admin token written to %s (the server keeps only its hash)\n", tokenFile)
					}
					return
				}
				fmt.Fprintf(out, "admin token (shown once; the server keeps only its hash): %s\n", tok)
			}
			ln, url, err := sf.listenURL()
			if err != nil {
				if st != nil {
					err = errors.Join(err, st.Close())
				}
				return err
			}
			cfg.Advertise = sf.store.advertise
			if cfg.Advertise == "" {
				cfg.Advertise = url
			}
			s, err := server.Open(cfg)
			if err != nil {
				if st != nil {
					err = errors.Join(err, st.Close())
				}
				return errors.Join(err, ln.Close())
			}
			defer func() { err = errors.Join(err, s.Close()) }()
			if tokenErr != nil {
				return errors.Join(fmt.Errorf("--admin-token-file: %w", tokenErr), ln.Close())
			}
			if err := sf.announce(url); err != nil {
				return errors.Join(err, ln.Close())
			}
			fmt.Fprintf(out, "gpufleet server listening on %s (store %s, data %s)\n", url, where, sf.data)
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if err := sf.serveGateway(ctx, s, out); err != nil {
				return errors.Join(err, ln.Close())
			}
			return s.Serve(ctx, ln)
		},
	}
	sf = addServerFlags(c, "./.gpufleet")
	c.Flags().StringVar(&tokenFile, "admin-token-file", "", "write the first admin token to `FILE` (mode 0600) instead of printing it")
	c.Flags().StringVar(&queuesFile, "queues", "", "queue tree `FILE` to create in a new data directory")
	sf.store.add(c)
	c.Flags().StringVar(&sf.energy.fleetFile, "fleet", "", "fleet `FILE` whose sites give power caps, PUE and carbon intensity (a constant or a carbonSeries forecast file); its nodes name the zones the meter knows, agents still register the nodes")
	return c
}

// preemptAfterSec turns a --preempt-after duration into the core's setting
// (whose 0 means its default): 0 or less preempts at once.
func preemptAfterSec(d time.Duration) int64 {
	if d <= 0 {
		return -1
	}
	return max(int64(d/time.Second), 1)
}

// serveGateway serves the gateway on its own listener when --gateway-listen
// asks, until ctx ends.
func (f *serverFlags) serveGateway(ctx context.Context, s *server.Server, out io.Writer) error {
	if f.gatewayListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", f.gatewayListen)
	if err != nil {
		return fmt.Errorf("--gateway-listen %s: %w", f.gatewayListen, err)
	}
	fmt.Fprintf(out, "services' gateway also listening on http://%s%s\n", ln.Addr(), "/serve/")
	go func() { _ = s.ServeGateway(ctx, ln) }()
	return nil
}
