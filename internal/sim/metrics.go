package sim

import (
	"math"
	"sort"
	"strings"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// Result is everything a run measured.
type Result struct {
	Summary Summary     `json:"summary"`
	Samples []Sample    `json:"samples"`
	Jobs    []JobRecord `json:"-"`
	// metered is the core's usage stream summed per tenant, accelerator
	// milli-seconds, open holdings counted up to the end.
	metered map[string]int64
	// measured is what the engine measured from the actions per tenant,
	// accelerator milli-seconds.
	measured map[string]float64
}

// Sample is the fleet's state over one interval of the time series; the
// interval ends at T. Utilization, fragmentation, power and busy
// accelerators are averages over the interval; queue lengths are counts at T.
type Sample struct {
	T int64 `json:"t"`
	// Utilization is busy accelerator-time over available accelerator-time
	// (nodes that are up).
	Utilization float64 `json:"utilization"`
	// Fragmentation is the share of free accelerator capacity that lies on
	// nodes already partly in use, so that a job wanting whole nodes cannot
	// have it.
	Fragmentation float64 `json:"fragmentation"`
	// UtilizationByType is Utilization for each accelerator type.
	UtilizationByType map[string]float64 `json:"utilizationByType,omitempty"`
	Pending           int                `json:"pending"`
	Running           int                `json:"running"`
	BusyAccels        float64            `json:"busyAccels"`
	CapacityAccels    float64            `json:"capacityAccels"`
	PowerKW           float64            `json:"powerKW"`
}

// JobRecord is one job's story in a run. Times are virtual seconds; -1
// means "did not happen".
type JobRecord struct {
	ID      string  `json:"id"`
	Tenant  string  `json:"tenant"`
	Queue   string  `json:"queue"`
	Kind    string  `json:"kind"`
	Accels  float64 `json:"accels"`
	Arrival int64   `json:"arrival"`
	Start   int64   `json:"start"`
	End     int64   `json:"end"`
	// Wait is the time from arrival to the first start.
	Wait        int64   `json:"wait"`
	Status      string  `json:"status"`
	Preemptions int     `json:"preemptions"`
	Requeues    int     `json:"requeues"`
	AccelHours  float64 `json:"accelHours"`
	// LostAccelHours is the work thrown away by preemptions and failures
	// (accelerator-time since the last checkpoint).
	LostAccelHours float64 `json:"lostAccelHours"`
	Reason         string  `json:"reason,omitempty"`
}

// Dist summarises a distribution of durations in seconds.
type Dist struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Breakdown is a distribution over all jobs, by kind and by tenant.
type Breakdown struct {
	All      Dist            `json:"all"`
	ByKind   map[string]Dist `json:"byKind"`
	ByTenant map[string]Dist `json:"byTenant"`
}

// TenantShare compares what a tenant used with what it is entitled to.
type TenantShare struct {
	Tenant string `json:"tenant"`
	// Entitlement is the tenant's nominal quota as a share of the fleet's
	// (summed over flavors).
	Entitlement float64 `json:"entitlement"`
	// Share is the tenant's part of all accelerator-time used.
	Share      float64 `json:"share"`
	AccelHours float64 `json:"accelHours"`
}

// JobCounts counts jobs by outcome.
type JobCounts struct {
	Total        int `json:"total"`
	Finished     int `json:"finished"`
	TimedOut     int `json:"timedOut"`
	Rejected     int `json:"rejected"`
	RunningAtEnd int `json:"runningAtEnd"`
	PendingAtEnd int `json:"pendingAtEnd"`
	// Abandoned counts jobs withdrawn unstarted (Config.AbandonAfterSec).
	Abandoned int            `json:"abandoned,omitempty"`
	ByKind    map[string]int `json:"byKind"`
}

// Summary is a run's headline figures.
type Summary struct {
	Policy string `json:"policy"`
	Seed   uint64 `json:"seed"`
	Nodes  int    `json:"nodes"`
	// Accelerators counts the fleet's accelerators by type.
	Accelerators map[string]int `json:"accelerators"`
	Start        int64          `json:"start"`
	End          int64          `json:"end"`
	// MakespanSec runs from the first arrival to the end of the last job
	// that has a duration.
	MakespanSec int64     `json:"makespanSec"`
	Jobs        JobCounts `json:"jobs"`
	Wait        Breakdown `json:"wait"`
	Completion  Breakdown `json:"completion"`
	Utilization float64   `json:"utilization"`
	// UtilizationByType is the utilization of each accelerator type's
	// available time: work that only some types can run loads them
	// unevenly.
	UtilizationByType map[string]float64 `json:"utilizationByType"`
	Fragmentation     float64            `json:"fragmentation"`
	Tenants           []TenantShare      `json:"tenants"`
	Preemptions       int64              `json:"preemptions"`
	Shrinks           int64              `json:"shrinks"`
	Requeues          int64              `json:"requeues"`
	// Suspensions counts the stops of interruptible jobs at a checkpoint,
	// their work kept (carbon-aware shifting, power cap cuts).
	Suspensions  int64 `json:"suspensions,omitempty"`
	NodeFailures int64 `json:"nodeFailures"`
	// FailureRequeues are the requeues caused by node failures.
	FailureRequeues int64 `json:"failureRequeues"`
	Rejections      int64 `json:"rejections"`
	// Work lost, in accelerator-hours, by cause.
	LostAccelHoursPreemption float64 `json:"lostAccelHoursPreemption"`
	LostAccelHoursFailure    float64 `json:"lostAccelHoursFailure"`
	AccelHours               float64 `json:"accelHours"`
	// Carbon is what a metered run (RunMetered) emitted, per tenant, site
	// and day; nil when the run was not metered.
	Carbon *CarbonSummary `json:"carbon,omitempty"`
	// EnergyKWh is at the facility meter (IT energy x PUE); ITEnergyKWh
	// is what the accelerators drew.
	EnergyKWh     float64 `json:"energyKWh"`
	ITEnergyKWh   float64 `json:"itEnergyKWh"`
	ScheduleCalls int64   `json:"scheduleCalls"`
	Actions       int64   `json:"actions"`
	// Accounting is the run's accounts, when Config.Accounting is set.
	Accounting *AccountResult `json:"accounting,omitempty"`
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func (e *engine) result() *Result {
	r := &Result{Samples: e.samples, metered: e.usageMS, measured: map[string]float64{}}
	for t, ms := range e.tenantMS {
		r.measured[e.tenants[t]] += ms
	}
	s := &r.Summary
	s.Policy = strings.Join(e.cfg.Sched.Placement, ",")
	if s.Policy == "" {
		s.Policy = strings.Join(sched.DefaultPlacement, ",")
	}
	s.Seed = e.cfg.Seed
	s.Nodes = len(e.nodes)
	s.Accelerators = map[string]int{}
	for _, c := range e.classes {
		s.Accelerators[c.accel] += 0
	}
	for _, n := range e.nodes {
		if n.class >= 0 {
			s.Accelerators[e.classes[n.class].accel] += int(n.cap / 1000)
		}
	}
	s.Start, s.End = e.origin, e.now
	s.Jobs.ByKind = map[string]int{}
	kindNames := sched.KindNames()

	// Records in arrival order.
	sort.Sort(byArrival{e.records, e.recSeq})
	r.Jobs = e.records
	e.records, e.recSeq = nil, nil
	kindIdx := map[string]int{}
	for i, k := range kindNames {
		kindIdx[k] = i
	}
	waits := newGroups(len(e.tenants))
	jcts := newGroups(len(e.tenants))
	for i := range r.Jobs {
		rec := &r.Jobs[i]
		k, t := kindIdx[rec.Kind], e.tenantIdx[rec.Tenant]
		s.Jobs.Total++
		s.Jobs.ByKind[rec.Kind]++
		switch rec.Status {
		case StatusFinished:
			s.Jobs.Finished++
			jcts.add(k, t, float64(rec.End-rec.Arrival))
		case StatusTimedOut:
			s.Jobs.TimedOut++
		case StatusRejected:
			s.Jobs.Rejected++
		case StatusRunning:
			s.Jobs.RunningAtEnd++
		case StatusPending:
			s.Jobs.PendingAtEnd++
		case StatusAbandoned:
			s.Jobs.Abandoned++
		}
		if rec.Wait >= 0 {
			waits.add(k, t, float64(rec.Wait))
		}
	}
	lastEnd := max(e.lastEnd, e.origin)
	s.MakespanSec = lastEnd - e.origin
	s.Wait = waits.breakdown(kindNames, e.tenants)
	s.Completion = jcts.breakdown(kindNames, e.tenants)
	if e.capInt > 0 {
		s.Utilization = round6(e.busyInt / e.capInt)
	}
	s.UtilizationByType = e.utilizationByType(false)
	for t, u := range s.UtilizationByType {
		s.UtilizationByType[t] = round6(u)
	}
	if span := float64(e.now - e.origin); span > 0 {
		s.Fragmentation = round6(e.fragInt / span)
	}
	var total float64
	for _, ms := range e.tenantMS {
		total += ms
	}
	ent := e.entitlements()
	for t, name := range e.tenants {
		ts := TenantShare{Tenant: name, Entitlement: round6(ent[name]), AccelHours: round6(e.tenantMS[t] / 1000 / 3600)}
		if total > 0 {
			ts.Share = round6(e.tenantMS[t] / total)
		}
		s.Tenants = append(s.Tenants, ts)
	}
	s.AccelHours = round6(total / 1000 / 3600)
	s.Preemptions, s.Shrinks, s.Requeues = e.c.preemptions, e.c.shrinks, e.c.requeues
	s.Suspensions = e.c.suspensions
	s.NodeFailures, s.FailureRequeues, s.Rejections = e.c.nodeFailures, e.c.failRequeues, e.c.rejections
	s.LostAccelHoursPreemption = round6(e.c.lostPreempt / 1000 / 3600)
	s.LostAccelHoursFailure = round6(e.c.lostFailure / 1000 / 3600)
	s.EnergyKWh = round6(e.energyJ / 3.6e6)
	s.ITEnergyKWh = round6(e.itEnergyJ / 3.6e6)
	s.ScheduleCalls, s.Actions = e.c.scheduleCalls, e.c.actions
	for i := range r.Samples {
		p := &r.Samples[i]
		p.Utilization, p.Fragmentation = round6(p.Utilization), round6(p.Fragmentation)
		for t, u := range p.UtilizationByType {
			p.UtilizationByType[t] = round6(u)
		}
		p.BusyAccels, p.CapacityAccels, p.PowerKW = round6(p.BusyAccels), round6(p.CapacityAccels), round6(p.PowerKW)
	}
	return r
}

type byArrival struct {
	recs []JobRecord
	seq  []int64
}

func (b byArrival) Len() int           { return len(b.recs) }
func (b byArrival) Less(i, j int) bool { return b.seq[i] < b.seq[j] }
func (b byArrival) Swap(i, j int) {
	b.recs[i], b.recs[j] = b.recs[j], b.recs[i]
	b.seq[i], b.seq[j] = b.seq[j], b.seq[i]
}

// entitlements gives each tenant its nominal quota's share of the root's,
// summed over flavors.
func (e *engine) entitlements() map[string]float64 {
	out := map[string]float64{}
	var root float64
	for f := range e.tree.Flavors() {
		root += float64(e.tree.Nominal(0, f))
	}
	if root <= 0 {
		return out
	}
	for i := 1; i < e.tree.Len(); i++ {
		if e.tree.Parent(i) != 0 {
			continue
		}
		var sum float64
		for f := range e.tree.Flavors() {
			sum += float64(e.tree.Nominal(i, f))
		}
		out[e.tree.Name(i)] = sum / root
	}
	return out
}

// groups collects values overall, per kind and per tenant.
type groups struct {
	all    []float64
	kind   [][]float64
	tenant [][]float64
}

func newGroups(tenants int) *groups {
	return &groups{kind: make([][]float64, len(sched.KindNames())), tenant: make([][]float64, tenants)}
}

func (g *groups) add(kind int, tenant int32, v float64) {
	g.all = append(g.all, v)
	g.kind[kind] = append(g.kind[kind], v)
	g.tenant[tenant] = append(g.tenant[tenant], v)
}

func (g *groups) breakdown(kinds, tenants []string) Breakdown {
	b := Breakdown{All: dist(g.all), ByKind: map[string]Dist{}, ByTenant: map[string]Dist{}}
	for k, vs := range g.kind {
		if len(vs) > 0 {
			b.ByKind[kinds[k]] = dist(vs)
		}
	}
	for t, vs := range g.tenant {
		if len(vs) > 0 {
			b.ByTenant[tenants[t]] = dist(vs)
		}
	}
	return b
}

// dist sorts vs and summarises it; percentiles are nearest-rank.
func dist(vs []float64) Dist {
	if len(vs) == 0 {
		return Dist{}
	}
	sort.Float64s(vs)
	var sum float64
	for _, v := range vs {
		sum += v
	}
	return Dist{
		Count: len(vs), Mean: round6(sum / float64(len(vs))),
		P50: Percentile(vs, 50), P95: Percentile(vs, 95), P99: Percentile(vs, 99), Max: vs[len(vs)-1],
	}
}

// Percentile is the nearest-rank p-th percentile of sorted values.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	k = min(max(k, 0), len(sorted)-1)
	return sorted[k]
}
