package sim

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// countSource gives n jobs, then err for ever.
type countSource struct {
	i, n int
	err  error
}

func (s *countSource) Next() (Job, error) {
	if s.i == s.n {
		return Job{}, s.err
	}
	s.i++
	return Job{Job: sched.Job{ID: sched.JobID(fmt.Sprint(s.i))}, Arrival: int64(s.i)}, nil
}

func TestPrefetchKeepsOrderAndError(t *testing.T) {
	bad := errors.New("line 7: bad")
	for _, tc := range []struct {
		n   int
		err error
	}{{0, io.EOF}, {1, io.EOF}, {prefetchBatchSize, io.EOF}, {3*prefetchBatchSize + 5, bad}, {prefetchBatchSize*prefetchDepth*3 + 1, io.EOF}} {
		p := prefetch(&countSource{n: tc.n, err: tc.err})
		for i := 1; i <= tc.n; i++ {
			j, err := p.Next()
			if err != nil || j.Arrival != int64(i) || string(j.ID) != fmt.Sprint(i) {
				t.Fatalf("n=%d: job %d: got %v %v", tc.n, i, j.ID, err)
			}
		}
		for range 2 {
			if _, err := p.Next(); err != tc.err {
				t.Fatalf("n=%d: after the jobs got %v, want %v", tc.n, err, tc.err)
			}
		}
		p.Close()
	}
}

// A run that stops early closes the reader while it still has jobs to
// read: the goroutine must end rather than block on a full channel.
func TestPrefetchCloseEarly(t *testing.T) {
	src := &countSource{n: 1 << 30, err: io.EOF}
	p := prefetch(src)
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	// The goroutine stops once its pending send is refused; it closes the
	// channel as it goes.
	for range p.batches {
	}
}
