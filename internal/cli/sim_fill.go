package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/trace/openb"
)

func init() {
	simSubcommands = append(simSubcommands, newSimFillCmd)
}

func newSimFillCmd() *cobra.Command {
	var (
		nodesPath, tasksPath, policy string
		seed                         uint64
		tune                         float64
		asJSON                       bool
	)
	c := &cobra.Command{
		Use:   "fill --nodes NODES.csv --tasks TASKS.csv",
		Short: "Fill an empty cluster with never-ending tasks and report GPU allocation against arrived demand",
		Long: `fill runs the GPU-fragmentation experiment of "Beware of Fragmentation"
(Weng et al., USENIX ATC '23) on an openb node list and task list: the task
list is extended at random to --tune times the cluster's GPU capacity and
shuffled by --seed, then tasks arrive one by one and never finish; each is
placed by the policy at once or dropped. The curve gives the allocated share
of GPU capacity at every percent of arrived demand, 0 to 130.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodesPath == "" || tasksPath == "" {
				return fmt.Errorf("--nodes and --tasks are required")
			}
			if !knownPolicy(policy) {
				_, err := place.New(policy, &place.Env{})
				return fmt.Errorf("--policy: %w", err)
			}
			nodes, err := openb.LoadNodes(nodesPath)
			if err != nil {
				return err
			}
			tasks, err := openb.LoadTasks(tasksPath)
			if err != nil {
				return err
			}
			cluster := make([]*place.Node, len(nodes))
			for i := range nodes {
				cluster[i] = nodes[i].Place(i)
			}
			reqs := make([]place.Request, len(tasks))
			for i := range tasks {
				reqs[i] = tasks[i].Req
			}
			res, err := sim.Fill(cluster, reqs, policy, seed, tune)
			if err != nil {
				return err
			}
			if asJSON {
				return writeFillJSON(cmd.OutOrStdout(), res)
			}
			writeFillSummary(cmd.OutOrStdout(), res, len(nodes), len(tasks))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&nodesPath, "nodes", "", "node list CSV (sn,cpu_milli,memory_mib,gpu,model)")
	f.StringVar(&tasksPath, "tasks", "", "task list CSV (name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,...])")
	f.StringVar(&policy, "policy", place.DefaultFillPolicy, "placement policy, one of "+fmt.Sprint(place.Names()))
	f.Uint64Var(&seed, "seed", 42, "seed of the workload draws and shuffle, the node order and the policy's random choices")
	f.Float64Var(&tune, "tune", 1.3, "extend the task list to this multiple of the cluster's GPU capacity")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

func knownPolicy(name string) bool {
	for _, n := range place.Names() {
		if n == name {
			return true
		}
	}
	return false
}

type fillJSON struct {
	Policy        string          `json:"policy"`
	Seed          uint64          `json:"seed"`
	Tune          float64         `json:"tune"`
	TotalGPUMilli int64           `json:"total_gpu_milli"`
	Arrivals      int             `json:"arrivals"`
	Placed        int             `json:"placed"`
	Failed        int             `json:"failed"`
	WallSeconds   float64         `json:"wall_seconds"`
	Curve         []sim.FillPoint `json:"curve"`
}

func writeFillJSON(w io.Writer, r *sim.FillResult) error {
	return json.NewEncoder(w).Encode(fillJSON{
		Policy: r.Policy, Seed: r.Seed, Tune: r.Tune, TotalGPUMilli: r.TotalGPUMilli,
		Arrivals: r.Arrivals, Placed: r.Placed, Failed: r.Failed,
		WallSeconds: r.Wall.Seconds(), Curve: r.Curve,
	})
}

func writeFillSummary(w io.Writer, r *sim.FillResult, nodes, tasks int) {
	fmt.Fprintf(w, "policy %s, seed %d, tune %g\n", r.Policy, r.Seed, r.Tune)
	fmt.Fprintf(w, "cluster: %d nodes, %d GPUs; workload: %d tasks extended to %d arrivals\n",
		nodes, r.TotalGPUMilli/place.Whole, tasks, r.Arrivals)
	fmt.Fprintf(w, "placed %d, failed %d, in %.2fs\n", r.Placed, r.Failed, r.Wall.Seconds())
	fmt.Fprintln(w, "arrived%  allocated%")
	for _, p := range []int{50, 60, 70, 80, 90, 100, 110, 120, 130} {
		fmt.Fprintf(w, "%8d  %10.2f\n", p, r.At(p))
	}
}
