package server

import (
	"net/http"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/autoscale"
	"github.com/gpufleet/gpufleet/internal/lifecycle"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// scaleServiceBounds changes a live service's replica bounds
// (PATCH /v1/services/{id}): the lifecycle moves its count into them at
// once and its policy decides within them from its next step on, keeping
// what it has learned of the load.
func (s *Server) scaleServiceBounds(w http.ResponseWriter, r *http.Request, p principal) {
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	u, e := api.DecodeScaleService(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	type answer struct {
		v   api.Service
		err error
	}
	ref := r.PathValue("id")
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		j, e := l.findService(ref, p)
		switch {
		case e != nil:
			reply(answer{err: e})
			return
		case j.Service.Ended:
			reply(answer{err: api.Conflict("service %s is %s", j.ID, j.State)})
			return
		}
		sp := j.Service.Spec
		lo, hi := sp.MinReplicas, sp.MaxReplicas
		if u.MinReplicas != nil {
			lo = *u.MinReplicas
		}
		if u.MaxReplicas != nil {
			hi = *u.MaxReplicas
		}
		switch {
		case lo > hi && u.MinReplicas == nil:
			reply(answer{err: api.Invalid("maxReplicas", "%d: want at least the service's minReplicas (%d), or give a lower minReplicas too", hi, lo)})
			return
		case lo > hi:
			reply(answer{err: api.Invalid("minReplicas", "%d: want at most the service's maxReplicas (%d), or give a higher maxReplicas too", lo, hi)})
			return
		}
		run := l.svc.runs[j.ID]
		now := l.now()
		sc := lifecycle.Scale{StartTimeoutMs: l.s.cfg.ReplicaStartTimeout.Milliseconds()}
		if run != nil {
			sc.InFlight = run.gw.peek()
		}
		out, err := l.lc.SetBounds(j.ID, lo, hi, sc, now.UnixMilli())
		if err != nil {
			reply(answer{err: api.Invalid("", "%v", err)})
			return
		}
		l.follow(out, now)
		if run != nil {
			if b, ok := run.policy.(autoscale.Bounded); ok {
				if err := b.SetBounds(lo, hi); err != nil {
					// Bounds the lifecycle took; the policy checks the
					// same, so this is a record from a newer server.
					l.log.Error("service policy refused new bounds; replacing it", "service", j.ID, "err", err)
					run.policy = autoscale.Static{N: lo}
				}
			} else if sp.Policy == spec.PolicyStatic {
				run.policy = autoscale.Static{N: hi}
			}
		}
		l.svc.dirty[j.ID] = true
		l.syncServices()
		v := l.serviceView(j, true)
		l.afterCommit(func(err error) { reply(answer{v: v, err: err}) })
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.v)
}
