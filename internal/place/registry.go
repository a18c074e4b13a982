package place

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Class is one kind of request in a workload, with its share of arrivals.
type Class struct {
	Req    Request
	Weight float64
}

// Workload is the distribution of request shapes a scorer may plan for
// (fragmentation-aware policies measure fragmentation against it).
type Workload struct {
	Classes []Class
}

// Env is what a scorer may consult beyond the node it scores.
type Env struct {
	// Nodes is every node of the fleet, indexed as Node.Index.
	Nodes []*Node
	// Workload is the target workload; nil when none is known.
	Workload *Workload
	// Rand is the seeded source for policies that draw at random.
	Rand *rand.Rand
}

// Factory builds a scorer for an environment.
type Factory func(env *Env) Scorer

var registry = map[string]Factory{}

// Register makes a scorer selectable by name. It is called from init
// functions; a duplicate name is a programming error.
func Register(name string, f Factory) {
	if _, dup := registry[name]; dup {
		panic("place: scorer registered twice: " + name)
	}
	registry[name] = f
}

// New builds the scorer registered under name.
func New(name string, env *Env) (Scorer, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("placement policy %q: want one of %s", name, strings.Join(Names(), ", "))
	}
	return f(env), nil
}

// Names lists the registered scorers in order.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
