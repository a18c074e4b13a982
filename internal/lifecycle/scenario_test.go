package lifecycle

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// TestScenarios runs the scenario files under testdata/scenarios: jobs,
// the core's decisions, agents' reports, cancels and node events, and what
// the machine decides after each (the core events it asks for, the jobs it
// changed), with the state of the jobs shown where a file asks. Regenerate
// with -rewrite and review the diff.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		s := &scenario{m: New(Config{StopGraceMs: 5000, Node: func(n string) (string, string, bool) {
			return n + ".local", "h100", true
		}})}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := s.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type scenario struct {
	m   *Machine
	seq uint64
}

var keys = map[string][]string{
	"job":       {"id", "replicas", "min", "gpus", "restart", "max", "resize", "policy", "gangs"},
	"bind":      {"job", "core", "at", "replicas"},
	"preempt":   {"job", "core", "at", "deadline", "replicas"},
	"requeue":   {"job", "core", "at"},
	"reject":    {"job", "core", "at"},
	"report":    {"node", "at", "running", "exited", "ready"},
	"service":   {"id", "min", "max", "members", "gpus", "drain", "start"},
	"scale":     {"job", "at", "desired", "inflight", "order"},
	"bounds":    {"job", "at", "min", "max", "inflight"},
	"desired":   {"node", "at"},
	"cancel":    {"job", "at"},
	"node-down": {"node", "at"},
	"evict":     {"node", "at"},
	"show":      {"job"},
}

func args(d *datadriven.TestData) (map[string]string, error) {
	allowed, ok := keys[d.Cmd]
	if !ok {
		return nil, fmt.Errorf("unknown command %q", d.Cmd)
	}
	m := map[string]string{}
	for _, a := range d.CmdArgs {
		if !slices.Contains(allowed, a.Key) {
			return nil, fmt.Errorf("%s: unknown argument %q: want one of %s", d.Cmd, a.Key, strings.Join(allowed, ", "))
		}
		m[a.Key] = strings.Join(a.Vals, ",")
	}
	return m, nil
}

func num(m map[string]string, k string, def int64) int64 {
	if v, ok := m[k]; ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return n
		}
	}
	return def
}

func (s *scenario) run(d *datadriven.TestData) (string, error) {
	a, err := args(d)
	if err != nil {
		return "", err
	}
	at := num(a, "at", 0) * 1000
	core := sched.JobID(a["job"])
	if c := a["core"]; c != "" {
		core = sched.JobID(c)
	}
	switch d.Cmd {
	case "job":
		// job id=J [replicas=N] [min=M] [gpus=G] [gangs=2] [restart=gang max=K] [resize=..] [policy=independent]
		s.seq++
		j := &Job{ID: a["id"], Seq: s.seq, Name: a["id"], Tenant: "acme", Queue: "q", SubmittedMs: at,
			Run: Run{Command: []string{"train"}, RestartPolicy: a["restart"], MaxRestarts: int(num(a, "max", 0)), Resize: a["resize"], Replicas: a["policy"]}}
		j.Spec = sched.Job{ID: sched.JobID(j.ID), Queue: "q"}
		for range num(a, "gangs", 1) {
			j.Spec.Gangs = append(j.Spec.Gangs, sched.Gang{Replicas: int(num(a, "replicas", 1)), MinReplicas: int(num(a, "min", 0)),
				Shape: place.Request{Devices: int(num(a, "gpus", 1))}})
		}
		var units []string
		for _, cj := range j.CoreJobs() {
			units = append(units, string(cj.ID))
		}
		return fmt.Sprintf("core jobs: %s\n", strings.Join(units, " ")) + s.show(s.m.Submitted(j)), nil
	case "bind":
		// bind job=J [core=C] replicas=g/r@node:d+d,...
		var r sched.Ready
		for _, spec := range strings.Split(a["replicas"], ",") {
			gr, rest, _ := strings.Cut(spec, "@")
			node, devs, _ := strings.Cut(rest, ":")
			g, rep, _ := strings.Cut(gr, "/")
			b := sched.Bind{Job: core, Node: node, Milli: 1000}
			b.Gang, _ = strconv.Atoi(g)
			b.Replica, _ = strconv.Atoi(rep)
			for _, x := range strings.Split(devs, "+") {
				n, _ := strconv.Atoi(x)
				b.Devices = append(b.Devices, n)
			}
			r.Actions = append(r.Actions, b)
		}
		return s.show(s.m.Take(r, at)), nil
	case "preempt":
		p := sched.Preempt{Job: core, Deadline: num(a, "deadline", 0), Reason: "for someone"}
		if rs := a["replicas"]; rs != "" {
			for _, gr := range strings.Split(rs, ",") {
				g, r, _ := strings.Cut(gr, "/")
				gi, _ := strconv.Atoi(g)
				ri, _ := strconv.Atoi(r)
				p.Replicas = append(p.Replicas, [2]int{gi, ri})
			}
		}
		return s.show(s.m.Take(sched.Ready{Actions: []sched.Action{p}}, at)), nil
	case "requeue":
		return s.show(s.m.Take(sched.Ready{Actions: []sched.Action{sched.Requeue{Job: core, Reason: "node n1 failed"}}}, at)), nil
	case "reject":
		return s.show(s.m.Take(sched.Ready{Actions: []sched.Action{sched.Reject{Job: core, Reason: "queue q was removed"}}}, at)), nil
	case "report":
		// report node=N running=J/g/r/a[@d+d] exited=J/g/r/a:code
		var sts []api.ReplicaStatus
		for i, x := range append(split(a["running"]), split(a["ready"])...) {
			x, port, _ := strings.Cut(x, "#")
			k, devs, _ := strings.Cut(x, "@")
			st := api.ReplicaStatus{ReplicaKey: key(k), State: api.ReplicaRunning, Ready: i >= len(split(a["running"]))}
			st.Port, _ = strconv.Atoi(port)
			for _, d := range split(strings.ReplaceAll(devs, "+", ",")) {
				n, _ := strconv.Atoi(d)
				st.Devices = append(st.Devices, n)
			}
			sts = append(sts, st)
		}
		for _, x := range split(a["exited"]) {
			k, code, _ := strings.Cut(x, ":")
			st := api.ReplicaStatus{ReplicaKey: key(k), State: api.ReplicaExited}
			if code == "SIGKILL" {
				st.ExitCode, st.Signal = -1, code
			} else {
				st.ExitCode, _ = strconv.Atoi(code)
			}
			sts = append(sts, st)
		}
		return s.show(s.m.Heartbeat(a["node"], sts, at)), nil
	case "service":
		// service id=S max=N [min=M] [members=K] [gpus=G] [drain=SEC] [start=SEC]
		s.seq++
		j := &Job{ID: a["id"], Seq: s.seq, Name: a["id"], Tenant: "acme", Queue: "q", SubmittedMs: at,
			Run: Run{Command: []string{"serve"}}}
		j.Spec = sched.Job{ID: sched.JobID(j.ID), Queue: "q", Kind: sched.Service,
			Gangs: []sched.Gang{{Name: "replica", Replicas: int(num(a, "members", 1)), Shape: place.Request{Devices: int(num(a, "gpus", 1))}}}}
		j.Service = &Service{Spec: ServiceSpec{MinReplicas: int(num(a, "min", 0)), MaxReplicas: int(num(a, "max", 4)), TargetInFlight: 4,
			ReadinessPath: "/health", DrainTimeoutMs: num(a, "drain", 30) * 1000, StartTimeoutMs: num(a, "start", 0) * 1000}}
		return s.show(s.m.Submitted(j)), nil
	case "scale":
		// scale job=S desired=N [inflight=u:n,...] [order=starting-first]
		sc := Scale{Desired: int(num(a, "desired", 0)), StartingFirst: a["order"] == "starting-first", InFlight: map[int]int{},
			StartTimeoutMs: 600_000}
		for _, x := range split(a["inflight"]) {
			u, n, _ := strings.Cut(x, ":")
			ui, _ := strconv.Atoi(u)
			sc.InFlight[ui], _ = strconv.Atoi(n)
		}
		return s.show(s.m.Scale(a["job"], sc, at)), nil
	case "bounds":
		// bounds job=S min=N max=M [inflight=u:n,...]
		sc := Scale{InFlight: map[int]int{}, StartTimeoutMs: 600_000}
		for _, x := range split(a["inflight"]) {
			u, n, _ := strings.Cut(x, ":")
			ui, _ := strconv.Atoi(u)
			sc.InFlight[ui], _ = strconv.Atoi(n)
		}
		out, err := s.m.SetBounds(a["job"], int(num(a, "min", 0)), int(num(a, "max", 0)), sc, at)
		if err != nil {
			return "error: " + err.Error() + "\n" + s.show(out), nil
		}
		return s.show(out), nil
	case "desired":
		resp, out := s.m.Desired(a["node"], at)
		var b strings.Builder
		for _, r := range resp.Run {
			fmt.Fprintf(&b, "run %s/%d/%d/%d rank=%s world=%s devices=%s", r.Job, r.Gang, r.Replica, r.Attempt, r.Env["RANK"], r.Env["WORLD_SIZE"], r.Env["CUDA_VISIBLE_DEVICES"])
			if ms := r.Membership; ms != nil {
				fmt.Fprintf(&b, " membership=gen%d:%d", ms.Generation, ms.WorldSize)
			}
			if i := r.Env["GPUFLEET_ARRAY_INDEX"]; i != "" {
				fmt.Fprintf(&b, " array=%s/%s", i, r.Env["GPUFLEET_ARRAY_SIZE"])
			}
			if sv := r.Service; sv != nil {
				fmt.Fprintf(&b, " service-replica=%s master=%s probe=%q", r.Env["GPUFLEET_SERVICE_REPLICA"], r.Env["MASTER_ADDR"], sv.ReadinessPath)
			}
			b.WriteString("\n")
		}
		for _, st := range resp.Stop {
			fmt.Fprintf(&b, "stop %s/%d/%d/%d by t=%d\n", st.Job, st.Gang, st.Replica, st.Attempt, st.DeadlineUnixMilli/1000)
		}
		return b.String() + s.show(out), nil
	case "cancel":
		out, err := s.m.Cancel(a["job"], at)
		return s.show(out), err
	case "node-down":
		return s.show(s.m.NodeDown(a["node"], at)), nil
	case "evict":
		return s.show(s.m.Evict(a["node"], at)), nil
	case "show":
		j := s.m.Job(a["job"])
		if j == nil {
			return "not live\n", nil
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s", j.ID, j.State)
		if j.Reason != "" {
			fmt.Fprintf(&b, " (%s)", j.Reason)
		}
		b.WriteString("\n")
		if j.Service != nil {
			c := j.Counts()
			fmt.Fprintf(&b, "  service: desired %d, ready %d, starting %d, waiting %d, draining %d, stopping %d; failures %d, retry at t=%d; cold starts %v\n",
				c.Desired, c.Ready, c.Starting, c.Waiting, c.Draining, c.Stopping, j.Service.Failures, j.Service.RetryMs/1000, j.Service.ColdStartsMs)
			for i, u := range j.Units {
				fmt.Fprintf(&b, "  unit %d %s: %s (%s) attempt %d\n", i, u.Core, j.Phase(i), u.State, u.Attempt)
			}
			for _, r := range j.Routes() {
				fmt.Fprintf(&b, "  route unit %d attempt %d %s:%d\n", r.Unit, r.Attempt, r.Node, r.Port)
			}
		} else if len(j.Units) > 1 {
			for i, u := range j.Units {
				fmt.Fprintf(&b, "  unit %d %s: %s attempt %d restarts %d\n", i, u.Core, u.State, u.Attempt, u.Restarts)
			}
		}
		for _, list := range []struct {
			name string
			rs   []Replica
		}{{"replica", j.Replicas}, {"stale", j.Stale}} {
			for _, r := range list.rs {
				fmt.Fprintf(&b, "  %s %d/%d/%d rank %d on %s %v: %s", list.name, r.Gang, r.Replica, r.Attempt, r.Rank, r.Node, r.Devices, r.State)
				if r.Shrunk {
					b.WriteString(" shrunk")
				}
				if r.StopMs > 0 {
					fmt.Fprintf(&b, " stop by t=%d", r.StopMs/1000)
				}
				if r.Held {
					b.WriteString(" held")
				}
				b.WriteString("\n")
			}
		}
		var ev []string
		for _, e := range j.Events {
			ev = append(ev, e.Kind)
		}
		fmt.Fprintf(&b, "  events: %s\n", strings.Join(ev, ", "))
		if j.Service != nil {
			for _, e := range j.Events {
				if e.Detail != "" {
					fmt.Fprintf(&b, "  t=%d %s: %s\n", e.AtMs/1000, e.Kind, e.Detail)
				}
			}
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("command %q: not handled", d.Cmd)
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func key(s string) api.ReplicaKey {
	p := strings.Split(s, "/")
	k := api.ReplicaKey{Job: p[0]}
	if len(p) == 4 {
		k.Gang, _ = strconv.Atoi(p[1])
		k.Replica, _ = strconv.Atoi(p[2])
		k.Attempt, _ = strconv.Atoi(p[3])
	}
	return k
}

// show prints what one call decided: the core events, the jobs changed and
// the orphans held.
func (s *scenario) show(o Out) string {
	var b strings.Builder
	for _, ev := range o.Core {
		switch e := ev.(type) {
		case sched.JobFailed:
			fmt.Fprintf(&b, "core: failed %s requeue=%v (%s)\n", e.ID, e.Requeue, e.Reason)
		case sched.JobFinished:
			fmt.Fprintf(&b, "core: finished %s\n", e.ID)
		case sched.JobCancelled:
			fmt.Fprintf(&b, "core: cancelled %s\n", e.ID)
		case sched.DevicesHeld:
			fmt.Fprintf(&b, "core: hold %s on %s %v\n", e.Key, e.Node, e.Devices)
		case sched.DevicesFreed:
			fmt.Fprintf(&b, "core: free %s\n", e.Key)
		case sched.JobSubmitted:
			fmt.Fprintf(&b, "core: submit %s (%d x %d gpus)\n", e.Job.ID, e.Job.Gangs[0].Replicas, e.Job.Gangs[0].Shape.Devices)
		default:
			fmt.Fprintf(&b, "core: %T\n", ev)
		}
	}
	ids := make([]string, 0, len(o.Dirty))
	for id := range o.Dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > 0 {
		fmt.Fprintf(&b, "changed: %s\n", strings.Join(ids, " "))
	}
	for _, c := range o.ColdStarts {
		fmt.Fprintf(&b, "cold start: %s unit %d %dms\n", c.Job, c.Unit, c.Ms)
	}
	return b.String()
}
