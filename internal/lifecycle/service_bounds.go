package lifecycle

import (
	"errors"
	"fmt"
)

// EventBounds is the event of a service whose replica bounds were changed
// while it runs.
const EventBounds = "bounds"

// ErrNotService is SetBounds' error for a job that is not a live service.
var ErrNotService = errors.New("not a live service")

// SetBounds changes a live service's replica bounds (an operator raising
// the floor before a launch, or the ceiling for a bigger budget) and moves
// its count into them at once: a floor above the count grows the service,
// a ceiling below it shrinks it the way Scale does (waiting replicas
// cancelled, serving ones drained, never a request dropped). The count
// within the new bounds stays for the autoscaler's next decision. The
// caller checks the bounds against the spec's limits; SetBounds refuses
// bounds no service could have.
func (m *Machine) SetBounds(id string, minReplicas, maxReplicas int, s Scale, nowMs int64) (Out, error) {
	j := m.jobs[id]
	if j == nil || j.Service == nil || j.Service.Ended {
		return m.flush(), ErrNotService
	}
	switch {
	case maxReplicas < 1:
		return m.flush(), fmt.Errorf("maxReplicas %d: want 1 or more", maxReplicas)
	case minReplicas < 0 || minReplicas > maxReplicas:
		return m.flush(), fmt.Errorf("minReplicas %d: want 0 to maxReplicas (%d)", minReplicas, maxReplicas)
	}
	sp := &j.Service.Spec
	if sp.MinReplicas != minReplicas || sp.MaxReplicas != maxReplicas {
		j.addEvent(nowMs, EventBounds, fmt.Sprintf("replicas %d..%d, were %d..%d", minReplicas, maxReplicas, sp.MinReplicas, sp.MaxReplicas))
		sp.MinReplicas, sp.MaxReplicas = minReplicas, maxReplicas
		m.out.dirty(j)
	}
	s.Desired = j.Service.Desired
	if s.Reason == "" {
		s.Reason = "bounds changed"
	}
	return m.Scale(id, s, nowMs), nil
}

// serviceNeeds says whether a service has fewer replicas waiting, starting
// or ready than it wants. A replica whose stop the core asked for (a
// preemption) waits for a place again only while it is needed: one the
// service was scaled below, or replaced, while it stopped ends instead,
// so that the core does not place a replica the next decision would
// cancel.
func serviceNeeds(j *Job) bool {
	c := j.Counts()
	return c.Waiting+c.Starting+c.Ready < j.Service.Desired
}
