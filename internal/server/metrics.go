package server

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpufleet/gpufleet/internal/sched"
)

type metrics struct {
	// refresh is held for writing while the gauges are reset and filled
	// again, and for reading by each scrape, so that a scrape never sees
	// a refresh half done.
	refresh      sync.RWMutex
	pending      *prometheus.GaugeVec
	admissions   *prometheus.CounterVec
	preemptions  *prometheus.CounterVec
	submissions  prometheus.Counter
	schedLatency prometheus.Histogram
	allocated    *prometheus.GaugeVec
	total        *prometheus.GaugeVec
	tenantUsage  *prometheus.GaugeVec
	nodes        *prometheus.GaugeVec
	leader       prometheus.Gauge
	sites        *siteMetrics
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_pending_jobs",
			Help: "Pending jobs by queue and the scheduling core's pending reason."}, []string{"queue", "reason"}),
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpufleet_admissions_total",
			Help: "Job attempts the core admitted (bound), by queue."}, []string{"queue"}),
		preemptions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpufleet_preemptions_total",
			Help: "Jobs the core preempted, by queue of the victim."}, []string{"queue"}),
		submissions: prometheus.NewCounter(prometheus.CounterOpts{Name: "gpufleet_submissions_total",
			Help: "Jobs durably accepted through the API."}),
		schedLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gpufleet_schedule_seconds",
			Help: "Time of one scheduling cycle (core.Schedule).", Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12)}),
		allocated: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_accelerators_allocated",
			Help: "Accelerators held by running jobs, by type."}, []string{"type"}),
		total: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_accelerators",
			Help: "Accelerators on nodes that are not down, by type."}, []string{"type"}),
		tenantUsage: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_tenant_accelerators",
			Help: "Accelerators held by a tenant's running jobs, by flavor."}, []string{"tenant", "flavor"}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_nodes",
			Help: "Registered nodes by state."}, []string{"state"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gpufleet_leader",
			Help: "1 while this server runs the loop (a server on its own always does; one of a group while elected)."}),
	}
	reg.MustRegister(m.pending, m.admissions, m.preemptions, m.submissions, m.schedLatency, m.allocated, m.total,
		m.tenantUsage, m.nodes, m.leader, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.sites = newSiteMetrics(reg)
	return m
}

// gatherer reads the registry between refreshes of the gauges.
func (m *metrics) gatherer(reg prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		m.refresh.RLock()
		defer m.refresh.RUnlock()
		return reg.Gather()
	})
}

// updateGauges refreshes the gauges from the loop's state.
func (l *loop) updateGauges() {
	m := l.s.metrics
	m.refresh.Lock()
	defer m.refresh.Unlock()
	m.pending.Reset()
	// Every pending unit's status, read from the core's state.
	l.core.Pending(func(w sched.Waiting) bool {
		m.pending.WithLabelValues(w.Queue, w.Status.Code.String()).Inc()
		return true
	})
	m.allocated.Reset()
	m.total.Reset()
	m.nodes.Reset()
	for _, n := range l.nodes {
		m.nodes.WithLabelValues(n.rec.State).Inc()
		if n.rec.State != "down" && n.rec.Info.Count > 0 {
			m.total.WithLabelValues(n.rec.Info.Accel).Add(float64(n.rec.Info.Count))
		}
	}
	l.updateSiteGauges(m.sites, l.now())
	m.tenantUsage.Reset()
	qi := l.s.queues.Load()
	usage, _, _ := l.held()
	for q, flavors := range usage {
		for f, milli := range flavors {
			m.tenantUsage.WithLabelValues(qi.tenantOf[q], f).Add(float64(milli) / 1000)
			accel, _, _ := strings.Cut(f, ":")
			m.allocated.WithLabelValues(accel).Add(float64(milli) / 1000)
		}
	}
}
