package server

import "github.com/gpufleet/gpufleet/internal/quota"

// queueStat is what the queue tree says of one queue beyond its own
// quota: what it borrows and lends, and its share of the fleet's pool
// against the share its nominal quota entitles it to.
type queueStat struct {
	borrowed, lent map[string]int64
	share          float64
	entitlement    float64
}

// queueStats reads every queue's borrowing, lending and shares off the
// core's queue tree. Borrowing is the tree's own figure (occupation above
// nominal). What a queue lends is not recorded by the tree, which only
// bounds it; it is apportioned: below each parent, what the children
// borrow that the parent does not itself borrow from outside is lent by
// the children with idle lendable quota, each in proportion to what it
// may lend (its idle nominal, capped by its lending limit). Shares are
// dominant shares (the largest over flavors) of the root's pool.
func queueStats(t *quota.Tree) map[string]queueStat {
	flavors := t.Flavors()
	n := t.Len()
	kids := make([][]int, n)
	for i := 1; i < n; i++ {
		if p := t.Parent(i); p >= 0 {
			kids[p] = append(kids[p], i)
		}
	}
	out := make(map[string]queueStat, n)
	stats := make([]queueStat, n)
	for i := 1; i < n; i++ {
		stats[i] = queueStat{borrowed: map[string]int64{}, lent: map[string]int64{}}
	}
	for f, name := range flavors {
		pool := t.Nominal(0, f)
		for i := 1; i < n; i++ {
			if b := t.Borrowing(i, f); b > 0 {
				stats[i].borrowed[name] = b
			}
			if pool > 0 && pool < quota.Unlimited {
				// Usage counts the queue's whole subtree.
				stats[i].share = max(stats[i].share, float64(t.Usage(i, f))/float64(pool))
				if nom := t.Nominal(i, f); nom < quota.Unlimited {
					stats[i].entitlement = max(stats[i].entitlement, float64(nom)/float64(pool))
				}
			}
		}
		for p := range n {
			if len(kids[p]) == 0 {
				continue
			}
			var inside, lendable int64
			idle := make([]int64, len(kids[p]))
			for k, c := range kids[p] {
				inside += t.Borrowing(c, f)
				nom, _, lend := t.Limits(c, f)
				idle[k] = min(max(0, nom-t.Occupation(c, f)), lend)
				lendable += idle[k]
			}
			if p > 0 {
				inside -= t.Borrowing(p, f)
			}
			inside = min(inside, lendable)
			if inside <= 0 || lendable <= 0 {
				continue
			}
			for k, c := range kids[p] {
				if idle[k] > 0 {
					// Rounded down, so the lent never exceed the borrowed.
					stats[c].lent[name] = int64(float64(inside) * float64(idle[k]) / float64(lendable))
				}
			}
		}
	}
	for i := 1; i < n; i++ {
		out[t.Name(i)] = stats[i]
	}
	return out
}
