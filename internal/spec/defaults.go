package spec

import (
	"embed"
	"io/fs"
	"path"
	"sort"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// The defaults give `gpufleet up`, the simulator and the examples a fleet,
// a queue tree and jobs that fit each other, without writing any YAML.

//go:embed defaults
var defaults embed.FS

// File is a named spec file.
type File struct {
	Name string
	Data []byte
}

func mustRead(name string) []byte {
	data, err := defaults.ReadFile(name)
	if err != nil {
		panic("spec: embedded default missing: " + err.Error())
	}
	return data
}

// DefaultFleetYAML is the text of the default fleet file.
func DefaultFleetYAML() []byte { return mustRead("defaults/fleet.yaml") }

// LocalFleetYAML is the text of the fleet gpufleet up runs.
func LocalFleetYAML() []byte { return mustRead("defaults/local-fleet.yaml") }

// LocalFleet returns a fresh copy of the fleet gpufleet up runs: eight
// 8-GPU servers (H100, H200, B200) in one zone, on which every example job
// starts, all of them at once.
func LocalFleet() *fleet.Fleet {
	f, err := ParseFleet("defaults/local-fleet.yaml", LocalFleetYAML())
	if err != nil {
		panic("spec: embedded local fleet: " + err.Error())
	}
	return f
}

// DefaultQueuesYAML is the text of the default queues file.
func DefaultQueuesYAML() []byte { return mustRead("defaults/queues.yaml") }

// DefaultFleetSpec returns a fresh copy of the default fleet (260 nodes of
// H100, H200 and B200 in two regions) with its site attributes.
func DefaultFleetSpec() FleetSpec {
	fs, err := ParseFleetSpec("defaults/fleet.yaml", DefaultFleetYAML())
	if err != nil {
		// The tests parse the embedded files; this cannot happen in a
		// tested build.
		panic("spec: embedded default fleet: " + err.Error())
	}
	return fs
}

// DefaultFleet returns a fresh copy of the default fleet.
func DefaultFleet() *fleet.Fleet { return DefaultFleetSpec().Fleet }

// DefaultQueues returns the default queue tree, whose nominal quotas add up
// to the default fleet.
func DefaultQueues() []quota.Spec {
	specs, err := ParseQueues("defaults/queues.yaml", DefaultQueuesYAML())
	if err != nil {
		panic("spec: embedded default queues: " + err.Error())
	}
	return specs
}

// Examples returns the example job files (a rack-bound training gang, an
// elastic fine-tuning job, a fractional-accelerator batch job and an
// inference service), sorted by name. They fit the default fleet and queues
// and are also in the repository's examples/ directory.
func Examples() []File {
	entries, err := fs.ReadDir(defaults, "defaults/examples")
	if err != nil {
		panic("spec: embedded examples: " + err.Error())
	}
	out := make([]File, 0, len(entries))
	for _, e := range entries {
		name := path.Join("examples", e.Name())
		out = append(out, File{Name: name, Data: mustRead("defaults/" + name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
