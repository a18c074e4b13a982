package spec

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// JobSpec is a job as a user submits it: what the scheduler decides on and
// what the node agents run for each replica.
type JobSpec struct {
	Job sched.Job
	Run RunSpec
	// Service is set for an autoscaled inference service (kind: service
	// with a service: section); Job.Gangs then holds the one gang of one
	// replica.
	Service *ServiceSpec
}

// RunSpec is what a node agent executes for each replica of a job.
type RunSpec struct {
	Command []string
	Env     map[string]string
	// RestartPolicy is RestartNever or RestartGang.
	RestartPolicy string
	// MaxRestarts bounds gang restarts; 0 with RestartNever.
	MaxRestarts int
	// Resize says how the replicas of an elastic gang learn that it grew
	// or shrank: ResizeNotify or ResizeRestart.
	Resize string
	// Replicas is ReplicasGang (start and end together) or
	// ReplicasIndependent (an array job: each replica on its own).
	Replicas string
}

// Resize policies.
const (
	// ResizeNotify keeps running replicas and keeps their membership file
	// up to date.
	ResizeNotify = "notify"
	// ResizeRestart restarts the gang at its new size.
	ResizeRestart = "restart"
)

var resizePolicies = []string{ResizeNotify, ResizeRestart}

// Replica policies.
const (
	ReplicasGang        = "gang"
	ReplicasIndependent = "independent"
)

var replicaPolicies = []string{ReplicasGang, ReplicasIndependent}

// Restart policies.
const (
	// RestartNever fails the job when a replica fails.
	RestartNever = "never"
	// RestartGang restarts every replica of the job together.
	RestartGang = "gang"
	// RestartOnFailure runs a failed unit again: the gang, or for an
	// array job (replicaPolicy: independent) the failed replica alone.
	RestartOnFailure = "onFailure"
)

var restartPolicies = []string{RestartNever, RestartGang, RestartOnFailure}

// maxRestarts bounds RunSpec.MaxRestarts.
const maxRestarts = 1000

// maxReplicas bounds a gang's replicas.
const maxReplicas = 100_000

var jobFields = []string{
	"name", "tenant", "queue", "kind", "priority", "tier", "preemptible",
	"noticePeriod", "checkpointEvery", "gangs", "topology", "estimatedRuntime",
	"maxRuntime", "deadline", "window", "interruptible", "command", "env", "restartPolicy",
	"maxRestarts", "resize", "replicaPolicy", "waitForCapacity", "service",
}

var gangFields = []string{"name", "replicas", "minReplicas", "accelerators", "count", "fraction", "cpu", "memory"}

// ParseJob reads a file that holds exactly one job.
func ParseJob(name string, data []byte, opts ...Option) (JobSpec, error) {
	d := newDecoder(name)
	docs := d.documents(data, MaxJobBytes)
	if d.failed() {
		return JobSpec{}, d.err()
	}
	switch len(docs) {
	case 0:
		d.add(0, 0, "", "holds no job")
		return JobSpec{}, d.err()
	case 1:
	default:
		d.add(docs[1].line, 0, "", fmt.Sprintf("holds %d documents; want one job (several jobs are read with ParseJobs)", len(docs)))
		return JobSpec{}, d.err()
	}
	o := makeOptions(opts)
	js := o.job(docs[0].root())
	if d.failed() {
		return JobSpec{}, d.err()
	}
	return js, nil
}

// ParseJobs reads a file of one or more jobs, one per YAML document.
func ParseJobs(name string, data []byte, opts ...Option) ([]JobSpec, error) {
	d := newDecoder(name)
	docs := d.documents(data, MaxJobBytes)
	if d.failed() {
		return nil, d.err()
	}
	if len(docs) == 0 {
		d.add(0, 0, "", "holds no job")
		return nil, d.err()
	}
	o := makeOptions(opts)
	out := make([]JobSpec, 0, len(docs))
	seen := map[sched.JobID]int{}
	for _, doc := range docs {
		js := o.job(doc.root())
		if js.Job.ID != "" {
			if line, dup := seen[js.Job.ID]; dup {
				d.add(doc.line, 0, "name", fmt.Sprintf("job %q is already defined in the document at line %d", js.Job.ID, line))
			}
			seen[js.Job.ID] = doc.line
		}
		out = append(out, js)
	}
	if d.failed() {
		return nil, d.err()
	}
	return out, nil
}

// job reads one job document. Errors go to the decoder; the result is only
// meaningful when none were recorded.
func (o *options) job(v value) JobSpec {
	d := v.d
	before := d.count
	var js JobSpec
	j := &js.Job
	fs, isMap := v.fields(jobFields...)
	if !isMap {
		return js
	}
	if f, ok := fs.need("name"); ok {
		if s, ok := f.str(); ok {
			if msg := checkName(s); msg != "" {
				f.errorf("%s", msg)
			}
			j.ID = sched.JobID(s)
		}
	}
	if f, ok := fs.get("tenant"); ok {
		if s, ok := f.str(); ok {
			if msg := checkName(s); msg != "" {
				f.errorf("%s", msg)
			}
			j.Tenant = s
		}
	}
	queueVal, hasQueue := fs.need("queue")
	if hasQueue {
		if s, ok := queueVal.str(); ok {
			if msg := checkName(s); msg != "" {
				queueVal.errorf("%s", msg)
			}
			j.Queue = s
		}
	}
	if f, ok := fs.get("kind"); ok {
		if s, ok := f.str(); ok {
			k, err := sched.ParseKind(s)
			if err != nil {
				f.errorf("%q: want one of %s", s, strings.Join(sched.KindNames(), ", "))
			}
			j.Kind = k
		}
	} else {
		d.add(v.line, v.col, "kind", "is required (want one of "+strings.Join(sched.KindNames(), ", ")+")")
	}
	j.Priority = DefaultPriority
	if f, ok := fs.get("priority"); ok {
		j.Priority, _ = f.priority()
	}
	if f, ok := fs.get("tier"); ok {
		if s, ok := f.str(); ok {
			j.Tier = jobTier(f, s)
		}
	}
	if f, ok := fs.get("preemptible"); ok {
		j.Preemptible, _ = f.boolean()
	}
	if f, ok := fs.get("waitForCapacity"); ok {
		j.WaitForCapacity, _ = f.boolean()
	}
	j.NoticeSec = durationField(fs, "noticePeriod")
	j.CheckpointSec = durationField(fs, "checkpointEvery")
	j.EstimatedSec = durationField(fs, "estimatedRuntime")
	j.MaxSec = durationField(fs, "maxRuntime")
	if j.MaxSec > 0 && j.EstimatedSec > j.MaxSec {
		f, _ := fs.get("maxRuntime")
		f.errorf("%s is below estimatedRuntime %s", formatDuration(j.MaxSec), formatDuration(j.EstimatedSec))
	}
	o.deferral(fs, j)
	if f, ok := fs.get("service"); ok {
		if _, has := fs.get("gangs"); has {
			g, _ := fs.get("gangs")
			g.errorf("a service's replica is service.replica (members, accelerators, count, cpu, memory); leave gangs out")
		}
		if j.Kind != sched.Service {
			f.errorf("only a job of kind: service has a service section (kind is %s)", j.Kind)
		}
		for _, name := range []string{"deadline", "window", "interruptible"} {
			if d, has := fs.get(name); has {
				d.errorf("a service runs until it is cancelled and starts replicas when its load needs them: its capacity is not deferred or suspended; leave %s out", name)
			}
		}
		js.Service, j.Gangs = o.service(f)
	} else if f, ok := fs.need("gangs"); ok {
		j.Gangs = o.gangs(f)
	}
	if f, ok := fs.get("topology"); ok {
		j.Topology = o.topology(f)
	}
	js.Run = runSpec(fs)
	if js.Service != nil {
		checkServiceRun(fs)
	}
	if js.Run.Replicas == ReplicasIndependent {
		for i, g := range j.Gangs {
			if g.MinReplicas > 0 {
				f, _ := fs.get("replicaPolicy")
				f.errorf("independent replicas start and end on their own: gangs[%d].minReplicas does not apply; leave it out", i)
			}
		}
	}
	if d.count > before {
		return js
	}
	if err := j.Validate(); err != nil {
		// The checks above cover Validate's; this keeps the two in step if
		// Validate learns something new.
		reportAt(v, fs, err.Error())
	}
	if o.queues != nil && hasQueue {
		o.checkQueue(queueVal, fs, j)
	}
	return js
}

// reportAt turns an error of the form "path: message" from another package
// into a located one, translating the core's field names to the spec's.
func reportAt(v value, fs fields, msg string) {
	path, rest, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(path, " ") {
		v.errorf("%s", msg)
		return
	}
	top, _, _ := strings.Cut(path, ".")
	top, _, _ = strings.Cut(top, "[")
	names := map[string]string{"id": "name", "noticeSec": "noticePeriod", "checkpointSec": "checkpointEvery", "estimatedSec": "estimatedRuntime", "maxSec": "maxRuntime"}
	if n, ok := names[top]; ok {
		path = n + path[len(top):]
		top = n
	}
	path = strings.ReplaceAll(path, ".shape", "")
	at := v
	if f, ok := fs.get(top); ok {
		at = f
		// gangs[2]...: point at that element.
		var i int
		if _, err := fmt.Sscanf(path[len(top):], "[%d]", &i); err == nil {
			if s, isSeq := f.n.(*ast.SequenceNode); isSeq && i >= 0 && i < len(s.Values) {
				if elems, ok := f.seq(); ok && i < len(elems) {
					at = elems[i]
				}
			}
		}
	}
	v.d.add(at.line, at.col, path, rest)
}

// priority reads an integer or a class name.
func (v value) priority() (int32, bool) {
	switch v.n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		x, ok := v.intIn(math.MinInt32, math.MaxInt32)
		return int32(x), ok
	}
	s, ok := v.str()
	if !ok {
		return 0, false
	}
	for _, c := range PriorityClasses {
		if c.Name == s {
			return c.Value, true
		}
	}
	v.errorf("%q: want an integer or one of %s", s, priorityClassNames())
	return 0, false
}

func durationField(fs fields, key string) int64 {
	f, ok := fs.get(key)
	if !ok {
		return 0
	}
	s, ok := f.str()
	if !ok {
		return 0
	}
	sec, err := parseDuration(s)
	if err != nil {
		f.errorf("%v", err)
	}
	return sec
}

func (o *options) gangs(v value) []sched.Gang {
	elems, ok := v.seq()
	if ok && len(elems) == 0 {
		v.errorf("a job needs at least one gang")
	}
	gangs := make([]sched.Gang, 0, len(elems))
	names := map[string]bool{}
	for _, e := range elems {
		gangs = append(gangs, o.gang(e, names))
	}
	return gangs
}

// gang reads one gang; names holds the gang names seen so far in the job.
func (o *options) gang(v value, names map[string]bool) sched.Gang {
	var g sched.Gang
	fs, isMap := v.fields(gangFields...)
	if !isMap {
		return g
	}
	if f, ok := fs.get("name"); ok {
		if s, ok := f.str(); ok {
			if msg := checkName(s); msg != "" {
				f.errorf("%s", msg)
			} else if names[s] {
				f.errorf("gang %q is defined twice", s)
			}
			names[s] = true
			g.Name = s
		}
	}
	if f, ok := fs.need("replicas"); ok {
		x, _ := f.intIn(1, maxReplicas)
		g.Replicas = int(x)
	}
	if f, ok := fs.get("minReplicas"); ok {
		hi := int64(g.Replicas)
		if hi < 1 {
			hi = maxReplicas
		}
		x, _ := f.intIn(1, hi)
		g.MinReplicas = int(x)
	}
	g.Shape = o.shape(fs)
	return g
}

// shape reads what one replica needs: accelerators (whole or a fraction of
// one), CPU and memory. A gang and a service's replica share it.
func (o *options) shape(fs fields) place.Request {
	var req place.Request
	r := &req
	countVal, hasCount := fs.get("count")
	fracVal, hasFrac := fs.get("fraction")
	switch {
	case hasCount && hasFrac:
		fracVal.errorf("give count (whole accelerators) or fraction (a share of one), not both")
	case hasCount:
		x, _ := countVal.intIn(1, fleet.MaxDevicesPerNode)
		r.Devices = int(x)
	case hasFrac:
		if text, quoted, ok := fracVal.numberText(); ok {
			m, err := parseMilli(text)
			switch {
			case quoted:
				fracVal.errorf("want a number, got a string")
			case err != nil:
				fracVal.errorf("%v", err)
			case m <= 0 || m >= 1000:
				fracVal.errorf("%s, want a share of one accelerator above 0 and below 1 (use count for whole accelerators)", text)
			default:
				r.Milli = int32(m)
			}
		}
	}
	if f, ok := fs.get("accelerators"); ok {
		types, elems, good := f.stringList(true)
		if good {
			seen := map[string]bool{}
			for i, t := range types {
				if o.catalog.Index(t) < 0 {
					elems[i].errorf("type %q is not in the catalog (want one of %s)", t, typeList(o.catalog))
				} else if seen[t] {
					elems[i].errorf("type %q is listed twice", t)
				}
				seen[t] = true
			}
			if len(types) == 0 {
				f.errorf("want at least one accelerator type")
			}
			if !hasCount && !hasFrac {
				f.errorf("names accelerator types but neither count nor fraction is given")
			}
		}
		r.Accel = types
	}
	if f, ok := fs.get("cpu"); ok {
		r.CPUMilli = cpuValue(f)
	}
	if f, ok := fs.get("memory"); ok {
		r.MemoryMiB = memoryValue(f)
	}
	return req
}

func cpuValue(f value) int64 {
	text, _, ok := f.numberText()
	if !ok {
		return 0
	}
	m, err := parseCPU(text)
	if err != nil {
		f.errorf("%v", err)
	}
	return m
}

func memoryValue(f value) int64 {
	s, ok := f.str()
	if !ok {
		return 0
	}
	m, err := parseMemory(s)
	if err != nil {
		f.errorf("%v", err)
	}
	return m
}

func (o *options) levelNames() string {
	return strings.Join(append(append([]string(nil), o.levels...), "node"), ", ")
}

func (o *options) topology(v value) sched.Topology {
	var t sched.Topology
	fs, isMap := v.fields("required", "preferred")
	if !isMap {
		return t
	}
	req, hasReq := fs.get("required")
	pref, hasPref := fs.get("preferred")
	lv := pref
	switch {
	case hasReq && hasPref:
		pref.errorf("give required or preferred, not both")
		return t
	case hasReq:
		lv, t.Required = req, true
	case !hasPref:
		v.errorf("want required: LEVEL or preferred: LEVEL (levels: %s)", o.levelNames())
		return t
	}
	s, ok := lv.str()
	if !ok {
		return t
	}
	known := s == "node"
	for _, l := range o.levels {
		known = known || l == s
	}
	if !known {
		lv.errorf("level %q: want one of %s", s, o.levelNames())
	}
	t.Level = s
	return t
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func runSpec(fs fields) RunSpec {
	run := RunSpec{RestartPolicy: RestartNever}
	if f, ok := fs.get("command"); ok {
		cmd, elems, good := f.stringList(false)
		if good && len(cmd) == 0 {
			f.errorf("must not be empty; leave the field out instead")
		}
		if good && len(cmd) > 0 && cmd[0] == "" {
			f.errorf("the program (first element) must not be empty")
		}
		for i, c := range cmd {
			if strings.IndexByte(c, 0) >= 0 && i < len(elems) {
				elems[i].errorf("holds a NUL byte: a program's arguments cannot carry one")
			}
		}
		run.Command = cmd
	}
	if f, ok := fs.get("env"); ok {
		run.Env, _ = f.stringMap(func(k string) string {
			if !envName.MatchString(k) {
				return fmt.Sprintf("%q: want letters, digits and '_', not starting with a digit", k)
			}
			return ""
		}, func(v string) string {
			if strings.IndexByte(v, 0) >= 0 {
				return "holds a NUL byte: an environment variable cannot carry one"
			}
			return ""
		})
	}
	if f, ok := fs.get("restartPolicy"); ok {
		if s, ok := f.str(); ok {
			if !slices.Contains(restartPolicies, s) {
				f.errorf("%q: want one of %s", s, strings.Join(restartPolicies, ", "))
			}
			run.RestartPolicy = s
		}
	}
	if f, ok := fs.get("maxRestarts"); ok {
		if x, ok := f.intIn(0, maxRestarts); ok {
			run.MaxRestarts = int(x)
			if x > 0 && run.RestartPolicy == RestartNever {
				f.errorf("%d restarts need restartPolicy: gang or onFailure", x)
			}
		}
	}
	run.Resize = oneOf(fs, "resize", resizePolicies)
	run.Replicas = oneOf(fs, "replicaPolicy", replicaPolicies)
	return run
}

// oneOf reads an optional field that takes one of a few words.
func oneOf(fs fields, key string, allowed []string) string {
	f, ok := fs.get(key)
	if !ok {
		return ""
	}
	s, ok := f.str()
	if ok && !slices.Contains(allowed, s) {
		f.errorf("%q: want one of %s", s, strings.Join(allowed, ", "))
		return ""
	}
	return s
}

// checkQueue checks the job's queue against the queue tree.
func (o *options) checkQueue(qv value, fs fields, j *sched.Job) {
	parent := map[string]string{}
	leaf := map[string]bool{}
	var names []string
	for _, s := range o.queues {
		parent[s.Name] = s.Parent
		leaf[s.Name] = true
	}
	for _, s := range o.queues {
		leaf[s.Parent] = false
	}
	for _, s := range o.queues {
		if leaf[s.Name] {
			names = append(names, s.Name)
		}
	}
	if _, ok := parent[j.Queue]; !ok || !leaf[j.Queue] {
		what := "is not a queue"
		if ok {
			what = "is not a leaf queue"
		}
		qv.errorf("%q %s (want one of %s)", j.Queue, what, strings.Join(names, ", "))
		return
	}
	tenant := j.Queue
	for parent[tenant] != "" && parent[tenant] != quota.RootName {
		tenant = parent[tenant]
	}
	if j.Tenant != "" && j.Tenant != tenant {
		f, _ := fs.get("tenant")
		f.errorf("%q, but queue %q belongs to tenant %q", j.Tenant, j.Queue, tenant)
	}
}

// priorityClass returns the class name of a priority, or "".
func priorityClass(p int32) string {
	for _, c := range PriorityClasses {
		if c.Value == p {
			return c.Name
		}
	}
	return ""
}

// Tiers are the capacity tiers a job may name: committed (reserved under a
// commitment), on-demand (the default) and spot (cheaper, taken back first
// with the fleet's spot notice).
var Tiers = []string{sched.TierCommitted, sched.TierOnDemand, sched.TierSpot}

// jobTier reads a job's tier. on-demand is the core's default tier, whose
// quota flavor is the bare accelerator type: it reads as "".
func jobTier(f value, s string) string {
	switch s {
	case sched.TierOnDemand:
		return ""
	case sched.TierCommitted, sched.TierSpot:
		return s
	}
	f.errorf("%q: want one of %s (on-demand when left out)", s, strings.Join(Tiers, ", "))
	return s
}

// deferral reads what makes a job deferrable: a deadline (an RFC 3339
// time) or a window {from, to}, and whether it is interruptible.
func (o *options) deferral(fs fields, j *sched.Job) {
	dl, hasDeadline := fs.get("deadline")
	win, hasWindow := fs.get("window")
	switch {
	case hasDeadline && hasWindow:
		win.errorf("give deadline or window, not both (a window's to is its deadline)")
	case hasDeadline:
		j.Deadline, _ = jobTime(dl)
	case hasWindow:
		wf, isMap := win.fields("from", "to")
		if !isMap {
			break
		}
		from, okFrom := wf.need("from")
		to, okTo := wf.need("to")
		if !okFrom || !okTo {
			break
		}
		f, good := jobTime(from)
		t, good2 := jobTime(to)
		if good && good2 && f >= t {
			to.errorf("%s is not after from %s: the window would be empty", formatTime(t), formatTime(f))
		}
		j.NotBefore, j.Deadline = f, t
	}
	if f, ok := fs.get("interruptible"); ok {
		j.Interruptible, _ = f.boolean()
	}
}

// jobTime reads a time in RFC 3339 (2026-12-03T09:00:00Z) as Unix
// seconds.
func jobTime(v value) (int64, bool) {
	s, ok := v.str()
	if !ok {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		v.errorf("%q: want a time in RFC 3339, such as 2026-12-03T09:00:00Z", s)
		return 0, false
	}
	if t.Unix() <= 0 {
		v.errorf("%q: want a time after 1970", s)
		return 0, false
	}
	return t.Unix(), true
}

// formatTime writes Unix seconds as RFC 3339 in UTC.
func formatTime(sec int64) string { return time.Unix(sec, 0).UTC().Format(time.RFC3339) }
