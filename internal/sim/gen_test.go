package sim

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func genAll(t *testing.T, cfg GenConfig) (*Generator, []Job) {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []Job
	for {
		j, err := g.Next()
		if err == io.EOF {
			return g, jobs
		}
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
}

func TestGeneratorDistributions(t *testing.T) {
	const n = 20000
	g, jobs := genAll(t, GenConfig{Jobs: n, Seed: 7, Days: 10, Fleet: spec.DefaultFleet(), Queues: spec.DefaultQueues()})
	if len(jobs) != n {
		t.Fatalf("%d jobs, want %d", len(jobs), n)
	}
	tree, err := quota.New(g.Queues())
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]int, 4)
	var fractional, batch, peak, night int
	var ratios []float64
	var last int64
	for i := range jobs {
		j := &jobs[i]
		if err := j.Validate(); err != nil {
			t.Fatalf("job %s: %v", j.ID, err)
		}
		if q := tree.Queue(j.Queue); q < 0 || !tree.IsLeaf(q) || tree.Tenant(q) != j.Tenant {
			t.Fatalf("job %s: queue %q of tenant %q is not a leaf of the tree", j.ID, j.Queue, j.Tenant)
		}
		if j.Arrival < last {
			t.Fatalf("job %s arrives at %d, before %d", j.ID, j.Arrival, last)
		}
		last = j.Arrival
		kinds[j.Kind]++
		switch j.Kind {
		case sched.Training:
			gang := j.Gangs[0]
			acc := gang.Replicas * gang.Shape.Devices
			if acc < 8 || acc > 512 || !j.Topology.Required || j.CheckpointSec == 0 {
				t.Errorf("training job %s: %d accelerators, topology %+v, checkpoint %d", j.ID, acc, j.Topology, j.CheckpointSec)
			}
		case sched.FineTuning:
			if !j.Preemptible {
				t.Errorf("fine-tuning job %s is not preemptible", j.ID)
			}
		case sched.Batch:
			batch++
			if j.Gangs[0].Shape.Milli > 0 {
				fractional++
			}
		case sched.Service:
			if j.Gangs[0].Replicas < 2 {
				t.Errorf("service %s has %d replicas, want several", j.ID, j.Gangs[0].Replicas)
			}
		}
		if j.EstimatedSec > 0 && (j.Kind == sched.Training || j.Kind == sched.FineTuning) {
			ratios = append(ratios, float64(j.EstimatedSec)/float64(j.Duration))
		}
		switch h := (j.Arrival % 86400) / 3600; {
		case h >= 10 && h < 18:
			peak++
		case h >= 22 || h < 6:
			night++
		}
	}
	for k, share := range genKindShare {
		got := float64(kinds[k]) / n
		sd := math.Sqrt(share * (1 - share) / n)
		if math.Abs(got-share) > 4*sd {
			t.Errorf("%s: %.4f of jobs, want %.4f +- %.4f", sched.Kind(k), got, share, 4*sd)
		}
	}
	if got := float64(fractional) / float64(batch); math.Abs(got-0.4) > 0.03 {
		t.Errorf("fractional batch jobs: %.3f of batch, want 0.40 +- 0.03", got)
	}
	if ratio := float64(peak) / float64(night); ratio < 1.5 {
		t.Errorf("arrivals 10:00-18:00 / 22:00-06:00 = %.2f, want a daily peak (> 1.5)", ratio)
	}
	sort.Float64s(ratios)
	if med := Percentile(ratios, 50); med < 1.1 || med > 1.5 {
		t.Errorf("median estimate / runtime = %.2f, want about exp(0.2) = 1.22", med)
	}
	if days := float64(last) / 86400; days < 8 || days > 12 {
		t.Errorf("last arrival on day %.1f, want about 10", days)
	}
}

func TestGeneratorIsSeeded(t *testing.T) {
	cfg := GenConfig{Jobs: 500, Seed: 3, Fleet: spec.DefaultFleet(), Queues: spec.DefaultQueues()}
	_, a := genAll(t, cfg)
	_, b := genAll(t, cfg)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different jobs (-first +second):\n%s", diff)
	}
	cfg.Seed = 4
	_, c := genAll(t, cfg)
	if cmp.Equal(a, c) {
		t.Error("seeds 3 and 4 gave the same jobs")
	}
}

func TestGeneratorTenants(t *testing.T) {
	g, jobs := genAll(t, GenConfig{Jobs: 2000, Seed: 1, Tenants: 3, Fleet: spec.DefaultFleet()})
	tree, err := quota.New(g.Queues())
	if err != nil {
		t.Fatal(err)
	}
	// Tenant quotas add up to the fleet, per accelerator type.
	for f, name := range tree.Flavors() {
		want := int64(spec.DefaultFleet().Totals()[name]) * 1000
		if got := tree.Nominal(0, f); got != want {
			t.Errorf("flavor %s: tenants hold %d milli, the fleet has %d", name, got, want)
		}
	}
	seen := map[string]int{}
	for _, j := range jobs {
		seen[j.Tenant]++
	}
	if len(seen) != 3 {
		t.Errorf("jobs went to tenants %v, want 3 tenants", seen)
	}
}

func TestGeneratorErrors(t *testing.T) {
	tests := map[string]GenConfig{
		"no fleet":       {Jobs: 1},
		"negative jobs":  {Jobs: -1, Fleet: spec.DefaultFleet()},
		"too many days":  {Jobs: 1, Days: 1e6, Fleet: spec.DefaultFleet()},
		"negative load":  {Jobs: 1, Load: -1, Fleet: spec.DefaultFleet()},
		"no leaf queues": {Jobs: 1, Fleet: spec.DefaultFleet()},
	}
	for name, cfg := range tests {
		if _, err := NewGenerator(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestRunIsDeterministic runs the same workload twice, node failures on,
// and compares the results byte for byte.
func TestRunIsDeterministic(t *testing.T) {
	once := func() []byte {
		fs := spec.DefaultFleetSpec()
		g, err := NewGenerator(GenConfig{Jobs: 400, Seed: 11, Fleet: fs.Fleet, Queues: spec.DefaultQueues()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(Config{Seed: 11, FailuresPerNodeDay: 0.05, Sched: sched.Config{Seed: 11}}, fs.Fleet, g.Queues(), g)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(struct {
			R    *Result
			Jobs []JobRecord
		}{res, res.Jobs})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := once(), once()
	if string(a) != string(b) {
		t.Fatal("two runs with the same seed and inputs differ")
	}
	var r struct{ R Result }
	if err := json.Unmarshal(a, &r); err != nil {
		t.Fatal(err)
	}
	if s := r.R.Summary; s.Jobs.Total != 400 || s.NodeFailures == 0 || s.Jobs.Finished == 0 {
		t.Errorf("the run did too little to compare: %d jobs, %d finished, %d node failures", s.Jobs.Total, s.Jobs.Finished, s.NodeFailures)
	}
}

// TestGeneratorLoadPerTypeSet checks the span the generator derives: no
// set of accelerator types is offered more than the target load by the
// jobs that can run only on it, and the most loaded set is at the target
// (so the span is not longer than it must be). The skewed queues put four
// in five jobs on the B200s, a fifth of the fleet: measured on the whole
// fleet alone, the load offered to the B200s was about four times the
// target.
func TestGeneratorLoadPerTypeSet(t *testing.T) {
	data, err := os.ReadFile("../../testdata/sim/fleet-10k.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.ParseFleet("fleet-10k.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	skewed := []quota.Spec{
		{Name: "a", Quotas: map[string]quota.Limits{"b200": {Nominal: 64_000_000}}},
		{Name: "a-q", Parent: "a"},
		{Name: "b", Quotas: map[string]quota.Limits{"h100": {Nominal: 16_000_000}}},
		{Name: "b-q", Parent: "b"},
	}
	for name, cfg := range map[string]GenConfig{
		"four tenants": {Jobs: 100000, Seed: 5, Tenants: 4, Fleet: f},
		"skewed":       {Jobs: 100000, Seed: 5, Queues: skewed, Fleet: f},
	} {
		t.Run(name, func(t *testing.T) { checkLoadPerTypeSet(t, cfg) })
	}
}

func checkLoadPerTypeSet(t *testing.T, cfg GenConfig) {
	const load = 0.85
	cfg.Load = load
	g, jobs := genAll(t, cfg)
	capOf := map[string]float64{}
	for _, a := range g.types {
		capOf[a.name] = float64(a.count)
	}
	names := make([]string, 0, len(capOf))
	for n := range capOf {
		names = append(names, n)
	}
	sort.Strings(names)
	span := g.span
	// Work per exact option set, in accelerator-seconds at the job's speed.
	work := map[uint]float64{}
	for i := range jobs {
		j := &jobs[i]
		var mask uint
		for _, gg := range j.Gangs {
			for _, a := range gg.Shape.Accel {
				mask |= 1 << sort.SearchStrings(names, a)
			}
		}
		d := float64(j.Duration)
		if j.Duration == NoDuration {
			d = span / 2
		}
		work[mask] += j.accels() * d / g.speedOf(j)
	}
	top := 0.0
	for set := uint(1); set < 1<<len(names); set++ {
		var capacity, asked float64
		for k, n := range names {
			if set&(1<<k) != 0 {
				capacity += capOf[n]
			}
		}
		for m, w := range work {
			if m != 0 && m&^set == 0 {
				asked += w
			}
		}
		l := asked / (capacity * span)
		// Training gangs, heavy-tailed in size and runtime, are 2% of the
		// jobs: the pilot's estimate and this draw each miss by a few
		// percent.
		if l > load*1.1 {
			t.Errorf("types %b: offered load %.3f, above the target %.2f", set, l, load)
		}
		top = max(top, l)
	}
	if top < load*0.9 {
		t.Errorf("most loaded set of types at %.3f, want about %.2f (the span is longer than it must be)", top, load)
	}
}
