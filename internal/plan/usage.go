package plan

import (
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
