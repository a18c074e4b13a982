package ledger

import "sort"

// JobUsage is what one replica of a job used of one tier, type and site.
type JobUsage struct {
	Job              string
	Gang, Replica    int
	Tenant, Queue    string
	Tier, Type, Site string
	Totals
}

type jobInfo struct {
	use     []JobUsage
	lines   []int32
	open    int32 // records of the job still open
	lastEnd int64
}

func (l *Ledger) jobEntry(st *meterState, u *Usage) {
	j := l.jobUse[st.job]
	if j == nil {
		j = &jobInfo{}
		l.jobUse[st.job] = j
	}
	for i := range j.use {
		if j.lines[i] == st.line && j.use[i].Gang == u.Gang && j.use[i].Replica == u.Replica {
			st.je = int32(i)
			return
		}
	}
	st.je = int32(len(j.use))
	j.use = append(j.use, JobUsage{Job: u.Job, Gang: u.Gang, Replica: u.Replica, Tenant: u.Tenant, Queue: u.Queue,
		Tier: st.tier.String(), Type: u.Type, Site: u.Site})
	j.lines = append(j.lines, st.line)
}

func (l *Ledger) jobAdd(st *meterState, d Totals) {
	if j := l.jobUse[st.job]; j != nil {
		j.use[st.je].Totals.add(d)
	}
}

func (l *Ledger) jobDone(job int32, end int64) {
	if j := l.jobUse[job]; j != nil && j.lastEnd < end {
		j.lastEnd = end
	}
}

// Job returns what a job used, per replica and per tier, type and site, in
// gang, replica, tier, type and site order; open records count up to where they are metered.
// A job is forgotten once the seal passes all of its records.
func (l *Ledger) Job(job string) []JobUsage {
	id, ok := l.jobs.lookup(job)
	if !ok {
		return nil
	}
	j := l.jobUse[id]
	if j == nil {
		return nil
	}
	out := append([]JobUsage(nil), j.use...)
	sort.Slice(out, func(a, b int) bool {
		x, y := &out[a], &out[b]
		if x.Gang != y.Gang {
			return x.Gang < y.Gang
		}
		if x.Replica != y.Replica {
			return x.Replica < y.Replica
		}
		for _, p := range [][2]string{{x.Tier, y.Tier}, {x.Type, y.Type}, {x.Site, y.Site}, {x.Tenant, y.Tenant}, {x.Queue, y.Queue}} {
			if p[0] != p[1] {
				return p[0] < p[1]
			}
		}
		return false
	})
	return out
}

// pruneJobs forgets jobs with no open record whose records all ended by t.
func (l *Ledger) pruneJobs(t int64) {
	for id, j := range l.jobUse {
		if j.open == 0 && j.lastEnd <= t {
			delete(l.jobUse, id)
		}
	}
}
