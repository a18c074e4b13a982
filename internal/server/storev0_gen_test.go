package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// TestWriteStoreV0 writes a store file with every kind of record this
// version of the server keeps, and the records as this version reads them
// back, for the store's migration test. Run with GPUFLEET_WRITE_STORE_V0
// naming the output directory.
func TestWriteStoreV0(t *testing.T) {
	out := os.Getenv("GPUFLEET_WRITE_STORE_V0")
	if out == "" {
		t.Skip("set GPUFLEET_WRITE_STORE_V0=DIR to write the fixture")
	}
	dir := t.TempDir()
	h := start(t, dir)
	ctx := h.ctx()
	acme := h.client("acme")
	if _, err := h.admin.CreateToken(ctx, api.CreateToken{Role: api.RoleMetrics}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.CreateToken(ctx, api.CreateToken{Role: api.RoleNode, Node: "n3"}); err != nil {
		t.Fatal(err)
	}
	lend, borrow := 4.0, 8.0
	if _, err := h.admin.CreateTenant(ctx, api.CreateTenant{Name: "initech", Weight: 2, Quotas: map[string]api.Quota{
		"h100": {Nominal: 8, BorrowingLimit: &borrow, LendingLimit: &lend}, "h100:spot": {Nominal: 2.5}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.CreateQueue(ctx, api.CreateQueue{Name: "initech-fifo", Tenant: "initech", Strict: true, Weight: 0.5,
		Quotas: map[string]api.Quota{"h100": {Nominal: 8}}}); err != nil {
		t.Fatal(err)
	}
	h.node("n1")
	h.node("n2")
	if err := h.admin.Register(ctx, api.NodeInfo{Name: "n3", Address: "10.0.0.3", Accel: "h100", Count: 8, CPUMilli: 64000,
		MemoryMiB: 512 << 10, Path: map[string]string{"region": "eu", "zone": "eu-1", "rack": "r2"}, Labels: map[string]string{"pool": "spare"}}); err != nil {
		t.Fatal(err)
	}
	// A gang that succeeds.
	done, _, err := acme.Submit(ctx, "done.yaml", []byte(gangJob), "key-done")
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := h.beat("n1").Run[0].ReplicaKey, h.beat("n2").Run[0].ReplicaKey
	h.beat("n1", exited(k1, 0, ""))
	h.beat("n2", exited(k2, 0, ""))
	// A job that fails, with a restart policy.
	failed, _, err := acme.Submit(ctx, "fail.yaml", []byte(`name: flaky
queue: acme-train
kind: fine-tuning
priority: 5
preemptible: true
noticePeriod: 30s
checkpointEvery: 10m
estimatedRuntime: 1h
maxRuntime: 2h
gangs:
  - name: workers
    replicas: 1
    accelerators: [h100]
    count: 2
    cpu: 4
    memory: 8Gi
command: [sh, -c, "exit 3"]
env: {A: "1"}
restartPolicy: gang
maxRestarts: 1
`), "key-fail")
	if err != nil {
		t.Fatal(err)
	}
	for attempt := range 2 {
		var k api.ReplicaKey
		var node string
		for _, n := range []string{"n1", "n2", "n3"} {
			for _, a := range h.beat(n).Run {
				if a.Job == failed.ID {
					k, node = a.ReplicaKey, n
				}
			}
		}
		if k.Job == "" {
			t.Fatalf("attempt %d of the failing job was not assigned: %+v", attempt+1, h.job(failed.ID))
		}
		h.beat(node, exited(k, 3, ""))
		h.clock.Advance(time.Minute)
		h.sync()
	}
	// An array job, one replica done.
	arr, _, err := acme.Submit(ctx, "array.yaml", []byte(`name: sweep
queue: acme-train
kind: batch
gangs:
  - replicas: 3
    accelerators: h100
    fraction: 0.5
command: [echo, hi]
replicaPolicy: independent
restartPolicy: onFailure
maxRestarts: 2
`), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		for _, a := range h.beat(n).Run {
			if a.Job == arr.ID {
				h.beat(n, exited(a.ReplicaKey, 0, ""))
				break
			}
		}
	}
	// An elastic gang that runs.
	if _, _, err := acme.Submit(ctx, "elastic.yaml", []byte(`name: elastic
queue: acme-train
kind: training
topology: {preferred: rack}
gangs:
  - replicas: 3
    minReplicas: 1
    accelerators: [h100]
    count: 4
command: [sleep, "1000"]
resize: notify
`), "key-elastic"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		var reps []api.ReplicaStatus
		for _, a := range h.beat(n).Run {
			reps = append(reps, running(a.ReplicaKey))
		}
		h.beat(n, reps...)
	}
	// A cancelled job and one that waits (globex has no node room left
	// under its quota of 16 once it asks for 24).
	cancelled := h.submit(acme, `name: cancelme
queue: acme-train
kind: batch
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
command: [sleep, "1"]
`)
	if _, err := acme.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	globex := h.client("globex")
	h.submit(globex, `name: waits
queue: globex-batch
kind: batch
tier: spot
gangs:
  - replicas: 3
    accelerators: h100
    count: 8
command: [sleep, "1"]
waitForCapacity: true
`)
	if _, err := h.admin.DrainNode(ctx, "n3", false); err != nil {
		t.Fatal(err)
	}
	h.sync()
	_ = done
	h.stop()

	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Queues      any               `json:"queues"`
		Tokens      []store.Token     `json:"tokens"`
		Nodes       []store.Node      `json:"nodes"`
		Jobs        []store.Job       `json:"jobs"`
		Idempotency map[string]string `json:"idempotency"`
	}
	if rec.Queues, err = db.Queues(); err != nil {
		t.Fatal(err)
	}
	if rec.Tokens, err = db.Tokens(); err != nil {
		t.Fatal(err)
	}
	if rec.Nodes, err = db.Nodes(); err != nil {
		t.Fatal(err)
	}
	if err := db.Jobs(func(j *store.Job) bool { rec.Jobs = append(rec.Jobs, *j); return true }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The idempotency records are the store's own: read them raw.
	b, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.Idempotency = map[string]string{}
	if err := b.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("idempotency")).ForEach(func(k, v []byte) error {
			rec.Idempotency[string(k)] = string(v)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "records.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, store.FileName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
