package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/agent"
	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/spec"
	"github.com/gpufleet/gpufleet/internal/store"
)

func init() { addCommand(newUpCmd) }

// helloJob is the example job up writes: a two-replica gang of four H100
// each, which the local fleet places on one node or two.
const helloJob = `# A two-replica gang of 4 accelerators per replica; every replica prints
# its rank and rendezvous address, then five steps.
name: hello
queue: frontier-research
kind: training
gangs:
  - name: workers
    replicas: 2
    accelerators: h100
    count: 4
command:
  - sh
  - -c
  - 'echo "rank $RANK of $WORLD_SIZE on devices $CUDA_VISIBLE_DEVICES, master $MASTER_ADDR:$MASTER_PORT"; for i in 1 2 3 4 5; do echo "step $i"; sleep 1; done'
`

// maxLocalNodes bounds the fleet up runs: one in-process agent per node.
const maxLocalNodes = 64

func newUpCmd() *cobra.Command {
	var sf *serverFlags
	var fleetFile string
	var demo bool
	c := &cobra.Command{
		Use:   "up",
		Short: "Run a complete local control plane: server, store and a small fleet of node agents",
		Long: `Up runs, in one process, the server with its embedded store in the data
directory and one node agent per node of a small fleet: by default eight
8-GPU servers (five H100, two H200, one B200, in two blocks of one zone,
with the CPU and memory of real ones), on which every job of examples/
starts. The accelerators are simulated; the processes that jobs start are
real. A new data directory gets the default tenants and queues.

Up writes the client config (~/.config/gpufleet/config.yaml) so the other
commands find the server, unless that file names a server on another host
(then it is left alone and up prints the variables to set instead), writes
the example jobs to DATA/examples, and prints the admin token and commands
to try, spelled as up itself was run. It deploys a demo inference service,
replicas of gpufleet demo-replica on one B200 each, from zero to four on
its load, unless --demo-service=false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			out := cmd.OutOrStdout()
			nodes, err := localFleet(fleetFile)
			if err != nil {
				return err
			}
			cfg := sf.config(cmd.ErrOrStderr(), spec.DefaultQueues())
			if err := sf.acct.apply(&cfg); err != nil {
				return err
			}
			sf.energy.fleetFile = fleetFile
			if err := sf.energy.apply(&cfg, sf.acct.prices); err != nil {
				return err
			}
			s, err := server.Open(cfg)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, s.Close()) }()
			adminTok, err := localToken(s, filepath.Join(sf.data, "admin-token"), store.RoleAdmin, "", s.AdminToken())
			if err != nil {
				return err
			}
			// Each agent has a token of its own, bound to its node.
			nodeToks := make([]string, len(nodes))
			for i, n := range nodes {
				if nodeToks[i], err = localToken(s, filepath.Join(sf.data, "node-tokens", n.Name), store.RoleNode, n.Name, ""); err != nil {
					return err
				}
			}
			ln, url, err := sf.listenURL()
			if err != nil {
				return err
			}
			cfgNote, err := upClientConfig(url, adminTok)
			if err != nil {
				return errors.Join(fmt.Errorf("write client config: %w", err), ln.Close())
			}
			examples, err := writeExamples(filepath.Join(sf.data, "examples"))
			if err != nil {
				return errors.Join(err, ln.Close())
			}

			ctx, stop := signalContext(cmd.Context())
			defer stop()
			var wg sync.WaitGroup
			errs := make(chan error, len(nodes)+1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Serve(ctx, ln); err != nil {
					errs <- fmt.Errorf("server: %w", err)
				}
				stop()
			}()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			for i, n := range nodes {
				cfg := agent.Config{
					Server: url, Token: nodeToks[i], Name: n.Name, Address: "127.0.0.1",
					Inventory: agent.Inventory{Accel: n.Accel, Count: n.Count, CPUMilli: n.CPUMilli, MemoryMiB: n.MemoryMiB},
					Path:      nodePath(n), Labels: n.Labels,
					StateDir: filepath.Join(sf.data, "agents", n.Name),
					Interval: sf.hbInterval,
					Logger:   logger,
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := agent.Run(ctx, cfg); err != nil && !errors.Is(err, ctx.Err()) {
						errs <- fmt.Errorf("agent %s: %w", cfg.Name, err)
					}
				}()
			}
			// Scripts read --addr-file as "the plane is ready": its nodes
			// have registered.
			if err := waitNodes(ctx, url, adminTok, nodes); err != nil {
				logger.Warn("not every local agent registered", "err", err)
			}
			endpoint := ""
			if demo {
				if endpoint, err = deployDemoService(ctx, url, adminTok, filepath.Join(sf.data, "examples")); err != nil {
					logger.Warn("the demo service is not deployed", "err", err)
				}
			}
			if err := sf.announce(url); err != nil {
				stop()
				wg.Wait()
				return err
			}
			printUp(out, upSummary{url: url, data: sf.data, nodes: nodes, admin: adminTok, cfgNote: cfgNote,
				examples: examples, gpufleet: invocation(os.Args[0], ".", exec.LookPath), service: endpoint})
			wg.Wait()
			close(errs)
			var all []error
			for err := range errs {
				all = append(all, err)
			}
			return errors.Join(all...)
		},
	}
	sf = addServerFlags(c, "./.gpufleet")
	c.Flags().BoolVar(&demo, "demo-service", true, "deploy the demo inference service (gpufleet demo-replica, from zero to 4 replicas on its load)")
	c.Flags().StringVar(&fleetFile, "fleet", "", fmt.Sprintf("fleet `FILE` to run, one in-process agent per node (at most %d nodes; default: eight 8-GPU servers); its sites give power caps, PUE and carbon intensity", maxLocalNodes))
	return c
}

// waitNodes waits (up to 30 s) until every node of the local fleet is
// registered and ready.
func waitNodes(ctx context.Context, url, token string, nodes []fleet.Node) error {
	cl := api.NewClient(url, token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		have, err := cl.Nodes(ctx)
		ready := 0
		for _, n := range have {
			if n.State == "ready" {
				ready++
			}
		}
		switch {
		case err == nil && ready >= len(nodes):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("%d of %d nodes ready after 30s (%v)", ready, len(nodes), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// localFleet reads the fleet up runs.
func localFleet(file string) ([]fleet.Node, error) {
	f := spec.LocalFleet()
	if file != "" {
		data, err := readFile(file, spec.MaxFileBytes)
		if err != nil {
			return nil, err
		}
		if f, err = spec.ParseFleet(file, data); err != nil {
			return nil, err
		}
	}
	if !slices.Equal(f.Levels, fleet.DefaultLevels) {
		return nil, fmt.Errorf("--fleet %s: levels %v: the live plane takes the default levels %v", file, f.Levels, fleet.DefaultLevels)
	}
	if len(f.Nodes) > maxLocalNodes {
		return nil, fmt.Errorf("--fleet %s: %d nodes: up runs an agent per node in one process and takes at most %d; run gpufleet server and an agent per node instead", file, len(f.Nodes), maxLocalNodes)
	}
	return f.Nodes, nil
}

// nodePath turns a fleet node's path into the levels an agent declares.
func nodePath(n fleet.Node) map[string]string {
	out := make(map[string]string, len(n.Path))
	for i, lvl := range fleet.DefaultLevels {
		if i < len(n.Path) {
			out[lvl] = n.Path[i]
		}
	}
	return out
}

// writeExamples writes hello.yaml and the example jobs into dir and
// returns their paths, hello first.
func writeExamples(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := append([]spec.File{{Name: "hello.yaml", Data: []byte(helloJob)}}, spec.Examples()...)
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, filepath.Base(f.Name))
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

type upSummary struct {
	url, data, admin, cfgNote, gpufleet string
	// service is the demo service's endpoint path, when it is deployed.
	service  string
	nodes    []fleet.Node
	examples []string
}

func printUp(w io.Writer, u upSummary) {
	shapes := map[string]int{}
	var order []string
	for _, n := range u.nodes {
		k := fmt.Sprintf("%d %s", n.Count, dash(n.Accel))
		if shapes[k] == 0 {
			order = append(order, k)
		}
		shapes[k]++
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d x %s", shapes[k], k))
	}
	fmt.Fprintf(w, `gpufleet is up.

  Dashboard:    %s/   (sign in with the admin token below)
  API:          %s   (OpenAPI: %s/v1/openapi.yaml, metrics: %s/metrics)
  Data:         %s
  Nodes:        %s, simulated accelerators: %s
  Admin token:  %s
  %s

Try:
  %s submit %s
  %s get jobs
  %s logs -f ID        (ID as submit prints it, e.g. hello-2)
  %s get nodes
`, u.url, u.url, u.url, u.url, u.data, count(len(u.nodes), "local agent"), strings.Join(parts, ", "), u.admin, u.cfgNote,
		u.gpufleet, u.examples[0], u.gpufleet, u.gpufleet, u.gpufleet)
	if len(u.examples) > 1 {
		fmt.Fprintf(w, "\nThe jobs of examples/ fit this fleet, all at once; their commands stand for your own code:\n")
		for _, e := range u.examples[1:] {
			fmt.Fprintf(w, "  %s submit %s\n", u.gpufleet, e)
		}
	}
	if u.service != "" {
		fmt.Fprintf(w, `
A demo service, %s, runs no replica until a request comes; it holds that
request while a replica starts, adds replicas as load grows and goes back
to zero 30 s after the last request:
  curl -N -H "Authorization: Bearer %s" %s%sv1/completions \
       -d '{"prompt": "hello", "max_tokens": 50, "stream": true}'
  %s get services
  %s describe service %s
`, demoServiceName, u.admin, u.url, u.service, u.gpufleet, u.gpufleet, demoServiceName)
	}
	if strings.HasPrefix(u.gpufleet, "go run ") {
		fmt.Fprintf(w, "\n(go run builds gpufleet anew each time; go build -o bin/gpufleet ./cmd/gpufleet builds it once.)\n")
	}
	fmt.Fprintf(w, "\nStop with Ctrl-C; running jobs are kept and picked up by the next gpufleet up.\n")
}

// invocation spells the command that runs this program again from dir, as
// it was run: a name found on PATH as that name, a relative path as that
// path (bin/gpufleet), a binary go run built (in a go-build directory
// that is gone once it exits) as go run, any other path as itself.
func invocation(arg0, dir string, lookPath func(string) (string, error)) string {
	if !strings.ContainsRune(arg0, filepath.Separator) {
		return arg0
	}
	if strings.Contains(arg0, string(filepath.Separator)+"go-build") && filepath.Base(filepath.Dir(arg0)) == "exe" {
		if _, err := os.Stat(filepath.Join(dir, "cmd", "gpufleet", "main.go")); err == nil {
			return "go run ./cmd/gpufleet"
		}
		return "go run github.com/gpufleet/gpufleet/cmd/gpufleet"
	}
	if filepath.IsAbs(arg0) {
		if p, err := lookPath(filepath.Base(arg0)); err == nil && p == arg0 {
			return filepath.Base(arg0)
		}
	}
	return arg0
}

// localToken keeps a token of up's own in the data directory (mode 0600),
// so a later up can print it again although the store keeps only hashes.
func localToken(s *server.Server, path, role, node, fresh string) (string, error) {
	if fresh == "" {
		if data, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(data)), nil
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		tok, err := s.CreateToken(role, "", node)
		if err != nil {
			return "", err
		}
		fresh = tok
	}
	return fresh, writeFileAtomic(path, []byte(fresh+"\n"), 0o600)
}

// upClientConfig points the client config at the local plane, unless it
// names a server elsewhere: a config written for a real deployment is not
// overwritten by a local try-out. It returns the line up prints about it.
func upClientConfig(url, token string) (string, error) {
	old, path, err := readConfig()
	if err == nil && old.Server != "" && !loopbackURL(old.Server) {
		return fmt.Sprintf("Client config %s names %s and is kept; for this plane set\n"+
			"                GPUFLEET_SERVER=%s GPUFLEET_TOKEN=%s", path, old.Server, url, token), nil
	}
	path, err = writeConfig(clientConfig{Server: url, Token: token})
	if err != nil {
		return "", err
	}
	return "Client config written to " + path, nil
}

// loopbackURL reports whether a server URL names this machine.
func loopbackURL(s string) bool {
	u, err := neturl.Parse(s)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
