package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/agent"
	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/spec"
	"github.com/gpufleet/gpufleet/internal/store"
)

func init() { addCommand(newUpCmd) }

// helloJob is the example job up writes: a two-replica gang, one replica on
// each local node.
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

func newUpCmd() *cobra.Command {
	var sf *serverFlags
	var nodes, count int
	var accel string
	c := &cobra.Command{
		Use:   "up",
		Short: "Run a complete local control plane: server, store and two node agents",
		Long: `Up runs, in one process, the server with its embedded store in the data
directory and local node agents that each declare simulated accelerators;
the processes that jobs start are real. A new data directory gets the
default tenants and queues. Up writes the client config
(~/.config/gpufleet/config.yaml) so the other commands find the server,
unless that file names a server on another host (then it is left alone and
up prints the variables to set instead), and prints the admin token and a
few commands to try.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			out := cmd.OutOrStdout()
			s, err := server.Open(sf.config(cmd.ErrOrStderr(), spec.DefaultQueues()))
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, s.Close()) }()
			adminTok, err := localToken(s, filepath.Join(sf.data, "admin-token"), store.RoleAdmin, "", s.AdminToken())
			if err != nil {
				return err
			}
			ln, url, err := sf.listenURL()
			if err != nil {
				return err
			}
			cfgNote, err := upClientConfig(url, adminTok)
			if err != nil {
				return fmt.Errorf("write client config: %w", err)
			}
			example := filepath.Join(sf.data, "examples", "hello.yaml")
			if err := os.MkdirAll(filepath.Dir(example), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(example, []byte(helloJob), 0o644); err != nil {
				return err
			}
			if err := sf.announce(url); err != nil {
				return errors.Join(err, ln.Close())
			}

			ctx, stop := signalContext(cmd.Context())
			defer stop()
			var wg sync.WaitGroup
			errs := make(chan error, nodes+1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Serve(ctx, ln); err != nil {
					errs <- fmt.Errorf("server: %w", err)
				}
				stop()
			}()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			for i := 1; i <= nodes; i++ {
				name := fmt.Sprintf("local-%d", i)
				// Each agent has a token of its own, bound to its node.
				nodeTok, err := localToken(s, filepath.Join(sf.data, "node-tokens", name), store.RoleNode, name, "")
				if err != nil {
					return err
				}
				cfg := agent.Config{
					Server: url, Token: nodeTok, Name: name, Address: "127.0.0.1",
					Inventory: agent.Inventory{Accel: accel, Count: count, CPUMilli: 16000, MemoryMiB: 64 << 10},
					Path:      map[string]string{"region": "local", "zone": "local-a", "block": "b1", "rack": fmt.Sprintf("r%d", i)},
					StateDir:  filepath.Join(sf.data, "agents", name),
					Interval:  sf.hbInterval,
					Logger:    logger,
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := agent.Run(ctx, cfg); err != nil && !errors.Is(err, ctx.Err()) {
						errs <- fmt.Errorf("agent %s: %w", name, err)
					}
				}()
			}
			fmt.Fprintf(out, `gpufleet is up.

  API:          %s   (OpenAPI: %s/v1/openapi.yaml, metrics: %s/metrics)
  Data:         %s
  Nodes:        %d local agents with %d simulated %s each
  Admin token:  %s
  %s

Try:
  gpufleet submit %s
  gpufleet get jobs
  gpufleet logs -f ID        (ID as submit prints it, e.g. hello-1)

Stop with Ctrl-C; running jobs are kept and picked up by the next gpufleet up.
`, url, url, url, sf.data, nodes, count, accel, adminTok, cfgNote, example)
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
	c.Flags().IntVar(&nodes, "nodes", 2, "local node agents to run")
	c.Flags().IntVar(&count, "accelerators", 8, "simulated accelerators per node")
	c.Flags().StringVar(&accel, "accelerator-type", "h100", "type of the simulated accelerators")
	return c
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
