package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// serviceMetrics are the inference services' Prometheus metrics, labelled
// by tenant and service name (stable across resubmissions of the same
// service, unlike its job ID).
type serviceMetrics struct {
	requests  *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	refused   *prometheus.CounterVec
	inFlight  *prometheus.GaugeVec
	queued    *prometheus.GaugeVec
	replicas  *prometheus.GaugeVec
	coldStart *prometheus.HistogramVec
	ttfb      *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
}

// Replica phases of gpufleet_service_replicas.
var replicaGaugePhases = []string{"desired", "waiting", "starting", "ready", "draining", "stopping"}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	labels := []string{"tenant", "service"}
	m := &serviceMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpufleet_service_requests_total",
			Help: "Requests through the gateway, by service and HTTP status of the answer (rate() gives the request rate)."},
			append(labels, "code")),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpufleet_service_rejected_total",
			Help: "Requests the gateway answered 503 without a replica: its queue was full, or no replica could take them within the queue timeout."},
			append(labels, "reason")),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpufleet_service_refused_connections_total",
			Help: "Connections a routed replica refused (gone before its readiness probe took it out of the routes); the request went to another replica when one was ready."},
			labels),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_service_in_flight",
			Help: "Requests on a service's replicas now."}, labels),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_service_queue_length",
			Help: "Requests the gateway holds for a service now (no replica could take them yet)."}, labels),
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_service_replicas",
			Help: "A service's replicas: desired (the autoscaler's count), waiting for a place, starting (placed, not ready), ready, draining, stopping."},
			append(labels, "state")),
		coldStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gpufleet_service_cold_start_seconds",
			Help:    "Measured cold starts: from a replica's placement to its first ready answer.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 13)}, labels),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gpufleet_service_time_to_first_byte_seconds",
			Help:    "From a request's arrival at the gateway to the first byte of its answer's body: queueing, cold start and the replica's own time to first token.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}, labels),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gpufleet_service_queue_wait_seconds",
			Help:    "How long requests waited in the gateway for a replica (0 for most).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}, labels),
	}
	reg.MustRegister(m.requests, m.rejected, m.refused, m.inFlight, m.queued, m.replicas, m.coldStart, m.ttfb, m.queueWait)
	return m
}

// forget drops the gauges of a service that is over.
func (m *serviceMetrics) forget(tenant, name string) {
	m.inFlight.DeleteLabelValues(tenant, name)
	m.queued.DeleteLabelValues(tenant, name)
	for _, st := range replicaGaugePhases {
		m.replicas.DeleteLabelValues(tenant, name, st)
	}
}
