// Package cli is gpufleet's command line: every subcommand of the one
// binary is defined here and delegates to the domain packages.
package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Main runs the command line with the given arguments and streams and
// returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

// subcommands are added by the files of this package in init functions, so
// each command lives beside the code it drives.
var subcommands []func() *cobra.Command

func addCommand(f func() *cobra.Command) { subcommands = append(subcommands, f) }

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "gpufleet",
		Short:         "Control plane of an AI compute cloud: schedule, simulate, account, plan",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	return root
}

// simCmd groups the simulator's subcommands; sim files add to it.
var simSubcommands []func() *cobra.Command

func init() {
	addCommand(func() *cobra.Command {
		c := &cobra.Command{Use: "sim", Short: "Replay workloads through the scheduling core on a virtual clock"}
		for _, f := range simSubcommands {
			c.AddCommand(f())
		}
		return c
	})
}
