package sim

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// Metering a run through the accounting ledger: every usage record the
// core emits (and, at the end, every holding still open) becomes a
// ledger.Usage, and the ledger's reports give the energy and carbon per
// tenant and per site, day by day. The ledger's power model counts an
// allocated device at its board power (no utilization samples in a
// simulation), times the site's PUE, times the grid's intensity at the
// time.

// CarbonTotals is what a run emitted and drew.
type CarbonTotals struct {
	CarbonKg    float64 `json:"carbonKg"`
	EnergyKWh   float64 `json:"energyKWh"`
	FacilityKWh float64 `json:"facilityKWh"`
}

// CarbonLine is one tenant's or site's totals.
type CarbonLine struct {
	Name string `json:"name"`
	CarbonTotals
}

// CarbonDay is one UTC day's carbon, in kg, per tenant and per site.
type CarbonDay struct {
	Day      string             `json:"day"`
	ByTenant map[string]float64 `json:"byTenant"`
	BySite   map[string]float64 `json:"bySite"`
}

// CarbonSummary is a metered run's energy and carbon. Unaware, when set,
// is the same run with the carbon rules off, and SavingPct the carbon
// saved against it.
type CarbonSummary struct {
	CarbonTotals
	ByTenant  []CarbonLine  `json:"byTenant"`
	BySite    []CarbonLine  `json:"bySite"`
	Daily     []CarbonDay   `json:"daily"`
	Unaware   *CarbonTotals `json:"unaware,omitempty"`
	SavingPct float64       `json:"savingPct,omitempty"`
	Warnings  []string      `json:"warnings,omitempty"`
}

// RunMetered is Run with every usage record fed to a ledger built from lc;
// the summary's Carbon holds what it metered.
func RunMetered(cfg Config, lc ledger.Config, f *fleet.Fleet, specs []quota.Spec, src Source) (*Result, error) {
	if lc.Catalog == nil {
		lc.Catalog = f.Catalog
	}
	l, err := ledger.New(lc)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	m := &meter{l: l}
	prev := cfg.Usage
	cfg.Usage = func(u sched.Usage) {
		if prev != nil {
			prev(u)
		}
		m.add(u)
	}
	res, err := Run(cfg, f, specs, src)
	if err != nil {
		return nil, err
	}
	if m.err != nil {
		return nil, m.err
	}
	if res.Summary.Carbon, err = m.summary(res.Summary.Start, res.Summary.End); err != nil {
		return nil, err
	}
	return res, nil
}

type meter struct {
	l   *ledger.Ledger
	err error
}

// ledgerEnd maps the core's end reasons to the ledger's: a suspension is
// a stop to resume later, as a preemption is.
func ledgerEnd(e sched.EndReason) string {
	switch e {
	case sched.EndSuspended:
		return "preempted"
	case sched.EndOpen:
		return ""
	}
	return e.String()
}

func (m *meter) add(u sched.Usage) {
	if m.err != nil || u.Type == "" || len(u.Devices) == 0 || (u.End != sched.EndOpen && u.To <= u.From) {
		return // CPU-only, or held for no time
	}
	tier := ""
	if slices.Contains(ledger.TierNames(), u.Tier) {
		tier = u.Tier
	}
	lu := ledger.Usage{
		ID:  string(u.Job) + "/" + strconv.Itoa(u.Attempt) + "/" + strconv.Itoa(u.Gang) + "/" + strconv.Itoa(u.Replica),
		Job: string(u.Job), Tenant: u.Tenant, Queue: u.Queue, Kind: u.Kind.String(), Type: u.Type, Tier: tier,
		Site: u.Site, Node: u.Node, Gang: u.Gang, Replica: u.Replica, Devices: len(u.Devices), Milli: u.Milli,
		FromMs: u.From * 1000, End: ledgerEnd(u.End),
	}
	if u.End != sched.EndOpen {
		lu.ToMs = u.To * 1000
	}
	if lu.Tenant == "" {
		lu.Tenant = "-"
	}
	if _, err := m.l.Add(lu); err != nil {
		m.err = fmt.Errorf("ledger: %w", err)
	}
}

func totalsOf(t ledger.Totals) CarbonTotals {
	return CarbonTotals{CarbonKg: round6(t.CarbonKg()), EnergyKWh: round6(t.KWh()), FacilityKWh: round6(t.FacilityKWh())}
}

// summary reads the ledger's reports over the UTC days the run spans.
func (m *meter) summary(start, end int64) (*CarbonSummary, error) {
	if err := m.l.Meter(end * 1000); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	const day = 86400
	from := int64(math.Floor(float64(start)/day)) * day * 1000
	to := (int64(math.Floor(float64(end)/day)) + 1) * day * 1000
	out := &CarbonSummary{}
	all, err := m.l.Report(ledger.Query{FromMs: from, ToMs: to, Period: ledger.Daily})
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out.Warnings = all.Warnings
	t := all.Totals()
	out.CarbonTotals = totalsOf(t.Totals)
	days := map[int64]*CarbonDay{}
	dayOf := func(ms int64) *CarbonDay {
		if d := days[ms]; d != nil {
			return d
		}
		d := &CarbonDay{Day: time.UnixMilli(ms).UTC().Format(time.DateOnly), ByTenant: map[string]float64{}, BySite: map[string]float64{}}
		days[ms] = d
		return d
	}
	for _, by := range []ledger.Dim{ledger.ByTenant, ledger.BySite} {
		rep, err := m.l.Report(ledger.Query{FromMs: from, ToMs: to, Period: ledger.Daily, By: []ledger.Dim{by}})
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		sums := map[string]ledger.Totals{}
		for _, r := range rep.Rows {
			name := r.Tenant
			if by == ledger.BySite {
				name = r.Site
			}
			s := sums[name]
			s.MilliMs += r.MilliMs
			s.EnergyMJ += r.EnergyMJ
			s.FacilityMJ += r.FacilityMJ
			s.CarbonMg += r.CarbonMg
			sums[name] = s
			if r.CarbonMg == 0 {
				continue
			}
			d := dayOf(r.Start)
			if by == ledger.BySite {
				d.BySite[name] = round6(d.BySite[name] + r.CarbonKg())
			} else {
				d.ByTenant[name] = round6(d.ByTenant[name] + r.CarbonKg())
			}
		}
		var lines []CarbonLine
		for _, n := range slices.Sorted(maps.Keys(sums)) {
			lines = append(lines, CarbonLine{Name: n, CarbonTotals: totalsOf(sums[n])})
		}
		if by == ledger.BySite {
			out.BySite = lines
		} else {
			out.ByTenant = lines
		}
	}
	for _, ms := range slices.Sorted(maps.Keys(days)) {
		out.Daily = append(out.Daily, *days[ms])
	}
	return out, nil
}
