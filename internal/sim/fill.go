package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// The fill experiment of Weng et al. (USENIX ATC '23), "Beware of
// Fragmentation": tasks arrive one by one on an empty cluster and never
// finish; each is placed at once or dropped. The workload is the task list
// kept whole and extended with tasks drawn from it at random, with
// replacement, until one more would take the GPU demand past tune times
// the cluster's GPU capacity (or thinned at random down to it), then
// shuffled. The result is the fraction of GPU capacity allocated as a
// function of the GPU demand that has arrived, failed tasks included: a
// policy that fragments the cluster less keeps placing tasks longer.
//
// The fill holds no placement logic: every task is submitted to the
// scheduling core, configured with the policy as its only placement stage
// ranking every feasible node, and a task the cycle does not bind is
// cancelled (dropped).

// FillPoints is the number of points of a fill curve: arrived demand 0..130%.
const FillPoints = 131

// FillPoint is the allocation when a given share of capacity has arrived.
type FillPoint struct {
	ArrivedPct   int     `json:"arrived_pct"`
	AllocatedPct float64 `json:"allocated_pct"`
}

// FillResult is the outcome of one fill run.
type FillResult struct {
	Policy        string
	Seed          uint64
	Tune          float64
	TotalGPUMilli int64 // the cluster's GPU capacity
	Arrivals      int   // tasks in the extended, shuffled workload
	Placed        int
	Failed        int
	// Curve holds one point per integer arrived percent 0..130: the mean
	// allocation over the arrivals whose arrived demand rounds (half to
	// even) to that percent, as the paper's analysis does; a percent no
	// arrival rounds to takes the mean of its neighbours within one
	// percent, or else the nearest point below.
	Curve []FillPoint
	Wall  time.Duration // of the placement loop
	// Nodes is the cluster's final state, in the run's node order: node i
	// of the input is Nodes[Order[i]].
	Nodes []*place.Node
	Order []int
}

// At returns the allocation at arrived percent p (0..130).
func (r *FillResult) At(p int) float64 { return r.Curve[p].AllocatedPct }

// Fill runs the experiment on a copy of nodes (left untouched) with tasks
// and the placement policy registered as policy. seed drives the workload's
// draws and shuffle and, through a separate stream, the policy's own random
// choices, so runs with one seed see the same arrivals whatever the policy.
func Fill(nodes []*place.Node, tasks []place.Request, policy string, seed uint64, tune float64) (*FillResult, error) {
	if len(tasks) == 0 {
		return nil, fmt.Errorf("fill: no tasks")
	}
	if !(tune > 0) || tune > 100 {
		return nil, fmt.Errorf("fill: tune %v: want a ratio above 0 (1.3 in the paper)", tune)
	}
	for i := range tasks {
		if err := tasks[i].Validate(); err != nil {
			return nil, fmt.Errorf("fill: task %d: %w", i, err)
		}
	}
	// Placement breaks ties by node index, so the order of the nodes is
	// part of the experiment: like the paper's simulator, which names the
	// nodes in an order drawn from the seed and breaks ties by name, lay
	// them out in a seeded random order.
	cluster := make([]*place.Node, len(nodes))
	var capacity int64
	perm := rand.New(rand.NewPCG(seed, 0x6e6f646573)).Perm(len(nodes)) // "nodes"
	for i, n := range nodes {
		c := *n
		c.Index = perm[i]
		c.Free = append([]int32(nil), n.Free...)
		cluster[perm[i]] = &c
		capacity += int64(len(n.Free)) * place.Whole
	}
	if capacity == 0 {
		return nil, fmt.Errorf("fill: the cluster has no GPUs")
	}
	if !slices.Contains(place.Names(), policy) {
		return nil, fmt.Errorf("placement policy %q: want one of %s", policy, strings.Join(place.Names(), ", "))
	}
	arrivals := fillWorkload(tasks, capacity, seed, tune)
	res := &FillResult{Policy: policy, Seed: seed, Tune: tune, TotalGPUMilli: capacity, Arrivals: len(arrivals), Order: perm}
	core, err := fillCore(cluster, tasks, policy, seed)
	if err != nil {
		return nil, err
	}
	bins := make([]fillBin, FillPoints)
	var arrived, allocated int64
	start := time.Now()
	for i, t := range arrivals {
		r := &tasks[t]
		arrived += r.GPUMilli()
		id := sched.JobID(strconv.Itoa(i))
		_, err := core.Apply(sched.JobSubmitted{Job: sched.Job{ID: id, Queue: fillQueue,
			Gangs: []sched.Gang{{Replicas: 1, Shape: *r, AnyType: true}}}})
		if err != nil {
			return nil, fmt.Errorf("fill: task %d: %w", t, err)
		}
		placed := false
		for _, a := range core.Schedule(int64(i)).Actions {
			if _, ok := a.(sched.Bind); ok {
				placed = true
			}
		}
		if placed {
			allocated += r.GPUMilli()
			res.Placed++
		} else {
			res.Failed++
			// A task that finds no room is dropped, not kept waiting.
			if _, pending := core.Explain(id); pending {
				if _, err := core.Apply(sched.JobCancelled{ID: id}); err != nil {
					return nil, err
				}
			}
		}
		p := math.RoundToEven(float64(arrived) * 100 / float64(capacity))
		if p >= 0 && p < FillPoints {
			bins[int(p)].add(float64(allocated) * 100 / float64(capacity))
		}
	}
	res.Wall = time.Since(start)
	res.Curve = fillCurve(bins)
	for i := range cluster {
		res.Nodes = append(res.Nodes, core.NodeState(i))
	}
	return res, nil
}

// fillQueue is the one queue of the fill experiment, with unlimited quota:
// the experiment measures placement, not admission.
const fillQueue = "fill"

// fillCore builds the scheduling core the fill drives: the cluster's nodes
// in their seeded order, a catalog of the trace's GPU types, one queue, and
// a placement chain of the policy alone ranking every feasible node (as the
// paper's simulator does), planning for the task list's workload.
func fillCore(cluster []*place.Node, tasks []place.Request, policy string, seed uint64) (*sched.Core, error) {
	var types []fleet.AccelType
	seen := map[string]bool{}
	nodes := make([]fleet.Node, len(cluster))
	for i, n := range cluster {
		if n.Accel != "" && !seen[n.Accel] {
			seen[n.Accel] = true
			types = append(types, fleet.AccelType{Name: n.Accel})
		}
		nodes[i] = fleet.Node{Name: fmt.Sprintf("node-%05d", i), Path: []string{"openb"}, Accel: n.Accel,
			Count: len(n.Free), CPUMilli: n.CPUCap, MemoryMiB: n.MemCap}
		if len(n.Free) == 0 {
			nodes[i].Accel = ""
		}
	}
	cat, err := fleet.NewCatalog(types)
	if err != nil {
		return nil, err
	}
	f, err := fleet.New(cat, []string{"cluster"}, nodes)
	if err != nil {
		return nil, fmt.Errorf("fill: %w", err)
	}
	spec := quota.Spec{Name: fillQueue, Quotas: map[string]quota.Limits{}}
	for _, t := range types {
		spec.Quotas[t.Name] = quota.Limits{Nominal: quota.Unlimited}
	}
	q, err := quota.New([]quota.Spec{spec})
	if err != nil {
		return nil, err
	}
	return sched.New(sched.Config{
		Placement:    []string{policy},
		Candidates:   -1,
		NoBackfill:   true,
		NoPreemption: true,
		Seed:         seed,
		Workload:     place.NewWorkload(tasks),
	}, f, q)
}

// fillWorkload returns the arrival order as indices into tasks.
func fillWorkload(tasks []place.Request, capacity int64, seed uint64, tune float64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x776f726b6c6f6164)) // "workload"
	target := tune * float64(capacity)
	order := make([]int, len(tasks))
	var demand int64
	for i := range tasks {
		order[i] = i
		demand += tasks[i].GPUMilli()
	}
	if float64(demand) > target {
		// Thin at random down to the target.
		for float64(demand) > target && len(order) > 0 {
			j := rng.IntN(len(order))
			demand -= tasks[order[j]].GPUMilli()
			order[j] = order[len(order)-1]
			order = order[:len(order)-1]
		}
	} else if demand > 0 {
		for {
			j := rng.IntN(len(tasks))
			if float64(demand+tasks[j].GPUMilli()) > target {
				break
			}
			demand += tasks[j].GPUMilli()
			order = append(order, j)
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

type fillBin struct {
	sum float64
	n   int
}

func (b *fillBin) add(v float64) { b.sum += v; b.n++ }

func fillCurve(bins []fillBin) []FillPoint {
	curve := make([]FillPoint, len(bins))
	for p := range bins {
		curve[p].ArrivedPct = p
		var b fillBin
		if bins[p].n > 0 {
			b = bins[p]
		} else {
			for q := max(p-1, 0); q <= min(p+1, len(bins)-1); q++ {
				b.sum += bins[q].sum
				b.n += bins[q].n
			}
		}
		switch {
		case b.n > 0:
			curve[p].AllocatedPct = b.sum / float64(b.n)
		case p > 0:
			curve[p].AllocatedPct = curve[p-1].AllocatedPct
		}
	}
	return curve
}
