package plan

import (
	"fmt"
	"sort"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

// FromUsage turns metered usage records (internal/ledger's) into jobs of
// a history: the records of one job are one job, arriving when its first
// holding began (the usage of a job says when it ran, not when it was
// asked for: on a fleet that was short, the history is as late as the
// fleet was), taking the devices its replicas held at their largest, with
// the accelerator-time of all its records as its work. An open record
// counts up to nowMs. Records without a type (CPU-only) are left out.
// The jobs go to an Aggregator like those of any other source.
func FromUsage(us []ledger.Usage, nowMs int64) []JobDemand {
	type replica struct{ gang, rep int }
	type acc struct {
		key     Key
		firstMs int64
		held    map[replica]float64 // accelerators a replica held at most
		work    float64             // accelerator-hours
	}
	jobs := map[string]*acc{}
	var order []string
	for _, u := range us {
		if u.Type == "" || u.Devices <= 0 {
			continue
		}
		to := u.ToMs
		if u.Open() {
			to = nowMs
		}
		if to <= u.FromMs {
			continue
		}
		milli := u.Milli
		if milli <= 0 {
			milli = 1000
		}
		accels := float64(u.Devices) * float64(milli) / 1000
		a := jobs[u.Job]
		if a == nil {
			a = &acc{key: Key{Tenant: u.Tenant, Kind: u.Kind, Accel: u.Type}, firstMs: u.FromMs, held: map[replica]float64{}}
			jobs[u.Job] = a
			order = append(order, u.Job)
		}
		a.firstMs = min(a.firstMs, u.FromMs)
		r := replica{u.Gang, u.Replica}
		a.held[r] = max(a.held[r], accels)
		a.work += accels * float64(to-u.FromMs) / 3_600_000
	}
	sort.Strings(order)
	out := make([]JobDemand, 0, len(order))
	for _, id := range order {
		a := jobs[id]
		total := 0.0
		for _, h := range a.held {
			total += h
		}
		out = append(out, JobDemand{Key: a.key, Arrival: a.firstMs / 1000, Accels: total, Hours: a.work / total})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Arrival < out[j].Arrival })
	return out
}

// MeteredHistory sums metered usage records into series of the
// accelerator-hours held in each step of stepSec seconds from fromMs, per
// tenant x kind x accelerator type: usage as it was consumed, each
// record's time split over the steps it covered, rather than each job's
// work in the step it arrived in (the trace and jobs sources). The
// history has the whole steps of [fromMs, toMs); time outside them, and
// open records past toMs, are left out. Each series' shape is that of its
// jobs (FromUsage) within the window. Records without a type (CPU-only)
// are left out, as in FromUsage.
func MeteredHistory(us []ledger.Usage, stepSec, fromMs, toMs int64) (History, error) {
	if stepSec <= 0 || WeekSec%stepSec != 0 {
		return History{}, fmt.Errorf("step %ds: want a whole number of seconds that divides a week", stepSec)
	}
	stepMs := stepSec * 1000
	n := (toMs - fromMs) / stepMs
	if n < 1 {
		return History{}, fmt.Errorf("the window %s to %s is shorter than one step of %ds", ledger.FormatTime(fromMs), ledger.FormatTime(toMs), stepSec)
	}
	end := fromMs + n*stepMs
	clipped := make([]ledger.Usage, 0, len(us))
	for _, u := range us {
		if u.Type == "" || u.Devices <= 0 {
			continue
		}
		if u.Open() || u.ToMs > end {
			u.ToMs, u.End = end, "finished"
		}
		u.FromMs = max(u.FromMs, fromMs)
		if u.ToMs > u.FromMs {
			clipped = append(clipped, u)
		}
	}
	values := map[Key][]float64{}
	for _, u := range clipped {
		k := Key{Tenant: u.Tenant, Kind: u.Kind, Accel: u.Type}
		v := values[k]
		if v == nil {
			v = make([]float64, n)
			values[k] = v
		}
		milli := u.Milli
		if milli <= 0 {
			milli = 1000
		}
		accels := float64(u.Devices) * float64(milli) / 1000
		for i := (u.FromMs - fromMs) / stepMs; i < n; i++ {
			lo, hi := max(u.FromMs, fromMs+i*stepMs), min(u.ToMs, fromMs+(i+1)*stepMs)
			if hi <= lo {
				break
			}
			v[i] += accels * float64(hi-lo) / 3_600_000
		}
	}
	shapes := map[Key]*aggSeries{}
	for _, j := range FromUsage(clipped, end) {
		s := shapes[j.Key]
		if s == nil {
			s = &aggSeries{}
			shapes[j.Key] = s
		}
		s.accels, s.hours = append(s.accels, j.Accels), append(s.hours, j.Hours)
		s.jobs++
	}
	keys := make([]Key, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	h := History{StepSec: stepSec}
	for _, k := range keys {
		sr := Series{Key: k, Values: values[k]}
		// A job whose records name several types or kinds is one job of
		// its first record's series; the others have its time, no shape.
		if s := shapes[k]; s != nil {
			sr.Jobs, sr.Shape = s.jobs, Shape{Accels: median(s.accels), Hours: median(s.hours)}
		}
		h.Series = append(h.Series, sr)
	}
	return h, nil
}
