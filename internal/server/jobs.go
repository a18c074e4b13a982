package server

import (
	"fmt"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// The live job lifecycle is package lifecycle's machine (l.lc); the loop
// wires it to the scheduling core, the store and the agents: what the core
// decides goes to the machine (Take), what the machine decides for the
// core (a job whose processes are all gone, devices held apart) goes to the
// core, round and round until nothing is left, and every job either
// touched is persisted with the next commit.

// apply hands an event to the core and carries out what it decided.
func (l *loop) apply(ev sched.Event, now time.Time) error {
	r, err := l.core.Apply(ev)
	l.take(r, now)
	return err
}

// take carries out what one call of the core decided.
func (l *loop) take(r sched.Ready, now time.Time) {
	l.acct.closed(l, r.Usage)
	l.follow(l.lc.Take(r, now.UnixMilli()), now)
}

// follow persists what the machine decided and gives the core the events
// the machine asks for, feeding what the core decides back, until neither
// has anything left.
func (l *loop) follow(out lifecycle.Out, now time.Time) {
	if len(out.Core) > 0 {
		// The core's clock is the last cycle's; the events the machine
		// asks for happen now (a replica's exit reported ends its holding
		// now: its usage record says so).
		if _, err := l.core.Apply(sched.TimeAdvanced{Now: now.Unix()}); err != nil {
			l.log.Warn("core refused the time", "err", err)
		}
	}
	queue := []lifecycle.Out{out}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, j := range o.Dirty {
			l.markJob(j)
		}
		for _, q := range o.Admitted {
			l.s.metrics.admissions.WithLabelValues(q).Inc()
		}
		for _, q := range o.Preempted {
			l.s.metrics.preemptions.WithLabelValues(q).Inc()
		}
		l.serviceOut(o)
		for _, ev := range o.Core {
			r, err := l.core.Apply(ev)
			if err != nil {
				l.log.Warn("core refused an event of the job lifecycle", "event", fmt.Sprintf("%T", ev), "err", err)
			}
			l.acct.closed(l, r.Usage)
			queue = append(queue, l.lc.Take(r, now.UnixMilli()))
		}
	}
	l.syncServices()
}

// submitted hands a new job to the machine and its units to the core. A
// unit the core rejects at once (no domain of the fleet could ever hold it)
// refuses the job.
func (l *loop) submitted(j *lifecycle.Job, now time.Time) error {
	if err := l.serviceConflict(j); err != nil {
		return err
	}
	var rs []sched.Ready
	for _, cj := range j.CoreJobs() {
		r, err := l.core.Apply(sched.JobSubmitted{Job: cj})
		if err == nil {
			for _, a := range r.Actions {
				if rej, ok := a.(sched.Reject); ok && rej.Job == cj.ID {
					err = fmt.Errorf("%s", rej.Reason)
				}
			}
		}
		if err != nil {
			// Take back the units the core took.
			for _, done := range j.CoreJobs()[:len(rs)] {
				if _, cerr := l.core.Apply(sched.JobCancelled{ID: done.ID}); cerr != nil {
					l.log.Warn("take back a refused job's unit", "job", j.ID, "err", cerr)
				}
			}
			return err
		}
		rs = append(rs, r)
	}
	l.follow(l.lc.Submitted(j), now)
	for _, r := range rs {
		l.take(r, now)
	}
	if j.Service != nil {
		l.serviceAdded(j, now)
		l.scaleService(l.svc.runs[j.ID], now)
	}
	return nil
}

// cancel ends a job at a user's request (lifecycle.Machine.Cancel).
func (l *loop) cancel(j *lifecycle.Job, now time.Time) *api.Error {
	out, err := l.lc.Cancel(j.ID, now.UnixMilli())
	if err != nil {
		return api.Conflict("%v", err)
	}
	l.follow(out, now)
	return nil
}
