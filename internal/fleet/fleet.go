// Package fleet describes the hardware a gpufleet operator owns: the
// accelerator catalog, the topology tree (region > zone > block > rack >
// node by default) and the nodes with their accelerators, CPU and memory.
// It holds no allocation state; the scheduling core keeps that.
package fleet

import (
	"fmt"
	"sort"
	"strings"
)

// AccelType is one entry of the accelerator catalog.
type AccelType struct {
	Name         string  `json:"name"`
	MemoryGiB    int     `json:"memoryGiB"`
	BoardPowerW  float64 `json:"boardPowerW"`
	IdlePowerW   float64 `json:"idlePowerW"`
	RelSpeed     float64 `json:"relSpeed"`
	PricePerHour float64 `json:"pricePerHour"`
}

// Catalog is the set of accelerator types a fleet knows, in a stable order.
type Catalog struct {
	Types  []AccelType
	byName map[string]int
}

// NewCatalog builds a catalog; names must be unique and non-empty.
func NewCatalog(types []AccelType) (*Catalog, error) {
	c := &Catalog{byName: make(map[string]int, len(types))}
	for _, t := range types {
		if t.Name == "" {
			return nil, fmt.Errorf("accelerator type: name is empty")
		}
		if _, dup := c.byName[t.Name]; dup {
			return nil, fmt.Errorf("accelerator type %q: defined twice", t.Name)
		}
		c.byName[t.Name] = len(c.Types)
		c.Types = append(c.Types, t)
	}
	return c, nil
}

// Index returns the position of a type in the catalog, or -1.
func (c *Catalog) Index(name string) int {
	if i, ok := c.byName[name]; ok {
		return i
	}
	return -1
}

// Names lists the catalog's type names in catalog order.
func (c *Catalog) Names() []string {
	out := make([]string, len(c.Types))
	for i, t := range c.Types {
		out[i] = t.Name
	}
	return out
}

// DefaultCatalog holds the accelerators gpufleet knows out of the box, with
// public board power figures and indicative list prices.
func DefaultCatalog() *Catalog {
	c, _ := NewCatalog([]AccelType{
		{Name: "h100", MemoryGiB: 80, BoardPowerW: 700, IdlePowerW: 70, RelSpeed: 1.0, PricePerHour: 2.49},
		{Name: "h200", MemoryGiB: 141, BoardPowerW: 700, IdlePowerW: 75, RelSpeed: 1.15, PricePerHour: 3.29},
		{Name: "b200", MemoryGiB: 192, BoardPowerW: 1000, IdlePowerW: 100, RelSpeed: 2.2, PricePerHour: 5.49},
		{Name: "a100", MemoryGiB: 80, BoardPowerW: 400, IdlePowerW: 50, RelSpeed: 0.45, PricePerHour: 1.29},
		{Name: "l40s", MemoryGiB: 48, BoardPowerW: 350, IdlePowerW: 35, RelSpeed: 0.35, PricePerHour: 0.99},
		{Name: "mi300x", MemoryGiB: 192, BoardPowerW: 750, IdlePowerW: 90, RelSpeed: 1.05, PricePerHour: 2.69},
	})
	return c
}

// NodeState is the administrative and health state of a node.
type NodeState uint8

const (
	Ready NodeState = iota
	Draining
	Down
)

var nodeStateNames = [...]string{"ready", "draining", "down"}

func (s NodeState) String() string {
	if int(s) < len(nodeStateNames) {
		return nodeStateNames[s]
	}
	return fmt.Sprintf("NodeState(%d)", s)
}

// ParseNodeState reads a state name.
func ParseNodeState(s string) (NodeState, error) {
	for i, n := range nodeStateNames {
		if n == s {
			return NodeState(i), nil
		}
	}
	return 0, fmt.Errorf("node state %q: want one of %s", s, strings.Join(nodeStateNames[:], ", "))
}

// Node is one machine. It carries accelerators of a single type.
type Node struct {
	Name string `json:"name"`
	// Path names the node's domain at every level above the node, outermost
	// first (region, zone, block, rack with the default levels).
	Path      []string          `json:"path"`
	Accel     string            `json:"accel,omitempty"`
	Count     int               `json:"count"`
	CPUMilli  int64             `json:"cpuMilli"`
	MemoryMiB int64             `json:"memoryMiB"`
	Labels    map[string]string `json:"labels,omitempty"`
	State     NodeState         `json:"state"`
}

// DefaultLevels are the topology levels above a node.
var DefaultLevels = []string{"region", "zone", "block", "rack"}

// Domain is one inner vertex of the topology tree.
type Domain struct {
	ID       int
	Level    int // index into Fleet.Levels; -1 for the root
	Name     string
	Parent   int   // -1 for the root
	Children []int // child domain IDs (empty at the lowest level)
	Nodes    []int // node indices directly below (lowest level only)
}

// Fleet is an immutable-shaped description of all nodes and the topology
// tree above them. Node states may change; nodes are only ever appended.
type Fleet struct {
	Catalog *Catalog
	Levels  []string
	Nodes   []Node
	Domains []Domain // Domains[0] is the root
	// NodeDomain[i] is the lowest-level domain of node i.
	NodeDomain []int
	nodeByName map[string]int
	domByKey   map[string]int
}

// New builds a fleet. Node names must be unique; every node's path must have
// one entry per level; accelerator types must be in the catalog.
func New(cat *Catalog, levels []string, nodes []Node) (*Fleet, error) {
	if cat == nil {
		cat = DefaultCatalog()
	}
	if len(levels) == 0 {
		levels = DefaultLevels
	}
	f := &Fleet{
		Catalog:    cat,
		Levels:     append([]string(nil), levels...),
		Domains:    []Domain{{ID: 0, Level: -1, Name: "fleet", Parent: -1}},
		nodeByName: make(map[string]int, len(nodes)),
		domByKey:   map[string]int{},
	}
	for _, n := range nodes {
		if _, err := f.AddNode(n); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// AddNode appends a node, creating the domains on its path as needed, and
// returns its index.
func (f *Fleet) AddNode(n Node) (int, error) {
	if n.Name == "" {
		return 0, fmt.Errorf("node: name is empty")
	}
	if _, dup := f.nodeByName[n.Name]; dup {
		return 0, fmt.Errorf("node %q: defined twice", n.Name)
	}
	if len(n.Path) != len(f.Levels) {
		return 0, fmt.Errorf("node %q: path has %d parts, want %d (%s)", n.Name, len(n.Path), len(f.Levels), strings.Join(f.Levels, "/"))
	}
	if n.Count < 0 {
		return 0, fmt.Errorf("node %q: count %d is negative", n.Name, n.Count)
	}
	if n.Count > MaxDevicesPerNode {
		return 0, fmt.Errorf("node %q: count %d is above the limit of %d", n.Name, n.Count, MaxDevicesPerNode)
	}
	if n.Count > 0 && f.Catalog.Index(n.Accel) < 0 {
		return 0, fmt.Errorf("node %q: accelerator type %q is not in the catalog (%s)", n.Name, n.Accel, strings.Join(f.Catalog.Names(), ", "))
	}
	if n.CPUMilli < 0 || n.MemoryMiB < 0 {
		return 0, fmt.Errorf("node %q: cpu and memory must not be negative", n.Name)
	}
	parent := 0
	var key strings.Builder
	for lvl, part := range n.Path {
		if part == "" {
			return 0, fmt.Errorf("node %q: %s name is empty", n.Name, f.Levels[lvl])
		}
		key.WriteString(part)
		key.WriteByte('/')
		id, ok := f.domByKey[key.String()]
		if !ok {
			id = len(f.Domains)
			f.Domains = append(f.Domains, Domain{ID: id, Level: lvl, Name: part, Parent: parent})
			f.Domains[parent].Children = append(f.Domains[parent].Children, id)
			f.domByKey[key.String()] = id
		}
		parent = id
	}
	idx := len(f.Nodes)
	n.Path = append([]string(nil), n.Path...)
	f.Nodes = append(f.Nodes, n)
	f.NodeDomain = append(f.NodeDomain, parent)
	f.Domains[parent].Nodes = append(f.Domains[parent].Nodes, idx)
	f.nodeByName[n.Name] = idx
	return idx, nil
}

// MaxDevicesPerNode bounds accelerators per node; indexes are sized by it.
const MaxDevicesPerNode = 16

// NodeIndex finds a node by name.
func (f *Fleet) NodeIndex(name string) (int, bool) {
	i, ok := f.nodeByName[name]
	return i, ok
}

// LevelIndex finds a level by name; "node" is len(Levels).
func (f *Fleet) LevelIndex(name string) (int, error) {
	for i, l := range f.Levels {
		if l == name {
			return i, nil
		}
	}
	if name == "node" {
		return len(f.Levels), nil
	}
	return 0, fmt.Errorf("topology level %q: want one of %s, node", name, strings.Join(f.Levels, ", "))
}

// Ancestor returns the domain of node i at level lvl (0 = outermost).
func (f *Fleet) Ancestor(node, lvl int) int {
	d := f.NodeDomain[node]
	for f.Domains[d].Level > lvl {
		d = f.Domains[d].Parent
	}
	return d
}

// DomainPath renders a domain as "region/zone/...".
func (f *Fleet) DomainPath(d int) string {
	var parts []string
	for d > 0 {
		parts = append(parts, f.Domains[d].Name)
		d = f.Domains[d].Parent
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	if len(parts) == 0 {
		return "fleet"
	}
	return strings.Join(parts, "/")
}

// Totals counts accelerators per type over all nodes that are not down.
func (f *Fleet) Totals() map[string]int {
	out := map[string]int{}
	for _, n := range f.Nodes {
		if n.State != Down && n.Count > 0 {
			out[n.Accel] += n.Count
		}
	}
	return out
}

// SortedTypes lists the accelerator types present in the fleet.
func (f *Fleet) SortedTypes() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range f.Nodes {
		if n.Count > 0 && !seen[n.Accel] {
			seen[n.Accel] = true
			out = append(out, n.Accel)
		}
	}
	sort.Strings(out)
	return out
}
