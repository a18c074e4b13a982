package plan

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Target is the wait a fleet must keep: for every class, the Percentile-th
// percentile of the waits (arrival to first start) of the jobs that
// arrive in a week is at most Wait.
type Target struct {
	Percentile float64 `json:"percentile"`
	WaitSec    int64   `json:"waitSec"`
}

func (t Target) String() string {
	return "p" + strconv.FormatFloat(t.Percentile, 'f', -1, 64) + "=" + formatWait(t.WaitSec)
}

func formatWait(sec int64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case sec%3600 == 0:
		return strconv.FormatInt(sec/3600, 10) + "h"
	case sec%60 == 0:
		return strconv.FormatInt(sec/60, 10) + "m"
	}
	return d.String()
}

// ParseTarget reads a target such as p95=4h: a percentile in (0, 100]
// and a wait (a Go duration, or whole days as 2d).
func ParseTarget(s string) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("target %q: %s (want pNN=WAIT, such as p95=4h)", s, why)
	}
	pct, wait, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(pct, "p") {
		return bad("no percentile")
	}
	p, err := strconv.ParseFloat(pct[1:], 64)
	if err != nil || !(p > 0 && p <= 100) {
		return bad("the percentile must be above 0 and at most 100")
	}
	var sec int64
	if days, isDays := strings.CutSuffix(wait, "d"); isDays {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 3650 {
			return bad("the wait must be whole days from 0 to 3650, or a duration such as 90m or 4h")
		}
		sec = n * 86400
	} else {
		d, err := time.ParseDuration(wait)
		if err != nil || d < 0 || d > 3650*24*time.Hour {
			return bad("the wait must be a duration such as 90m, 4h or 2d")
		}
		sec = int64(d / time.Second)
	}
	return Target{Percentile: p, WaitSec: sec}, nil
}

// Run is what one replay found: when each arrival of the workload (by
// index) first started, -1 if it had not by End; and when a job that
// never started gave up waiting (Gone, -1 if it did not; nil for none).
type Run struct {
	Start []int64
	Gone  []int64
	End   int64
}

// AbandonFactor is how many times the target wait a job of a replay
// waits before it gives up. A job that gives up has broken the target
// already, and so has its week if enough of its jobs do; letting it go
// keeps a fleet short of capacity from piling up a backlog that costs the
// replay time at every cycle. At four times the target, the jobs that
// give up in a week that keeps the target are too few to change when
// the next week breaks it.
const AbandonFactor = 4

// WeekStat is one class in one week of the horizon.
type WeekStat struct {
	Week int `json:"week"`
	// Jobs counts the class's jobs that arrived in the week.
	Jobs int `json:"jobs"`
	// Wait is the target's percentile of their waits, in seconds; a job
	// not started by the end of the replay counts with the wait it had.
	Wait   float64 `json:"wait"`
	Broken bool    `json:"broken"`
	// Demand is the class's work that arrived in the week, in
	// accelerators kept busy (accelerator-hours over the week's hours).
	Demand float64 `json:"demand"`
	// Capacity is the effective accelerators (count x relative speed) of
	// the class's type at the week's start ("*": of all types).
	Capacity float64 `json:"capacity"`
}

// Classes lists the classes of the demand, in order.
func (p *Problem) Classes() []string {
	var out []string
	for _, d := range p.Demand {
		if !slices.Contains(out, d.Key.Class()) {
			out = append(out, d.Key.Class())
		}
	}
	slices.Sort(out)
	return out
}

// Measure turns a replay into weekly figures per class for horizon weeks
// 1..until: the target's percentile of the waits, whether the target is
// broken, the demand and the capacity (with the deliveries).
func (p *Problem) Measure(ws []Arrival, r Run, sc Scenario, until int, deliveries []Delivery) map[string][]WeekStat {
	caps := p.Capacity(deliveries)
	waits := map[string][][]float64{}
	out := map[string][]WeekStat{}
	for _, c := range p.Classes() {
		waits[c] = make([][]float64, until)
		st := make([]WeekStat, until)
		for w := range st {
			st[w].Week = w + 1
			if v := caps[c]; v != nil {
				st[w].Capacity = v[w]
			}
		}
		out[c] = st
	}
	for i, a := range ws {
		if a.Week < 1 || a.Week > until {
			continue
		}
		c := p.Demand[a.Series].Key.Class()
		wait := r.End - a.At
		switch {
		case r.Start[i] >= 0:
			wait = r.Start[i] - a.At
		case r.Gone != nil && r.Gone[i] >= 0:
			wait = r.Gone[i] - a.At
		}
		waits[c][a.Week-1] = append(waits[c][a.Week-1], float64(wait))
	}
	for _, d := range p.Demand {
		st := out[d.Key.Class()]
		for w := range st {
			st[w].Demand += d.Week(sc, w+1) / (WeekSec / 3600)
		}
	}
	for c, st := range out {
		for w := range st {
			st[w].Jobs = len(waits[c][w])
			st[w].Wait = percentile(waits[c][w], p.Target.Percentile)
			st[w].Broken = st[w].Jobs > 0 && st[w].Wait > float64(p.Target.WaitSec)
		}
	}
	return out
}

// percentile is the nearest-rank percentile of v (0 for none).
func percentile(v []float64, pct float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	k := int(math.Ceil(pct/100*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// firstBroken is the first week of a class at or after from in which the
// target is broken, skipping accepted weeks; 0 when none.
func firstBroken(st []WeekStat, from int, accepted map[int]bool) int {
	for w := max(from, 1); w <= len(st); w++ {
		if st[w-1].Broken && !accepted[w] {
			return w
		}
	}
	return 0
}

// RunOut is the week a class first breaks the target, 0 when it keeps it
// through the horizon.
func RunOut(st []WeekStat) int { return firstBroken(st, 1, nil) }
