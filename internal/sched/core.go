package sched

import (
	"errors"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// Core is the scheduling state machine. It is not safe for concurrent use:
// one driver goroutine owns it.
type Core struct {
	cfg    Config
	fleet  *fleet.Fleet
	queues *quota.Tree
}

// New builds a core over a fleet and a queue tree.
func New(cfg Config, f *fleet.Fleet, q *quota.Tree) (*Core, error) {
	return &Core{cfg: cfg, fleet: f, queues: q}, nil
}

// Apply records one event.
func (c *Core) Apply(ev Event) error { return errors.New("sched: not implemented yet") }

// Schedule runs one cycle at time now and returns the actions decided.
func (c *Core) Schedule(now int64) []Action { return nil }

// Explain reports a job's state and pending reason.
func (c *Core) Explain(id JobID) (Explanation, bool) { return Explanation{}, false }
