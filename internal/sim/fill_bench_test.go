package sim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/trace/openb"
)

// openbDir is where the full openb trace lies: $GPUFLEET_OPENB, or the
// shared trace directory beside the repository.
func openbDir() string {
	if d := os.Getenv("GPUFLEET_OPENB"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "traces", "alibaba-gpu-v2023-openb", "csv")
}

// BenchmarkFillExcerpt fills the 46-node excerpt under testdata/openb.
func BenchmarkFillExcerpt(b *testing.B) {
	nodes, tasks := openbExcerpt(b, "tasks.csv")
	for _, policy := range []string{"random", "bestfit", "fgd", "sfgd"} {
		b.Run(policy, func(b *testing.B) {
			for b.Loop() {
				if _, err := Fill(nodes, tasks, policy, 42, 1.3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFillOpenb fills the full 1,213-node cluster with the largest
// task lists of the trace; it skips when the trace is not there.
func BenchmarkFillOpenb(b *testing.B) {
	dir := openbDir()
	ns, err := openb.LoadNodes(filepath.Join(dir, "openb_node_list_gpu_node.csv"))
	if err != nil {
		b.Skipf("openb trace not found (set GPUFLEET_OPENB): %v", err)
	}
	nodes := make([]*place.Node, len(ns))
	for i := range ns {
		nodes[i] = ns[i].Place(i)
	}
	for _, list := range []string{"cpu300", "gpushare80"} {
		ts, err := openb.LoadTasks(filepath.Join(dir, "openb_pod_list_"+list+".csv"))
		if err != nil {
			b.Fatal(err)
		}
		tasks := make([]place.Request, len(ts))
		for i := range ts {
			tasks[i] = ts[i].Req
		}
		for _, policy := range []string{"fgd", "sfgd", "random", "bestfit"} {
			b.Run(list+"/"+policy, func(b *testing.B) {
				for b.Loop() {
					if _, err := Fill(nodes, tasks, policy, 42, 1.3); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
