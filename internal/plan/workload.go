package plan

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
)

// Arrival is one representative job of a synthetic workload.
type Arrival struct {
	// Series indexes the Demand the job stands for.
	Series int
	// At is its arrival on the replay's clock, in seconds: the warm-up
	// weeks, then the horizon's.
	At int64
	// Week is the horizon week it arrives in (1-based); 0 in the warm-up.
	Week int
	// Replicas of PerReplica whole accelerators, or one replica of Milli
	// thousandths of one.
	Replicas, PerReplica int
	Milli                int32
	// Sec is the runtime at relative speed 1.0.
	Sec int64
}

// WorkloadOptions shape a synthetic workload.
type WorkloadOptions struct {
	Scenario Scenario
	// Seed drives the arrival times.
	Seed uint64
	// MaxJobsPerWeek bounds the jobs of a week, all series together, each
	// series its share by work (at least minJobsPerWeek): past its share, a
	// series' jobs run longer instead of being more (0:
	// DefaultMaxJobsPerWeek).
	MaxJobsPerWeek int
	// Even spreads a week's jobs evenly over it by its profile instead of
	// at random: the replay is then exact arithmetic (no job waits while
	// a type's capacity exceeds its demand), an optimistic bound.
	Even bool
}

// DefaultMaxJobsPerWeek bounds the jobs of a week of a plan's workload. A
// replay's cost grows with its jobs and, where the fleet is short, with
// the jobs waiting at each cycle; 500 jobs a week (three an hour) keep a
// year's replay to about a second of one core (docs/BENCHMARKS.md).
const DefaultMaxJobsPerWeek = 500

// minJobsPerWeek is the fewest jobs a series' share of the budget allows.
const minJobsPerWeek = 20

// Workload turns demand into representative jobs: in each week (the
// warm-up weeks replay the last weeks of history, then the horizon's
// weeks the scenario's forecast) a series' accelerator-hours become jobs
// of its representative shape, whose count carries its fraction to the
// next week so that no work is lost or made up. Arrivals follow the
// series' weekly profile: each job draws its slot of the week with the
// slot's share of the work, and a uniform time within it, from a stream
// seeded by the seed and the series (so the same seed gives the same jobs
// for P50 and P90 up to the extra work); or, with Even, they are spread
// evenly by the profile. Jobs are split into replicas of
// at most perNode(class) accelerators, the largest node of the class.
func (p *Problem) Workload(o WorkloadOptions) []Arrival {
	budget := o.MaxJobsPerWeek
	if budget <= 0 {
		budget = DefaultMaxJobsPerWeek
	}
	work := make([]float64, len(p.Demand))
	total := 0.0
	for si := range p.Demand {
		for w := 1; w <= p.Horizon; w++ {
			work[si] += p.Demand[si].Week(o.Scenario, w)
		}
		total += work[si]
	}
	var out []Arrival
	for si := range p.Demand {
		d := &p.Demand[si]
		maxJobs := budget
		if total > 0 {
			maxJobs = max(minJobsPerWeek, int(float64(budget)*work[si]/total))
		}
		h := fnv.New64a()
		h.Write([]byte(d.Key.String()))
		rng := rand.New(rand.NewPCG(o.Seed, h.Sum64()))
		replicas, per, milli, scale := p.split(d)
		carry := 0.0
		for wk := 0; wk < p.Warmup+p.Horizon; wk++ {
			var work float64
			week := wk - p.Warmup + 1
			if week < 1 {
				if i := len(d.History) - p.Warmup + wk; i >= 0 && i < len(d.History) {
					work = d.History[i]
				}
			} else {
				work = d.Week(o.Scenario, week)
			}
			job := d.Shape.Work() * scale
			want := (work + carry) / job
			n := int(math.Floor(want + 1e-9))
			sec := d.Shape.Hours * 3600
			if n > maxJobs {
				// More, shorter jobs would cost replay time for little
				// change in waits: the work goes into fewer, longer jobs.
				sec *= float64(n) / float64(maxJobs)
				n = maxJobs
			}
			carry = work + carry - float64(n)*job*sec/(d.Shape.Hours*3600)
			for k := range n {
				u := rng.Float64()
				if o.Even {
					u = (float64(k) + 0.5) / float64(n)
				}
				at := int64(wk)*WeekSec + slotTime(d.Profile, u)
				out = append(out, Arrival{Series: si, At: at, Week: max(week, 0), Replicas: replicas, PerReplica: per,
					Milli: milli, Sec: max(1, int64(math.Round(sec)))})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// split turns a series' shape into replicas: a share of one accelerator,
// or whole accelerators spread over as few replicas as the class's
// largest node allows. scale is the work of the job made over the work of
// the shape (rounding up to whole accelerators), by which the job count
// shrinks so the work stays the same.
func (p *Problem) split(d *Demand) (replicas, per int, milli int32, scale float64) {
	a := d.Shape.Accels
	if a < 1 {
		m := int32(math.Round(a * 1000))
		return 1, 0, min(max(m, 1), 999), float64(min(max(m, 1), 999)) / 1000 / a
	}
	total := int(math.Round(a))
	node := p.perNode(d.Key.Accel)
	replicas = (total + node - 1) / node
	per = (total + replicas - 1) / replicas
	return replicas, per, 0, float64(replicas*per) / a
}

// perNode is the most accelerators one node of the class has, in the
// fleet or the catalog (8 when neither has one).
func (p *Problem) perNode(class string) int {
	best := 0
	for i := range p.Fleet.Nodes {
		if n := &p.Fleet.Nodes[i]; class == AnyAccel || n.Accel == class {
			best = max(best, n.Count)
		}
	}
	for _, m := range p.Catalog.Models {
		if class == AnyAccel || m.Accel == class {
			best = max(best, m.Count)
		}
	}
	if best == 0 {
		return 8
	}
	return best
}

// slotTime is the time within a week, in seconds from its start, at
// which the share u of its work has arrived, by the profile (the inverse
// of the profile's distribution function, linear within a slot).
func slotTime(profile []float64, u float64) int64 {
	slots := len(profile)
	if slots == 0 {
		return int64(u * WeekSec)
	}
	span := float64(WeekSec) / float64(slots)
	acc := 0.0
	for s, share := range profile {
		if u < acc+share || s == slots-1 {
			within := 0.0
			if share > 0 {
				within = min(max((u-acc)/share, 0), 1)
			}
			return min(int64((float64(s)+within)*span), WeekSec-1)
		}
		acc += share
	}
	return 0
}
