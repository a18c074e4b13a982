package spec

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// addSeeds adds the files of a testdata directory and extra texts as seeds.
func addSeeds(f *testing.F, dir string, extra ...[]byte) {
	paths, err := filepath.Glob(filepath.Join(testdata, dir, "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, e := range extra {
		f.Add(e)
	}
}

// Seeds that exercise the decoder's corners: anchors, aliases, tags,
// several documents, odd scalars.
var decoderSeeds = [][]byte{
	[]byte("a: &x {b: *x}\n"),
	[]byte("gangs: &g [*g]\nname: j\nqueue: q\nkind: batch\n"),
	[]byte("---\n---\n...\n---\nname: !!str 5\n"),
	[]byte("name: \"\\u0000\"\nqueue: [\nkind: {\n"),
	[]byte("? [a, b]\n: c\n"),
	[]byte("<<: *a\n"),
	[]byte("tenants: [{name: a, quotas: {h100: 1e400}}]\n"),
	[]byte("nodes: [{name: n, path: a/b/c/d, cpu: 1, memory: 99999999999999999Pi}]\n"),
}

func FuzzParseJob(f *testing.F) {
	addSeeds(f, "jobs", decoderSeeds...)
	for _, e := range Examples() {
		f.Add(e.Data)
	}
	f.Add([]byte(job))
	f.Fuzz(func(t *testing.T, data []byte) {
		jobs, err := ParseJobs("fuzz.yaml", data)
		if err != nil {
			return
		}
		// What parses is valid and survives a round trip through RenderJobs.
		for _, js := range jobs {
			if err := js.Job.Validate(); err != nil {
				t.Fatalf("parsed job %q fails Validate: %v", js.Job.ID, err)
			}
		}
		out, err := RenderJobs(jobs)
		if err != nil {
			return // strings that are not UTF-8
		}
		again, err := ParseJobs("rendered.yaml", out)
		if err != nil {
			t.Fatalf("rendered jobs do not parse: %v\n%s", err, out)
		}
		if diff := cmp.Diff(jobs, again); diff != "" {
			t.Fatalf("round trip (-parsed +reparsed):\n%s", diff)
		}
	})
}

func FuzzParseQueues(f *testing.F) {
	addSeeds(f, "queues", append(decoderSeeds, DefaultQueuesYAML(), []byte(queues))...)
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := ParseQueues("fuzz.yaml", data)
		if err != nil {
			return
		}
		if _, err := quota.New(specs); err != nil {
			t.Fatalf("parsed queues fail quota.New: %v", err)
		}
	})
}

func FuzzParseFleet(f *testing.F) {
	addSeeds(f, "fleets", append(decoderSeeds, DefaultFleetYAML(), []byte(fleetSrc))...)
	// Generators make fleets as large as the text asks; keep them small.
	defer func(n int) { maxFileNodes = n }(maxFileNodes)
	maxFileNodes = 5000
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := ParseFleetSpec("fuzz.yaml", data)
		if err != nil {
			return
		}
		if fs.Fleet == nil || len(fs.Fleet.Nodes) == 0 {
			t.Fatalf("parsed fleet has no nodes")
		}
	})
}
