package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/store"
	"github.com/gpufleet/gpufleet/internal/store/etcdstore"
)

// storeFlags choose the server's store: the bbolt file in --data, or an
// etcd cluster that several servers share.
type storeFlags struct {
	url                string
	cert, key, ca      string
	user, passwordFile string
	prefix, advertise  string
	leaseTTL           time.Duration
	maxTxnOps          int
}

func (f *storeFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.url, "store", "", "`STORE`: empty for the bbolt file in --data, or etcd://HOST:PORT,HOST:PORT,... for an etcd cluster shared by several servers (one leads, the others stand by and forward to it)")
	fl.StringVar(&f.cert, "etcd-cert", "", "client certificate `FILE` for etcd (PEM; with --etcd-key)")
	fl.StringVar(&f.key, "etcd-key", "", "client key `FILE` for etcd (PEM)")
	fl.StringVar(&f.ca, "etcd-ca", "", "CA certificate `FILE` that signed the etcd members' certificates (PEM); setting it, or a certificate, speaks TLS")
	fl.StringVar(&f.user, "etcd-user", "", "etcd user `NAME` (with auth enabled on the cluster)")
	fl.StringVar(&f.passwordFile, "etcd-password-file", "", "`FILE` holding the etcd user's password")
	fl.StringVar(&f.prefix, "etcd-prefix", "/gpufleet/", "key `PREFIX` of the store in etcd (several control planes can share a cluster)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 2*time.Second, "leader election lease: a leader that stops renewing it is replaced this long after (whole seconds)")
	fl.IntVar(&f.maxTxnOps, "etcd-max-txn-ops", 4096, "the cluster's --max-txn-ops: the most operations one commit's transaction may hold")
	fl.StringVar(&f.advertise, "advertise", "", "`URL` the other servers of a group forward requests to while this one leads (default: the --listen address)")
}

// open opens the store the flags name: nil for the default bbolt file
// (server.Open opens it), with words that say which it is.
func (f *storeFlags) open(ctx context.Context, data string) (server.Store, string, error) {
	if f.url == "" || f.url == "bolt" || f.url == "bbolt" {
		return nil, filepath.Join(data, store.FileName), nil
	}
	rest, ok := strings.CutPrefix(f.url, "etcd://")
	if !ok {
		return nil, "", fmt.Errorf("--store %q: want etcd://HOST:PORT[,HOST:PORT...] or nothing (the bbolt file in --data)", f.url)
	}
	var eps []string
	for _, ep := range strings.Split(rest, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return nil, "", fmt.Errorf("--store %q: no HOST:PORT after etcd://", f.url)
	}
	opt := etcdstore.Options{Endpoints: eps, Prefix: f.prefix, LeaseTTL: f.leaseTTL, Username: f.user, MaxTxnOps: f.maxTxnOps}
	if f.leaseTTL < time.Second {
		return nil, "", fmt.Errorf("--lease-ttl %s: want at least 1s (etcd counts whole seconds)", f.leaseTTL)
	}
	if f.passwordFile != "" {
		pw, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return nil, "", fmt.Errorf("--etcd-password-file: %w", err)
		}
		opt.Password = strings.TrimRight(string(pw), "\r\n")
	}
	if (f.user == "") != (opt.Password == "") {
		return nil, "", fmt.Errorf("--etcd-user and --etcd-password-file go together")
	}
	if f.cert != "" || f.key != "" || f.ca != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if (f.cert == "") != (f.key == "") {
			return nil, "", fmt.Errorf("--etcd-cert and --etcd-key go together")
		}
		if f.cert != "" {
			pair, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return nil, "", fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		if f.ca != "" {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return nil, "", fmt.Errorf("--etcd-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, "", fmt.Errorf("--etcd-ca %s: no PEM certificate in it", f.ca)
			}
			cfg.RootCAs = pool
		}
		opt.TLS = cfg
	}
	s, err := etcdstore.Open(ctx, opt)
	if err != nil {
		return nil, "", err
	}
	return elected{s}, "etcd " + strings.Join(eps, ","), nil
}

// elected is the etcd store as the server's Elector.
type elected struct{ *etcdstore.Store }

func (e elected) Campaign(ctx context.Context, addr string) (server.Term, error) {
	t, err := e.Store.Campaign(ctx, addr)
	if err != nil {
		return nil, err
	}
	return t, nil
}

var _ server.Elector = elected{}
