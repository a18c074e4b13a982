package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/plan"
)

const catalogSrc = `kind: catalog
models:
  - name: hgx-h100
    accelerators: 8xh100
    cpu: 192
    memory: 2Ti
    price: 280000
    powerKW: 10.2
    leadTimeWeeks: 12
  - {name: mi, accelerators: {type: mi300x, count: 8}, cpu: 96, memory: 1Ti, price: 200000, powerKW: 9, leadTimeWeeks: 30, space: 2}
sites:
  - {name: us-east/z1, space: 160}
  - {name: eu-west, powerKW: 500, models: [mi]}
commitments:
  - {tenant: frontier, accelerator: h100, accelerators: 64, fromWeek: 20}
  - {tenant: helix, kind: batch, accelerators: 8.5, fromWeek: 2, toWeek: 10}
onOrder:
  - {model: hgx-h100, site: us-east/z1, count: 16, week: 6}
retire:
  - {node: gpu-1, week: 20}
  - {domain: us-east/z1/b4, week: 40}
`

func TestParseCatalog(t *testing.T) {
	c, err := ParseCatalog("c.yaml", []byte(catalogSrc))
	if err != nil {
		t.Fatal(err)
	}
	want := &plan.Catalog{
		Models: []plan.Model{
			{Name: "hgx-h100", Accel: "h100", Count: 8, CPUMilli: 192000, MemoryMiB: 2 << 20, Price: 280000, PowerKW: 10.2, LeadWeeks: 12, Space: 1},
			{Name: "mi", Accel: "mi300x", Count: 8, CPUMilli: 96000, MemoryMiB: 1 << 20, Price: 200000, PowerKW: 9, LeadWeeks: 30, Space: 2},
		},
		Sites: []plan.Site{{Name: "us-east/z1", Space: 160}, {Name: "eu-west", PowerKW: 500, Models: []string{"mi"}}},
		Commitments: []plan.Commitment{
			{Key: plan.Key{Tenant: "frontier", Kind: "training", Accel: "h100"}, Accels: 64, From: 20},
			{Key: plan.Key{Tenant: "helix", Kind: "batch", Accel: plan.AnyAccel}, Accels: 8.5, From: 2, To: 10},
		},
		OnOrder: []plan.Delivery{{Model: "hgx-h100", Site: "us-east/z1", Count: 16, Week: 6}},
		Retire:  []plan.Retirement{{Node: "gpu-1", Week: 20}, {Domain: "us-east/z1/b4", Week: 40}},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("catalog (-want +got):\n%s", diff)
	}
	if k, err := Detect("c.yaml", []byte(catalogSrc)); err != nil || k != KindCatalog {
		t.Errorf("Detect = %v, %v; want catalog", k, err)
	}
}

func TestCatalogExampleChecksAgainstTheBuiltInFleet(t *testing.T) {
	for _, p := range []string{filepath.Join("..", "..", "examples", "plan", "catalog.yaml"), filepath.Join(testdata, "catalogs", "builtin.yaml")} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f := DefaultFleet()
		c, err := ParseCatalog(p, data, WithFleet(f))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Check(f); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestCatalogErrors(t *testing.T) {
	model := "models: [{name: m, accelerators: 8xh100, cpu: 8, memory: 8Gi, price: 1, powerKW: 1, leadTimeWeeks: 4}]\n"
	site := "sites: [{name: a/b}]\n"
	tests := map[string]struct{ src, want string }{
		"unknown field": {
			model + site + "budget: 9\n",
			"c.yaml:3:1: budget: unknown field (want one of kind, models, sites, commitments, onOrder, retire)",
		},
		"no models": {
			site,
			"c.yaml:1:1: models: is required",
		},
		"model without a lead time": {
			"models: [{name: m, accelerators: 8xh100, cpu: 8, memory: 8Gi, price: 1, powerKW: 1}]\n" + site,
			"c.yaml:1:10: models[0].leadTimeWeeks: is required",
		},
		"unknown type": {
			"models: [{name: m, accelerators: 8xtpu, cpu: 8, memory: 8Gi, price: 1, powerKW: 1, leadTimeWeeks: 4}]\n" + site,
			`c.yaml:1:34: models[0].accelerators: type "tpu" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`,
		},
		"zero power": {
			"models: [{name: m, accelerators: 8xh100, cpu: 8, memory: 8Gi, price: 1, powerKW: 0, leadTimeWeeks: 4}]\n" + site,
			"c.yaml:1:82: models[0].powerKW: 0, want above 0 and at most 10000",
		},
		"duplicate model": {
			"models: [{name: m, accelerators: 8xh100, cpu: 8, memory: 8Gi, price: 1, powerKW: 1, leadTimeWeeks: 4}, {name: m, accelerators: 8xh100, cpu: 8, memory: 8Gi, price: 1, powerKW: 1, leadTimeWeeks: 4}]\n" + site,
			`c.yaml:1:111: models[1].name: model "m" is listed twice`,
		},
		"site too deep": {
			model + "sites: [{name: a/b/c/d/e}]\n",
			`c.yaml:2:16: sites[0].name: "a/b/c/d/e" has 5 parts, want at most 4 (region/zone/block/rack)`,
		},
		"site names an unknown model": {
			model + "sites: [{name: a, models: [x]}]\n",
			`c.yaml:2:28: sites[0].models[0]: model "x" is not in the catalog's models`,
		},
		"commitment without accelerators": {
			model + site + "commitments: [{tenant: t}]\n",
			"c.yaml:3:15: commitments[0].accelerators: is required",
		},
		"commitment ends before it starts": {
			model + site + "commitments: [{tenant: t, accelerators: 1, fromWeek: 9, toWeek: 3}]\n",
			"c.yaml:3:65: commitments[0].toWeek: 3 is before fromWeek 9",
		},
		"commitment of an unknown type": {
			model + site + "commitments: [{tenant: t, accelerator: tpu, accelerators: 1}]\n",
			`c.yaml:3:40: commitments[0].accelerator: type "tpu" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x, or * for any)`,
		},
		"bad kind": {
			model + site + "commitments: [{tenant: t, kind: sleep, accelerators: 1}]\n",
			`c.yaml:3:33: commitments[0].kind: kind "sleep": want one of training, fine-tuning, batch, service`,
		},
		"order of an unknown site": {
			model + site + "onOrder: [{model: m, site: z, count: 1, week: 2}]\n",
			`c.yaml:3:28: onOrder[0].site: site "z" is not in the catalog's sites`,
		},
		"order in week 0": {
			model + site + "onOrder: [{model: m, site: a/b, count: 1, week: 0}]\n",
			"c.yaml:3:49: onOrder[0].week: 0, want 1..1040",
		},
		"retire both": {
			model + site + "retire: [{node: n, domain: a, week: 2}]\n",
			"c.yaml:3:28: retire[0].domain: give node (one node) or domain (all its nodes), not both",
		},
		"retire nothing": {
			model + site + "retire: [{week: 2}]\n",
			"c.yaml:3:10: retire[0]: give node (one node) or domain (all its nodes)",
		},
		"wrong kind": {
			"kind: fleet\n" + model + site,
			`c.yaml:1:7: kind: "fleet": a catalog file has kind catalog`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCatalog("c.yaml", []byte(tc.src))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v (%T), want spec.Errors", err, err)
			}
			if diff := cmp.Diff(tc.want, es[0].Error()); diff != "" {
				t.Errorf("first error (-want +got):\n%s\nall: %v", diff, err)
			}
		})
	}
}

func TestCatalogCheckAgainstTheFleet(t *testing.T) {
	f := DefaultFleet()
	base := func() *plan.Catalog {
		c, err := ParseCatalog("c.yaml", []byte(catalogSrc))
		if err != nil {
			t.Fatal(err)
		}
		c.Retire = c.Retire[1:] // gpu-1 is not in the built-in fleet
		return c
	}
	if err := base().Check(f); err != nil {
		t.Fatalf("check: %v", err)
	}
	c := base()
	c.Retire = append(c.Retire, plan.Retirement{Node: "gpu-1", Week: 2})
	if err := c.Check(f); err == nil || !strings.Contains(err.Error(), `retire[1]: node "gpu-1" is not in the fleet`) {
		t.Errorf("check: %v", err)
	}
	c = base()
	c.Retire = []plan.Retirement{{Domain: "mars", Week: 2}}
	if err := c.Check(f); err == nil || !strings.Contains(err.Error(), `retire[0]: domain "mars" holds no node of the fleet`) {
		t.Errorf("check: %v", err)
	}
}

func FuzzParseCatalog(f *testing.F) {
	addSeeds(f, "catalogs", append(decoderSeeds, []byte(catalogSrc))...)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCatalog("fuzz.yaml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %v is a %T, want spec.Errors", err, err)
			}
			return
		}
		// What parses is whole: every model has a type, a count, a lead
		// time; every site a name; every retirement a target and a week.
		for _, m := range c.Models {
			if m.Accel == "" || m.Count < 1 || m.PowerKW <= 0 || m.Space < 1 {
				t.Fatalf("parsed model %+v is not whole", m)
			}
		}
		for _, s := range c.Sites {
			if s.Name == "" {
				t.Fatalf("parsed site without a name")
			}
		}
		for _, r := range c.Retire {
			if (r.Node == "") == (r.Domain == "") || r.Week < 1 {
				t.Fatalf("parsed retirement %+v is not whole", r)
			}
		}
	})
}
