package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// jobEvents is GET /v1/jobs/{id}/events: the job's timeline, as the
// live lifecycle recorded it. A record from before the lifecycle recorded
// events has none: its timeline is read off the record (derived).
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request, p principal) {
	j, e := s.lookup(r.PathValue("id"), p)
	if e != nil {
		writeErr(w, e)
		return
	}
	if len(j.Events) > 0 {
		out := make([]api.JobEvent, len(j.Events))
		for i, ev := range j.Events {
			out[i] = api.JobEvent{Time: msPtr(ev.AtMs), Type: ev.Kind, Detail: ev.Detail}
		}
		writeJSON(w, http.StatusOK, api.JobEvents{Events: out})
		return
	}
	writeJSON(w, http.StatusOK, api.JobEvents{Events: timeline(&j), Derived: true})
}

func msPtr(ms int64) *time.Time {
	if ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// timeline derives a job's events from its record, in the order they
// happened: its submission, the start of its current attempt (with its
// placement), the earlier attempts as a count without their times, the
// replicas an elastic job gave back, a stop under way, and its end.
func timeline(j *store.Job) []api.JobEvent {
	out := []api.JobEvent{{Time: msPtr(j.SubmittedMs), Type: api.EventSubmitted,
		Detail: fmt.Sprintf("to queue %s, priority %d", j.Queue, j.Spec.Priority)}}
	if earlier := j.Attempt - 1; earlier > 0 {
		restarts := min(j.Restarts, earlier)
		detail := fmt.Sprintf("%s ended and the job waited again", nouns(earlier, "earlier attempt"))
		if restarts > 0 {
			detail += fmt.Sprintf(" (%d of them gang restarts after a replica failed; the others preemptions, node failures or evictions)", restarts)
		}
		out = append(out, api.JobEvent{Type: api.EventRequeued, Attempt: earlier, Detail: detail + "; their times are not recorded"})
	}
	if j.Attempt > 0 && j.StartedMs > 0 {
		out = append(out, api.JobEvent{Time: msPtr(j.StartedMs), Type: api.EventAdmitted, Attempt: j.Attempt, Detail: placement(j)})
	}
	if n := shrunk(j); n > 0 {
		out = append(out, api.JobEvent{Type: api.EventShrunk, Attempt: j.Attempt, Detail: fmt.Sprintf("gave back %s to make room", nouns(n, "replica"))})
	}
	switch j.State {
	case store.Preempting:
		out = append(out, api.JobEvent{Type: api.EventPreempted, Attempt: j.Attempt, Detail: j.Reason})
	case store.Cancelling:
		out = append(out, api.JobEvent{Type: api.EventCancelled, Attempt: j.Attempt, Detail: j.Reason})
	case store.Pending:
		if j.Attempt > 0 {
			out = append(out, api.JobEvent{Type: api.EventRequeued, Attempt: j.Attempt, Detail: j.Reason})
		}
	}
	if store.Terminal(j.State) {
		// The end's kind is the job's final state.
		out = append(out, api.JobEvent{Time: msPtr(j.FinishedMs), Type: j.State, Attempt: j.Attempt, Detail: j.Reason})
	}
	return out
}

// placement says where an attempt's replicas went: "2 replicas on n1, n2
// (4 x h100 each)".
func placement(j *store.Job) string {
	var nodes []string
	shapes := map[string]int{}
	var order []string
	for i := range j.Replicas {
		r := &j.Replicas[i]
		if !slices.Contains(nodes, r.Node) {
			nodes = append(nodes, r.Node)
		}
		shape := "no accelerator"
		switch {
		case r.Milli > 0 && r.Milli < 1000:
			shape = fmt.Sprintf("%d milli of one %s", r.Milli, r.Accel)
		case len(r.Devices) > 0:
			shape = fmt.Sprintf("%d x %s", len(r.Devices), r.Accel)
		}
		if shapes[shape] == 0 {
			order = append(order, shape)
		}
		shapes[shape]++
	}
	if len(nodes) == 0 {
		return "started"
	}
	var parts []string
	for _, sh := range order {
		parts = append(parts, fmt.Sprintf("%d with %s", shapes[sh], sh))
	}
	return fmt.Sprintf("%s on %s (%s)", nouns(len(j.Replicas), "replica"), strings.Join(nodes, ", "), strings.Join(parts, ", "))
}

func shrunk(j *store.Job) int {
	n := 0
	for i := range j.Replicas {
		if j.Replicas[i].Shrunk {
			n++
		}
	}
	return n
}

func nouns(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
