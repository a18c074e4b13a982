package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpufleet/gpufleet/internal/api"
)

func BenchmarkParseNvidiaSMI(b *testing.B) {
	in, err := os.ReadFile(filepath.Join(smiDir, "h100-sxm-8x.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := ParseNvidiaSMI(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeartbeatRequest builds the heartbeat of a node with 16 running
// replicas that each have 64 KiB of output not yet shipped: the whole
// 1 MiB budget is read from the log files every time.
func BenchmarkHeartbeatRequest(b *testing.B) {
	dir := b.TempDir()
	sd, err := openStateDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer sd.close()
	cfg := Config{Name: "node-1"}
	cfg.defaults()
	a := &agent{cfg: cfg, log: cfg.Logger, dir: sd, replicas: map[string]*replica{}}
	out := make([]byte, 64<<10)
	for i := range 16 {
		k := api.ReplicaKey{Job: fmt.Sprintf("job-%d", i/8), Replica: i % 8, Attempt: 1}
		p := sd.logPath(keyName(k))
		if err := os.WriteFile(p, out, 0o644); err != nil {
			b.Fatal(err)
		}
		a.replicas[keyName(k)] = &replica{own: true, rec: record{Key: k, PID: 1000 + i, State: StateRunning, LogPath: p}}
	}
	b.SetBytes(int64(cfg.MaxLogBytes))
	for b.Loop() {
		req := a.buildRequest()
		if len(req.Replicas) != 16 || len(req.Logs) != 16 {
			b.Fatalf("%d replicas, %d chunks", len(req.Replicas), len(req.Logs))
		}
	}
}
