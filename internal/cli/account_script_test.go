package cli

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/server"
)

// TestAccountScripts runs the accounting scripts of testdata/account
// against a live plane whose server runs on a clock the scripts move
// ("clock 1h"): usage, credits and invoices then come out to the digit.
// The clock starts at 2026-12-01T00:00:00Z; h100 cost 2.00 an hour on
// demand and 0.80 spot; the nodes' site default/default has a PUE of 1.2
// and a grid of 250 gCO2e/kWh.
func TestAccountScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/account",
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") != "",
		Setup: func(env *testscript.Env) error {
			clk := &scriptClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
			env.Values[clockKey{}] = clk
			return startPlane(env, func(c *server.Config) {
				c.Now = clk.now
				// The clock jumps by hours between heartbeats.
				c.HeartbeatTimeout = 10_000 * time.Hour
				c.Accounting.Ledger = ledger.Config{
					Prices: ledger.Prices{Types: map[string]ledger.Rate{"h100": {OnDemand: 2 * ledger.Micro, Spot: 800_000, Committed: 1_500_000, Asset: 1_100_000}}},
					Sites:  map[string]ledger.Site{"default/default": {PUE: 1.2, CarbonGPerKWh: 250}},
				}
			})
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"waitjob": waitJob, "clock": moveClock},
	})
}

type clockKey struct{}

// scriptClock is the server's clock in an accounting script.
type scriptClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *scriptClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// moveClock: clock DURATION moves the server's clock forward.
func moveClock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: clock DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	c := ts.Value(clockKey{}).(*scriptClock)
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
