package server

import (
	"context"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/store/etcdstore"
	"github.com/gpufleet/gpufleet/internal/store/etcdstore/etcdtest"
)

// elected is the etcd store as the server's Elector (package cli has the
// same adapter).
type elected struct{ *etcdstore.Store }

func (e elected) Campaign(ctx context.Context, addr string) (Term, error) {
	t, err := e.Store.Campaign(ctx, addr)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// BenchmarkSubmitEtcd is BenchmarkSubmit's 64 clients against a server
// whose store is a 3-member etcd cluster on this machine (in the
// benchmark's process): each loop iteration's submissions are one fenced
// transaction.
func BenchmarkSubmitEtcd(b *testing.B) {
	b.StopTimer()
	c := etcdtest.Start(b, 3, b.TempDir())
	st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: c.Endpoints(), MaxTxnOps: etcdtest.MaxTxnOps, LeaseTTL: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	benchSubmitWith(b, Config{DataDir: b.TempDir(), Store: elected{st}}, 64)
}
