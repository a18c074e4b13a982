package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

const meteredJob = `name: m%d
queue: acme-train
kind: batch
gangs:
  - replicas: %d
    accelerators: h100
    %s
command: [sleep, "%d"]
`

// After any number of kill -9s of the server, every job's metered
// accelerator-time is exactly its replicas' bound time x shape, no more
// and no less: each replica that was bound has one usage record, from the
// second it was bound to the second its end was known, and the ledger
// rebuilt from the store meters the records once each.
func TestMeteringSurvivesKilledServers(t *testing.T) {
	p := newPlane(t)
	p.startAgent("n1")
	p.startAgent("n2")
	type sub struct {
		id    string
		sleep int
	}
	var jobs []sub
	shapes := []struct {
		replicas int
		shape    string
		sleep    int
	}{
		{1, "count: 8", 3}, {2, "count: 4", 5}, {1, "fraction: 0.5", 4}, {4, "count: 1", 6},
		{1, "count: 2", 2}, {2, "fraction: 0.25", 7}, {1, "count: 8", 4}, {3, "count: 2", 3},
	}
	for i, s := range shapes {
		j := p.submit(fmt.Sprintf(meteredJob, i, s.replicas, s.shape, s.sleep))
		jobs = append(jobs, sub{j.ID, s.sleep})
	}
	// Kill the server while the jobs run, over and over.
	for range 6 {
		time.Sleep(700 * time.Millisecond)
		kill9(p.server)
		p.startServer()
	}
	for _, j := range jobs {
		p.waitState(j.id, "succeeded", 60*time.Second)
	}
	// Once more after they all ended: the records are replayed.
	kill9(p.server)
	p.startServer()

	var total int64
	for _, s := range jobs {
		j, err := p.client.Job(p.ctx(), s.id)
		if err != nil {
			t.Fatal(err)
		}
		ju, err := p.client.JobUsage(p.ctx(), s.id)
		if err != nil {
			t.Fatal(err)
		}
		var held int64
		seen := map[string]bool{}
		for _, r := range ju.Records {
			if seen[r.ID] {
				t.Errorf("job %s: record %s twice", s.id, r.ID)
			}
			seen[r.ID] = true
			if r.To == nil {
				t.Errorf("job %s: record %s still open after the job ended", s.id, r.ID)
				continue
			}
			held += r.To.Sub(r.From).Milliseconds() * int64(len(r.Devices)) * int64(r.Milli)
		}
		if ju.AcceleratorMilliMs != held || ju.HeldMilliMs != held {
			t.Errorf("job %s: metered %d milli-accelerator-ms, its records hold %d (the server says %d)", s.id, ju.AcceleratorMilliMs, held, ju.HeldMilliMs)
		}
		// Every replica bound has its record, from its bind, held at
		// least as long as its process slept and no longer than until
		// the job was seen to end.
		for _, r := range j.Replicas {
			var rec *api.UsageRecord
			for i := range ju.Records {
				x := &ju.Records[i]
				if x.Attempt == r.Attempt && x.Gang == r.Gang && x.Replica == r.Replica && x.Node == r.Node {
					if rec != nil {
						t.Errorf("job %s replica %d/%d attempt %d: two records", s.id, r.Gang, r.Replica, r.Attempt)
					}
					rec = x
				}
			}
			if rec == nil {
				t.Errorf("job %s replica %d/%d attempt %d on %s: no usage record (records %+v)", s.id, r.Gang, r.Replica, r.Attempt, r.Node, ju.Records)
				continue
			}
			if !rec.From.Equal(r.Bound.Truncate(time.Second)) {
				t.Errorf("job %s replica %d/%d: record from %s, bound at %s", s.id, r.Gang, r.Replica, rec.From, r.Bound)
			}
			if rec.To == nil {
				continue
			}
			if d := rec.To.Sub(rec.From); d < time.Duration(s.sleep-1)*time.Second || rec.To.After(j.Finished.Add(time.Second)) {
				t.Errorf("job %s replica %d/%d: held %s to %s (%s); its process slept %ds and the job ended at %s", s.id, r.Gang, r.Replica,
					rec.From, rec.To, d, s.sleep, j.Finished)
			}
		}
		if len(ju.Records) < len(j.Replicas) {
			t.Errorf("job %s: %d records for %d replicas", s.id, len(ju.Records), len(j.Replicas))
		}
		total += held
	}
	// The tenant's report adds the jobs up.
	rep, err := p.client.Usage(p.ctx(), api.UsageQuery{Tenant: "acme", By: []string{"tenant"}, From: time.Now().UTC().AddDate(0, 0, -1).Truncate(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.AcceleratorMilliMs != total {
		t.Errorf("acme's report: %d milli-accelerator-ms, its jobs' records %d", rep.Total.AcceleratorMilliMs, total)
	}
	t.Logf("%d jobs, %.4f accelerator-hours metered exactly through 7 kill -9s", len(jobs), float64(total)/3.6e9)
}
