// Package plan is gpufleet's capacity planning: it turns a demand history
// into forecasts per tenant x workload kind x accelerator type, the
// forecasts into a synthetic workload, and finds when each accelerator
// type runs out (the week a target wait is first broken) and a buy plan
// (what to order, by when, for which site) that keeps the target at least
// cost within the sites' power and space.
//
// It is pure, like the scheduling core: no I/O, no goroutines, no clock,
// and randomness only from the seed it is given. Replaying a workload
// through the simulator is the expensive part, and it is not done here:
// Search asks a Simulator (internal/plan/replay drives the real one) for
// the waits of each trial fleet.
//
// A plan is made in four phases:
//
//  1. History: demand series in accelerator-hours of work per step, from
//     jobs (Aggregator: a simulation's jobs.csv, a native trace) or a
//     series file, summed into weeks (Weekly), with the share of a week's
//     work that arrives in each hour or day of the week (its profile).
//  2. Forecast: each weekly series forecast over the horizon with its 80%
//     interval (Forecast); the upper bound is demand's 90th percentile.
//     Commitments of anchor tenants add to both.
//  3. Workload: each week's demand becomes representative jobs of the
//     series' typical shape, arriving by the weekly profile (Workload).
//  4. Search: the run-out week of each accelerator type at P50 and P90
//     demand, then the buy plan, greedy in time (Search).
//
// docs/PLANNING.md describes the rules and a worked example.
package plan

import (
	"fmt"
	"strings"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// WeekSec is one week in seconds: the plan's step, the unit of lead times
// and deliveries.
const WeekSec = 7 * 86400

// AnyAccel is the accelerator type of demand that accepts any type.
const AnyAccel = "*"

// Key names one demand series: a tenant's work of one kind on one
// accelerator type (AnyAccel when the work accepts any).
type Key struct {
	Tenant, Kind, Accel string
}

func (k Key) String() string { return k.Tenant + "/" + k.Kind + "/" + k.Accel }

// Less orders keys by tenant, kind and type.
func (k Key) Less(o Key) bool {
	if k.Tenant != o.Tenant {
		return k.Tenant < o.Tenant
	}
	if k.Kind != o.Kind {
		return k.Kind < o.Kind
	}
	return k.Accel < o.Accel
}

// ParseKey reads "tenant/kind/accel", the id of a series in a history
// file; accel is an accelerator type or * for any.
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return Key{}, fmt.Errorf("%q: want tenant/kind/accelerator, such as acme/training/h100 (* for any type)", s)
	}
	k := Key{Tenant: parts[0], Kind: parts[1], Accel: parts[2]}
	if k.Tenant == "" || k.Accel == "" {
		return Key{}, fmt.Errorf("%q: tenant and accelerator must not be empty (* for any type)", s)
	}
	if _, err := sched.ParseKind(k.Kind); err != nil {
		return Key{}, fmt.Errorf("%q: %w", s, err)
	}
	return k, nil
}

// Shape is the representative job of a series: how many accelerators it
// takes in all and how long it runs at relative speed 1.0.
type Shape struct {
	// Accels is the job's accelerators over all its replicas; below 1, a
	// share of one accelerator.
	Accels float64 `json:"accels"`
	// Hours is the runtime at relative speed 1.0.
	Hours float64 `json:"hours"`
}

// Work is the job's accelerator-hours.
func (s Shape) Work() float64 { return s.Accels * s.Hours }

func (s Shape) valid() bool { return s.Accels > 0 && s.Hours > 0 }

// DefaultShape is the representative job of series that come without
// jobs (a series file, a commitment of a tenant without history): one
// 8-accelerator node for four hours.
var DefaultShape = Shape{Accels: 8, Hours: 4}

// Series is one demand series: accelerator-hours of work arriving in each
// step, oldest first.
type Series struct {
	Key    Key       `json:"key"`
	Values []float64 `json:"values"`
	// Shape is the series' representative job; zero when unknown.
	Shape Shape `json:"shape"`
	// Jobs counts the jobs behind the series (0 when it came as numbers).
	Jobs int `json:"jobs"`
}

// History is a set of demand series observed at one step.
type History struct {
	// StepSec is the length of one step, a divisor of a week.
	StepSec int64
	Series  []Series
}

// Class is what run-out is measured for: the jobs that ask for one
// accelerator type (AnyAccel: for none in particular).
func (k Key) Class() string { return k.Accel }
