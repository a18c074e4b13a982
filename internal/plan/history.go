package plan

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/forecast"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// JobDemand is one job of a history: its series, when it arrived and the
// work it brought.
type JobDemand struct {
	Key Key
	// Arrival is the submission time in seconds.
	Arrival int64
	// Accels is the job's accelerators over all replicas (0.25: a quarter
	// of one).
	Accels float64
	// Hours is its runtime at relative speed 1.0.
	Hours float64
}

// Aggregator sums jobs into demand series: each job's work (accelerators x
// hours) counts in the step it arrived in. Demand is measured at
// submission, not at the start: what the fleet was asked for, which a
// full fleet's queue would otherwise hide from the history.
type Aggregator struct {
	step, origin int64
	last         int64 // latest arrival seen
	by           map[Key]*aggSeries
}

type aggSeries struct {
	values        map[int64]float64
	accels, hours []float64
	jobs          int
}

// NewAggregator sums jobs into steps of stepSec seconds from origin.
func NewAggregator(stepSec, origin int64) *Aggregator {
	return &Aggregator{step: stepSec, origin: origin, last: origin, by: map[Key]*aggSeries{}}
}

// Add counts one job. Jobs before the origin, or without work, are left
// out and reported false.
func (a *Aggregator) Add(j JobDemand) bool {
	if j.Arrival < a.origin || !(j.Accels > 0) || !(j.Hours > 0) || math.IsInf(j.Accels*j.Hours, 0) {
		return false
	}
	s := a.by[j.Key]
	if s == nil {
		s = &aggSeries{values: map[int64]float64{}}
		a.by[j.Key] = s
	}
	s.values[(j.Arrival-a.origin)/a.step] += j.Accels * j.Hours
	s.accels = append(s.accels, j.Accels)
	s.hours = append(s.hours, j.Hours)
	s.jobs++
	a.last = max(a.last, j.Arrival)
	return true
}

// History returns the series, all as long as the span from the origin to
// the last arrival (steps without work are zero), in key order. Each
// series' shape is the median accelerators and the median runtime of its
// jobs.
func (a *Aggregator) History() History {
	n := (a.last-a.origin)/a.step + 1
	h := History{StepSec: a.step}
	keys := make([]Key, 0, len(a.by))
	for k := range a.by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	for _, k := range keys {
		s := a.by[k]
		v := make([]float64, n)
		for i, x := range s.values {
			v[i] = x
		}
		h.Series = append(h.Series, Series{Key: k, Values: v, Jobs: s.jobs, Shape: Shape{Accels: median(s.accels), Hours: median(s.hours)}})
	}
	return h
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// FromSeries reads a series file's series as a history at stepSec: each
// id names its series (ParseKey). The series must have the same length,
// aligned at their ends: the last value of each is the same step.
func FromSeries(series []forecast.Series, stepSec int64) (History, error) {
	h := History{StepSec: stepSec}
	seen := map[Key]string{}
	n := 0
	for _, s := range series {
		k, err := ParseKey(s.ID)
		if err != nil {
			return h, fmt.Errorf("series %s: id %w", s.ID, err)
		}
		if prev, dup := seen[k]; dup {
			return h, fmt.Errorf("series %s: names the same series as %s", s.ID, prev)
		}
		seen[k] = s.ID
		for i, v := range s.Values {
			if v < 0 {
				return h, fmt.Errorf("series %s: value %d is %v: demand cannot be negative", s.ID, i+1, v)
			}
		}
		n = max(n, len(s.Values))
		h.Series = append(h.Series, Series{Key: k, Values: s.Values})
	}
	for i := range h.Series {
		// Shorter series started later: zeros before their first value.
		if pad := n - len(h.Series[i].Values); pad > 0 {
			h.Series[i].Values = append(make([]float64, pad), h.Series[i].Values...)
		}
	}
	sort.SliceStable(h.Series, func(i, j int) bool { return h.Series[i].Key.Less(h.Series[j].Key) })
	return h, nil
}

// JobsCSVError locates a problem in a jobs CSV file.
type JobsCSVError struct {
	File         string
	Line, Column int
	Field        string
	Msg          string
}

func (e *JobsCSVError) Error() string {
	loc := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Column > 0 {
		loc += fmt.Sprintf(":%d", e.Column)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return loc + ": " + e.Msg
}

// jobsColumns are the columns of a simulation's jobs.csv that a history
// needs; accel, the accelerator type, is read when present.
var jobsColumns = []string{"tenant", "kind", "accels", "arrival", "accel_hours"}

// JobsCSV is what ParseJobsCSV read: the jobs and how many it left out.
type JobsCSV struct {
	Jobs []JobDemand
	// NeverRan counts jobs that never started: the work they would have
	// done is unknown, so they are left out.
	NeverRan int
	// Origin is the earliest arrival.
	Origin int64
}

// ParseJobsCSV reads the jobs.csv that `gpufleet sim run --report` writes
// (internal/report): a header naming the columns, then one job a line.
// It needs tenant, kind, accels, arrival and accel_hours; lost_accel_hours
// (work thrown away by preemptions, not demand) and accel (the type) are
// read when present. A job's work is its accelerator-hours less the lost
// ones; its runtime, that over its accelerators. The file has no type
// column of its own, so its jobs accept any type (AnyAccel) unless an
// accel column says otherwise. Errors name file:line:column and the
// column.
func ParseJobsCSV(data []byte, file string) (JobsCSV, error) {
	var out JobsCSV
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return out, &JobsCSVError{File: file, Line: 1, Msg: "empty file: want a header line naming the columns (" + strings.Join(jobsColumns, ", ") + ", ...)"}
	}
	if err != nil {
		return out, jobsCSVSyntax(file, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, c := range jobsColumns {
		if _, ok := col[c]; !ok {
			return out, &JobsCSVError{File: file, Line: 1, Column: 1, Msg: fmt.Sprintf("no column %q: a jobs file needs %s (the jobs.csv of sim run --report)", c, strings.Join(jobsColumns, ", "))}
		}
	}
	_, hasLost := col["lost_accel_hours"]
	accelCol, hasAccel := col["accel"]
	first := true
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, jobsCSVSyntax(file, err)
		}
		bad := func(name, msg string) error {
			line, c := r.FieldPos(col[name])
			return &JobsCSVError{File: file, Line: line, Column: c, Field: name, Msg: msg}
		}
		num := func(name string) (float64, error) {
			s := rec[col[name]]
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return 0, bad(name, fmt.Sprintf("%q: want a number, 0 or more", s))
			}
			return v, nil
		}
		j := JobDemand{Key: Key{Tenant: rec[col["tenant"]], Kind: rec[col["kind"]], Accel: AnyAccel}}
		if j.Key.Tenant == "" {
			return out, bad("tenant", "must not be empty")
		}
		if _, err := sched.ParseKind(j.Key.Kind); err != nil {
			return out, bad("kind", err.Error())
		}
		if hasAccel && rec[accelCol] != "" {
			j.Key.Accel = rec[accelCol]
		}
		arr, err := strconv.ParseInt(rec[col["arrival"]], 10, 64)
		if err != nil || arr < 0 {
			return out, bad("arrival", fmt.Sprintf("%q: want whole seconds, 0 or more", rec[col["arrival"]]))
		}
		j.Arrival = arr
		if j.Accels, err = num("accels"); err != nil {
			return out, err
		}
		work, err := num("accel_hours")
		if err != nil {
			return out, err
		}
		if hasLost {
			l, err := num("lost_accel_hours")
			if err != nil {
				return out, err
			}
			work = max(0, work-l)
		}
		if first || arr < out.Origin {
			out.Origin = arr
		}
		first = false
		if work == 0 || j.Accels == 0 {
			out.NeverRan++
			continue
		}
		j.Hours = work / j.Accels
		out.Jobs = append(out.Jobs, j)
	}
	if first {
		return out, &JobsCSVError{File: file, Line: 2, Msg: "no jobs after the header"}
	}
	return out, nil
}

func jobsCSVSyntax(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &JobsCSVError{File: file, Line: pe.Line, Column: pe.Column, Msg: pe.Err.Error()}
	}
	return &JobsCSVError{File: file, Line: 1, Msg: err.Error()}
}

// Weekly is one demand series summed into weeks, with the pattern of the
// work within a week.
type Weekly struct {
	Key Key `json:"key"`
	// Weeks holds the accelerator-hours of work that arrived in each full
	// week of the history, oldest first.
	Weeks []float64 `json:"weeks"`
	// Profile is the share of a week's work that arrives in each slot of
	// the week (hours, or days for daily history; one slot for weekly
	// history), over the whole history; it sums to 1.
	Profile []float64 `json:"profile"`
	Shape   Shape     `json:"shape"`
	Jobs    int       `json:"jobs"`
}

// MinWeeks is the shortest history a plan forecasts from.
const MinWeeks = 2

// Weekly sums each series into full weeks from its first step. A last
// week the history only partly covers is left out (its total would read
// as a drop in demand); dropped says how many steps that was.
func (h History) Weekly() (ws []Weekly, dropped int, err error) {
	if h.StepSec <= 0 || WeekSec%h.StepSec != 0 {
		return nil, 0, fmt.Errorf("step of %d seconds: want a divisor of a week (an hour, a day, a week, ...)", h.StepSec)
	}
	perWeek := int(WeekSec / h.StepSec)
	// Slots of the profile: the steps of a week, but no finer than hours.
	slotSteps := 1
	if h.StepSec < 3600 && 3600%h.StepSec == 0 {
		slotSteps = int(3600 / h.StepSec)
	}
	slots := perWeek / slotSteps
	for _, s := range h.Series {
		full := len(s.Values) / perWeek
		if full < MinWeeks {
			return nil, 0, fmt.Errorf("series %s: the history covers %s; a plan needs at least %d", s.Key, count(full, "full week"), MinWeeks)
		}
		dropped = max(dropped, len(s.Values)-full*perWeek)
		w := Weekly{Key: s.Key, Weeks: make([]float64, full), Profile: make([]float64, slots), Shape: s.Shape, Jobs: s.Jobs}
		total := 0.0
		for i, v := range s.Values[:full*perWeek] {
			w.Weeks[i/perWeek] += v
			w.Profile[(i%perWeek)/slotSteps] += v
			total += v
		}
		for i := range w.Profile {
			if total > 0 {
				w.Profile[i] /= total
			} else {
				w.Profile[i] = 1 / float64(slots)
			}
		}
		ws = append(ws, w)
	}
	return ws, dropped, nil
}

// Retype gives demand that accepts any type to the one type there is,
// when the fleet and the catalog have a single accelerator type: on such
// a fleet, work that takes any type is work for that type. A series that
// then names the same tenant, kind and type as another is added to it;
// the merged series keeps the shape of the one with more jobs.
func (h History) Retype(types []string) History {
	if len(types) != 1 {
		return h
	}
	out := History{StepSec: h.StepSec}
	idx := map[Key]int{}
	for _, s := range h.Series {
		if s.Key.Accel == AnyAccel {
			s.Key.Accel = types[0]
		}
		i, ok := idx[s.Key]
		if !ok {
			idx[s.Key] = len(out.Series)
			s.Values = slices.Clone(s.Values)
			out.Series = append(out.Series, s)
			continue
		}
		m := &out.Series[i]
		for j := range min(len(m.Values), len(s.Values)) {
			m.Values[j] += s.Values[j]
		}
		if s.Jobs > m.Jobs {
			m.Shape = s.Shape
		}
		m.Jobs += s.Jobs
	}
	sort.SliceStable(out.Series, func(i, j int) bool { return out.Series[i].Key.Less(out.Series[j].Key) })
	return out
}
