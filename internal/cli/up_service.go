package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gpufleet/gpufleet/internal/api"
)

// demoServiceYAML is the service gpufleet up deploys, so that a new user
// sees one scale: replicas of gpufleet's own demo model server, from zero
// to four on the requests in flight. %s is this binary.
const demoServiceYAML = `# A demo inference service, deployed by gpufleet up: replicas of gpufleet's
# demo model server (gpufleet demo-replica, a stand-in for vLLM) on one
# B200 each. It runs none until its first request, which it holds while a
# replica starts and "loads its model" (5 s); it adds replicas as requests
# in flight pass 4 a replica (a replica takes 8 at most: the gateway holds
# the others), and goes back to zero 30 s after the last.
name: demo
tenant: nimbus
queue: nimbus-serve
kind: service
service:
  replica:
    accelerators: b200
    count: 1
  minReplicas: 0
  maxReplicas: 4
  target:
    inFlight: 4
  maxInFlight: 8
  objective:
    ttft: 2s
  scaleDownGrace: 30s
  coldStart: 5s
command: [%s, demo-replica, --start-delay, 5s, --token-delay, 30ms]
`

// demoServiceName is the demo service's name; it is up's own.
const demoServiceName = "demo"

// selfPath is this binary as another process can run it: an absolute path
// (symbolic links kept: a binary run under another name is run so again).
func selfPath() (string, error) {
	exe := os.Args[0]
	if !strings.ContainsRune(exe, filepath.Separator) {
		p, err := exec.LookPath(exe)
		if err != nil {
			return "", err
		}
		exe = p
	}
	return filepath.Abs(exe)
}

// deployDemoService writes the demo service to DIR/demo-service.yaml and
// submits it, unless it runs already. A demo service of an earlier up that
// runs another binary (go run builds a new one each time) is replaced. It
// returns the service's endpoint path.
func deployDemoService(ctx context.Context, url, token, dir string) (string, error) {
	exe, err := selfPath()
	if err != nil {
		return "", fmt.Errorf("demo service: where is this binary: %w", err)
	}
	doc := fmt.Sprintf(demoServiceYAML, quoteFlow(exe))
	if err := os.WriteFile(filepath.Join(dir, "demo-service.yaml"), []byte(doc), 0o644); err != nil {
		return "", err
	}
	cl := api.NewClient(url, token)
	if s, err := cl.Service(ctx, demoServiceName); err == nil {
		j, err := cl.Job(ctx, s.ID)
		if err != nil {
			return "", err
		}
		if len(j.Command) > 0 && j.Command[0] == exe {
			return s.Endpoint, nil
		}
		if _, err := cl.Cancel(ctx, s.ID); err != nil {
			return "", fmt.Errorf("replace the demo service of an earlier run: %w", err)
		}
	} else if ae := (*api.Error)(nil); !errors.As(err, &ae) || ae.Status != 404 {
		return "", err
	}
	sum := sha256.Sum256([]byte(doc))
	j, _, err := cl.Submit(ctx, "demo-service.yaml", []byte(doc), "gpufleet-up-demo-"+hex.EncodeToString(sum[:8]))
	if err != nil {
		return "", fmt.Errorf("submit the demo service: %w", err)
	}
	if slices.Contains([]string{"cancelled", "cancelling"}, j.State) {
		// Cancelled by its user since an earlier up: left so.
		return "", nil
	}
	return api.ServePrefix + j.Tenant + "/" + j.Name + "/", nil
}

// quoteFlow writes a path as a YAML flow scalar.
func quoteFlow(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
