package sched_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// TestScenarios runs the scenario files under testdata/scenarios: a fleet,
// a queue tree, a sequence of events and the actions expected of each
// scheduling cycle. Regenerate expectations with -rewrite and review the
// diff.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		// Preemption happens at once unless a file asks for a wait
		// (config preempt-after=N), so each file shows one mechanism.
		s := &scenario{cfg: sched.Config{PreemptAfterSec: -1}}
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
	records []sched.Usage
	nodes   []fleet.Node
	specs   []quota.Spec
	cfg     sched.Config
	core    *sched.Core
	levels  []string
}

func (s *scenario) ensure() error {
	if s.core != nil {
		return nil
	}
	f, err := fleet.New(nil, s.levels, s.nodes)
	if err != nil {
		return err
	}
	q, err := quota.New(s.specs)
	if err != nil {
		return err
	}
	s.core, err = sched.New(s.cfg, f, q)
	return err
}

// commandKeys lists, per command, the arguments it takes: a misspelt key
// is an error, not a silently ignored option.
var commandKeys = map[string][]string{
	"fleet":       {"levels"},
	"queues":      {},
	"config":      {"placement", "nobackfill", "nopreemption", "candidates", "preempt-after", "spot-notice", "admission"},
	"submit":      {"id", "queue", "prio", "notice", "ckpt", "est", "max", "tier", "preemptible", "topo", "required", "replicas", "min", "gpus", "milli", "cpu", "mem", "accel", "wait", "deadline", "notbefore", "interruptible"},
	"sites":       {},
	"forecast":    {"step"},
	"cap":         {"site", "kw", "pue"},
	"power":       {},
	"schedule":    {"now"},
	"restore":     {"id", "queue", "gpus", "milli", "cpu", "mem", "accel", "binds", "start"},
	"wake":        {},
	"finish":      {"id"},
	"cancel":      {"id"},
	"fail":        {"id", "requeue"},
	"node-fail":   {"node"},
	"node-drain":  {"node"},
	"node-cordon": {"node"},
	"node-return": {"node"},
	"node-add":    {"name", "path", "accel", "count", "cpu", "mem"},
	"pause":       {"tenant", "queue", "reason", "stop"},
	"resume":      {"tenant", "queue"},
	"hold":        {"key", "node", "devices", "milli"},
	"unhold":      {"key"},
	"quota":       {"queue", "flavor", "limits"},
	"explain":     {"id"},
	"pending":     {},
	"usage":       {},
	"records":     {},
	"free":        {},
}

// lineKeys lists the keys of the input lines of fleet and of gang lines.
var lineKeys = map[string][]string{
	"fleet":  {"nodes", "accel", "count", "cpu", "mem", "prefix"},
	"gang":   {"replicas", "min", "gpus", "milli", "cpu", "mem", "accel"},
	"queues": {"parent", "weight", "strict"},
	"sites":  {"cap", "it", "pue"},
}

func args(d *datadriven.TestData) (map[string]string, error) {
	allowed, ok := commandKeys[d.Cmd]
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

// kv reads the key=value fields of an input line; the first field is
// returned under "_" when it is a bare word. Keys outside allowed are an
// error unless flavor is set, which also admits any quota flavor of the
// catalog (type or type:tier).
func kv(line string, allowed []string, flavor bool) (map[string]string, error) {
	m := map[string]string{}
	cat := fleet.DefaultCatalog()
	for i, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok && i == 0 {
			m["_"] = f
			continue
		}
		ty, _, _ := strings.Cut(k, ":")
		if !slices.Contains(allowed, k) && (!flavor || !ok || cat.Index(ty) < 0) {
			return nil, fmt.Errorf("line %q: unknown key %q: want one of %s", line, k, strings.Join(allowed, ", "))
		}
		m[k] = v
	}
	return m, nil
}

func num(m map[string]string, k string, def int64) int64 {
	v, ok := m[k]
	if !ok || v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", k, v, err))
	}
	return n
}

func limits(v string) quota.Limits {
	parts := strings.Split(v, "/")
	l := quota.Limits{}
	n, _ := strconv.ParseFloat(parts[0], 64)
	l.Nominal = int64(n * 1000)
	if len(parts) > 1 && parts[1] != "-" {
		b, _ := strconv.ParseFloat(parts[1], 64)
		bv := int64(b * 1000)
		l.Borrow = &bv
	}
	if len(parts) > 2 && parts[2] != "-" {
		x, _ := strconv.ParseFloat(parts[2], 64)
		xv := int64(x * 1000)
		l.Lend = &xv
	}
	return l
}

func gang(m map[string]string) sched.Gang {
	g := sched.Gang{Replicas: int(num(m, "replicas", 1)), MinReplicas: int(num(m, "min", 0))}
	g.Shape.Devices = int(num(m, "gpus", 0))
	g.Shape.Milli = int32(num(m, "milli", 0))
	g.Shape.CPUMilli = num(m, "cpu", 1000)
	g.Shape.MemoryMiB = num(m, "mem", 1024)
	if a := m["accel"]; a != "" {
		g.Shape.Accel = strings.Split(a, ",")
	}
	return g
}

// run carries out one command and, after it, checks the core's
// invariants.
func (s *scenario) run(d *datadriven.TestData) (string, error) {
	out, err := s.command(d)
	if err == nil && s.core != nil {
		if ierr := s.core.CheckInvariants(); ierr != nil {
			return out, fmt.Errorf("invariants broken after %s: %w", d.Pos, ierr)
		}
	}
	return out, err
}

// show prints what one call decided; the usage records are kept for the
// records command.
func (s *scenario) show(r sched.Ready, err error) (string, error) {
	s.records = append(s.records, r.Usage...)
	var b strings.Builder
	for _, act := range r.Actions {
		fmt.Fprintln(&b, act)
	}
	return b.String(), err
}

func (s *scenario) command(d *datadriven.TestData) (string, error) {
	a, err := args(d)
	if err != nil {
		return "", err
	}
	switch d.Cmd {
	case "fleet":
		// Each line: PATH nodes=N accel=T count=C [cpu=] [mem=] [prefix=]
		if l := a["levels"]; l != "" {
			s.levels = strings.Split(l, ",")
		}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			m, err := kv(line, lineKeys["fleet"], false)
			if err != nil {
				return "", err
			}
			path := strings.Split(strings.Fields(line)[0], "/")
			prefix := m["prefix"]
			if prefix == "" {
				prefix = path[len(path)-1] + "-n"
			}
			for i := range int(num(m, "nodes", 1)) {
				s.nodes = append(s.nodes, fleet.Node{Name: fmt.Sprintf("%s%d", prefix, i), Path: path,
					Accel: m["accel"], Count: int(num(m, "count", 8)), CPUMilli: num(m, "cpu", 64000), MemoryMiB: num(m, "mem", 512*1024)})
			}
		}
		return "", nil
	case "queues":
		// Each line: NAME [parent=P] [weight=W] [strict] [FLAVOR=nominal/borrow/lend ...]
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			m, err := kv(line, lineKeys["queues"], true)
			if err != nil {
				return "", err
			}
			sp := quota.Spec{Name: strings.Fields(line)[0], Parent: m["parent"], Quotas: map[string]quota.Limits{}}
			_, sp.Strict = m["strict"]
			if w := m["weight"]; w != "" {
				sp.Weight, _ = strconv.ParseFloat(w, 64)
			}
			for k, v := range m {
				switch k {
				case "parent", "weight", "strict", "_":
				default:
					if k == sp.Name {
						continue
					}
					sp.Quotas[k] = limits(v)
				}
			}
			s.specs = append(s.specs, sp)
		}
		return "", nil
	case "config":
		if p := a["placement"]; p != "" {
			s.cfg.Placement = strings.Split(p, ",")
		}
		_, s.cfg.NoBackfill = a["nobackfill"]
		_, s.cfg.NoPreemption = a["nopreemption"]
		s.cfg.Candidates = int(num(a, "candidates", 0))
		s.cfg.PreemptAfterSec = num(a, "preempt-after", -1)
		if r := a["admission"]; r != "" {
			s.cfg.Admission = strings.Split(r, ",")
		}
		s.cfg.SpotNoticeSec = num(a, "spot-notice", 0)
		return "", nil
	case "sites":
		// Each line: DOMAIN [cap=KW] [it] [pue=P]
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			m, err := kv(line, lineKeys["sites"], false)
			if err != nil {
				return "", err
			}
			st := sched.Site{Domain: m["_"]}
			st.PowerCapKW, _ = strconv.ParseFloat(m["cap"], 64)
			st.PUE, _ = strconv.ParseFloat(m["pue"], 64)
			_, st.ITCap = m["it"]
			s.cfg.Sites = append(s.cfg.Sites, st)
		}
		return "", nil
	case "forecast":
		// Each line: SITE V0 V1 ...: the site's intensity for the steps
		// from t=0 (step=SEC, default 100), the forecast the core plans on.
		step := num(a, "step", 100)
		f, err := carbon.NewForecast(step)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			fs := strings.Fields(line)
			ser := carbon.Series{Start: 0, Step: step}
			for _, v := range fs[1:] {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return "", fmt.Errorf("forecast %s: %v", fs[0], err)
				}
				ser.Values = append(ser.Values, x)
			}
			if err := f.Set(fs[0], ser); err != nil {
				return "", err
			}
		}
		s.cfg.Forecast = f
		return "", nil
	case "cap":
		kw, _ := strconv.ParseFloat(a["kw"], 64)
		pue, _ := strconv.ParseFloat(a["pue"], 64)
		return s.show(s.core.Apply(sched.SitePowerCapped{Site: a["site"], KW: kw, PUE: pue}))
	case "power":
		var b strings.Builder
		for _, p := range s.core.Power() {
			fmt.Fprintf(&b, "%s: %.2f kW of cap %.2f\n", p.Site, p.DrawKW, p.CapKW)
		}
		return b.String(), nil
	case "submit":
		if err := s.ensure(); err != nil {
			return "", err
		}
		j := sched.Job{ID: sched.JobID(a["id"]), Queue: a["queue"], Priority: int32(num(a, "prio", 0)),
			NoticeSec: num(a, "notice", 0), CheckpointSec: num(a, "ckpt", 0), EstimatedSec: num(a, "est", 0), MaxSec: num(a, "max", 0), Tier: a["tier"]}
		_, j.Preemptible = a["preemptible"]
		_, j.WaitForCapacity = a["wait"]
		_, j.Interruptible = a["interruptible"]
		j.Deadline, j.NotBefore = num(a, "deadline", 0), num(a, "notbefore", 0)
		if t := a["topo"]; t != "" {
			j.Topology.Level = t
			_, j.Topology.Required = a["required"]
		}
		if in := strings.TrimSpace(d.Input); in != "" {
			for _, line := range strings.Split(in, "\n") {
				m, err := kv(line, lineKeys["gang"], false)
				if err != nil {
					return "", err
				}
				j.Gangs = append(j.Gangs, gang(m))
			}
		} else {
			j.Gangs = []sched.Gang{gang(a)}
		}
		return s.show(s.core.Apply(sched.JobSubmitted{Job: j}))
	case "schedule":
		if err := s.ensure(); err != nil {
			return "", err
		}
		return s.show(s.core.Schedule(num(a, "now", 0)), nil)
	case "restore":
		// restore id=J queue=Q gpus=N [milli=M] binds=NODE:DEV+DEV,NODE:DEV
		if err := s.ensure(); err != nil {
			return "", err
		}
		j := sched.Job{ID: sched.JobID(a["id"]), Queue: a["queue"], Gangs: []sched.Gang{gang(a)}}
		var binds []sched.Bind
		for i, b := range strings.Split(a["binds"], ",") {
			node, devs, _ := strings.Cut(b, ":")
			bd := sched.Bind{Job: j.ID, Replica: i, Node: node, Milli: 1000}
			if m := num(a, "milli", 0); m > 0 {
				bd.Milli = int32(m)
			}
			for _, d := range strings.Split(devs, "+") {
				n, _ := strconv.Atoi(d)
				bd.Devices = append(bd.Devices, n)
			}
			binds = append(binds, bd)
		}
		j.Gangs[0].Replicas = len(binds)
		return s.show(s.core.Apply(sched.JobRestored{Job: j, Binds: binds, Start: num(a, "start", 0)}))
	case "wake":
		return fmt.Sprintf("next wake t=%d\n", s.core.Wake()), nil
	case "finish":
		return s.show(s.core.Apply(sched.JobFinished{ID: sched.JobID(a["id"])}))
	case "cancel":
		return s.show(s.core.Apply(sched.JobCancelled{ID: sched.JobID(a["id"])}))
	case "fail":
		_, rq := a["requeue"]
		return s.show(s.core.Apply(sched.JobFailed{ID: sched.JobID(a["id"]), Reason: "exit 1", Requeue: rq}))
	case "node-fail":
		return s.show(s.core.Apply(sched.NodeFailed{Node: a["node"], Reason: "heartbeat lost"}))
	case "node-cordon":
		return s.show(s.core.Apply(sched.NodeCordoned{Node: a["node"]}))
	case "node-drain":
		return s.show(s.core.Apply(sched.NodeDrained{Node: a["node"]}))
	case "node-return":
		return s.show(s.core.Apply(sched.NodeReturned{Node: a["node"]}))
	case "hold":
		// hold key=K node=N devices=D+D [milli=M]
		h := sched.DevicesHeld{Key: a["key"], Node: a["node"], Milli: int32(num(a, "milli", 1000))}
		for _, d := range strings.Split(a["devices"], "+") {
			n, _ := strconv.Atoi(d)
			h.Devices = append(h.Devices, n)
		}
		return s.show(s.core.Apply(h))
	case "unhold":
		return s.show(s.core.Apply(sched.DevicesFreed{Key: a["key"]}))
	case "node-add":
		return s.show(s.core.Apply(sched.NodeAdded{Node: fleet.Node{Name: a["name"], Path: strings.Split(a["path"], "/"),
			Accel: a["accel"], Count: int(num(a, "count", 8)), CPUMilli: num(a, "cpu", 64000), MemoryMiB: num(a, "mem", 512*1024)}}))
	case "pause":
		// pause tenant=T [queue=Q] [reason=words_joined_by_underscores] [stop]
		_, stop := a["stop"]
		return s.show(s.core.Apply(sched.AdmissionPaused{Tenant: a["tenant"], Queue: a["queue"],
			Reason: strings.ReplaceAll(a["reason"], "_", " "), Stop: stop}))
	case "resume":
		return s.show(s.core.Apply(sched.AdmissionResumed{Tenant: a["tenant"], Queue: a["queue"]}))
	case "quota":
		return s.show(s.core.Apply(sched.QuotaChanged{Queue: a["queue"], Flavor: a["flavor"], Quota: limits(a["limits"])}))
	case "pending":
		// Every pending job with its place in its queue and its status.
		var b strings.Builder
		s.core.Pending(func(w sched.Waiting) bool {
			fmt.Fprintf(&b, "%s #%d %s: %s: %s\n", w.Queue, w.Position, w.Job, w.Status.Code, w.Status.Reason())
			return true
		})
		return b.String(), nil
	case "records":
		// The usage records decided since the last records command.
		var b strings.Builder
		for _, u := range s.records {
			fmt.Fprintln(&b, u)
		}
		s.records = nil
		return b.String(), nil
	case "explain":
		ids := strings.Split(a["id"], ",")
		var b strings.Builder
		for _, id := range ids {
			ex, ok := s.core.Explain(sched.JobID(id))
			if !ok {
				fmt.Fprintf(&b, "%s: unknown\n", id)
				continue
			}
			fmt.Fprintf(&b, "%s: %s", id, ex.State)
			if ex.Reason != "" {
				fmt.Fprintf(&b, ": %s", ex.Reason)
			}
			if ex.State == sched.StatePending {
				ex.EarliestStart = s.core.EarliestStart(sched.JobID(id))
			}
			if ex.EarliestStart >= 0 {
				fmt.Fprintf(&b, " (earliest start t=%d)", ex.EarliestStart)
			}
			if len(ex.Nodes) > 0 {
				fmt.Fprintf(&b, " on %s", strings.Join(ex.Nodes, ","))
			}
			b.WriteString("\n")
		}
		return b.String(), nil
	case "usage":
		if err := s.ensure(); err != nil {
			return "", err
		}
		q := s.core.Queues()
		var lines []string
		for i := 1; i < q.Len(); i++ {
			for f, fl := range q.Flavors() {
				if u := q.Usage(i, f); u != 0 {
					lines = append(lines, fmt.Sprintf("%s %s: %g of nominal %g", q.Name(i), fl, float64(u)/1000, float64(q.Nominal(i, f))/1000))
				}
			}
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n") + "\n", nil
	case "free":
		var b strings.Builder
		f := s.core.Fleet()
		for i := range f.Nodes {
			n := s.core.NodeState(i)
			fmt.Fprintf(&b, "%s %v\n", f.Nodes[i].Name, n.Free)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("command %q: not handled", d.Cmd)
}
