package server

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/metering"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// accountMetrics are the accounting's Prometheus metrics. The gauges are
// refreshed at every metering (every --meter-interval at most), from the
// ledger; money is in units of the ledger's currency (label currency),
// energy in joules and carbon in grams (Prometheus' base units).
type accountMetrics struct {
	charges     *prometheus.GaugeVec
	credits     *prometheus.GaugeVec
	burn        *prometheus.GaugeVec
	energy      *prometheus.GaugeVec
	carbon      *prometheus.GaugeVec
	accelSec    *prometheus.GaugeVec
	grantBurned *prometheus.GaugeVec
	paused      *prometheus.GaugeVec
	sitePower   *prometheus.GaugeVec
	events      *prometheus.CounterVec
	records     prometheus.Counter
	refused     prometheus.Counter
	// samples and samplesRefused count the agents' utilization readings.
	samples, samplesRefused prometheus.Counter
}

func newAccountMetrics(reg *prometheus.Registry) *accountMetrics {
	m := &accountMetrics{
		charges: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_tenant_month_charges",
			Help: "A tenant's usage charges this calendar month (UTC): on-demand and spot at their rates, committed-tier overage at on-demand rates; commitment fees excluded."}, []string{"tenant", "currency"}),
		credits: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_tenant_credit_balance",
			Help: "A prepaid tenant's spendable credit balance now."}, []string{"tenant", "currency"}),
		burn: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_tenant_burn_rate_per_hour",
			Help: "What a tenant's running on-demand and spot work spends an hour."}, []string{"tenant", "currency"}),
		energy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_tenant_month_energy_joules",
			Help: "Facility energy (IT energy x PUE) of a tenant's accelerators this calendar month."}, []string{"tenant"}),
		carbon: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_tenant_month_carbon_grams",
			Help: "CO2e of a tenant's facility energy this calendar month, at its sites' grid intensity."}, []string{"tenant"}),
		accelSec: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_tenant_month_accelerator_seconds",
			Help: "Accelerator-seconds a tenant's work held this calendar month."}, []string{"tenant"}),
		grantBurned: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_grant_burned_ratio",
			Help: "The part of a credit grant burned (1 is all of it)."}, []string{"tenant", "grant"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_admission_paused",
			Help: "1 while a tenant's (or a queue's) admission is paused for spent credits or budget."}, []string{"tenant", "queue", "cause"}),
		sitePower: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_site_power_watts",
			Help: "Power drawn by a site's accelerators now, on nodes that are up: idle + (board - idle) x the device's utilization reading where its agent sent one lately, else x its allocated share; meter it (IT) or facility (x PUE)."}, []string{"site", "meter"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpufleet_credit_events_total",
			Help: "Thresholds of grants and budgets reached and grants expired, since the server started."}, []string{"tenant", "kind"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "gpufleet_usage_records_total",
			Help: "Closed usage records stored since the server started."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "gpufleet_usage_records_refused_total",
			Help: "Usage records the ledger refused (the server's log says why)."}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{Name: "gpufleet_utilization_samples_total",
			Help: "Device utilization readings the agents sent (nvidia-smi) and the energy meter took."}),
		samplesRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "gpufleet_utilization_samples_refused_total",
			Help: "Device utilization readings older than what was metered on their node, dropped."}),
	}
	reg.MustRegister(m.charges, m.credits, m.burn, m.energy, m.carbon, m.accelSec, m.grantBurned, m.paused, m.sitePower,
		m.events, m.records, m.refused, m.samples, m.samplesRefused)
	return m
}

func units(m ledger.Money) float64 { return float64(m) / ledger.Micro }

// updateGauges refreshes the accounting gauges from the ledger.
func (a *accounts) updateGauges(l *loop, now time.Time) {
	mu := &l.s.metrics.refresh
	mu.Lock()
	defer mu.Unlock()
	m, led, at := a.m, a.acct.Ledger, now.UnixMilli()
	for _, g := range []*prometheus.GaugeVec{m.charges, m.credits, m.burn, m.energy, m.carbon, m.accelSec, m.grantBurned, m.paused, m.sitePower} {
		g.Reset()
	}
	month := ledger.MonthOf(at)
	used := led.UsageByTenant(month.Start(), month.End())
	for t := range metering.TenantsOf(l.specs) {
		st := led.Standing(t, "", at)
		m.charges.WithLabelValues(t, a.cur.Code).Set(units(st.Spent))
		m.burn.WithLabelValues(t, a.cur.Code).Set(units(st.BurnRate))
		if !st.Postpaid {
			m.credits.WithLabelValues(t, a.cur.Code).Set(units(st.Credits))
		}
		u := used[t]
		m.energy.WithLabelValues(t).Set(float64(u.FacilityMJ) / 1000)
		m.carbon.WithLabelValues(t).Set(float64(u.CarbonMg) / 1000)
		m.accelSec.WithLabelValues(t).Set(float64(u.MilliMs) / 1e6)
	}
	for _, g := range led.Grants("") {
		m.grantBurned.WithLabelValues(g.Tenant, g.ID).Set(float64(g.Burned) / float64(g.Amount))
	}
	for _, p := range a.acct.Enforcer.Paused() {
		m.paused.WithLabelValues(p.Tenant, p.Queue, p.Cause.String()).Set(1)
	}
	for site, w := range a.power(l, now) {
		m.sitePower.WithLabelValues(site, "it").Set(w[0])
		m.sitePower.WithLabelValues(site, "facility").Set(w[1])
	}
}

// power is each site's draw now, in watts, IT and facility, by the
// ledger's linear power model: a device with a utilization reading in
// force draws idle + (board - idle) x its reading; one without, idle +
// (board - idle) x its allocated share (fully used while allocated, idle
// otherwise), on nodes that are up.
func (a *accounts) power(l *loop, now time.Time) map[string][2]float64 {
	alloc := map[string]map[int]int64{} // node -> device -> allocated milli
	l.core.Holdings(func(u sched.Usage) bool {
		ds := alloc[u.Node]
		if ds == nil {
			ds = map[int]int64{}
			alloc[u.Node] = ds
		}
		for _, d := range u.Devices {
			ds[d] += int64(u.Milli)
		}
		return true
	})
	out := map[string][2]float64{}
	for name, n := range l.nodes {
		info := n.rec.Info
		if n.rec.State == "down" || info.Count == 0 {
			continue
		}
		i := a.cat.Index(info.Accel)
		if i < 0 {
			continue
		}
		t := a.cat.Types[i]
		rs := a.readings[name]
		it := 0.0
		for d := range info.Count {
			use := float64(min(alloc[name][d], 1000)) / 1000
			if r, ok := rs[d]; ok && now.Sub(r.at) < a.sampleTTL && !now.Before(r.at) {
				use = float64(r.percent) / 100
			}
			it += t.IdlePowerW + use*(t.BoardPowerW-t.IdlePowerW)
		}
		site := a.siteOf(info.Path)
		pue := a.pue(site)
		w := out[site]
		w[0] += it
		w[1] += it * pue
		out[site] = w
	}
	return out
}

// siteOf names a node's site as the core does: its domain path at the
// site level.
func (a *accounts) siteOf(path map[string]string) string {
	parts := make([]string, 0, a.siteLevel+1)
	for _, lvl := range fleet.DefaultLevels[:a.siteLevel+1] {
		p := path[lvl]
		if p == "" {
			p = "default"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/")
}

func (a *accounts) pue(site string) float64 {
	if s, ok := a.sites[site]; ok && s.PUE > 0 {
		return s.PUE
	}
	if a.defSite.PUE > 0 {
		return a.defSite.PUE
	}
	return 1
}
