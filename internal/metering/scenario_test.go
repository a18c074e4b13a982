package metering_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/metering"
	"github.com/gpufleet/gpufleet/internal/place"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// TestScenarios runs the scenario files under testdata/scenarios: a fleet
// and queue tree, credits, budgets and commitments, jobs submitted and run
// for a time by a driver that does what the live server's loop does (a
// scheduling cycle every step, every usage record to the accountant, a
// meter when it is due, its events applied to the core), and what the core
// and the ledger say. Regenerate with -rewrite and review the diff.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		d := &driver{}
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			out, err := d.run(td)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

// base is the scenarios' time 0: 2026-12-01T00:00:00Z.
var base = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Unix()

type simJob struct {
	id       sched.JobID
	duration int64 // seconds of running to finish; 0: runs for ever
	startAt  int64 // core seconds, -1 when not running
}

type driver struct {
	core  *sched.Core
	acct  *metering.Accountant
	specs []quota.Spec
	now   int64 // core seconds
	jobs  map[sched.JobID]*simJob
	order []sched.JobID
	lines []string
}

// clock reads a time: an offset from base such as 1h30m, or HH:MM[:SS].
func clock(s string) (int64, error) {
	if strings.Contains(s, ":") {
		parts := strings.Split(s, ":")
		var sec int64
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				return 0, fmt.Errorf("time %q: want HH:MM[:SS]", s)
			}
			sec += int64(n) * []int64{3600, 60, 1}[i]
		}
		return base + sec, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("time %q: want 1h30m or HH:MM[:SS]", s)
	}
	return base + int64(d/time.Second), nil
}

func hhmm(t int64) string {
	d := t - base
	return fmt.Sprintf("%02d:%02d:%02d", d/3600, d/60%60, d%60)
}

func args(td *datadriven.TestData) map[string]string {
	m := map[string]string{}
	for _, a := range td.CmdArgs {
		m[a.Key] = strings.Join(a.Vals, ",")
	}
	return m
}

func (d *driver) logf(format string, a ...any) {
	d.lines = append(d.lines, hhmm(d.now)+" "+fmt.Sprintf(format, a...))
}

func (d *driver) run(td *datadriven.TestData) (string, error) {
	a := args(td)
	d.lines = nil
	switch td.Cmd {
	case "setup":
		return "", d.setup(a, td.Input)
	case "grant":
		amount, err := ledger.ParseMoney(a["amount"])
		if err != nil {
			return "", err
		}
		g := ledger.Grant{ID: a["id"], Tenant: a["tenant"], Queue: a["queue"], Amount: amount, StartMs: d.now * 1000}
		if v, ok := a["expires"]; ok {
			e, err := clock(v)
			if err != nil {
				return "", err
			}
			g.ExpiresMs = e * 1000
		}
		if err := d.acct.Ledger.AddGrant(g); err != nil {
			return "", err
		}
		d.acct.Wake()
		return "ok\n", nil
	case "budget":
		amount, err := ledger.ParseMoney(a["monthly"])
		if err != nil {
			return "", err
		}
		if err := d.acct.Ledger.SetBudget(ledger.Budget{Tenant: a["tenant"], Monthly: amount}); err != nil {
			return "", err
		}
		d.acct.Wake()
		return "ok\n", nil
	case "commitment":
		start, err := clock(a["start"])
		if err != nil {
			return "", err
		}
		end, err := clock(a["end"])
		if err != nil {
			return "", err
		}
		n, _ := strconv.Atoi(a["count"])
		price, err := ledger.ParseMoney(a["price"])
		if err != nil {
			return "", err
		}
		c := ledger.Commitment{ID: a["id"], Tenant: a["tenant"], Type: a["type"], Count: n, StartMs: start * 1000, EndMs: end * 1000, PricePerHour: price}
		if err := d.acct.Ledger.AddCommitment(c); err != nil {
			return "", err
		}
		d.acct.Wake()
		return "ok\n", nil
	case "submit":
		return d.submit(a)
	case "run":
		until, err := clock(a["until"])
		if err != nil {
			return "", err
		}
		step := int64(10)
		if v, ok := a["step"]; ok {
			s, err := time.ParseDuration(v)
			if err != nil {
				return "", err
			}
			step = int64(s / time.Second)
		}
		for d.now+step <= until {
			if err := d.tick(d.now + step); err != nil {
				return "", err
			}
		}
		return d.output(), nil
	case "standing":
		st := d.acct.Ledger.Standing(a["tenant"], a["queue"], d.now*1000)
		cur := d.acct.Ledger.Currency()
		return fmt.Sprintf("credits %s, burn %s/h, budget %s, spent %s, postpaid %v\n",
			st.Credits.Format(cur), st.BurnRate.Format(cur), st.Budget.Format(cur), st.Spent.Format(cur), st.Postpaid), nil
	case "usage":
		var ms int64
		for _, ju := range d.acct.Ledger.Job(a["job"]) {
			ms += ju.MilliMs
		}
		return fmt.Sprintf("%s: %d milli-accelerator-ms (%.4f accelerator-hours)\n", a["job"], ms, float64(ms)/3.6e9), nil
	case "explain":
		ex, ok := d.core.Explain(sched.JobID(a["job"]))
		if !ok {
			return "unknown job\n", nil
		}
		return fmt.Sprintf("%s: %s\n", ex.State, ex.Reason), nil
	case "report":
		from, to := base*1000, (base+86400)*1000
		r, err := d.acct.Ledger.Report(ledger.Query{FromMs: from, ToMs: to, Period: ledger.Daily, By: []ledger.Dim{ledger.ByTenant, ledger.ByTier}})
		if err != nil {
			return "", err
		}
		cur := d.acct.Ledger.Currency()
		var b strings.Builder
		for _, row := range r.Rows {
			fmt.Fprintf(&b, "%s %s %s: %.4f acc-h, charged %s (overage %s)\n", row.Kind, row.Tenant, row.Tier, row.AcceleratorHours(), row.Charged().Format(cur), row.OverageCharge.Format(cur))
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown command %q", td.Cmd)
}

// setup reads "setup nodes=N type=T count=C [interval=60s] [spotNotice=30s]"
// and a queue tree, one line a queue: "NAME [parent=P] FLAVOR=N ...".
func (d *driver) setup(a map[string]string, input string) error {
	nodes, _ := strconv.Atoi(a["nodes"])
	count, _ := strconv.Atoi(a["count"])
	var ns []fleet.Node
	for i := range nodes {
		ns = append(ns, fleet.Node{Name: fmt.Sprintf("n%d", i+1), Path: []string{"eu", "z1", "b1", "r1"}, Accel: a["type"], Count: count,
			CPUMilli: 64000, MemoryMiB: 1 << 20, State: fleet.Ready})
	}
	f, err := fleet.New(nil, fleet.DefaultLevels[:4], ns)
	if err != nil {
		return err
	}
	d.specs = nil
	for _, line := range strings.Split(strings.TrimSpace(input), "\n") {
		fs := strings.Fields(line)
		sp := quota.Spec{Name: fs[0], Quotas: map[string]quota.Limits{}}
		for _, kv := range fs[1:] {
			k, v, _ := strings.Cut(kv, "=")
			if k == "parent" {
				sp.Parent = v
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("quota %q: %v", kv, err)
			}
			sp.Quotas[k] = quota.Limits{Nominal: int64(n) * 1000}
		}
		d.specs = append(d.specs, sp)
	}
	interval := int64(60_000)
	if v, ok := a["interval"]; ok {
		iv, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		interval = iv.Milliseconds()
	}
	prices := ledger.Prices{Types: map[string]ledger.Rate{"h100": {OnDemand: 2 * ledger.Micro, Spot: 800_000, Committed: 1_500_000, Asset: 1_100_000}}}
	l, err := ledger.New(ledger.Config{Prices: prices, DefaultSite: &ledger.Site{PUE: 1.2, CarbonGPerKWh: 250}})
	if err != nil {
		return err
	}
	d.acct = metering.New(l, interval)
	cfg := sched.Config{PreemptAfterSec: -1}
	if v, ok := a["spotNotice"]; ok {
		iv, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		cfg.SpotNoticeSec = int64(iv / time.Second)
	}
	tree, err := quota.New(d.acct.Overlay(d.specs, base*1000))
	if err != nil {
		return err
	}
	if d.core, err = sched.New(cfg, f, tree); err != nil {
		return err
	}
	d.now = base
	_, err = d.core.Apply(sched.TimeAdvanced{Now: base})
	d.jobs = map[sched.JobID]*simJob{}
	d.order = nil
	return err
}

// submit reads "submit job=J queue=Q devices=N [replicas=R] [milli=M]
// [tier=T] [notice=30s] [runs=2h] [preemptible]".
func (d *driver) submit(a map[string]string) (string, error) {
	devices, _ := strconv.Atoi(a["devices"])
	replicas := 1
	if v, ok := a["replicas"]; ok {
		replicas, _ = strconv.Atoi(v)
	}
	shape := place.Request{Accel: []string{"h100"}, Devices: devices, CPUMilli: 1000, MemoryMiB: 1024}
	if v, ok := a["milli"]; ok {
		m, _ := strconv.Atoi(v)
		shape.Devices, shape.Milli = 0, int32(m)
	}
	j := sched.Job{ID: sched.JobID(a["job"]), Queue: a["queue"], Tier: a["tier"], Gangs: []sched.Gang{{Replicas: replicas, Shape: shape}}}
	_, j.Preemptible = a["preemptible"]
	if v, ok := a["notice"]; ok {
		n, err := time.ParseDuration(v)
		if err != nil {
			return "", err
		}
		j.NoticeSec = int64(n / time.Second)
	}
	sj := &simJob{id: j.ID, startAt: -1}
	if v, ok := a["runs"]; ok {
		n, err := time.ParseDuration(v)
		if err != nil {
			return "", err
		}
		sj.duration = int64(n / time.Second)
	}
	r, err := d.core.Apply(sched.JobSubmitted{Job: j})
	if err != nil {
		return "", err
	}
	d.jobs[j.ID] = sj
	d.order = append(d.order, j.ID)
	d.take(r)
	return d.output(), nil
}

func (d *driver) output() string {
	if len(d.lines) == 0 {
		return ""
	}
	return strings.Join(d.lines, "\n") + "\n"
}

// tick is one iteration of the loop at core time t: jobs that ran their
// time finish, a scheduling cycle runs, and the accountant meters when
// it is due.
func (d *driver) tick(t int64) error {
	d.now = t
	if _, err := d.core.Apply(sched.TimeAdvanced{Now: t}); err != nil {
		return err
	}
	for _, id := range d.order {
		j := d.jobs[id]
		if j.startAt >= 0 && j.duration > 0 && t >= j.startAt+j.duration {
			j.startAt = -1
			r, err := d.core.Apply(sched.JobFinished{ID: id})
			if err != nil {
				return err
			}
			d.logf("finished %s", id)
			d.take(r)
		}
	}
	// The accountant meters before the cycle, so that a pause it calls
	// for holds before anything is admitted.
	if d.acct.Due(t * 1000) {
		evs, err := d.acct.Meter(d.core, d.specs, t*1000)
		if err != nil {
			return err
		}
		for _, e := range d.acct.Ledger.Events() {
			d.lines = append(d.lines, hhmm(e.AtMs/1000)+" event "+e.Kind.String()+": "+eventText(e))
		}
		for _, ev := range evs {
			d.logf("%s", eventLine(ev))
			r, err := d.core.Apply(ev)
			if err != nil {
				return err
			}
			d.take(r)
		}
	}
	d.take(d.core.Schedule(t))
	return nil
}

func eventText(e ledger.Event) string {
	s := e.String()
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[i+1:] // without the time, given before
	}
	return s
}

func eventLine(ev sched.Event) string {
	switch e := ev.(type) {
	case sched.AdmissionPaused:
		return fmt.Sprintf("pause %s (stop %v): %s", metering.Scope{Tenant: e.Tenant, Queue: e.Queue}, e.Stop, e.Reason)
	case sched.AdmissionResumed:
		return fmt.Sprintf("resume %s", metering.Scope{Tenant: e.Tenant, Queue: e.Queue})
	case sched.QueuesChanged:
		var qs []string
		for _, sp := range e.Specs {
			for _, f := range sortedFlavors(sp.Quotas) {
				if strings.HasSuffix(f, ":committed") {
					qs = append(qs, fmt.Sprintf("%s %s=%d", sp.Name, f, sp.Quotas[f].Nominal/1000))
				}
			}
		}
		return "committed quota: " + strings.Join(qs, ", ")
	}
	return fmt.Sprintf("%T", ev)
}

// take carries out what the core decided: binds start jobs, usage records
// go to the accountant.
func (d *driver) take(r sched.Ready) {
	bound := map[sched.JobID]bool{}
	for _, a := range r.Actions {
		switch a := a.(type) {
		case sched.Bind:
			if j := d.jobs[a.Job]; j != nil && j.startAt < 0 {
				j.startAt = d.now
			}
			if !bound[a.Job] {
				bound[a.Job] = true
				d.logf("bind %s", a.Job)
			}
		case sched.Preempt:
			d.logf("preempt %s by %s: %s", a.Job, hhmm(a.Deadline), a.Reason)
		case sched.Requeue:
			if j := d.jobs[a.Job]; j != nil {
				j.startAt = -1
			}
			d.logf("requeue %s: %s", a.Job, a.Reason)
		case sched.Reject:
			d.logf("reject %s: %s", a.Job, a.Reason)
		}
	}
	sort.Slice(r.Usage, func(i, j int) bool { return metering.RecordID(&r.Usage[i]) < metering.RecordID(&r.Usage[j]) })
	for i := range r.Usage {
		u := &r.Usage[i]
		if u.Type != "" {
			d.logf("usage %s %s %s..%s %s", u.Job, tierName(u.Tier), hhmm(u.From), hhmm(u.To), u.End)
		}
	}
	if err := d.acct.Closed(r.Usage); err != nil {
		d.logf("ledger refused a record: %v", err)
	}
}

func sortedFlavors(m map[string]quota.Limits) []string {
	out := make([]string, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func tierName(t string) string {
	if t == "" {
		return "on-demand"
	}
	return t
}
