package spec

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

func TestDefaultFleet(t *testing.T) {
	fs := DefaultFleetSpec()
	f := fs.Fleet
	if got, want := len(f.Nodes), 260; got != want {
		t.Errorf("nodes = %d, want %d", got, want)
	}
	if diff := cmp.Diff(map[string]int{"h100": 1280, "h200": 544, "b200": 256}, f.Totals()); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fleet.DefaultLevels, f.Levels); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	regions := map[string]bool{}
	for _, n := range f.Nodes {
		regions[n.Path[0]] = true
		if s := fs.Sites.For(n.Path); s.PUE < 1 || s.CarbonGPerKWh <= 0 {
			t.Errorf("node %s: site %+v lacks PUE or carbon", n.Name, s)
		}
	}
	if len(regions) != 2 {
		t.Errorf("regions = %v, want 2", regions)
	}
	// Each call returns a fleet of its own: callers change node states.
	f.Nodes[0].State = fleet.Down
	if DefaultFleet().Nodes[0].State != fleet.Ready {
		t.Errorf("DefaultFleet shares state between calls")
	}
}

func TestDefaultQueuesFitTheFleet(t *testing.T) {
	specs := DefaultQueues()
	if _, err := quota.New(specs); err != nil {
		t.Fatal(err)
	}
	// Tenants' nominal quotas, over all tiers of a type, add up to the
	// fleet's accelerators of that type.
	sums := map[string]int{}
	for _, s := range specs {
		if s.Parent != "" {
			continue
		}
		for flavor, l := range s.Quotas {
			typ, _, _ := strings.Cut(flavor, ":")
			sums[typ] += int(l.Nominal / 1000)
		}
	}
	if diff := cmp.Diff(DefaultFleet().Totals(), sums); diff != "" {
		t.Errorf("tenant nominal sums vs fleet (-fleet +queues):\n%s", diff)
	}
	if _, err := ParseQueues("queues.yaml", DefaultQueuesYAML(), WithFleet(DefaultFleet())); err != nil {
		t.Errorf("default queues against the default fleet: %v", err)
	}
}

func TestExamples(t *testing.T) {
	f, queues := DefaultFleet(), DefaultQueues()
	examples := Examples()
	if len(examples) != 4 {
		t.Errorf("examples = %d, want 4", len(examples))
	}
	kinds := map[string]bool{}
	for _, e := range examples {
		js, err := ParseJob(e.Name, e.Data, WithFleet(f), WithQueues(queues))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		kinds[js.Job.Kind.String()] = true
		// The repository's examples/ directory holds the same files.
		onDisk, err := os.ReadFile(filepath.Join("..", "..", e.Name))
		if err != nil {
			t.Errorf("%v", err)
		} else if !bytes.Equal(onDisk, e.Data) {
			t.Errorf("%s differs from internal/spec/defaults/%s; copy it over", e.Name, e.Name)
		}
		if k, err := Detect(e.Name, e.Data); err != nil || k != KindJob {
			t.Errorf("Detect(%s) = %v, %v, want job", e.Name, k, err)
		}
	}
	if len(kinds) != 4 {
		t.Errorf("example kinds = %v, want all four", kinds)
	}
}

func TestDetect(t *testing.T) {
	tests := map[string]struct {
		src  string
		want Kind
		err  string
	}{
		"fleet by kind":       {src: "kind: fleet\n", want: KindFleet},
		"fleet by keys":       {src: "generate: []\n", want: KindFleet},
		"queues by kind":      {src: "kind: queues\n", want: KindQueues},
		"queues by keys":      {src: "tenants: []\n", want: KindQueues},
		"job by kind":         {src: "kind: fine-tuning\n", want: KindJob},
		"job by keys":         {src: "name: j\ngangs: []\n", want: KindJob},
		"job documents":       {src: "# jobs\n---\nname: j\nkind: batch\n---\nname: k\n", want: KindJob},
		"catalog by kind":     {src: "kind: catalog\n", want: KindCatalog},
		"catalog by keys":     {src: "models: []\n", want: KindCatalog},
		"prices by kind":      {src: "kind: prices\n", want: KindPrices},
		"commitments by kind": {src: "kind: commitments\n", want: KindCommitments},
		"commitments by keys": {src: "commitments: []\n", want: KindCommitments},
		"credits by kind":     {src: "kind: credits\n", want: KindCredits},
		"credits by grants":   {src: "grants: []\n", want: KindCredits},
		"credits by budgets":  {src: "budgets: {acme: 1}\n", want: KindCredits},
		"unknown kind":        {src: "kind: cluster\n", err: `x.yaml:1:7: kind: "cluster": want fleet, queues, catalog, prices, commitments, credits or a job kind (training, fine-tuning, batch, service)`},
		"nothing to go by":    {src: "name: x\n", err: `x.yaml:1:1: cannot tell what this file declares: give kind: fleet, queues, catalog, prices, commitments, credits or a job kind, or the keys nodes, tenants, gangs, models, commitments or grants`},
		"empty":               {src: "", err: `x.yaml: is empty`},
		"list":                {src: "- a\n", err: `x.yaml:1:1: want a mapping, got a list`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Detect("x.yaml", []byte(tt.src))
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tt.err, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got != tt.want {
				t.Errorf("Detect = %q, want %q", got, tt.want)
			}
		})
	}
}

// gpufleet up's fleet holds every example at once, each with all its
// replicas, as the scheduling core places them.
func TestExamplesAllStartOnTheLocalFleet(t *testing.T) {
	f := LocalFleet()
	if got := f.Totals(); !cmp.Equal(got, map[string]int{"h100": 40, "h200": 16, "b200": 8}) {
		t.Errorf("local fleet totals %v", got)
	}
	tree, err := quota.New(DefaultQueues())
	if err != nil {
		t.Fatal(err)
	}
	core, err := sched.New(sched.Config{}, f, tree)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, e := range Examples() {
		js, err := ParseJob(e.Name, e.Data, WithFleet(f), WithQueues(DefaultQueues()))
		if err != nil {
			t.Fatal(err)
		}
		if r, err := core.Apply(sched.JobSubmitted{Job: js.Job}); err != nil || len(r.Actions) > 0 {
			t.Fatalf("%s: %v %v", e.Name, r.Actions, err)
		}
		for _, g := range js.Job.Gangs {
			want[string(js.Job.ID)] += g.Replicas
		}
	}
	got := map[string]int{}
	for now := int64(1); now <= 10; now++ {
		for _, a := range core.Schedule(now).Actions {
			switch a := a.(type) {
			case sched.Bind:
				got[string(a.Job)]++
			default:
				t.Errorf("t=%d: %v", now, a)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replicas bound per example (-want +got):\n%s", diff)
	}
}
