package sim

import "errors"

// prefetched reads a Source ahead on its own goroutine, in batches, so
// that decoding a trace overlaps the simulation on another core. The jobs
// come out in the order the source gives them, with its error (io.EOF at
// the end) after the last, so a run sees exactly what it would have read
// itself.
type prefetched struct {
	batches chan prefetchBatch
	stop    chan struct{}
	cur     prefetchBatch
	pos     int
}

type prefetchBatch struct {
	jobs []Job
	err  error // after jobs; nil while more follow
}

const (
	prefetchBatchSize = 512
	prefetchDepth     = 8 // batches read ahead
)

// prefetch starts reading src ahead. Close must be called once the run is
// over, whether or not it read everything.
func prefetch(src Source) *prefetched {
	p := &prefetched{batches: make(chan prefetchBatch, prefetchDepth), stop: make(chan struct{})}
	go func() {
		defer close(p.batches)
		for {
			b := prefetchBatch{jobs: make([]Job, 0, prefetchBatchSize)}
			for len(b.jobs) < prefetchBatchSize {
				j, err := src.Next()
				if err != nil {
					b.err = err
					break
				}
				b.jobs = append(b.jobs, j)
			}
			select {
			case p.batches <- b:
			case <-p.stop:
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	return p
}

// Next returns the next job, or the source's error once the jobs are out.
func (p *prefetched) Next() (Job, error) {
	for p.pos == len(p.cur.jobs) {
		if p.cur.err != nil {
			return Job{}, p.cur.err
		}
		b, ok := <-p.batches
		if !ok {
			// Closed only after a batch with an error, or by Close.
			return Job{}, errPrefetchClosed
		}
		p.cur, p.pos = b, 0
	}
	j := p.cur.jobs[p.pos]
	p.cur.jobs[p.pos] = Job{} // let the batch's jobs go as they are used
	p.pos++
	return j, nil
}

// Close tells the reader goroutine to stop; it does so once the read in
// progress returns.
func (p *prefetched) Close() { close(p.stop) }

var errPrefetchClosed = errors.New("trace reader closed")
