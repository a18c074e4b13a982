package cli

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestSimScripts runs the simulation commands' scripts: they need no
// server.
func TestSimScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/simscript"})
}
