// Command gpufleet is the control plane of an AI compute cloud: one binary
// for the server, the node agent, the CLI, the simulator and the planner.
package main

import (
	"os"

	"github.com/gpufleet/gpufleet/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
