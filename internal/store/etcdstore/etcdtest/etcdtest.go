// Package etcdtest runs a real etcd cluster inside a test's process
// (etcd's embed package) on loopback: one member or three, with members
// that can be stopped and started again.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// MaxTxnOps is the members' --max-txn-ops: large enough that a loop
// commit of a burst of submissions is one transaction.
const MaxTxnOps = 4096

// Options are how a cluster serves its clients.
type Options struct {
	// CertFile and KeyFile (PEM), when set, are the members'
	// certificate: they speak TLS to clients. ClientCAFile, when set
	// too, is the CA a client's certificate must be signed by (clients
	// without one are refused).
	CertFile, KeyFile, ClientCAFile string
}

// Cluster is a running cluster.
type Cluster struct {
	t       testing.TB
	opt     Options
	dir     string
	names   []string
	peer    []string
	client  []string
	members []*embed.Etcd
}

// freePort finds a loopback port nobody listens on now.
func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Start runs a cluster of n members in dir and waits until it serves.
func Start(t testing.TB, n int, dir string) *Cluster { return StartWith(t, n, dir, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, n int, dir string, opt Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opt: opt, dir: dir}
	scheme := "http://"
	if opt.CertFile != "" {
		scheme = "https://"
	}
	// A port found free may be taken by another process before the member
	// binds it (tests of other packages run beside this one): the cluster
	// then starts again on other ports, in a fresh directory.
	for attempt := 0; ; attempt++ {
		c.names, c.peer, c.client = nil, nil, nil
		c.dir = filepath.Join(dir, fmt.Sprintf("try%d", attempt))
		var initial []string
		for i := range n {
			c.names = append(c.names, fmt.Sprintf("m%d", i))
			c.peer = append(c.peer, "http://"+freePort(t))
			c.client = append(c.client, scheme+freePort(t))
			initial = append(initial, c.names[i]+"="+c.peer[i])
		}
		c.members = make([]*embed.Etcd, n)
		var err error
		for i := range n {
			if err = c.start(i, strings.Join(initial, ","), "new"); err != nil {
				break
			}
		}
		if err == nil {
			break
		}
		c.Close()
		inUse := errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
		if !inUse || attempt == 4 {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case <-c.members[i].Server.ReadyNotify():
		case <-time.After(60 * time.Second):
			t.Fatalf("etcd member %s not ready in 60s", c.names[i])
		}
	}
	t.Cleanup(c.Close)
	return c
}

func (c *Cluster) start(i int, initial, state string) error {
	cfg := embed.NewConfig()
	cfg.Name = c.names[i]
	cfg.Dir = filepath.Join(c.dir, c.names[i])
	pu, _ := url.Parse(c.peer[i])
	cu, _ := url.Parse(c.client[i])
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster = initial
	cfg.InitialClusterToken = "gpufleet-test"
	cfg.ClusterState = state
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Raft's clock: ticks of 50 ms, an election after 600 ms without a
	// heartbeat. etcd raises a lease's TTL to 1.5 election timeouts, so
	// this is what lets a test's 1 s election lease be 1 s.
	cfg.TickMs, cfg.ElectionMs = 50, 600
	cfg.MaxTxnOps = MaxTxnOps
	if c.opt.CertFile != "" {
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: c.opt.CertFile, KeyFile: c.opt.KeyFile,
			TrustedCAFile: c.opt.ClientCAFile, ClientCertAuth: c.opt.ClientCAFile != ""}
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", c.names[i], err)
	}
	c.members[i] = e
	return nil
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string { return append([]string(nil), c.client...) }

// HostPorts are the members' client addresses without their scheme, as
// `--store etcd://` takes them.
func (c *Cluster) HostPorts() []string {
	out := make([]string, len(c.client))
	for i, u := range c.client {
		out[i] = u[strings.Index(u, "://")+3:]
	}
	return out
}

// Stop stops member i (its data stays).
func (c *Cluster) Stop(i int) {
	if e := c.members[i]; e != nil {
		e.Close()
		<-e.Server.StopNotify()
		c.members[i] = nil
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}
