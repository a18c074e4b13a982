package metering

import (
	"math/bits"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// RecordID names the holding a core usage record describes: the core's job
// (an array job's unit has its own, "JOB[i]"), the attempt, the gang, the
// replica and the second the holding began. The core never repeats (job,
// attempt, gang, replica), and a job restored after a restart keeps each
// replica's start, so the open holding metered before a crash, the same
// holding read back from the rebuilt core and its closed record all carry
// one ID: the ledger meters each of their seconds once.
func RecordID(u *sched.Usage) string {
	b := make([]byte, 0, len(u.Job)+40)
	b = append(b, u.Job...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(u.Attempt), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(u.Gang), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(u.Replica), 10)
	b = append(b, '@')
	b = strconv.AppendInt(b, u.From, 10)
	return string(b)
}

// JobOf returns the job a core job ID belongs to and the unit's index:
// an array job's units are "JOB[i]" (lifecycle.ArrayCoreID); any other ID
// is its own job, unit -1.
func JobOf(core sched.JobID) (job string, unit int) {
	s := string(core)
	if !strings.HasSuffix(s, "]") {
		return s, -1
	}
	i := strings.LastIndexByte(s, '[')
	if i <= 0 {
		return s, -1
	}
	n, err := strconv.Atoi(s[i+1 : len(s)-1])
	if err != nil || n < 0 {
		return s, -1
	}
	return s[:i], n
}

// endNames maps the core's end reasons to the ledger's.
var endNames = map[sched.EndReason]string{
	sched.EndFinished: "finished", sched.EndFailed: "failed", sched.EndCancelled: "cancelled",
	sched.EndPreempted: "preempted", sched.EndShrunk: "shrunk", sched.EndRequeued: "requeued",
}

// Record turns a core usage record into the ledger's, times from the
// core's seconds to milliseconds. An open holding (End EndOpen, from
// Core.Holdings) becomes an open record, which Ledger.Meter meters as
// time passes. ok is false for a replica that holds no accelerator: the
// ledger meters accelerators only.
//
// A unit of an array job is metered under its job, as replica i of gang
// 0, so that the job's usage is read in one place.
func Record(u *sched.Usage) (r ledger.Usage, ok bool) {
	if u.Type == "" || len(u.Devices) == 0 || u.Milli <= 0 {
		return r, false
	}
	job, unit := JobOf(u.Job)
	r = ledger.Usage{
		ID: RecordID(u), Job: job, Tenant: u.Tenant, Queue: u.Queue, Kind: u.Kind.String(),
		Type: u.Type, Tier: tierOf(u.Tier), Site: u.Site, Node: u.Node,
		Gang: u.Gang, Replica: u.Replica, Devices: len(u.Devices), Milli: u.Milli,
		FromMs: u.From * 1000,
	}
	if unit >= 0 {
		r.Gang, r.Replica = 0, unit
	}
	for _, d := range u.Devices {
		if d < 0 || d > 63 {
			r.DeviceMask = 0
			break
		}
		r.DeviceMask |= 1 << uint(d)
	}
	if r.DeviceMask != 0 && bits.OnesCount64(r.DeviceMask) != r.Devices {
		r.DeviceMask = 0 // a device named twice: leave the mask out
	}
	if u.End != sched.EndOpen {
		r.ToMs = u.To * 1000
		r.End = endNames[u.End]
		if r.ToMs == 0 {
			// A holding of no time that began and ended at the epoch
			// cannot be told from an open one; it holds nothing.
			return r, false
		}
	}
	return r, true
}

// tierOf names a core tier for the ledger: the core's default tier ""
// is on-demand, and tiers the ledger does not know (the core lets other
// names name quota flavors) are metered at the ledger's default tier.
func tierOf(t string) string {
	switch t {
	case sched.TierCommitted, sched.TierOnDemand, sched.TierSpot:
		return t
	}
	return ""
}
