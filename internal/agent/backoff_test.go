package agent

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// failingTransport refuses every request, recording when each was tried.
type failingTransport struct {
	mu    sync.Mutex
	tries []time.Time
}

func (f *failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries = append(f.tries, time.Now())
	return nil, errors.New("connection refused")
}

// While the server is away, the agent tries again after a wait that
// doubles from its heartbeat interval up to MaxBackoff, less up to a fifth
// of jitter. The bubble's clock runs ten minutes in no time.
func TestBackoffWhileServerAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &failingTransport{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		cfg := Config{Server: "http://server.invalid", Name: "n1", StateDir: t.TempDir(),
			Interval: time.Second, MaxBackoff: 16 * time.Second,
			HTTPClient: &http.Client{Transport: ft}}
		go func() { done <- Run(ctx, cfg) }()
		time.Sleep(10 * time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		ft.mu.Lock()
		defer ft.mu.Unlock()
		if len(ft.tries) < 30 {
			t.Fatalf("%d tries in ten minutes; want one at least every 16 s", len(ft.tries))
		}
		want := time.Second
		for i := 1; i < len(ft.tries); i++ {
			gap := ft.tries[i].Sub(ft.tries[i-1])
			if gap > want || gap < want-want/5 {
				t.Fatalf("try %d came %v after the one before; want %v less up to a fifth", i, gap, want)
			}
			want = min(2*want, cfg.MaxBackoff)
		}
	})
}
