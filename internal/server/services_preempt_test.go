package server

import (
	"strings"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// lowBatch fills one node with preemptible low-priority work.
const lowBatch = `name: low
queue: globex-batch
kind: batch
priority: low
preemptible: true
noticePeriod: 30s
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
command: [sleep, "600"]
`

// criticalService needs a whole node for its one replica.
const criticalService = `name: chat
queue: globex-batch
kind: service
priority: critical
service:
  replica:
    accelerators: h100
    count: 8
  minReplicas: 1
  maxReplicas: 1
  target:
    inFlight: 4
command: [serve]
`

// A service that must grow preempts lower-priority preemptible work the
// way any job does: the victim gets its notice period, the replica is
// placed once the victim's process is gone, and it serves. Cancelling the
// service gives its capacity back: the victim runs again.
func TestServiceGrowsByPreemptingLowerPriorityWork(t *testing.T) {
	// Heartbeats may lapse while the clock jumps a minute.
	h := start(t, "", func(c *Config) { c.HeartbeatTimeout = time.Hour })
	globex := h.client("globex")
	h.localNode("n1")
	be := newBackend(t, "r0")
	low := h.submit(globex, lowBatch)
	k := h.beat("n1").Run[0].ReplicaKey
	h.beat("n1", running(k))
	h.clock.Advance(time.Second) // the core does not preempt work it admitted in the same second
	svc := h.submit(globex, criticalService)
	h.sync()
	if s := h.service(globex, svc.ID); s.Desired != 1 || s.Waiting != 1 {
		t.Fatalf("service before the victim's preemption: %+v", s)
	}
	if got := h.job(low.ID); got.State != store.Running {
		t.Fatalf("victim %q before the replica waited a minute, want running", got.State)
	}
	// The waiting replica is in the pending list as the service's replica 0.
	pl, err := globex.Pending(h.ctx(), api.PendingFilter{Job: svc.ID}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Jobs) != 1 || pl.Jobs[0].Kind != "service" || pl.Jobs[0].Element == nil || *pl.Jobs[0].Element != 0 {
		t.Errorf("pending list: %+v, want the service's replica 0", pl.Jobs)
	}
	h.clock.Advance(time.Minute) // a job waits a minute for room before it preempts
	h.sync()
	if got := h.job(low.ID); got.State != store.Preempting {
		t.Fatalf("victim %q (%s), want preempting", got.State, got.Reason)
	}
	resp := h.beat("n1", running(k))
	if len(resp.Stop) != 1 || len(resp.Run) != 0 || resp.Stop[0].ReplicaKey != k {
		t.Fatalf("victim's node: run %+v stop %+v, want the victim's stop order", resp.Run, resp.Stop)
	}
	if want := h.clock.Now().Add(30 * time.Second).UnixMilli(); resp.Stop[0].DeadlineUnixMilli != want {
		t.Errorf("stop deadline %d, want the notice period's end %d", resp.Stop[0].DeadlineUnixMilli, want)
	}
	h.beat("n1", exited(k, 143, ""))
	h.sync()
	if got := h.job(low.ID); got.State != store.Pending {
		t.Errorf("victim after its process exited: %q, want pending", got.State)
	}
	reps := h.bringUp("n1", true, map[int]int{0: be.port(t)})
	if len(reps) != 1 || reps[0].Job != svc.ID {
		t.Fatalf("the freed node ran %+v, want the service's replica", reps)
	}
	h.waitService(globex, svc.ID, "its replica ready", func(s api.Service) bool { return s.Ready == 1 })
	if code, _, body := h.call(globex.Token, "/serve/globex/chat/v1/models"); code != 200 || !strings.HasPrefix(body, "r0 ") {
		t.Errorf("request to the service: %d %q", code, body)
	}

	if _, err := globex.Cancel(h.ctx(), svc.ID); err != nil {
		t.Fatal(err)
	}
	h.sync()
	resp = h.beat("n1", reps...)
	if len(resp.Stop) != 1 || resp.Stop[0].ReplicaKey != reps[0].ReplicaKey {
		t.Fatalf("after the cancel: stop %+v, want the replica's", resp.Stop)
	}
	h.beat("n1", exited(reps[0].ReplicaKey, 0, ""))
	h.sync()
	h.clock.Advance(time.Minute) // past the victim's requeue back-off
	h.sync()
	resp = h.beat("n1")
	if len(resp.Run) != 1 || resp.Run[0].Job != low.ID {
		t.Fatalf("after the service ended: run %+v, want the victim again", resp.Run)
	}
}
