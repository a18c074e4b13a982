// Package storetest fills a store with many jobs for benchmarks of what
// reads them (job pages, the dashboard): records shaped as the live plane
// writes them, most finished, the newest pending.
package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Seed describes the jobs to add.
type Seed struct {
	// Jobs is how many; the newest Pending of them wait, the others are
	// finished (85% succeeded, 10% failed, 5% cancelled).
	Jobs, Pending int
	// Queues are the team queues the jobs go to, in turn, and TenantOf
	// names each one's tenant.
	Queues   []string
	TenantOf map[string]string
	// Nodes names the nodes finished jobs ran on.
	Nodes []string
	// End is when the newest job was submitted; jobs are 30 s apart.
	End time.Time
	// Tree is the queue tree to store with them (a server takes its
	// initial queues only into a new store).
	Tree []quota.Spec
}

var kinds = []sched.Kind{sched.Training, sched.FineTuning, sched.Batch, sched.Batch}

// Fill adds the jobs to the store in dir (created when new) through the
// store's own submission path, many at once so that they share commits,
// then records the finished ones' ends. It returns the jobs' ids, oldest
// first. The same seed gives the same jobs.
func Fill(dir string, s Seed) (ids []string, err error) {
	db, err := store.Open(dir, store.Options{BatchDelay: 5 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	if err := db.PutQueues(s.Tree); err != nil {
		return nil, err
	}
	ids = make([]string, s.Jobs)
	jobs := make([]store.Job, s.Jobs)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	next := make(chan int)
	for range 64 {
		wg.Go(func() {
			for i := range next {
				q := s.Queues[i%len(s.Queues)]
				job, _, err := db.Submit(store.Submission{Tenant: s.TenantOf[q], Build: func(seq uint64) store.Job {
					return record(s, i, seq, q)
				}})
				if err != nil {
					errs <- err
					return
				}
				ids[i], jobs[i] = job.ID, job
			}
		})
	}
	for i := range s.Jobs {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			return nil, err
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	// The finished ones, in commits of 5,000.
	var batch []*store.Job
	for i := range jobs {
		if i >= s.Jobs-s.Pending {
			continue
		}
		finish(s, &jobs[i], i)
		batch = append(batch, &jobs[i])
		if len(batch) == 5000 {
			if err := db.PutJobs(batch); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	return ids, db.PutJobs(batch)
}

func record(s Seed, i int, seq uint64, q string) store.Job {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	name := fmt.Sprintf("job%d", i)
	devices := []int{1, 1, 2, 4, 8}[r.IntN(5)]
	spec := sched.Job{ID: sched.JobID(fmt.Sprintf("%s-%d", name, seq)), Tenant: s.TenantOf[q], Queue: q, Kind: kinds[i%len(kinds)],
		Gangs:        []sched.Gang{{Replicas: 1, Shape: place.Request{Accel: []string{"h100"}, Devices: devices, CPUMilli: 8000, MemoryMiB: 65536}}},
		EstimatedSec: int64(600 + r.IntN(7200))}
	submitted := s.End.Add(-time.Duration(s.Jobs-1-i) * 30 * time.Second)
	return store.Job{ID: string(spec.ID), Name: name, Queue: q, Spec: spec, State: store.Pending, SubmittedMs: submitted.UnixMilli(),
		Run: store.Run{Command: []string{"python", "train.py", "--config", "configs/" + name + ".yaml"}, Env: map[string]string{"STEPS": "1000"}}}
}

func finish(s Seed, j *store.Job, i int) {
	r := rand.New(rand.NewPCG(uint64(i), 11))
	start := j.SubmittedMs + int64(r.IntN(600_000))
	end := start + int64(60_000+r.IntN(7_200_000))
	node := s.Nodes[r.IntN(len(s.Nodes))]
	devs := make([]int, j.Spec.Gangs[0].Shape.Devices)
	for d := range devs {
		devs[d] = d
	}
	env := map[string]string{"STEPS": "1000", "CUDA_VISIBLE_DEVICES": "0", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
		"MASTER_ADDR": node, "MASTER_PORT": strconv.Itoa(20000 + i%20000), "GPUFLEET_JOB": j.ID, "GPUFLEET_GANG": "0",
		"GPUFLEET_REPLICA": "0", "GPUFLEET_ATTEMPT": "1"}
	rep := store.Replica{Attempt: 1, Node: node, Accel: "h100", Devices: devs, Env: env, State: store.ReplicaExited, Sent: true}
	j.Attempt, j.StartedMs, j.FinishedMs = 1, start, end
	switch p := r.IntN(100); {
	case p < 85:
		j.State = store.Succeeded
	case p < 95:
		j.State, j.Reason, rep.Exit = store.Failed, "rank 0 (gang 0, replica 0) on "+node+" exited with code 1", 1
	default:
		j.State, j.Reason, rep.Signal = store.Cancelled, "cancelled by request", "SIGTERM"
	}
	j.Replicas = []store.Replica{rep}
}
