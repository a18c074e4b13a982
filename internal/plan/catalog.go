package plan

import (
	"fmt"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// Catalog is what can be bought and where it may go, with what is already
// decided: contracted demand, nodes on order, nodes to retire. The spec
// package reads it from a catalog file.
type Catalog struct {
	Models      []Model      `json:"models"`
	Sites       []Site       `json:"sites"`
	Commitments []Commitment `json:"commitments,omitempty"`
	OnOrder     []Delivery   `json:"onOrder,omitempty"`
	Retire      []Retirement `json:"retire,omitempty"`
}

// Model is a node model that can be ordered.
type Model struct {
	Name      string `json:"name"`
	Accel     string `json:"accel"`
	Count     int    `json:"count"`
	CPUMilli  int64  `json:"cpuMilli"`
	MemoryMiB int64  `json:"memoryMiB"`
	// Price is what one node costs.
	Price float64 `json:"price"`
	// PowerKW is one node's power at full load.
	PowerKW float64 `json:"powerKW"`
	// LeadWeeks is the time from order to delivery.
	LeadWeeks int `json:"leadWeeks"`
	// Space is the slots one node takes in a site (1 when not given).
	Space int `json:"space"`
}

// Site is a domain of the fleet's topology where nodes may be added.
type Site struct {
	// Name is the domain's path, its names joined by "/" (us-east/z1).
	Name string `json:"name"`
	// PowerKW is the site's power budget; 0: none given.
	PowerKW float64 `json:"powerKW,omitempty"`
	// Space is the node slots the site has; 0: no limit given.
	Space int `json:"space,omitempty"`
	// Models are the models the site takes; empty: all.
	Models []string `json:"models,omitempty"`
}

// Path is the site's domain names, outermost first.
func (s Site) Path() []string { return strings.Split(s.Name, "/") }

// Allows reports whether the site takes a model.
func (s Site) Allows(model string) bool {
	if len(s.Models) == 0 {
		return true
	}
	for _, m := range s.Models {
		if m == model {
			return true
		}
	}
	return false
}

// contains reports whether a node or domain path lies in the site.
func (s Site) contains(path []string) bool {
	p := s.Path()
	if len(p) > len(path) {
		return false
	}
	for i := range p {
		if p[i] != path[i] {
			return false
		}
	}
	return true
}

// Commitment is demand an anchor tenant has contracted: accelerators kept
// busy on average, from one week of the horizon to another.
type Commitment struct {
	Key Key `json:"key"`
	// Accels is the accelerators busy on average (accelerator-hours per
	// hour).
	Accels float64 `json:"accels"`
	// From and To are the first and last weeks of the horizon it covers
	// (1-based); To 0 runs to the horizon's end.
	From int `json:"from"`
	To   int `json:"to,omitempty"`
}

// Delivery is nodes of one model arriving in one site at the start of a
// week of the horizon (1-based): nodes already on order, or an order of
// a plan.
type Delivery struct {
	Model string `json:"model"`
	Site  string `json:"site"`
	Count int    `json:"count"`
	Week  int    `json:"week"`
}

// Retirement takes nodes out of service at the start of a week: one node
// by name, or every node of a domain (Domain, a path joined by "/").
type Retirement struct {
	Node   string `json:"node,omitempty"`
	Domain string `json:"domain,omitempty"`
	Week   int    `json:"week"`
}

// Check tests the catalog against the fleet it extends: model types are
// in the fleet's catalog, site and domain paths fit its levels, and what
// it names exists. Errors name the entry.
func (c *Catalog) Check(f *fleet.Fleet) error {
	models := map[string]*Model{}
	for i := range c.Models {
		m := &c.Models[i]
		if f.Catalog.Index(m.Accel) < 0 {
			return fmt.Errorf("models[%d] (%s): accelerator type %q is not in the fleet's catalog (%s)", i, m.Name, m.Accel, strings.Join(f.Catalog.Names(), ", "))
		}
		models[m.Name] = m
	}
	sites := map[string]bool{}
	for i, s := range c.Sites {
		if n := len(s.Path()); n > len(f.Levels) {
			return fmt.Errorf("sites[%d] (%s): %d names, but the fleet has %d levels (%s)", i, s.Name, n, len(f.Levels), strings.Join(f.Levels, "/"))
		}
		for _, m := range s.Models {
			if models[m] == nil {
				return fmt.Errorf("sites[%d] (%s): model %q is not in the catalog", i, s.Name, m)
			}
		}
		sites[s.Name] = true
	}
	for i, d := range c.OnOrder {
		switch {
		case models[d.Model] == nil:
			return fmt.Errorf("onOrder[%d]: model %q is not in the catalog", i, d.Model)
		case !sites[d.Site]:
			return fmt.Errorf("onOrder[%d]: site %q is not in the catalog", i, d.Site)
		}
	}
	for i, r := range c.Retire {
		if r.Node != "" {
			if _, ok := f.NodeIndex(r.Node); !ok {
				return fmt.Errorf("retire[%d]: node %q is not in the fleet", i, r.Node)
			}
			continue
		}
		if len(retiredBy(f, r)) == 0 {
			return fmt.Errorf("retire[%d]: domain %q holds no node of the fleet", i, r.Domain)
		}
	}
	return nil
}

// retiredBy lists the fleet's nodes a retirement takes.
func retiredBy(f *fleet.Fleet, r Retirement) []int {
	if r.Node != "" {
		if i, ok := f.NodeIndex(r.Node); ok {
			return []int{i}
		}
		return nil
	}
	dom := Site{Name: r.Domain}
	var out []int
	for i := range f.Nodes {
		if dom.contains(f.Nodes[i].Path) {
			out = append(out, i)
		}
	}
	return out
}

// model finds a model by name.
func (c *Catalog) model(name string) (*Model, bool) {
	for i := range c.Models {
		if c.Models[i].Name == name {
			return &c.Models[i], true
		}
	}
	return nil, false
}
