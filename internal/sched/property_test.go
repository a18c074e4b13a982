package sched

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// world is a random fleet and queue tree for property tests.
type world struct {
	nodes []fleet.Node
	specs []quota.Spec
	cfg   Config
}

func genWorld(t *rapid.T) world {
	var w world
	types := []string{"h100", "h200"}
	for z := range rapid.IntRange(1, 2).Draw(t, "zones") {
		for b := range rapid.IntRange(1, 2).Draw(t, "blocks") {
			for r := range rapid.IntRange(1, 2).Draw(t, "racks") {
				nn := rapid.IntRange(1, 3).Draw(t, "nodes")
				for n := range nn {
					ty := rapid.SampledFrom(types).Draw(t, "type")
					w.nodes = append(w.nodes, fleet.Node{
						Name:  fmt.Sprintf("z%d-b%d-r%d-n%d", z, b, r, n),
						Path:  []string{"reg", fmt.Sprintf("z%d", z), fmt.Sprintf("z%d-b%d", z, b), fmt.Sprintf("z%d-b%d-r%d", z, b, r)},
						Accel: ty, Count: rapid.SampledFrom([]int{4, 8}).Draw(t, "count"),
						CPUMilli: 32000, MemoryMiB: 256 * 1024,
					})
				}
			}
		}
	}
	for ti := range 2 {
		tn := fmt.Sprintf("t%d", ti)
		w.specs = append(w.specs, quota.Spec{Name: tn})
		for qi := range 2 {
			l := map[string]quota.Limits{}
			for _, ty := range types {
				nom := int64(rapid.IntRange(0, 16).Draw(t, "nominal")) * 1000
				lim := quota.Limits{Nominal: nom}
				if rapid.Bool().Draw(t, "hasBorrow") {
					b := int64(rapid.IntRange(0, 16).Draw(t, "borrow")) * 1000
					lim.Borrow = &b
				}
				if rapid.Bool().Draw(t, "hasLend") {
					x := int64(rapid.IntRange(0, int(nom/1000)).Draw(t, "lend")) * 1000
					lim.Lend = &x
				}
				l[ty] = lim
				if rapid.IntRange(0, 2).Draw(t, "spotQuota") == 0 {
					l[ty+":spot"] = genLimits(t)
				}
			}
			w.specs = append(w.specs, quota.Spec{Name: fmt.Sprintf("%s-q%d", tn, qi), Parent: tn, Quotas: l,
				Weight: float64(rapid.IntRange(1, 3).Draw(t, "weight")), Strict: rapid.Bool().Draw(t, "strict")})
		}
	}
	w.cfg.Seed = rapid.Uint64().Draw(t, "seed")
	w.cfg.SpotNoticeSec = int64(rapid.SampledFrom([]int{0, 0, 30}).Draw(t, "spotNotice"))
	w.cfg.Placement = rapid.SampledFrom([][]string{nil, {"spread"}, {"bestfit"}}).Draw(t, "placement")
	return w
}

// step is one event or cycle of a random script.
type step struct {
	kind string
	job  Job
	id   int
	arg  int
	flag bool
	// specs is the new queue tree of a "queues" step; flavor and limits
	// the change of a "quota" step; node the node a "addnode" step adds.
	specs  []quota.Spec
	flavor string
	limits quota.Limits
	node   fleet.Node
	// cap is the event of a "cap" step.
	cap SitePowerCapped
}

func genJob(t *rapid.T, i int) Job {
	j := Job{ID: JobID(fmt.Sprintf("j%d", i)), Queue: fmt.Sprintf("t%d-q%d", rapid.IntRange(0, 1).Draw(t, "tenant"), rapid.IntRange(0, 2).Draw(t, "queue")),
		Priority:      int32(rapid.IntRange(0, 3).Draw(t, "prio")),
		Preemptible:   rapid.Bool().Draw(t, "preemptible"),
		NoticeSec:     int64(rapid.SampledFrom([]int{0, 0, 10, 50}).Draw(t, "notice")),
		EstimatedSec:  int64(rapid.SampledFrom([]int{0, 30, 100, 500}).Draw(t, "est")),
		CheckpointSec: int64(rapid.SampledFrom([]int{0, 20}).Draw(t, "ckpt")),
		Tier:          rapid.SampledFrom([]string{"", "", "", TierSpot}).Draw(t, "tier"),
	}
	for range rapid.IntRange(1, 2).Draw(t, "gangs") {
		g := Gang{Replicas: rapid.IntRange(1, 4).Draw(t, "replicas")}
		if rapid.IntRange(0, 4).Draw(t, "elastic") == 0 {
			g.MinReplicas = rapid.IntRange(1, g.Replicas).Draw(t, "min")
		}
		if rapid.IntRange(0, 3).Draw(t, "fraction") == 0 {
			g.Shape.Milli = int32(rapid.IntRange(1, 999).Draw(t, "milli"))
		} else {
			g.Shape.Devices = rapid.SampledFrom([]int{1, 2, 4, 8}).Draw(t, "devices")
		}
		g.Shape.CPUMilli = int64(rapid.IntRange(0, 16000).Draw(t, "cpu"))
		g.Shape.MemoryMiB = int64(rapid.IntRange(0, 64*1024).Draw(t, "mem"))
		g.Shape.Accel = rapid.SampledFrom([][]string{nil, {"h100"}, {"h200"}, {"h200", "h100"}}).Draw(t, "accel")
		j.Gangs = append(j.Gangs, g)
	}
	if rapid.Bool().Draw(t, "topo") {
		j.Topology.Level = rapid.SampledFrom([]string{"zone", "block", "rack"}).Draw(t, "level")
		j.Topology.Required = rapid.Bool().Draw(t, "required")
	}
	return j
}

func genLimits(t *rapid.T) quota.Limits {
	nom := int64(rapid.IntRange(0, 16).Draw(t, "nominal")) * 1000
	lim := quota.Limits{Nominal: nom}
	if rapid.Bool().Draw(t, "hasBorrow") {
		b := int64(rapid.IntRange(0, 16).Draw(t, "borrow")) * 1000
		lim.Borrow = &b
	}
	if rapid.Bool().Draw(t, "hasLend") {
		x := int64(rapid.IntRange(0, int(nom/1000)).Draw(t, "lend")) * 1000
		lim.Lend = &x
	}
	return lim
}

// genQueues changes the tree an administrator would: a leaf's quota or
// weight, a leaf removed, a leaf added.
func genQueues(t *rapid.T, specs []quota.Spec) []quota.Spec {
	out := make([]quota.Spec, 0, len(specs)+1)
	for _, sp := range specs {
		sp.Quotas = maps.Clone(sp.Quotas)
		out = append(out, sp)
	}
	var leaves []int
	for i, sp := range out {
		if sp.Parent != "" {
			leaves = append(leaves, i)
		}
	}
	switch rapid.IntRange(0, 2).Draw(t, "treeChange") {
	case 0:
		if len(leaves) == 0 {
			break
		}
		i := rapid.SampledFrom(leaves).Draw(t, "leaf")
		out[i].Weight = float64(rapid.IntRange(1, 3).Draw(t, "weight"))
		out[i].Quotas[rapid.SampledFrom([]string{"h100", "h200", "h100:spot"}).Draw(t, "flavor")] = genLimits(t)
	case 1:
		if len(leaves) < 2 {
			break
		}
		i := rapid.SampledFrom(leaves).Draw(t, "leaf")
		out = append(out[:i], out[i+1:]...)
	case 2:
		name := fmt.Sprintf("t%d-q%d", rapid.IntRange(0, 1).Draw(t, "tenant"), rapid.IntRange(0, 2).Draw(t, "queue"))
		if slices.ContainsFunc(out, func(sp quota.Spec) bool { return sp.Name == name }) {
			break
		}
		out = append(out, quota.Spec{Name: name, Parent: name[:2], Weight: 1,
			Quotas: map[string]quota.Limits{"h100": genLimits(t), "h200": genLimits(t)}})
	}
	return out
}

func genScript(t *rapid.T, w world) []step {
	n := rapid.IntRange(5, 60).Draw(t, "steps")
	var out []step
	specs := w.specs
	added := 0
	for i := range n {
		switch rapid.IntRange(0, 17).Draw(t, "kind") {
		case 0, 1, 2, 3:
			out = append(out, step{kind: "submit", job: genJob(t, i)})
		case 4:
			out = append(out, step{kind: "finish", id: rapid.IntRange(0, n).Draw(t, "id")})
		case 5:
			out = append(out, step{kind: "cancel", id: rapid.IntRange(0, n).Draw(t, "id")})
		case 6:
			out = append(out, step{kind: "fail", id: rapid.IntRange(0, n).Draw(t, "id"), flag: rapid.Bool().Draw(t, "requeue")})
		case 7:
			out = append(out, step{kind: rapid.SampledFrom([]string{"nodefail", "drain", "cordon", "return"}).Draw(t, "nodeop"), arg: rapid.IntRange(0, len(w.nodes)-1).Draw(t, "node")})
		case 8:
			specs = genQueues(t, specs)
			out = append(out, step{kind: "queues", specs: specs})
		case 9:
			var leaves []string
			for _, sp := range specs {
				if sp.Parent != "" {
					leaves = append(leaves, sp.Name)
				}
			}
			out = append(out, step{kind: "quota", specs: []quota.Spec{{Name: rapid.SampledFrom(leaves).Draw(t, "queue")}},
				flavor: rapid.SampledFrom([]string{"h100", "h200", "h200:spot"}).Draw(t, "flavor"), limits: genLimits(t)})
		case 10:
			added++
			z := rapid.IntRange(1, 2).Draw(t, "zone")
			out = append(out, step{kind: "addnode", node: fleet.Node{
				Name:  fmt.Sprintf("new%d", added),
				Path:  []string{"reg", fmt.Sprintf("z%d", z), fmt.Sprintf("z%d-b9", z), fmt.Sprintf("z%d-b9-r%d", z, rapid.IntRange(0, 1).Draw(t, "rack"))},
				Accel: rapid.SampledFrom([]string{"h100", "h200"}).Draw(t, "type"), Count: rapid.SampledFrom([]int{4, 8}).Draw(t, "count"),
				CPUMilli: 32000, MemoryMiB: 256 * 1024,
			}})
		case 11:
			out = append(out, step{kind: "restart"})
		case 12:
			out = append(out, step{kind: "hold", arg: rapid.IntRange(0, len(w.nodes)-1).Draw(t, "node"), id: rapid.IntRange(0, 2).Draw(t, "devs")})
		case 13:
			out = append(out, step{kind: "unhold", arg: rapid.IntRange(0, 1000).Draw(t, "which")})
		case 14, 15:
			tn := fmt.Sprintf("t%d", rapid.IntRange(0, 1).Draw(t, "tenant"))
			q := rapid.SampledFrom([]string{"", "", tn + "-q0", tn + "-q1"}).Draw(t, "queue")
			kind := "pause"
			if rapid.Bool().Draw(t, "resume") {
				kind = "resume"
			}
			out = append(out, step{kind: kind, flavor: tn, specs: []quota.Spec{{Name: q}}, flag: rapid.Bool().Draw(t, "stop")})
		default:
			out = append(out, step{kind: "schedule", arg: rapid.IntRange(1, 120).Draw(t, "dt")})
		}
	}
	return append(out, step{kind: "schedule", arg: 1})
}

// holdKey names one replica's holding.
type holdKey struct {
	job           JobID
	attempt, g, r int
}

// driver is what a driver of the core knows from the actions and usage
// records alone: the replicas bound, and the holdings not yet metered.
type driver struct {
	t     *rapid.T
	log   *strings.Builder
	bound map[JobID]map[[2]int]Bind
	open  map[holdKey]Bind
	// stopping are jobs the core preempted, with their deadlines: they
	// hold until they are requeued; shrinking are replicas given back,
	// with theirs.
	stopping  map[JobID]int64
	shrinking map[[3]any]int64
	// caps are the power caps set by events, in order: a restarted core
	// hears them again.
	caps []SitePowerCapped
	// held are the devices the driver holds apart, by key.
	held map[string]DevicesHeld
	// jobs are the jobs submitted, as submitted; paused the scopes
	// (tenant, queue or "") of admission paused.
	jobs   map[JobID]Job
	paused map[[2]string]bool
}

func (d *driver) fail(format string, args ...any) {
	d.t.Fatalf(format+"\nactions so far:\n%s", append(args, d.log.String())...)
}

// take carries out what one call decided at time now.
func (d *driver) take(c *Core, r Ready, now int64) {
	fresh := map[JobID]bool{}
	for _, a := range r.Actions {
		fmt.Fprintln(d.log, a)
		switch a := a.(type) {
		case Bind:
			if d.bound[a.Job] == nil {
				d.bound[a.Job] = map[[2]int]Bind{}
				fresh[a.Job] = true
			}
			if _, dup := d.bound[a.Job][[2]int{a.Gang, a.Replica}]; dup {
				d.fail("job %s gang %d replica %d bound twice", a.Job, a.Gang, a.Replica)
			}
			d.bound[a.Job][[2]int{a.Gang, a.Replica}] = a
			if q := d.jobs[a.Job].Queue; d.paused[[2]string{q[:2], ""}] || d.paused[[2]string{q[:2], q}] {
				d.fail("bind %v: admission to queue %s is paused", a, q)
			}
			k := holdKey{a.Job, a.Attempt, a.Gang, a.Replica}
			if _, dup := d.open[k]; dup {
				d.fail("holding %v bound twice", k)
			}
			if a.Since != now {
				d.fail("bind %v: since %d, the cycle is at %d", a, a.Since, now)
			}
			d.open[k] = a
		case Requeue:
			delete(d.bound, a.Job)
			defer delete(d.stopping, a.Job) // after its usage is checked
		case Reject:
			// A job of a removed queue is rejected when it would have
			// been requeued; its holdings ended in the same call.
			defer d.ended(a.Job) // after its usage is checked
		case Preempt:
			victim := d.jobs[a.Job]
			// Only preemptible and spot work is taken; a paused scope stops
			// any job, and an interruptible one is suspended by its own
			// carbon plan between its clean windows.
			suspended := victim.Interruptible && strings.HasPrefix(a.Reason, "suspended at a checkpoint")
			if !victim.Preemptible && victim.Tier != TierSpot && !strings.HasPrefix(a.Reason, "stopped: ") && !suspended {
				d.fail("preempt %v: the job is not preemptible", a)
			}
			if by, _, ok := strings.Cut(strings.TrimPrefix(a.Reason, "preempted for "), ":"); ok && d.jobs[JobID(by)].Tier == TierSpot && victim.Tier != TierSpot {
				d.fail("preempt %v: spot work took a job of the %q tier", a, victim.Tier)
			}
			if len(a.Replicas) == 0 {
				d.stopping[a.Job] = a.Deadline
			}
			for _, r := range a.Replicas {
				d.shrinking[[3]any{a.Job, r[0], r[1]}] = a.Deadline
				delete(d.bound[a.Job], r) // counted as gone once the deadline passes; removing early is conservative for the overlap check
			}
		}
	}
	for _, u := range r.Usage {
		k := holdKey{u.Job, u.Attempt, u.Gang, u.Replica}
		b, ok := d.open[k]
		switch {
		case !ok:
			d.fail("usage %v: no such holding is open", u)
		case u.From != b.Since || !slices.Equal(u.Devices, b.Devices) || u.Milli != b.Milli || u.Node != b.Node:
			d.fail("usage %v does not match its bind %v (now %d)", u, b, now)
		case u.End == EndShrunk && u.To != min(now, max(d.shrinking[[3]any{u.Job, u.Gang, u.Replica}], u.From)):
			d.fail("usage %v of a shrink: want it to end at its deadline %d (now %d)", u, d.shrinking[[3]any{u.Job, u.Gang, u.Replica}], now)
		case (u.End == EndPreempted || u.End == EndSuspended) && u.To != min(now, max(d.stopping[u.Job], u.From)):
			d.fail("usage %v of a preemption: want it to end at its deadline %d (now %d)", u, d.stopping[u.Job], now)
		case u.End != EndShrunk && u.End != EndPreempted && u.End != EndSuspended && u.To != now:
			d.fail("usage %v: want it to end now (%d)", u, now)
		case u.End == EndOpen:
			d.fail("usage %v: a closed record says it is open", u)
		}
		delete(d.open, k)
	}
	// Gangs start whole: a job bound for the first time in this call got
	// at least its minimum in every gang.
	for id := range fresh {
		j := c.jobs[id]
		if j == nil || d.bound[id] == nil {
			continue
		}
		per := map[int]int{}
		for k := range d.bound[id] {
			per[k[0]]++
		}
		for g := range j.Gangs {
			if per[g] < j.Gangs[g].Min() {
				d.fail("job %s gang %d started with %d replicas, minimum %d", id, g, per[g], j.Gangs[g].Min())
			}
		}
	}
}

// ended drops a job the driver reported over.
func (d *driver) ended(id JobID) {
	delete(d.bound, id)
	delete(d.stopping, id)
}

// checkHoldings compares the core's open holdings with the driver's.
func (d *driver) checkHoldings(c *Core) {
	seen := map[holdKey]bool{}
	c.Holdings(func(u Usage) bool {
		k := holdKey{u.Job, u.Attempt, u.Gang, u.Replica}
		b, ok := d.open[k]
		if !ok || u.From != b.Since || u.End != EndOpen || u.To != c.now {
			d.fail("open holding %v: the driver holds %v (%v)", u, b, ok)
		}
		seen[k] = true
		return true
	})
	for k := range d.open {
		if !seen[k] {
			d.fail("holding %v is open for the driver, not in the core's holdings", k)
		}
	}
}

// restart builds a new core from the driver's view, as the live server does
// from its store: the queue tree, the nodes and their states, running jobs
// with their exact bindings, then pending jobs in submission order. Jobs
// being preempted are reported stopped at once.
func (d *driver) restart(old *Core, w world, specs []quota.Spec) *Core {
	f, err := fleet.New(nil, nil, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	q, err := quota.New(specs)
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := New(w.cfg, f, q)
	if err != nil {
		d.t.Fatal(err)
	}
	now := old.now
	must := func(r Ready, err error) {
		if err != nil {
			d.fail("restart: %v", err)
		}
		d.take(c, r, now)
	}
	must(c.Apply(TimeAdvanced{Now: now}))
	for i, n := range old.fleet.Nodes {
		must(c.Apply(NodeAdded{Node: n}))
		switch n.State {
		case fleet.Down:
			must(c.Apply(NodeFailed{Node: n.Name, Reason: "x"}))
		case fleet.Draining:
			must(c.Apply(NodeDrained{Node: n.Name}))
		}
		_ = i
	}
	for _, k := range slices.Sorted(maps.Keys(d.held)) {
		must(c.Apply(d.held[k]))
	}
	for _, k := range slices.SortedFunc(maps.Keys(d.paused), func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) }) {
		must(c.Apply(AdmissionPaused{Tenant: k[0], Queue: k[1], Reason: "paused"}))
	}
	js := make([]*job, 0, len(old.jobs))
	for _, j := range old.jobs {
		js = append(js, j)
	}
	sortJobs(js)
	var pending []*job
	for _, j := range js {
		if j.state == jPending || j.state == jHeld {
			// A job held for a later window never ran: to the driver
			// it is pending.
			pending = append(pending, j)
			continue
		}
		var binds []Bind
		for _, b := range d.bound[j.ID] {
			binds = append(binds, b)
		}
		slices.SortFunc(binds, func(a, b Bind) int { return cmp.Or(cmp.Compare(a.Gang, b.Gang), cmp.Compare(a.Replica, b.Replica)) })
		// Shrinking replicas are over: the driver saw them stop.
		for k, b := range d.open {
			if k.job == j.ID && !slices.ContainsFunc(binds, func(x Bind) bool { return x.Gang == b.Gang && x.Replica == b.Replica }) {
				delete(d.open, k)
			}
		}
		for _, b := range binds {
			delete(d.open, holdKey{b.Job, b.Attempt, b.Gang, b.Replica})
		}
		r, err := c.Apply(JobRestored{Job: j.Job, Binds: binds, Start: j.started, Attempt: j.attempt})
		if err != nil {
			d.fail("restore %s: %v", j.ID, err)
		}
		for _, b := range binds {
			d.open[holdKey{b.Job, b.Attempt, b.Gang, b.Replica}] = b
		}
		d.take(c, r, now)
		if _, ok := d.stopping[j.ID]; ok {
			must(c.Apply(JobFailed{ID: j.ID, Reason: "preempted", Requeue: true}))
			d.ended(j.ID)
		}
	}
	// The caps come back after the running work, which they may stop.
	for _, e := range d.caps {
		must(c.Apply(e))
	}
	for _, j := range pending {
		must(c.Apply(JobSubmitted{Job: j.Job}))
	}
	return c
}

// holdFree holds up to k free whole devices (k 0: CPU and memory only) of
// a node apart from placement, as a driver does for a process that
// outlives its replica.
func (d *driver) holdFree(c *Core, node string, k, n int) (Ready, error) {
	i, _ := c.fleet.NodeIndex(node)
	pn := c.idx.nodes[i]
	var devs []int
	for dv, f := range pn.Free {
		if f == place.Whole && len(devs) < k {
			devs = append(devs, dv)
		}
	}
	if k > 0 && len(devs) == 0 {
		return Ready{}, nil
	}
	h := DevicesHeld{Key: fmt.Sprintf("held%d", n), Node: node, Devices: devs, Milli: place.Whole, CPUMilli: min(1000, pn.CPUFree), MemoryMiB: min(1024, pn.MemFree)}
	r, err := c.Apply(h)
	if err == nil {
		d.held[h.Key] = h
	}
	return r, err
}

// play runs a script and returns the actions as text; it checks the core's
// invariants and the driver-visible ones after every step.
//
// With explain set it also asks Explain, and for every pending job its
// earliest start, about every job after every cycle: the what-if probes
// must leave every later decision unchanged.
func play(t *rapid.T, w world, script []step, explain bool) string {
	f, err := fleet.New(nil, nil, w.nodes)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quota.New(w.specs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(w.cfg, f, q)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	d := &driver{t: t, log: &log, bound: map[JobID]map[[2]int]Bind{}, open: map[holdKey]Bind{}, stopping: map[JobID]int64{}, shrinking: map[[3]any]int64{},
		held: map[string]DevicesHeld{}, jobs: map[JobID]Job{}, paused: map[[2]string]bool{}}
	now := int64(0)
	specs := w.specs
	before := c.capState()
	for _, s := range script {
		var r Ready
		var err error
		var over JobID // a job the driver reported over
		id := JobID(fmt.Sprintf("j%d", s.id))
		switch s.kind {
		case "submit":
			d.jobs[s.job.ID] = s.job
			r, err = c.Apply(JobSubmitted{Job: s.job})
		case "finish":
			if r, err = c.Apply(JobFinished{ID: id}); err == nil {
				over = id
			}
		case "cancel":
			if r, err = c.Apply(JobCancelled{ID: id}); err == nil {
				over = id
			}
		case "fail":
			if r, err = c.Apply(JobFailed{ID: id, Reason: "x", Requeue: s.flag}); err == nil {
				over = id
			}
		case "nodefail":
			r, err = c.Apply(NodeFailed{Node: w.nodes[s.arg].Name, Reason: "x"})
		case "drain":
			r, err = c.Apply(NodeDrained{Node: w.nodes[s.arg].Name})
		case "cordon":
			r, err = c.Apply(NodeCordoned{Node: w.nodes[s.arg].Name})
		case "return":
			r, err = c.Apply(NodeReturned{Node: w.nodes[s.arg].Name})
		case "queues":
			if r, err = c.Apply(QueuesChanged{Specs: s.specs}); err == nil {
				specs = s.specs
			}
		case "quota":
			r, err = c.Apply(QuotaChanged{Queue: s.specs[0].Name, Flavor: s.flavor, Quota: s.limits})
			if err == nil {
				specs = slices.Clone(specs)
				for i := range specs {
					if specs[i].Name == s.specs[0].Name {
						specs[i].Quotas = maps.Clone(specs[i].Quotas)
						if specs[i].Quotas == nil {
							specs[i].Quotas = map[string]quota.Limits{}
						}
						specs[i].Quotas[s.flavor] = s.limits
					}
				}
			}
		case "addnode":
			r, err = c.Apply(NodeAdded{Node: s.node})
		case "cap":
			if r, err = c.Apply(s.cap); err == nil {
				d.caps = append(d.caps, s.cap)
			}
		case "pause":
			k := [2]string{s.flavor, s.specs[0].Name}
			if r, err = c.Apply(AdmissionPaused{Tenant: k[0], Queue: k[1], Reason: "paused", Stop: s.flag}); err == nil {
				d.paused[k] = true
				for _, j := range c.running {
					if s.flag && j.state == jRunning && j.queue > 0 && strings.HasPrefix(j.Queue, k[0]) && (k[1] == "" || k[1] == j.Queue) {
						d.fail("pause %v with stop: job %s runs on", k, j.ID)
					}
				}
			}
		case "resume":
			if r, err = c.Apply(AdmissionResumed{Tenant: s.flavor, Queue: s.specs[0].Name}); err == nil {
				delete(d.paused, [2]string{s.flavor, s.specs[0].Name})
			}
		case "restart":
			c = d.restart(c, w, specs)
		case "hold":
			r, err = d.holdFree(c, c.fleet.Nodes[s.arg%len(c.fleet.Nodes)].Name, s.id, len(log.String()))
		case "unhold":
			if len(d.held) > 0 {
				keys := slices.Sorted(maps.Keys(d.held))
				k := keys[s.arg%len(keys)]
				r, err = c.Apply(DevicesFreed{Key: k})
				delete(d.held, k)
			}
		case "schedule":
			now += int64(s.arg)
			r = c.Schedule(now)
		}
		if err != nil {
			fmt.Fprintf(&log, "error: %v\n", err)
		}
		d.take(c, r, c.now)
		if over != "" {
			d.ended(over)
		}
		if err := c.CheckInvariants(); err != nil {
			d.fail("after %s at t=%d: %v", s.kind, now, err)
		}
		if s.kind != "restart" && s.kind != "hold" {
			// A restart restores running work and a hold reports
			// devices a live process uses: facts, not admissions.
			d.checkCaps(c, before, s.kind, s.cap.Site)
		}
		before = c.capState()
		d.checkHoldings(c)
		if explain && s.kind == "schedule" {
			ids := make([]string, 0, len(c.jobs))
			for id := range c.jobs {
				ids = append(ids, string(id))
			}
			sort.Strings(ids)
			for _, id := range ids {
				if ex, ok := c.Explain(JobID(id)); ok && ex.State == StatePending {
					c.EarliestStart(JobID(id))
				}
			}
			if err := c.CheckInvariants(); err != nil {
				d.fail("after Explain at t=%d: %v", now, err)
			}
		}
	}
	// No device is bound twice in the driver's view: the binds it holds
	// never add up to more than a device.
	use := map[string]int32{}
	ids := make([]string, 0, len(d.bound))
	for id := range d.bound {
		ids = append(ids, string(id))
	}
	sort.Strings(ids)
	for _, h := range d.held {
		for _, dv := range h.Devices {
			use[fmt.Sprintf("%s/%d", h.Node, dv)] += h.Milli
		}
	}
	for _, id := range ids {
		for _, b := range d.bound[JobID(id)] {
			for _, dv := range b.Devices {
				k := fmt.Sprintf("%s/%d", b.Node, dv)
				use[k] += b.Milli
				if use[k] > place.Whole {
					d.fail("device %s bound for %d milli", k, use[k])
				}
			}
		}
	}
	return log.String()
}

func TestPropertyInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t)
		play(t, w, genScript(t, w), false)
	})
}

func TestPropertyDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t)
		s := genScript(t, w)
		a, b := play(t, w, s, false), play(t, w, s, true)
		if a != b {
			t.Fatalf("same events, different actions (the second run also asked Explain and EarliestStart about every job):\n%s\n---\n%s", a, b)
		}
	})
}
