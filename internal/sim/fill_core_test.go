package sim

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gpufleet/gpufleet/internal/place"
)

// fillReference is the fill experiment written directly against
// place.Select, without the scheduling core: the loop the core must
// reproduce exactly when its placement chain is one scorer ranking every
// feasible node.
func fillReference(nodes []*place.Node, tasks []place.Request, policy string, seed uint64, tune float64) ([]bool, []*place.Node, error) {
	cluster := make([]*place.Node, len(nodes))
	var capacity int64
	perm := rand.New(rand.NewPCG(seed, 0x6e6f646573)).Perm(len(nodes))
	for i, n := range nodes {
		c := *n
		c.Index = perm[i]
		c.Free = append([]int32(nil), n.Free...)
		cluster[perm[i]] = &c
		capacity += int64(len(n.Free)) * place.Whole
	}
	scorer, err := place.New(policy, &place.Env{Nodes: cluster, Workload: place.NewWorkload(tasks),
		Rand: rand.New(rand.NewPCG(seed, 0x706f6c696379))})
	if err != nil {
		return nil, nil, err
	}
	var out []bool
	for _, t := range fillWorkload(tasks, capacity, seed, tune) {
		r := &tasks[t]
		// Like the core, a decision with no feasible node scores nothing
		// (and so draws nothing from the policy's random stream).
		feasible := false
		for _, n := range cluster {
			feasible = feasible || place.Fits(n, r)
		}
		if !feasible {
			out = append(out, false)
			continue
		}
		c, ok := place.Select(cluster, r, scorer, nil)
		if ok {
			place.Apply(cluster[c.Node], r, c, +1)
		}
		out = append(out, ok)
	}
	return out, cluster, nil
}

// TestFillThroughCoreMatchesSelect checks that the fill, which drives the
// scheduling core, makes exactly the placements the reference loop makes,
// for every policy: the policy measured is the policy the core runs.
func TestFillThroughCoreMatchesSelect(t *testing.T) {
	for _, file := range []string{"tasks.csv", "tasks_multigpu.csv"} {
		nodes, tasks := openbExcerpt(t, file)
		for _, policy := range place.Names() {
			t.Run(file+"/"+policy, func(t *testing.T) {
				fillMatches(t, nodes, tasks, policy)
			})
		}
	}
}

func fillMatches(t *testing.T, nodes []*place.Node, tasks []place.Request, policy string) {
	{
		{
			want, cluster, err := fillReference(nodes, tasks, policy, 42, 1.3)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Fill(nodes, tasks, policy, 42, 1.3)
			if err != nil {
				t.Fatal(err)
			}
			placed := 0
			for _, ok := range want {
				if ok {
					placed++
				}
			}
			if res.Placed != placed || res.Arrivals != len(want) {
				t.Fatalf("core placed %d of %d, reference %d of %d", res.Placed, res.Arrivals, placed, len(want))
			}
			for i, n := range cluster {
				got := res.Nodes[i]
				if !slices.Equal(got.Free, n.Free) || got.CPUFree != n.CPUFree || got.MemFree != n.MemFree {
					t.Fatalf("node %d: core left free %v cpu %d mem %d, reference %v cpu %d mem %d",
						i, got.Free, got.CPUFree, got.MemFree, n.Free, n.CPUFree, n.MemFree)
				}
			}
		}
	}
}
