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
// bounds it; it is apportioned from the top down: below each parent, what
// its children borrow that it does not itself borrow from outside, plus
// what it lends outside (apportioned to it one level up), is lent by the
// children with idle lendable quota, each in proportion to what it may
// lend (its idle nominal, capped by its lending limit). Shares are
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
	// Parents before their children, whatever order the specs came in.
	order := []int{0}
	for k := 0; k < len(order); k++ {
		order = append(order, kids[order[k]]...)
	}
	stats := make([]queueStat, n)
	for i := 1; i < n; i++ {
		stats[i] = queueStat{borrowed: map[string]int64{}, lent: map[string]int64{}}
	}
	lentOut := make([]int64, n)
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
		clear(lentOut)
		for _, p := range order {
			if len(kids[p]) == 0 {
				continue
			}
			owed := lentOut[p]
			var idle int64
			idles := make([]int64, len(kids[p]))
			for k, c := range kids[p] {
				owed += t.Borrowing(c, f)
				nom, _, lend := t.Limits(c, f)
				idles[k] = min(max(0, nom-t.Occupation(c, f)), lend)
				idle += idles[k]
			}
			if p > 0 {
				owed -= t.Borrowing(p, f)
			}
			owed = min(owed, idle)
			if owed <= 0 {
				continue
			}
			for k, c := range kids[p] {
				if idles[k] > 0 {
					// Rounded down, so the lent never exceed the borrowed.
					lentOut[c] = int64(float64(owed) * float64(idles[k]) / float64(idle))
					if lentOut[c] > 0 {
						stats[c].lent[name] = lentOut[c]
					}
				}
			}
		}
	}
	out := make(map[string]queueStat, n)
	for i := 1; i < n; i++ {
		out[t.Name(i)] = stats[i]
	}
	return out
}
