package spec

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

func TestParseFleetGood(t *testing.T) {
	fs, err := ParseFleetSpec("fleets/small.yaml", readTestdata(t, "fleets/small.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := fs.Fleet
	var got []string
	for _, n := range f.Nodes {
		got = append(got, fmt.Sprintf("%s %s %dx%s cpu=%d mem=%d %v %s", n.Name, strings.Join(n.Path, "/"), n.Count, n.Accel, n.CPUMilli, n.MemoryMiB, n.Labels, n.State))
	}
	want := []string{
		"login-1 us-east/z1/b9/r1 0x cpu=64000 mem=524288 map[role:login] ready",
		"tpu-1 us-east/z2/b1/r1 4xtpu-v5p cpu=208000 mem=458752 map[] draining",
		// The generator numbers zones after the z1 and z2 above.
		"us-east-z3-b1-r1-n1 us-east/z3/b1/r1 8xh100 cpu=96000 mem=2097152 map[] ready",
		"us-east-z3-b1-r1-n2 us-east/z3/b1/r1 8xh100 cpu=96000 mem=2097152 map[] ready",
		"us-east-z3-b1-r2-n1 us-east/z3/b1/r2 8xh100 cpu=96000 mem=2097152 map[] ready",
		"us-east-z3-b1-r2-n2 us-east/z3/b1/r2 8xh100 cpu=96000 mem=2097152 map[] ready",
		"us-east-z3-b2-r1-n1 us-east/z3/b2/r1 8xh100 cpu=96000 mem=2097152 map[] ready",
		"us-east-z3-b2-r1-n2 us-east/z3/b2/r1 8xh100 cpu=96000 mem=2097152 map[] ready",
		"us-east-z3-b2-r2-n1 us-east/z3/b2/r2 8xh100 cpu=96000 mem=2097152 map[] ready",
		"us-east-z3-b2-r2-n2 us-east/z3/b2/r2 8xh100 cpu=96000 mem=2097152 map[] ready",
		// Blocks in z1 are numbered after b9.
		"us-east-z1-b10-r1-n1 us-east/z1/b10/r1 8xh200 cpu=96000 mem=1572864 map[pool:eval] ready",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fleet.DefaultLevels, f.Levels); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	h100 := f.Catalog.Types[f.Catalog.Index("h100")]
	if h100.PricePerHour != 2.10 || h100.BoardPowerW != 700 {
		t.Errorf("h100 = %+v, want the default entry with price 2.10", h100)
	}
	if f.Catalog.Index("tpu-v5p") < 0 {
		t.Errorf("catalog %v lacks tpu-v5p", f.Catalog.Names())
	}
	wantSites := Sites{"us-east": {PUE: 1.3, CarbonGPerKWh: 400}, "us-east/z1": {CarbonGPerKWh: 350, PowerCapKW: 2000}}
	if diff := cmp.Diff(wantSites, fs.Sites); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
}

func TestSitesFor(t *testing.T) {
	s := Sites{"us-east": {PUE: 1.3, CarbonGPerKWh: 400, PowerCapKW: 9000}, "us-east/z1": {CarbonGPerKWh: 350, PowerCapKW: 2000},
		"us-east/z2": {CarbonSeries: "gb.csv", PowerCapKW: 800, ITCap: true}}
	tests := map[string]struct {
		path []string
		want Site
	}{
		"node in z1 inherits pue":   {[]string{"us-east", "z1", "b1", "r1"}, Site{PUE: 1.3, CarbonGPerKWh: 350}},
		"zone keeps its own cap":    {[]string{"us-east", "z1"}, Site{PUE: 1.3, CarbonGPerKWh: 350, PowerCapKW: 2000}},
		"region":                    {[]string{"us-east"}, Site{PUE: 1.3, CarbonGPerKWh: 400, PowerCapKW: 9000}},
		"a series overrides":        {[]string{"us-east", "z2", "b1"}, Site{PUE: 1.3, CarbonSeries: "gb.csv"}},
		"an IT cap":                 {[]string{"us-east", "z2"}, Site{PUE: 1.3, CarbonSeries: "gb.csv", PowerCapKW: 800, ITCap: true}},
		"other zone":                {[]string{"us-east", "z3"}, Site{PUE: 1.3, CarbonGPerKWh: 400}},
		"unknown region gives zero": {[]string{"eu"}, Site{}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, s.For(tt.path)); diff != "" {
				t.Errorf("For(%v) (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

// fleetSrc is a valid fleet file to which test cases append.
const fleetSrc = `nodes:
  - name: n1
    path: {region: r, zone: z, block: b, rack: k}
    accelerators: 8xh100
    cpu: 96
    memory: 1Ti
`

func TestParseFleetErrors(t *testing.T) {
	tests := map[string]struct {
		src  string
		want string
	}{
		"unknown type": {
			src:  strings.Replace(fleetSrc, "8xh100", "8xh1000", 1),
			want: `fleet.yaml:4:19: nodes[0].accelerators: type "h1000" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x)`,
		},
		"too many accelerators": {
			src:  strings.Replace(fleetSrc, "8xh100", "{type: h100, count: 32}", 1),
			want: `fleet.yaml:4:39: nodes[0].accelerators.count: count 32, want 1..16`,
		},
		"accelerator shorthand": {
			src:  strings.Replace(fleetSrc, "8xh100", "h100*8", 1),
			want: `fleet.yaml:4:19: nodes[0].accelerators: "h100*8": want COUNTxTYPE such as 8xh100, or {type: h100, count: 8}`,
		},
		"unknown level in path": {
			src:  strings.Replace(fleetSrc, "rack: k", "row: k", 1),
			want: "fleet.yaml:3:11: nodes[0].path.rack: is required\nfleet.yaml:3:42: nodes[0].path.row: unknown field (want one of region, zone, block, rack)",
		},
		"path string parts": {
			src:  strings.Replace(fleetSrc, "{region: r, zone: z, block: b, rack: k}", "r/z/b", 1),
			want: `fleet.yaml:3:11: nodes[0].path: "r/z/b" has 3 parts, want 4 (region/zone/block/rack)`,
		},
		"node twice": {
			src:  fleetSrc + strings.Replace(fleetSrc, "nodes:\n", "", 1),
			want: `fleet.yaml:7:11: nodes[1].name: node "n1" is defined twice`,
		},
		"bad state": {
			src:  fleetSrc + "    state: broken\n",
			want: `fleet.yaml:7:12: nodes[0].state: node state "broken": want one of ready, draining, down`,
		},
		"memory unit": {
			src:  strings.Replace(fleetSrc, "1Ti", "1TB", 1),
			want: `fleet.yaml:6:13: nodes[0].memory: "1TB": want a size with a unit Mi, Gi, Ti or Pi, e.g. 256Gi`,
		},
		"missing cpu": {
			src:  strings.Replace(fleetSrc, "    cpu: 96\n", "", 1),
			want: `fleet.yaml:2:5: nodes[0].cpu: is required`,
		},
		"no nodes": {
			src:  "kind: fleet\n",
			want: `fleet.yaml:1:1: a fleet needs nodes: give nodes, generate or both`,
		},
		"wrong kind": {
			src:  "kind: queues\n" + fleetSrc,
			want: `fleet.yaml:1:7: kind: "queues": a fleet file has kind fleet`,
		},
		"levels": {
			src:  "levels: [region, node]\n" + fleetSrc,
			want: `fleet.yaml:1:18: levels[1]: "node" is the level below all others and is implied; leave it out`,
		},
		"path follows custom levels": {
			src: "levels: [site, pod]\n" + fleetSrc,
			want: "fleet.yaml:4:11: nodes[0].path.site: is required\n" +
				"fleet.yaml:4:11: nodes[0].path.pod: is required\n" +
				"fleet.yaml:4:12: nodes[0].path.region: unknown field (want one of site, pod)\n" +
				"fleet.yaml:4:23: nodes[0].path.zone: unknown field (want one of site, pod)\n" +
				"fleet.yaml:4:32: nodes[0].path.block: unknown field (want one of site, pod)\n" +
				"fleet.yaml:4:42: nodes[0].path.rack: unknown field (want one of site, pod)",
		},
		"catalog new type incomplete": {
			src:  "catalog: [{name: tpu, memoryGiB: 16}]\n" + fleetSrc,
			want: "fleet.yaml:1:11: catalog[0].boardPowerW: is required\nfleet.yaml:1:11: catalog[0].relSpeed: is required",
		},
		"catalog idle above board": {
			src:  "catalog: [{name: h100, idlePowerW: 800}]\n" + fleetSrc,
			want: `fleet.yaml:1:36: catalog[0].idlePowerW: idle power 800W is above board power 700W`,
		},
		"catalog speed": {
			src:  "catalog: [{name: h100, relSpeed: 0}]\n" + fleetSrc,
			want: `fleet.yaml:1:34: catalog[0].relSpeed: 0, want above 0 and at most 1000`,
		},
		"site of no domain": {
			src:  "sites: {eu: {pue: 1.1}}\n" + fleetSrc,
			want: `fleet.yaml:1:9: sites.eu: no domain "eu" in the fleet (write a domain path such as region/...; regions: r)`,
		},
		"site pue": {
			src:  "sites: {r/z: {pue: 0.9}}\n" + fleetSrc,
			want: `fleet.yaml:1:20: sites.r/z.pue: 0.9, want 1..5`,
		},
		"site carbon twice": {
			src:  "sites: {r/z: {carbon: 200, carbonSeries: gb.csv}}\n" + fleetSrc,
			want: `fleet.yaml:1:42: sites.r/z.carbonSeries: give carbon (a constant) or carbonSeries (a file), not both`,
		},
		"site itCap without a cap": {
			src:  "sites: {r/z: {itCap: true}}\n" + fleetSrc,
			want: `fleet.yaml:1:22: sites.r/z.itCap: says what powerCapKW caps, and the site has none`,
		},
		"site unknown field": {
			src:  "sites: {r/z: {carbonFile: gb.csv}}\n" + fleetSrc,
			want: `fleet.yaml:1:15: sites.r/z.carbonFile: unknown field (want one of pue, carbon, carbonSeries, powerCapKW, itCap)`,
		},
		"generator name and count": {
			src:  fleetSrc + "generate: [{region: r, zone: a, zones: 2, blocks: 1, racks: 1, nodes: 1, cpu: 1, memory: 1Gi}]\n",
			want: `fleet.yaml:7:40: generate[0].zones: give zone (a name) or zones (a count), not both`,
		},
		"generator name after count": {
			src:  fleetSrc + "generate: [{region: r, zones: 2, block: b, racks: 1, nodes: 1, cpu: 1, memory: 1Gi}]\n",
			want: `fleet.yaml:7:41: generate[0].block: a fixed name cannot follow generated zones; give zones: N or fix the levels above`,
		},
		"generator level missing": {
			src:  fleetSrc + "generate: [{region: r, zones: 2, racks: 1, nodes: 1, cpu: 1, memory: 1Gi}]\n",
			want: `fleet.yaml:7:12: generate[0]: block: give block (a name) or blocks (a count)`,
		},
		"generator unknown key": {
			src:  fleetSrc + "generate: [{region: r, zones: 1, blocks: 1, racks: 1, nodes: 1, gpus: 8, cpu: 1, memory: 1Gi}]\n",
			want: `fleet.yaml:7:65: generate[0].gpus: unknown field (want one of region, regions, zone, zones, block, blocks, rack, racks, nodes, accelerators, cpu, memory, labels)`,
		},
		"generator too big": {
			src:  fleetSrc + "generate: [{regions: 100, zones: 100, blocks: 100, racks: 100, nodes: 8, cpu: 1, memory: 1Gi}]\n",
			want: `fleet.yaml:7:12: generate[0]: makes the fleet 10000002 nodes or more, want at most 1000000`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseFleet("fleet.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseFleet succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGenerateFleet(t *testing.T) {
	f, err := GenerateFleet(
		Generator{Path: []string{"us"}, Per: []int{2, 3, 4}, Nodes: 5, Accel: "h100", Count: 8, CPUMilli: 1000, MemoryMiB: 1024},
		Generator{Path: []string{"us"}, Per: []int{1, 1, 1}, Nodes: 1, Accel: "b200", Count: 8},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(f.Nodes), 2*3*4*5+1; got != want {
		t.Errorf("nodes = %d, want %d", got, want)
	}
	if diff := cmp.Diff(map[string]int{"h100": 8 * 120, "b200": 8}, f.Totals()); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	last := f.Nodes[len(f.Nodes)-1]
	if last.Name != "us-z3-b1-r1-n1" {
		t.Errorf("second generator's node is %s, want us-z3-b1-r1-n1", last.Name)
	}
	if _, err := GenerateFleet(Generator{Per: []int{1, 1}, Nodes: 1}); err == nil {
		t.Errorf("GenerateFleet with 2 of 4 levels succeeded")
	}
}

func BenchmarkGenerateFleet(b *testing.B) {
	// 64 racks per block x 16 blocks x 4 zones x 2 regions x 8 nodes:
	// 65536 nodes, a large cloud's worth.
	for b.Loop() {
		if _, err := GenerateFleet(Generator{Per: []int{2, 4, 16, 64}, Nodes: 8, Accel: "h100", Count: 8, CPUMilli: 192000, MemoryMiB: 2 << 20}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDefaultFleet(b *testing.B) {
	data := DefaultFleetYAML()
	for b.Loop() {
		if _, err := ParseFleet("fleet.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
