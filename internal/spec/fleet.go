package spec

import (
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// A fleet file declares the topology levels, catalog additions, site
// attributes and nodes, listed one by one or generated:
//
//	kind: fleet
//	levels: [region, zone, block, rack]      # the default
//	catalog:
//	  - {name: h100, pricePerHour: 2.10}      # overrides one field
//	sites:
//	  us-east: {pue: 1.25, carbon: 380, powerCapKW: 24000}
//	nodes:
//	  - name: gpu-001
//	    path: {region: us-east, zone: z1, block: b1, rack: r1}
//	    accelerators: 8xh100                  # or {type: h100, count: 8}
//	    cpu: 96
//	    memory: 2Ti
//	generate:
//	  - {region: us-east, zones: 2, blocks: 4, racks: 8, nodes: 8,
//	     accelerators: 8xh100, cpu: 96, memory: 2Ti}
//
// In a generator, a level's singular name fixes that domain's name and its
// plural asks for that many domains per parent, named by the level's first
// letter and a number (z1, z2, ...; numbering continues after domains that
// earlier generators made); "nodes" is the count per lowest domain. Nodes
// are named after their path: us-east-z1-b1-r1-n1.

// FleetSpec is a parsed fleet file.
type FleetSpec struct {
	Fleet *fleet.Fleet
	Sites Sites
}

// Site holds the attributes of a topology domain that energy and carbon
// accounting need. Zero means "not given here".
type Site struct {
	// PUE is the power usage effectiveness (facility power / IT power).
	PUE float64
	// CarbonGPerKWh is the grid's carbon intensity in gCO2 per kWh.
	CarbonGPerKWh float64
	// PowerCapKW is the domain's power budget; ITCap makes it a cap of IT
	// power (the accelerators' draw) rather than of facility power.
	PowerCapKW float64
	ITCap      bool
	// CarbonSeries names a file of the grid's carbon intensity over time
	// (a Time,Carbon Intensity CSV), relative to the fleet file; it takes
	// the place of CarbonGPerKWh where both would apply.
	CarbonSeries string
}

// Sites maps a domain path ("us-east" or "us-east/z1") to its attributes.
type Sites map[string]Site

// For returns the attributes that apply to a node or domain path: each field
// comes from the most specific domain that gives it.
func (s Sites) For(path []string) Site {
	var out Site
	var pue, carbon, power bool
	for i := len(path); i > 0; i-- {
		site, ok := s[strings.Join(path[:i], "/")]
		if !ok {
			continue
		}
		if !pue && site.PUE != 0 {
			out.PUE, pue = site.PUE, true
		}
		if !carbon && (site.CarbonGPerKWh != 0 || site.CarbonSeries != "") {
			out.CarbonGPerKWh, out.CarbonSeries, carbon = site.CarbonGPerKWh, site.CarbonSeries, true
		}
		if !power && i == len(path) && site.PowerCapKW != 0 {
			// A power cap belongs to its own domain; it is not inherited.
			out.PowerCapKW, out.ITCap, power = site.PowerCapKW, site.ITCap, true
		}
	}
	return out
}

// Generator describes a regular block of nodes for GenerateFleet and for the
// generate section of a fleet file.
type Generator struct {
	// Path fixes the names of the outermost levels (e.g. {"us-east"}).
	Path []string
	// Per gives, for each level below Path, how many domains each parent
	// gets; len(Path)+len(Per) is the number of levels.
	Per []int
	// Nodes is the number of nodes in each lowest-level domain.
	Nodes int
	// Accel and Count are each node's accelerators (Count 0: CPU only).
	Accel     string
	Count     int
	CPUMilli  int64
	MemoryMiB int64
	Labels    map[string]string
}

// maxGeneratedNodes bounds what one generator may create.
const maxGeneratedNodes = 10_000_000

// maxFileNodes bounds the nodes of a fleet file, listed and generated, so
// that a slip in a generator's counts is an error rather than an
// out-of-memory crash. A variable so that fuzzing can lower it.
var maxFileNodes = 1_000_000

// Size is the number of nodes g creates.
func (g Generator) Size() int64 {
	n := int64(g.Nodes)
	for _, p := range g.Per {
		n *= int64(p)
		if n > maxGeneratedNodes {
			return maxGeneratedNodes + 1
		}
	}
	return n
}

// GenerateFleet builds a fleet with the default levels and catalog from
// generators, for benchmarks and simulations of fleets too big to list:
//
//	f, err := spec.GenerateFleet(spec.Generator{Path: []string{"us-east"},
//		Per: []int{2, 8, 16}, Nodes: 8, Accel: "h100", Count: 8,
//		CPUMilli: 96000, MemoryMiB: 2 << 20})
func GenerateFleet(gens ...Generator) (*fleet.Fleet, error) {
	f, err := fleet.New(nil, nil, nil)
	if err != nil {
		return nil, err
	}
	for i, g := range gens {
		if err := Generate(f, g); err != nil {
			return nil, fmt.Errorf("generator %d: %w", i, err)
		}
	}
	return f, nil
}

// Generate appends g's nodes to f.
func Generate(f *fleet.Fleet, g Generator) error {
	levels := len(f.Levels)
	if len(g.Path)+len(g.Per) != levels {
		return fmt.Errorf("path (%d names) and per (%d counts) must cover the %d levels %s", len(g.Path), len(g.Per), levels, strings.Join(f.Levels, ", "))
	}
	for i, p := range g.Per {
		if p < 1 {
			return fmt.Errorf("%ss: %d, want at least 1", f.Levels[len(g.Path)+i], p)
		}
	}
	if g.Nodes < 1 {
		return fmt.Errorf("nodes: %d, want at least 1", g.Nodes)
	}
	if g.Size() > maxGeneratedNodes {
		return fmt.Errorf("creates more than %d nodes", maxGeneratedNodes)
	}
	// Find or plan the fixed part of the path, then number new domains
	// after those already present under each parent.
	path := make([]string, levels)
	copy(path, g.Path)
	var walk func(lvl, parent int) error
	walk = func(lvl, parent int) error {
		if lvl == levels {
			return addNodes(f, g, path, parent)
		}
		if lvl < len(g.Path) {
			return walk(lvl+1, childByName(f, parent, g.Path[lvl]))
		}
		letter := f.Levels[lvl][:1]
		next := nextIndex(f, parent, letter)
		for i := range g.Per[lvl-len(g.Path)] {
			// Numbered after every existing child, so the domain is new
			// (-1): no search among the parent's children is needed.
			path[lvl] = letter + strconv.Itoa(next+i)
			if err := walk(lvl+1, -1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(0, 0)
}

// childByName finds a child domain of parent (-1: parent does not exist
// yet, nor will its children until nodes are added).
func childByName(f *fleet.Fleet, parent int, name string) int {
	if parent < 0 {
		return -1
	}
	for _, c := range f.Domains[parent].Children {
		if f.Domains[c].Name == name {
			return c
		}
	}
	return -1
}

// nextIndex returns the first number after the children of parent named
// letter+number.
func nextIndex(f *fleet.Fleet, parent int, letter string) int {
	next := 1
	if parent < 0 {
		return next
	}
	for _, c := range f.Domains[parent].Children {
		if n, ok := numbered(f.Domains[c].Name, letter); ok && n >= next {
			next = n + 1
		}
	}
	return next
}

func numbered(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || rest[0] == '0' || len(rest) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

func addNodes(f *fleet.Fleet, g Generator, path []string, dom int) error {
	prefix := strings.Join(path, "-") + "-n"
	next := 1
	if dom >= 0 {
		for _, ni := range f.Domains[dom].Nodes {
			if n, ok := numbered(f.Nodes[ni].Name, prefix); ok && n >= next {
				next = n + 1
			}
		}
	}
	for i := range g.Nodes {
		n := fleet.Node{
			Name:      prefix + strconv.Itoa(next+i),
			Path:      path,
			Accel:     g.Accel,
			Count:     g.Count,
			CPUMilli:  g.CPUMilli,
			MemoryMiB: g.MemoryMiB,
		}
		if g.Count == 0 {
			n.Accel = ""
		}
		if len(g.Labels) > 0 {
			n.Labels = maps.Clone(g.Labels)
		}
		if _, err := f.AddNode(n); err != nil {
			return err
		}
	}
	return nil
}

var fleetFields = []string{"kind", "levels", "catalog", "sites", "nodes", "generate"}

var catalogFields = []string{"name", "memoryGiB", "boardPowerW", "idlePowerW", "relSpeed", "pricePerHour"}

var nodeFields = []string{"name", "path", "accelerators", "cpu", "memory", "labels", "state"}

var siteFields = []string{"pue", "carbon", "carbonSeries", "powerCapKW", "itCap"}

// ParseFleet reads a fleet file.
func ParseFleet(name string, data []byte) (*fleet.Fleet, error) {
	fs, err := ParseFleetSpec(name, data)
	if err != nil {
		return nil, err
	}
	return fs.Fleet, nil
}

// ParseFleetSpec reads a fleet file with its site attributes.
func ParseFleetSpec(name string, data []byte) (FleetSpec, error) {
	d := newDecoder(name)
	docs := d.documents(data, MaxFileBytes)
	if d.failed() {
		return FleetSpec{}, d.err()
	}
	if len(docs) != 1 {
		if len(docs) == 0 {
			d.add(0, 0, "", "holds no fleet")
		} else {
			d.add(docs[1].line, 0, "", fmt.Sprintf("holds %d documents; want one", len(docs)))
		}
		return FleetSpec{}, d.err()
	}
	out := fleetFile(docs[0].root())
	if d.failed() {
		return FleetSpec{}, d.err()
	}
	return out, nil
}

func fleetFile(v value) FleetSpec {
	var out FleetSpec
	d := v.d
	fs, isMap := v.fields(fleetFields...)
	if !isMap {
		return out
	}
	if f, ok := fs.get("kind"); ok {
		if s, ok := f.str(); ok && s != string(KindFleet) {
			f.errorf("%q: a fleet file has kind %s", s, KindFleet)
		}
	}
	levels := fleet.DefaultLevels
	if f, ok := fs.get("levels"); ok {
		levels = levelList(f)
	}
	cat := fleet.DefaultCatalog()
	if f, ok := fs.get("catalog"); ok {
		cat = catalog(f, cat)
	}
	if d.failed() {
		return out
	}
	fl, err := fleet.New(cat, levels, nil)
	if err != nil {
		v.errorf("%v", err)
		return out
	}
	nodes, hasNodes := fs.get("nodes")
	gens, hasGens := fs.get("generate")
	if !hasNodes && !hasGens {
		v.errorf("a fleet needs nodes: give nodes, generate or both")
	}
	if hasNodes {
		elems, _ := nodes.seq()
		for _, e := range elems {
			n, ok := node(e, fl)
			if !ok {
				continue
			}
			if _, err := fl.AddNode(n); err != nil {
				e.errorf("%v", err)
			}
		}
	}
	if hasGens {
		elems, _ := gens.seq()
		for _, e := range elems {
			g, ok := generator(e, fl)
			if !ok {
				continue
			}
			if total := int64(len(fl.Nodes)) + g.Size(); total > int64(maxFileNodes) {
				e.errorf("makes the fleet %d nodes or more, want at most %d", total, maxFileNodes)
				continue
			}
			if err := Generate(fl, g); err != nil {
				e.errorf("%v", err)
			}
		}
	}
	if f, ok := fs.get("sites"); ok && !d.failed() {
		out.Sites = sites(f, fl)
	}
	if !d.failed() && len(fl.Nodes) == 0 {
		v.errorf("a fleet needs at least one node")
	}
	out.Fleet = fl
	return out
}

func levelList(v value) []string {
	names, elems, ok := v.stringList(false)
	if !ok {
		return nil
	}
	if len(names) == 0 {
		v.errorf("want at least one level (the default is %s)", strings.Join(fleet.DefaultLevels, ", "))
	}
	if len(names) > 8 {
		v.errorf("%d levels, want at most 8", len(names))
	}
	seen := map[string]bool{}
	for i, n := range names {
		switch {
		case checkWord(n) != "":
			elems[i].errorf("%s", checkWord(n))
		case n == "node" || n == "nodes":
			elems[i].errorf("%q is the level below all others and is implied; leave it out", n)
		case seen[n]:
			elems[i].errorf("level %q is listed twice", n)
		}
		seen[n] = true
	}
	// Generators name new domains by a level's first letter; two levels
	// sharing it would still be unambiguous (names are per parent), so no
	// check is needed here.
	return names
}

// catalog reads catalog entries: an existing name overrides the fields it
// gives, a new name adds a type.
func catalog(v value, base *fleet.Catalog) *fleet.Catalog {
	types := append([]fleet.AccelType(nil), base.Types...)
	elems, _ := v.seq()
	seen := map[string]bool{}
	for _, e := range elems {
		fs, isMap := e.fields(catalogFields...)
		if !isMap {
			continue
		}
		nv, ok := fs.need("name")
		if !ok {
			continue
		}
		name, ok := nv.str()
		if !ok {
			continue
		}
		if msg := checkWord(name); msg != "" {
			nv.errorf("%s", msg)
			continue
		}
		if seen[name] {
			nv.errorf("type %q is listed twice", name)
			continue
		}
		seen[name] = true
		idx := base.Index(name)
		t := fleet.AccelType{Name: name}
		if idx >= 0 {
			t = types[idx]
		} else {
			for _, k := range []string{"memoryGiB", "boardPowerW", "relSpeed"} {
				fs.need(k)
			}
		}
		if f, ok := fs.get("memoryGiB"); ok {
			x, _ := f.intIn(1, 1<<20)
			t.MemoryGiB = int(x)
		}
		num := func(k string, lo, hi float64, dst *float64) {
			f, ok := fs.get(k)
			if !ok {
				return
			}
			x, ok := f.number()
			if !ok {
				return
			}
			switch {
			case k == "relSpeed" && !(x > 0 && x <= hi):
				f.errorf("%v, want above 0 and at most %v", f.n.GetToken().Value, hi)
			case !(x >= lo && x <= hi):
				f.errorf("%v, want %v..%v", f.n.GetToken().Value, lo, hi)
			}
			*dst = x
		}
		num("boardPowerW", 0, 1e5, &t.BoardPowerW)
		num("idlePowerW", 0, 1e5, &t.IdlePowerW)
		num("relSpeed", 0, 1e3, &t.RelSpeed)
		num("pricePerHour", 0, 1e6, &t.PricePerHour)
		if t.IdlePowerW > t.BoardPowerW {
			at := e
			if f, ok := fs.get("idlePowerW"); ok {
				at = f
			}
			at.errorf("idle power %vW is above board power %vW", t.IdlePowerW, t.BoardPowerW)
		}
		if idx >= 0 {
			types[idx] = t
		} else {
			types = append(types, t)
		}
	}
	c, err := fleet.NewCatalog(types)
	if err != nil {
		v.errorf("%v", err)
		return base
	}
	return c
}

var accelShort = regexp.MustCompile(`^([0-9]+)x(.+)$`)

// accelerators reads "8xh100" or {type: h100, count: 8}.
func nodeAccelerators(v value, cat *fleet.Catalog) (string, int, bool) {
	var typ string
	var count int64
	var typeVal, countVal value
	if _, isMap := v.n.(*ast.MappingNode); isMap {
		fs, isMap := v.fields("type", "count")
		if !isMap {
			return "", 0, false
		}
		tv, okT := fs.need("type")
		cv, okC := fs.need("count")
		if !okT || !okC {
			return "", 0, false
		}
		typeVal, countVal = tv, cv
		var ok bool
		if typ, ok = tv.str(); !ok {
			return "", 0, false
		}
		if count, ok = cv.integer(); !ok {
			return "", 0, false
		}
	} else {
		s, ok := v.str()
		if !ok {
			return "", 0, false
		}
		m := accelShort.FindStringSubmatch(s)
		if m == nil {
			v.errorf("%q: want COUNTxTYPE such as 8xh100, or {type: h100, count: 8}", s)
			return "", 0, false
		}
		c, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			c = fleet.MaxDevicesPerNode + 1
		}
		typ, count = m[2], c
		typeVal, countVal = v, v
	}
	if cat.Index(typ) < 0 {
		typeVal.errorf("type %q is not in the catalog (want one of %s)", typ, typeList(cat))
		return "", 0, false
	}
	if count < 1 || count > fleet.MaxDevicesPerNode {
		countVal.errorf("count %d, want 1..%d", count, fleet.MaxDevicesPerNode)
		return "", 0, false
	}
	return typ, int(count), true
}

// machine decodes what an explicit node and a generator both declare of
// each node: accelerators, CPU, memory and labels.
func machine(fs fields, f *fleet.Fleet) (accel string, count int, cpu, mem int64, labels map[string]string) {
	if av, ok := fs.get("accelerators"); ok {
		accel, count, _ = nodeAccelerators(av, f.Catalog)
	}
	if cv, ok := fs.need("cpu"); ok {
		cpu = cpuValue(cv)
	}
	if mv, ok := fs.need("memory"); ok {
		mem = memoryValue(mv)
	}
	if lv, ok := fs.get("labels"); ok {
		labels, _ = lv.stringMap(checkLabelKey, nil)
	}
	return accel, count, cpu, mem, labels
}

func node(v value, f *fleet.Fleet) (fleet.Node, bool) {
	var n fleet.Node
	before := v.d.count
	fs, isMap := v.fields(nodeFields...)
	if !isMap {
		return n, false
	}
	if nv, ok := fs.need("name"); ok {
		if s, ok := nv.str(); ok {
			if msg := checkName(s); msg != "" {
				nv.errorf("%s", msg)
			} else if _, dup := f.NodeIndex(s); dup {
				nv.errorf("node %q is defined twice", s)
			}
			n.Name = s
		}
	}
	if pv, ok := fs.need("path"); ok {
		n.Path = nodePath(pv, f.Levels)
	}
	n.Accel, n.Count, n.CPUMilli, n.MemoryMiB, n.Labels = machine(fs, f)
	if sv, ok := fs.get("state"); ok {
		if s, ok := sv.str(); ok {
			st, err := fleet.ParseNodeState(s)
			if err != nil {
				sv.errorf("%v", err)
			}
			n.State = st
		}
	}
	return n, v.d.count == before
}

func checkLabelKey(k string) string {
	if k == "" || len(k) > 63 {
		return fmt.Sprintf("%q: want 1..63 characters", k)
	}
	return ""
}

// nodePath reads {level: name, ...} with every level, or "a/b/c/d".
func nodePath(v value, levels []string) []string {
	path := make([]string, len(levels))
	want := strings.Join(levels, "/")
	if s, isStr := v.n.(*ast.StringNode); isStr {
		parts := strings.Split(s.Value, "/")
		if len(parts) != len(levels) {
			v.errorf("%q has %d parts, want %d (%s)", s.Value, len(parts), len(levels), want)
			return nil
		}
		for i, p := range parts {
			if msg := checkName(p); msg != "" {
				v.errorf("%s %s", levels[i], msg)
				return nil
			}
		}
		return parts
	}
	fs, ok := v.fields(levels...)
	if !ok {
		return nil
	}
	for i, l := range levels {
		lv, has := fs.need(l)
		if !has {
			ok = false
			continue
		}
		s, good := lv.str()
		if good {
			if msg := checkName(s); msg != "" {
				lv.errorf("%s", msg)
				good = false
			}
		}
		ok = ok && good
		path[i] = s
	}
	if !ok {
		return nil
	}
	return path
}

// generatorKeys lists the keys a generator accepts for these levels.
func generatorKeys(levels []string) []string {
	var keys []string
	for _, l := range levels {
		keys = append(keys, l, l+"s")
	}
	return append(keys, "nodes", "accelerators", "cpu", "memory", "labels")
}

func generator(v value, f *fleet.Fleet) (Generator, bool) {
	var g Generator
	before := v.d.count
	fs, isMap := v.fields(generatorKeys(f.Levels)...)
	if !isMap {
		return g, false
	}
	for i, l := range f.Levels {
		name, hasName := fs.get(l)
		count, hasCount := fs.get(l + "s")
		switch {
		case hasName && hasCount:
			count.errorf("give %s (a name) or %ss (a count), not both", l, l)
			return g, false
		case hasName && len(g.Per) > 0:
			name.errorf("a fixed name cannot follow generated %ss; give %ss: N or fix the levels above", f.Levels[i-1], f.Levels[i-1])
			return g, false
		case hasName:
			s, ok := name.str()
			if ok {
				if msg := checkName(s); msg != "" {
					name.errorf("%s", msg)
				}
			}
			g.Path = append(g.Path, s)
		case hasCount:
			x, _ := count.intIn(1, 100_000)
			g.Per = append(g.Per, int(x))
		default:
			v.errorf("%s: give %s (a name) or %ss (a count)", l, l, l)
			return g, false
		}
	}
	if nv, ok := fs.need("nodes"); ok {
		x, _ := nv.intIn(1, 100_000)
		g.Nodes = int(x)
	}
	g.Accel, g.Count, g.CPUMilli, g.MemoryMiB, g.Labels = machine(fs, f)
	return g, v.d.count == before
}

func sites(v value, f *fleet.Fleet) Sites {
	domains := map[string]bool{}
	for d := 1; d < len(f.Domains); d++ {
		domains[f.DomainPath(d)] = true
	}
	ps, _ := v.pairs()
	out := make(Sites, len(ps))
	for _, p := range ps {
		if !domains[p.key] {
			known := make([]string, 0, 8)
			for d := range domains {
				if !strings.Contains(d, "/") {
					known = append(known, d)
				}
			}
			sort.Strings(known)
			v.d.add(p.line, p.col, p.val.path, fmt.Sprintf("no domain %q in the fleet (write a domain path such as %s/...; regions: %s)", p.key, strings.Join(f.Levels[:1], ""), strings.Join(known, ", ")))
			continue
		}
		fs, isMap := p.val.fields(siteFields...)
		if !isMap {
			continue
		}
		var s Site
		num := func(k string, lo, hi float64, dst *float64) {
			fv, ok := fs.get(k)
			if !ok {
				return
			}
			x, ok := fv.number()
			if !ok {
				return
			}
			if !(x >= lo && x <= hi) {
				fv.errorf("%v, want %v..%v", fv.n.GetToken().Value, lo, hi)
			}
			*dst = x
		}
		num("pue", 1, 5, &s.PUE)
		num("carbon", 0, 5000, &s.CarbonGPerKWh)
		num("powerCapKW", 0, 1e7, &s.PowerCapKW)
		if fv, ok := fs.get("carbonSeries"); ok {
			if _, both := fs.get("carbon"); both {
				fv.errorf("give carbon (a constant) or carbonSeries (a file), not both")
			}
			if f, ok := fv.str(); ok {
				if f == "" || strings.ContainsRune(f, 0) {
					fv.errorf("want a file name")
				}
				s.CarbonSeries = f
			}
		}
		if fv, ok := fs.get("itCap"); ok {
			s.ITCap, _ = fv.boolean()
			if _, capped := fs.get("powerCapKW"); !capped {
				fv.errorf("says what powerCapKW caps, and the site has none")
			}
		}
		out[p.key] = s
	}
	return out
}
