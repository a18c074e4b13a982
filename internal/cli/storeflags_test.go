package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/store/etcdstore/etcdtest"
)

// Bad store flags are refused before anything connects, naming the flag
// and what it takes.
func TestStoreFlagsRefusedByName(t *testing.T) {
	dir := t.TempDir()
	noPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(noPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    storeFlags
		says string
	}{
		{"scheme", storeFlags{url: "http://127.0.0.1:2379"}, `--store "http://127.0.0.1:2379": want etcd://HOST:PORT`},
		{"no endpoint", storeFlags{url: "etcd://, ,"}, "no HOST:PORT after etcd://"},
		{"short lease", storeFlags{url: "etcd://127.0.0.1:1", leaseTTL: 500 * time.Millisecond}, "--lease-ttl 500ms: want at least 1s"},
		{"user alone", storeFlags{url: "etcd://127.0.0.1:1", leaseTTL: time.Second, user: "root"}, "--etcd-user and --etcd-password-file go together"},
		{"password file missing", storeFlags{url: "etcd://127.0.0.1:1", leaseTTL: time.Second, user: "root", passwordFile: filepath.Join(dir, "none")}, "--etcd-password-file:"},
		{"cert alone", storeFlags{url: "etcd://127.0.0.1:1", leaseTTL: time.Second, cert: "c.pem"}, "--etcd-cert and --etcd-key go together"},
		{"CA without PEM", storeFlags{url: "etcd://127.0.0.1:1", leaseTTL: time.Second, ca: noPEM}, "no PEM certificate in it"},
	} {
		_, _, err := tc.f.open(context.Background(), dir)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
}

// roundTrip wins the lead (every write is fenced by it), writes the queue
// tree through a store the flags opened and reads it back.
func roundTrip(t *testing.T, st server.Store) {
	t.Helper()
	el, ok := st.(server.Elector)
	if !ok {
		t.Fatalf("an etcd store that elects no leader: %T", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	term, err := el.Campaign(ctx, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer term.Resign(ctx)
	specs := []quota.Spec{{Name: "acme"}, {Name: "acme-a", Parent: "acme"}}
	if err := st.PutQueues(specs); err != nil {
		t.Fatal(err)
	}
	got, err := st.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(specs, got); d != "" {
		t.Errorf("queues read back (-want +got):\n%s", d)
	}
}

// A server reaches an etcd cluster that speaks TLS and asks for client
// certificates, with --etcd-ca, --etcd-cert and --etcd-key; without a
// client certificate the cluster refuses it.
func TestStoreFlagsTLS(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	c := etcdtest.StartWith(t, 1, filepath.Join(dir, "etcd"), etcdtest.Options{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.ca})
	url := "etcd://" + strings.Join(c.HostPorts(), ",")
	f := storeFlags{url: url, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, prefix: "/tls/", leaseTTL: 2 * time.Second, maxTxnOps: etcdtest.MaxTxnOps}
	st, what, err := f.open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !strings.HasPrefix(what, "etcd ") {
		t.Errorf("store described as %q", what)
	}
	roundTrip(t, st)

	f.cert, f.key = "", ""
	if st, _, err := f.open(context.Background(), dir); err == nil {
		st.Close()
		t.Error("a client without a certificate was let in")
	}
}

// A server reaches an etcd cluster with authentication on, with
// --etcd-user and --etcd-password-file; a wrong password is refused.
func TestStoreFlagsAuth(t *testing.T) {
	dir := t.TempDir()
	c := etcdtest.Start(t, 1, filepath.Join(dir, "etcd"))
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "s3cret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := storeFlags{url: "etcd://" + strings.Join(c.HostPorts(), ","), user: "root", passwordFile: pw, prefix: "/auth/",
		leaseTTL: 2 * time.Second, maxTxnOps: etcdtest.MaxTxnOps}
	st, _, err := f.open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, st)
	st.Close()

	if err := os.WriteFile(pw, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, _, err := f.open(context.Background(), dir); err == nil {
		st.Close()
		t.Error("a wrong password was let in")
	}
}

// pki is a CA and the certificates it signed, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	var out pki
	out.ca = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (cert, keyFile string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	out.serverCert, out.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	out.clientCert, out.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return out
}
