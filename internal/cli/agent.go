package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/agent"
	"github.com/gpufleet/gpufleet/internal/fleet"
)

func init() { addCommand(newAgentCmd) }

func newAgentCmd() *cobra.Command {
	var (
		server, token, name, address, accels  string
		cpu, memory, pathFlag, topoFile, dir  string
		level                                 = map[string]*string{}
		labels                                map[string]string
		interval, grace                       time.Duration
		printInventory, stopOnExit, debugLogs bool
		portRange                             string
		probeEvery                            time.Duration
	)
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: declare this node, run its replicas, report to the server",
		Long: `The node agent registers this node with the server, then heartbeats: it
reports every replica process, ships their output and carries out the
server's desired state (start, stop, reconcile). Without --accelerators it
asks nvidia-smi, when it is on PATH, for the GPUs; CPU and memory come from
the operating system unless given. See docs/AGENT.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				h, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("--name not given and the host name is unknown: %w", err)
				}
				name = h
			}
			if address == "" {
				address = name
				if h, err := os.Hostname(); err == nil {
					address = h
				}
			}
			var inv agent.Inventory
			if accels != "" {
				a, n, err := agent.ParseAccelerators(accels)
				if err != nil {
					return fmt.Errorf("--accelerators: %w", err)
				}
				inv.Accel, inv.Count = a, n
			}
			if cpu != "" {
				v, err := agent.ParseCPU(cpu)
				if err != nil {
					return fmt.Errorf("--cpu: %w", err)
				}
				inv.CPUMilli = v
			}
			if memory != "" {
				v, err := agent.ParseMemory(memory)
				if err != nil {
					return fmt.Errorf("--memory: %w", err)
				}
				inv.MemoryMiB = v
			}
			path := map[string]string{}
			if topoFile != "" {
				tf, err := agent.ReadTopologyFile(topoFile)
				if err != nil {
					return err
				}
				for k, v := range tf.Path {
					path[k] = v
				}
				for k, v := range tf.Labels {
					if _, set := labels[k]; !set {
						if labels == nil {
							labels = map[string]string{}
						}
						labels[k] = v
					}
				}
			}
			if pathFlag != "" {
				p, err := agent.ParsePath(pathFlag)
				if err != nil {
					return fmt.Errorf("--path: %w", err)
				}
				for k, v := range p {
					path[k] = v
				}
			}
			for _, l := range fleet.DefaultLevels {
				if v := *level[l]; v != "" {
					path[l] = v
				}
			}
			if len(path) == 0 {
				for _, l := range fleet.DefaultLevels {
					path[l] = "default"
				}
			}
			inv, err := agent.Discover(cmd.Context(), inv, nil)
			if err != nil {
				return err
			}
			ports, err := agent.ParsePortRange(portRange)
			if err != nil {
				return fmt.Errorf("--port-range: %w", err)
			}
			cfg := agent.Config{
				Server: server, Token: token, Name: name, Address: address,
				Inventory: inv, Path: path, Labels: labels,
				StateDir: dir, Interval: interval, StopGrace: grace,
				StopReplicasOnExit: stopOnExit, Ports: ports, ProbeInterval: probeEvery,
			}
			if len(inv.GPUs) > 0 {
				// nvidia-smi listed the devices: it reads their
				// utilization for the energy meter too.
				cfg.Utilization = agent.NvidiaSMIUtilization(nil)
			}
			if cfg.StateDir == "" {
				cfg.StateDir = filepath.Join(".gpufleet", "agent-"+name)
			}
			if printInventory {
				out := struct {
					Node any         `json:"node"`
					GPUs []agent.GPU `json:"gpus,omitempty"`
				}{cfg.NodeInfo(), inv.GPUs}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if server == "" {
				return fmt.Errorf("--server is required (e.g. http://gpufleet-server:8080)")
			}
			if cfg.Token == "" {
				cfg.Token = os.Getenv("GPUFLEET_TOKEN")
			}
			lvl := slog.LevelInfo
			if debugLogs {
				lvl = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Logger.Info("agent starting", "node", name, "accel", inv.Accel, "count", inv.Count,
				"cpuMilli", inv.CPUMilli, "memoryMiB", inv.MemoryMiB, "stateDir", cfg.StateDir)
			return agent.Run(ctx, cfg)
		},
	}
	f := c.Flags()
	f.StringVar(&server, "server", "", "server base URL, e.g. http://gpufleet-server:8080; several servers of a group sharing one store, separated by commas (the agent finds the one that leads)")
	f.StringVar(&token, "token", "", "bearer token (default $GPUFLEET_TOKEN)")
	f.StringVar(&name, "name", "", "node name (default: the host name)")
	f.StringVar(&address, "address", "", "host other nodes reach this node's replicas at (default: the host name)")
	f.StringVar(&accels, "accelerators", "", "accelerators as COUNTxTYPE (e.g. 8xh100) or none (default: ask nvidia-smi)")
	f.StringVar(&cpu, "cpu", "", "CPU cores (64, 0.5) or millicores (500m) (default: the OS's count)")
	f.StringVar(&memory, "memory", "", "memory, e.g. 512Gi (default: MemTotal of /proc/meminfo)")
	for _, l := range fleet.DefaultLevels {
		level[l] = f.String(l, "", l+" the node sits in")
	}
	f.StringVar(&pathFlag, "path", "", "topology path as level=name,... (e.g. region=eu,zone=eu-1,block=b1,rack=r07)")
	f.StringVar(&topoFile, "topology-file", "", "YAML file with path: {level: name} and labels: {k: v}")
	f.StringToStringVar(&labels, "label", nil, "node labels as key=value (repeatable)")
	f.StringVar(&dir, "state-dir", "", "replica records and logs (default .gpufleet/agent-NAME)")
	f.DurationVar(&interval, "interval", 2*time.Second, "heartbeat interval until the server sets one")
	f.DurationVar(&grace, "stop-grace", 5*time.Second, "SIGTERM-to-SIGKILL grace for replicas the server no longer wants")
	f.BoolVar(&stopOnExit, "stop-replicas-on-exit", false, "stop the replicas when the agent exits (default: leave them to be adopted)")
	f.StringVar(&portRange, "port-range", agent.DefaultPortRange.String(), "`FIRST-LAST` ports given to service replicas (PORT); agents sharing a machine need ranges of their own")
	f.DurationVar(&probeEvery, "probe-interval", time.Second, "how often a service replica's readiness path is probed")
	f.BoolVar(&printInventory, "print-inventory", false, "print the node as it would register, then exit")
	f.BoolVar(&debugLogs, "debug", false, "log at debug level")
	return c
}
