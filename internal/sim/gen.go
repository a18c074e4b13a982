package sim

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// The synthetic AI-cloud workload. docs/WORKLOADS.md documents every
// distribution used here; change both together.

// GenConfig describes a synthetic workload.
type GenConfig struct {
	// Jobs is the number of jobs to generate.
	Jobs int
	Seed uint64
	// Tenants, when positive, makes that many tenants with quota shares of
	// the fleet (and four queues each); 0 uses Queues.
	Tenants int
	// Queues is the queue tree the jobs go to when Tenants is 0.
	Queues []quota.Spec
	// Days is the span of arrivals; 0 derives it from Load.
	Days float64
	// Load is the offered load (accelerator-time asked / available) that
	// sets the span when Days is 0; default 0.85.
	Load float64
	// Fleet is what the jobs are sized for (accelerator types, node sizes,
	// rack and block capacities).
	Fleet *fleet.Fleet
	// Deferrable is the share of batch and fine-tuning jobs given a
	// deadline: twice their estimate plus 2 to 24 hours of slack after
	// their arrival, and interruptible when they checkpoint. Its draws
	// have a stream of their own: with 0 the workload is as without it.
	Deferrable float64
}

// Kind mix by job count, and the shapes of each kind (docs/WORKLOADS.md).
var genKindShare = [...]float64{sched.Training: 0.02, sched.FineTuning: 0.18, sched.Batch: 0.72, sched.Service: 0.08}

const (
	genDiurnalAmp    = 0.5    // +-50% around the daily mean, peak at 14:00
	genPeakHour      = 14.0   // hour of the daily peak
	genWeekendFactor = 0.6    // Saturday and Sunday
	genBurstsPerDay  = 1.5    // mean number of bursts a day
	genBurstSec      = 1800   // length of a burst
	genBurstFactor   = 5.0    // arrival rate multiplier inside a burst
	genForeverShare  = 0.02   // services that run until the end
	genEstMu         = 0.2    // log of the median estimate / actual ratio
	genEstSigma      = 0.5    // spread of the estimate error
	genMaxFactor     = 3.0    // maxSec = 3 x estimate on the slowest option
	genPilot         = 100000 // jobs drawn to measure the mean demand
)

var genTenantNames = []string{"aurora", "borealis", "cirrus", "delta", "ember", "fjord", "granite", "harbor", "ion", "juniper", "kestrel", "lumen"}

// accelInfo is what the generator knows of one accelerator type.
type accelInfo struct {
	name      string
	speed     float64
	price     float64
	count     int64 // accelerators in the fleet
	perNode   int   // smallest node size
	cpu, mem  int64 // of the smallest node
	rackCap   int   // most accelerators of the type in one rack
	blockCap  int
	rackLevel string
	blockLvl  string
}

// leaf is a queue that receives jobs.
type leaf struct {
	name, tenant string
	tier         string
	types        []*accelInfo // by speed, fastest first
	weight       float64
	kinds        [4]bool // kinds this queue is named for
	generic      bool
}

// Generator draws a workload job by job, in arrival order.
type Generator struct {
	cfg     GenConfig
	queues  []quota.Spec
	types   []*accelInfo
	leaves  []*leaf
	byKind  [4][]*leaf
	cumKind [4][]float64
	span    float64 // seconds
	lambda0 float64

	arr, shape *rand.Rand
	deferral   *rand.Rand
	t          float64
	burstStart float64
	n          int
}

// NewGenerator prepares a workload for a fleet.
func NewGenerator(cfg GenConfig) (*Generator, error) {
	if cfg.Jobs < 0 {
		return nil, fmt.Errorf("jobs %d: must not be negative", cfg.Jobs)
	}
	if cfg.Tenants < 0 || cfg.Tenants > 1000 {
		return nil, fmt.Errorf("tenants %d: want 0..1000", cfg.Tenants)
	}
	if cfg.Deferrable < 0 || cfg.Deferrable > 1 {
		return nil, fmt.Errorf("deferrable %v: want a share, 0..1", cfg.Deferrable)
	}
	if cfg.Days < 0 || cfg.Days > 3650 {
		return nil, fmt.Errorf("days %v: want 0..3650", cfg.Days)
	}
	if cfg.Load == 0 {
		cfg.Load = 0.85
	}
	if cfg.Load < 0 || cfg.Load > 10 {
		return nil, fmt.Errorf("load %v: want a positive fraction (0.85 is 85%% of the fleet)", cfg.Load)
	}
	if cfg.Fleet == nil {
		return nil, fmt.Errorf("generator: a fleet is needed")
	}
	g := &Generator{cfg: cfg,
		arr:      rand.New(rand.NewPCG(cfg.Seed, 0xa441)),
		shape:    rand.New(rand.NewPCG(cfg.Seed, 0x5a3e)),
		deferral: rand.New(rand.NewPCG(cfg.Seed, 0xdefe)),
	}
	if err := g.readFleet(); err != nil {
		return nil, err
	}
	g.queues = cfg.Queues
	if cfg.Tenants > 0 {
		g.queues = g.makeTenants(cfg.Tenants)
	}
	if err := g.readQueues(); err != nil {
		return nil, err
	}
	if err := g.setSpan(); err != nil {
		return nil, err
	}
	g.burstStart = g.arr.ExpFloat64() / (genBurstsPerDay / 86400)
	return g, nil
}

// Queues is the queue tree the generated jobs use.
func (g *Generator) Queues() []quota.Spec { return g.queues }

// Days is the span of arrivals in days.
func (g *Generator) Days() float64 { return g.span / 86400 }

func (g *Generator) readFleet() error {
	f := g.cfg.Fleet
	rackLvl, blockLvl := len(f.Levels)-1, len(f.Levels)-2
	if i, err := f.LevelIndex("rack"); err == nil && i < len(f.Levels) {
		rackLvl = i
	}
	if i, err := f.LevelIndex("block"); err == nil && i < len(f.Levels) {
		blockLvl = i
	}
	rackLvl = max(rackLvl, 0)
	blockLvl = max(blockLvl, 0)
	byName := map[string]*accelInfo{}
	rack := map[[2]any]int{}
	block := map[[2]any]int{}
	for i := range f.Nodes {
		n := &f.Nodes[i]
		if n.Count == 0 || n.State == fleet.Down {
			continue
		}
		a := byName[n.Accel]
		if a == nil {
			t := f.Catalog.Types[f.Catalog.Index(n.Accel)]
			a = &accelInfo{name: n.Accel, speed: t.RelSpeed, price: t.PricePerHour, perNode: n.Count, cpu: n.CPUMilli, mem: n.MemoryMiB,
				rackLevel: f.Levels[rackLvl], blockLvl: f.Levels[blockLvl]}
			if a.speed <= 0 {
				a.speed = 1
			}
			byName[n.Accel] = a
			g.types = append(g.types, a)
		}
		a.count += int64(n.Count)
		if n.Count < a.perNode {
			a.perNode, a.cpu, a.mem = n.Count, n.CPUMilli, n.MemoryMiB
		}
		rk := [2]any{n.Accel, f.Ancestor(i, rackLvl)}
		rack[rk] += n.Count
		a.rackCap = max(a.rackCap, rack[rk])
		bk := [2]any{n.Accel, f.Ancestor(i, blockLvl)}
		block[bk] += n.Count
		a.blockCap = max(a.blockCap, block[bk])
	}
	if len(g.types) == 0 {
		return fmt.Errorf("generator: the fleet has no accelerators")
	}
	sortBySpeed(g.types)
	return nil
}

func sortBySpeed(ts []*accelInfo) {
	sort.SliceStable(ts, func(a, b int) bool {
		if ts[a].speed != ts[b].speed {
			return ts[a].speed > ts[b].speed
		}
		return ts[a].name < ts[b].name
	})
}

// makeTenants splits the fleet among k tenants with Zipf-like shares, each
// with a training, fine-tuning, batch and serving queue.
func (g *Generator) makeTenants(k int) []quota.Spec {
	shares := make([]float64, k)
	var sum float64
	for i := range shares {
		shares[i] = 1 / float64(i+1)
		sum += shares[i]
	}
	for i := range shares {
		shares[i] /= sum
	}
	split := []struct {
		suffix string
		part   float64
	}{{"train", 0.5}, {"tune", 0.2}, {"batch", 0.1}, {"serve", 0.2}}
	var specs []quota.Spec
	for i := range k {
		name := fmt.Sprintf("tenant-%d", i+1)
		if i < len(genTenantNames) {
			name = genTenantNames[i]
		}
		tq := map[string]quota.Limits{}
		leafQ := make([]map[string]quota.Limits, len(split))
		for s := range split {
			leafQ[s] = map[string]quota.Limits{}
		}
		for _, a := range g.types {
			// Whole accelerators per tenant; the first tenant takes what
			// rounding leaves over, so that quotas add up to the fleet.
			var mine int64
			if i == 0 {
				mine = a.count
				for j := 1; j < k; j++ {
					mine -= int64(math.Floor(shares[j] * float64(a.count)))
				}
			} else {
				mine = int64(math.Floor(shares[i] * float64(a.count)))
			}
			tq[a.name] = quota.Limits{Nominal: mine * 1000}
			left := mine
			for s := len(split) - 1; s >= 1; s-- {
				part := int64(math.Floor(split[s].part * float64(mine)))
				leafQ[s][a.name] = quota.Limits{Nominal: part * 1000}
				left -= part
			}
			leafQ[0][a.name] = quota.Limits{Nominal: left * 1000}
		}
		specs = append(specs, quota.Spec{Name: name, Weight: math.Round(shares[i]*1000) / 10, Quotas: tq})
		for s, sp := range split {
			specs = append(specs, quota.Spec{Name: name + "-" + sp.suffix, Parent: name, Quotas: leafQ[s]})
		}
	}
	return specs
}

// kindWords are the queue-name words that draw a kind of job to a queue.
var kindWords = [4][]string{
	sched.Training:   {"train", "pretrain", "research"},
	sched.FineTuning: {"tune", "finetune", "ft"},
	sched.Batch:      {"batch", "eval", "spot"},
	sched.Service:    {"serve", "serving", "infer", "inference", "svc"},
}

func (g *Generator) readQueues() error {
	tree, err := quota.New(g.queues)
	if err != nil {
		return fmt.Errorf("generator queues: %w", err)
	}
	typeByName := map[string]*accelInfo{}
	for _, a := range g.types {
		typeByName[a.name] = a
	}
	// Each tenant's demand is its quota scaled by a fixed draw, so that
	// some tenants ask for more than their share and some for less.
	skew := map[string]float64{}
	for i := 1; i < tree.Len(); i++ {
		if !tree.IsLeaf(i) {
			continue
		}
		l := &leaf{name: tree.Name(i), tenant: tree.Tenant(i)}
		if _, ok := skew[l.tenant]; !ok {
			skew[l.tenant] = math.Exp(0.35 * g.shape.NormFloat64())
		}
		tiers := map[string]bool{}
		var nominal float64
		for f := range tree.Flavors() {
			nominal += float64(tree.Nominal(i, f))
		}
		// The accelerator types of the nearest queue on the way up that has
		// quota decide where the queue's jobs may run.
		for _, q := range tree.Path(i) {
			for f, fl := range tree.Flavors() {
				accel, tier, _ := strings.Cut(fl, ":")
				if a := typeByName[accel]; a != nil && tree.Nominal(q, f) > 0 {
					if !containsType(l.types, a) {
						l.types = append(l.types, a)
					}
					tiers[tier] = true
				}
			}
			if len(l.types) > 0 {
				break
			}
		}
		if len(l.types) == 0 {
			l.types = append(l.types, g.types...)
			tiers[""] = true
		}
		sortBySpeed(l.types)
		if len(tiers) == 1 {
			for t := range tiers {
				l.tier = t
			}
		}
		if nominal <= 0 {
			nominal = 1000
		}
		l.weight = nominal * skew[l.tenant]
		lower := strings.ToLower(l.name)
		for k, words := range kindWords {
			for _, w := range words {
				if strings.Contains(lower, w) {
					l.kinds[k] = true
				}
			}
		}
		l.generic = l.kinds == [4]bool{}
		g.leaves = append(g.leaves, l)
	}
	if len(g.leaves) == 0 {
		return fmt.Errorf("generator: the queue tree has no leaf queue")
	}
	for k := range g.byKind {
		var pick []*leaf
		for _, l := range g.leaves {
			if l.kinds[k] {
				pick = append(pick, l)
			}
		}
		if len(pick) == 0 {
			for _, l := range g.leaves {
				if l.generic {
					pick = append(pick, l)
				}
			}
		}
		if len(pick) == 0 {
			pick = g.leaves
		}
		g.byKind[k] = pick
		cum := make([]float64, len(pick))
		var s float64
		for i, l := range pick {
			s += l.weight
			cum[i] = s
		}
		g.cumKind[k] = cum
	}
	return nil
}

func containsType(ts []*accelInfo, a *accelInfo) bool {
	for _, t := range ts {
		if t == a {
			return true
		}
	}
	return false
}

// setSpan fixes how long arrivals last: given, or long enough that the
// work offered fills the fleet to the target load.
func (g *Generator) setSpan() error {
	var capAccels float64
	for _, a := range g.types {
		capAccels += float64(a.count)
	}
	if g.cfg.Days > 0 {
		g.span = g.cfg.Days * 86400
	} else {
		span, err := g.loadSpan()
		if err != nil {
			return err
		}
		g.span = max(span, 3600)
	}
	// Mean of the diurnal, weekly and burst factors, so that the expected
	// number of arrivals over the span is Jobs.
	meanWeek := (5 + 2*genWeekendFactor) / 7
	meanBurst := 1 + (genBurstFactor-1)*genBurstsPerDay*genBurstSec/86400
	g.lambda0 = float64(g.cfg.Jobs) / g.span / (meanWeek * meanBurst)
	return nil
}

// loadSpan is the shortest span of arrivals at which no set of
// accelerator types is offered more than the target load. A job can run only
// on the types it names, so the work of the jobs whose options all lie in a
// set T must fit T's own capacity: for every T,
//
//	span >= demand(T) / (load × accelerators(T) − forever(T) / 2)
//
// where demand(T) is the accelerator-seconds of those jobs and forever(T)
// the accelerators their run-until-the-end services hold. Checking the
// whole fleet alone would let work that only some types can run pile up
// on those types without end. A pilot draw of genPilot jobs on its own
// random stream measures both.
func (g *Generator) loadSpan() (float64, error) {
	pilot := &Generator{cfg: g.cfg, types: g.types, leaves: g.leaves, byKind: g.byKind, cumKind: g.cumKind,
		shape: rand.New(rand.NewPCG(g.cfg.Seed, 0x9170))}
	bit := map[string]uint64{}
	for i, a := range g.types {
		if i < 63 {
			bit[a.name] = 1 << i
		}
	}
	type work struct{ fixed, forever float64 }
	byMask := map[uint64]*work{}
	for range genPilot {
		j := pilot.draw(0)
		var mask uint64
		for _, gg := range j.Gangs {
			for _, name := range gg.Shape.Accel {
				mask |= bit[name]
			}
		}
		w := byMask[mask]
		if w == nil {
			w = &work{}
			byMask[mask] = w
		}
		if j.Duration == NoDuration {
			w.forever += j.accels()
			continue
		}
		w.fixed += j.accels() * float64(j.Duration) / g.speedOf(&j)
	}
	scale := float64(g.cfg.Jobs) / genPilot
	// The sets worth checking are the unions of the jobs' option sets
	// (a union of sets that each fit is what could overflow).
	// Masks in order, so that the sums below are the same on every run.
	masks := make([]uint64, 0, len(byMask))
	for m := range byMask {
		masks = append(masks, m)
	}
	slices.Sort(masks)
	sets := map[uint64]bool{}
	for _, m := range masks {
		if m == 0 {
			continue
		}
		for s := range sets {
			sets[s|m] = true
		}
		sets[m] = true
	}
	var span float64
	for set := range sets {
		var capAccels, fixed, forever float64
		for i, a := range g.types {
			if i < 63 && set&(1<<i) != 0 {
				capAccels += float64(a.count)
			}
		}
		for _, m := range masks {
			if w := byMask[m]; m != 0 && m&^set == 0 {
				fixed += w.fixed * scale
				forever += w.forever * scale
			}
		}
		room := g.cfg.Load*capAccels - forever/2
		if room <= 0 {
			return 0, fmt.Errorf("generator: %d jobs hold more accelerators in run-forever services than the fleet's %v of %s at load %v; ask for fewer jobs or give --days",
				g.cfg.Jobs, capAccels, g.setNames(set), g.cfg.Load)
		}
		span = max(span, fixed/room)
	}
	return span, nil
}

// setNames spells a set of accelerator types for a message.
func (g *Generator) setNames(set uint64) string {
	var out []string
	for i, a := range g.types {
		if i < 63 && set&(1<<i) != 0 {
			out = append(out, a.name)
		}
	}
	return strings.Join(out, "+")
}

func (j *Job) accels() float64 {
	var a float64
	for _, gg := range j.Gangs {
		a += float64(gg.Replicas) * float64(gg.Shape.GPUMilli()) / 1000
	}
	return a
}

// speedOf is the mean relative speed of the job's accelerator options,
// weighted by how many of each the fleet has.
func (g *Generator) speedOf(j *Job) float64 {
	var sum, n float64
	for _, gg := range j.Gangs {
		for _, name := range gg.Shape.Accel {
			for _, a := range g.types {
				if a.name == name {
					sum += a.speed * float64(a.count)
					n += float64(a.count)
				}
			}
		}
	}
	if n == 0 {
		return 1
	}
	return sum / n
}

// intensity is the arrival rate's shape at time t (seconds from a Monday
// midnight), without the burst factor.
func intensity(t float64) float64 {
	day := math.Mod(t, 7*86400) / 86400
	hour := math.Mod(t, 86400) / 3600
	f := 1 + genDiurnalAmp*math.Cos(2*math.Pi*(hour-genPeakHour)/24)
	if day >= 5 {
		f *= genWeekendFactor
	}
	return f
}

// nextArrival draws the next arrival time by thinning a Poisson process.
func (g *Generator) nextArrival() float64 {
	lmax := g.lambda0 * (1 + genDiurnalAmp) * genBurstFactor
	for {
		g.t += g.arr.ExpFloat64() / lmax
		for g.burstStart+genBurstSec < g.t {
			g.burstStart += genBurstSec + g.arr.ExpFloat64()/(genBurstsPerDay/86400)
		}
		rate := g.lambda0 * intensity(g.t)
		if g.t >= g.burstStart {
			rate *= genBurstFactor
		}
		if g.arr.Float64()*lmax < rate {
			return g.t
		}
	}
}

// Next returns the next job, or io.EOF after the last.
func (g *Generator) Next() (Job, error) {
	if g.n >= g.cfg.Jobs {
		return Job{}, io.EOF
	}
	return g.draw(int64(g.nextArrival())), nil
}

func (g *Generator) pickLeaf(k sched.Kind) *leaf {
	cum := g.cumKind[k]
	x := g.shape.Float64() * cum[len(cum)-1]
	i := sort.SearchFloat64s(cum, x)
	return g.byKind[k][min(i, len(cum)-1)]
}

func (g *Generator) pickKind() sched.Kind {
	x := g.shape.Float64()
	for k, s := range genKindShare {
		if x < s {
			return sched.Kind(k)
		}
		x -= s
	}
	return sched.Batch
}

func (g *Generator) lognormal(median, sigma, lo, hi float64) int64 {
	v := median * math.Exp(sigma*g.shape.NormFloat64())
	return int64(math.Round(min(max(v, lo), hi)))
}

// trainingTypes picks the accelerator types of a training gang from its
// queue's types (fastest first): a main type drawn in proportion to the
// fleet's count of each, as a lab spreads its training runs over the
// generations it owns, then as a fallback the next faster type, or the next
// slower one for the fastest.
func trainingTypes(r *rand.Rand, types []*accelInfo) []*accelInfo {
	if len(types) < 2 {
		return types
	}
	var total float64
	for _, a := range types {
		total += float64(a.count)
	}
	x, main := r.Float64()*total, len(types)-1
	for i, a := range types {
		if x < float64(a.count) {
			main = i
			break
		}
		x -= float64(a.count)
	}
	fallback := main - 1
	if main == 0 {
		fallback = 1
	}
	return []*accelInfo{types[main], types[fallback]}
}

func pickWeighted(r *rand.Rand, vals []int, probs []float64) int {
	x := r.Float64()
	for i, p := range probs {
		if x < p {
			return vals[i]
		}
		x -= p
	}
	return vals[len(vals)-1]
}

func names(ts []*accelInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.name
	}
	return out
}

// replicaShape gives a replica of d accelerators its share of the
// smallest node's CPU and memory among the options.
func replicaShape(opts []*accelInfo, d int) (cpu, mem int64) {
	cpu, mem = math.MaxInt64, math.MaxInt64
	for _, a := range opts {
		cpu = min(cpu, a.cpu*int64(d)/int64(a.perNode))
		mem = min(mem, a.mem*int64(d)/int64(a.perNode))
	}
	// Leave a tenth of the node for the system.
	return cpu * 9 / 10 / 1000 * 1000, mem * 9 / 10 / 1024 * 1024
}

// draw makes job number g.n arriving at t.
func (g *Generator) draw(at int64) Job {
	g.n++
	k := g.pickKind()
	l := g.pickLeaf(k)
	r := g.shape
	j := Job{Arrival: at, Job: sched.Job{Tenant: l.tenant, Queue: l.name, Kind: k, Tier: l.tier}}
	prefix := [...]string{"train", "tune", "batch", "svc"}[k]
	j.ID = sched.JobID(fmt.Sprintf("%s-%07d", prefix, g.n))
	opts := l.types
	switch k {
	case sched.Training:
		opts = trainingTypes(r, opts)
		per := opts[0].perNode
		rackCap, blockCap := 0, 0
		for _, a := range opts {
			per = min(per, a.perNode)
			rackCap, blockCap = max(rackCap, a.rackCap), max(blockCap, a.blockCap)
		}
		total := pickWeighted(r, []int{64, 128, 256, 512}, []float64{0.4, 0.3, 0.2, 0.1})
		total = max(per, min(total, blockCap)/per*per)
		cpu, mem := replicaShape(opts, per)
		j.Gangs = []sched.Gang{{Name: "workers", Replicas: total / per, Shape: place.Request{Accel: names(opts), Devices: per, CPUMilli: cpu, MemoryMiB: mem}}}
		j.Topology = sched.Topology{Level: opts[0].blockLvl, Required: true}
		if total <= rackCap {
			j.Topology.Level = opts[0].rackLevel
		}
		j.Duration = g.lognormal(12*3600, 0.8, 3600, 7*86400)
		j.CheckpointSec = 1800
		if r.Float64() < 0.7 {
			j.Priority = 100
		} else {
			j.Priority, j.Preemptible, j.NoticeSec = 50, true, 300
		}
	case sched.FineTuning:
		opts = opts[:min(3, len(opts))]
		n := pickWeighted(r, []int{1, 2, 4, 8, 16}, []float64{0.3, 0.25, 0.2, 0.15, 0.1})
		per := min(n, 4, opts[0].perNode)
		for _, a := range opts {
			per = min(per, a.perNode)
		}
		reps := max(1, n/per)
		cpu, mem := replicaShape(opts, per)
		gang := sched.Gang{Name: "trainer", Replicas: reps, Shape: place.Request{Accel: names(opts), Devices: per, CPUMilli: cpu, MemoryMiB: mem}}
		if reps > 1 {
			gang.MinReplicas = (reps + 1) / 2
			j.Topology = sched.Topology{Level: opts[0].rackLevel}
		}
		j.Gangs = []sched.Gang{gang}
		j.Duration = g.lognormal(2*3600, 1.0, 600, 2*86400)
		j.Priority, j.Preemptible, j.NoticeSec, j.CheckpointSec = 50, true, 60, 600
	case sched.Batch:
		// Batch work prefers the cheapest accelerators.
		cheap := append([]*accelInfo(nil), opts...)
		sort.SliceStable(cheap, func(a, b int) bool { return cheap[a].price < cheap[b].price })
		req := place.Request{Accel: names(cheap)}
		switch x := r.Float64(); {
		case x < 0.4:
			req.Milli = int32([]int{125, 250, 500}[r.IntN(3)])
			req.CPUMilli, req.MemoryMiB = 4000, 16<<10
		case x < 0.9:
			req.Devices = 1
		default:
			req.Devices = 2
		}
		if req.Devices > 0 {
			req.CPUMilli, req.MemoryMiB = replicaShape(cheap, req.Devices)
		}
		j.Gangs = []sched.Gang{{Name: "task", Replicas: 1, Shape: req}}
		j.Duration = g.lognormal(1200, 1.2, 60, 86400)
		j.Priority, j.Preemptible, j.NoticeSec = 10, true, 30
	case sched.Service:
		opts = opts[:min(2, len(opts))]
		d := 1
		if r.Float64() < 0.2 {
			d = 2
		}
		cpu, mem := replicaShape(opts, d)
		j.Gangs = []sched.Gang{{Name: "server", Replicas: []int{2, 3, 4, 6, 8}[r.IntN(5)], Shape: place.Request{Accel: names(opts), Devices: d, CPUMilli: cpu, MemoryMiB: mem}}}
		j.Priority = 200
		if r.Float64() < genForeverShare {
			j.Duration = NoDuration
		} else {
			j.Duration = g.lognormal(12*3600, 0.8, 3600, 7*86400)
		}
	}
	if j.Duration != NoDuration && k != sched.Service {
		est := float64(j.Duration) * math.Exp(genEstMu+genEstSigma*r.NormFloat64())
		j.EstimatedSec = max(300, int64(math.Ceil(est/300))*300)
		slowest := math.Inf(1)
		for _, name := range j.Gangs[0].Shape.Accel {
			for _, a := range g.types {
				if a.name == name {
					slowest = min(slowest, a.speed)
				}
			}
		}
		if math.IsInf(slowest, 1) {
			slowest = 1
		}
		j.MaxSec = int64(math.Ceil(genMaxFactor * float64(j.EstimatedSec) / slowest))
	}
	if g.cfg.Deferrable > 0 && (k == sched.Batch || k == sched.FineTuning) && j.EstimatedSec > 0 && g.deferral.Float64() < g.cfg.Deferrable {
		j.Deadline = at + 2*j.EstimatedSec + 2*3600 + int64(g.deferral.IntN(22*3600))
		j.Interruptible = j.CheckpointSec > 0
	}
	return j
}
