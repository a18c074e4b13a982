package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent runs on every node: it links the wire types and the document
// guard, never the scheduling core or the spec readers (a change to either
// must not mean a new agent on every node).
func TestAgentDoesNotLinkTheCore(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the agent's dependencies")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/gpufleet/gpufleet/internal/agent").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/internal/sched", "/internal/spec", "/internal/quota", "/internal/place", "/internal/ledger", "/internal/server", "/internal/store"} {
			if strings.HasSuffix(dep, banned) {
				t.Errorf("the agent links %s", dep)
			}
		}
	}
}
