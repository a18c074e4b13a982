package metering

import (
	"maps"
	"slices"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// CommittedFlavor is the quota flavor of an accelerator type's committed
// tier ("h100:committed").
func CommittedFlavor(typ string) string { return quota.Flavor(typ, sched.TierCommitted) }

type flavorKey struct{ tenant, flavor string }

// committed returns, per tenant and committed-tier flavor, the nominal
// quota in milli-accelerators that its commitments call for at now: the
// sum of the active commitments of the type, at whatever site (the queue
// tree has no sites), and 0 for a type whose commitments are none of
// them in force.
func committed(l *ledger.Ledger, now int64) map[flavorKey]int64 {
	out := map[flavorKey]int64{}
	for _, c := range l.Commitments() {
		k := flavorKey{c.Tenant, CommittedFlavor(c.Type)}
		if c.StartMs <= now && now < c.EndMs {
			out[k] += int64(c.Count) * 1000
		} else if _, ok := out[k]; !ok {
			out[k] = 0
		}
	}
	return out
}

// limits is the committed tier's quota for a nominal: no borrowing beyond
// it, so the committed tier holds at most what was contracted (more work
// runs on demand), and lendable as any nominal is when idle.
func limits(nominal int64) quota.Limits {
	zero := int64(0)
	return quota.Limits{Nominal: nominal, Borrow: &zero}
}

// Overlay returns the queue tree specs with each tenant's committed-tier
// quota set from its commitments at now (see Quotas). Tenants and types
// without commitments keep what specs give them. specs is not changed.
func Overlay(specs []quota.Spec, l *ledger.Ledger, now int64) []quota.Spec {
	want := committed(l, now)
	if len(want) == 0 {
		return specs
	}
	out := slices.Clone(specs)
	for i := range out {
		sp := &out[i]
		if sp.Parent != "" {
			continue
		}
		cloned := false
		for _, k := range sortedKeys(want) {
			if k.tenant != sp.Name {
				continue
			}
			if !cloned {
				sp.Quotas = maps.Clone(sp.Quotas)
				if sp.Quotas == nil {
					sp.Quotas = map[string]quota.Limits{}
				}
				cloned = true
			}
			sp.Quotas[k.flavor] = limits(want[k])
		}
	}
	return out
}

// Quotas keeps the core's committed-tier quota in step with the
// commitments: for the term of a commitment its tenant has a nominal quota
// of the committed count in the flavor TYPE:committed, at its tenant queue,
// and no more; when the term ends the quota goes (to 0). Work that runs in
// the committed tier when its quota goes keeps running to its end (the
// core lets running work keep what a quota change leaves above the
// limits); the ledger charges committed-tier time no commitment covers as
// overage at the on-demand rate, so from the term's end that work is
// billed as on-demand. New committed-tier work waits for quota.
type Quotas struct {
	applied map[flavorKey]int64
}

// Sync records that the core's tree holds what Overlay gave it at now (a
// core built from, or given, Overlay's specs).
func (q *Quotas) Sync(l *ledger.Ledger, now int64) { q.applied = committed(l, now) }

// Step reports whether the committed-tier quotas the commitments call for
// at now differ from those last applied (Sync), and records them as
// applied: the driver then gives the core Overlay's tree (a flavor seen
// for the first time is not in the core's tree yet, so a change of one
// queue's quota would not do).
func (q *Quotas) Step(l *ledger.Ledger, now int64) bool {
	want := committed(l, now)
	if maps.Equal(want, q.applied) {
		return false
	}
	q.applied = want
	return true
}

func sortedKeys(m map[flavorKey]int64) []flavorKey {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, func(a, b flavorKey) int {
		if a.tenant != b.tenant {
			if a.tenant < b.tenant {
				return -1
			}
			return 1
		}
		switch {
		case a.flavor < b.flavor:
			return -1
		case a.flavor > b.flavor:
			return 1
		}
		return 0
	})
	return ks
}
