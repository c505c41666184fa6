package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the API's Prometheus metrics, on a registry of their own (never the global
// default one, so that two servers in one process, as in tests, do not collide).
type Metrics struct {
	Registry *prometheus.Registry

	ingestRequests      *prometheus.CounterVec
	ingestDuration      *prometheus.HistogramVec
	handleDuration      *prometheus.HistogramVec
	eventsPublished     *prometheus.CounterVec
	scriptErrors        *prometheus.CounterVec
	stateChangeFailures *prometheus.CounterVec
	eventsDuplicate     *prometheus.CounterVec
	deadLettered        *prometheus.CounterVec
}

// NewMetrics makes the metrics on a new registry that also carries the Go runtime and
// process collectors. Other packages may register their own metrics on Registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		ingestRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_ingest_requests_total",
			Help: "Requests to global webhook URLs, by integration and HTTP status sent.",
		}, []string{"integration", "status"}),
		ingestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_ingest_duration_seconds",
			Help:    "Time to answer a global webhook request, publishing included.",
			Buckets: prometheus.DefBuckets,
		}, []string{"integration"}),
		handleDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_handle_duration_seconds",
			Help:    "Time spent in a global webhook's handle script.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"integration", "webhook"}),
		eventsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_published_total",
			Help: "Event envelopes acknowledged by the bus (one per matched subscription), by integration.",
		}, []string{"integration"}),
		scriptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_script_errors_total",
			Help: "Failed JavaScript calls (throws, timeouts, invalid results), by integration and script.",
		}, []string{"integration", "script"}),
		stateChangeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_state_change_publish_failures_total",
			Help: "State changes that could not be published (the change itself was stored).",
		}, []string{"resource", "event"}),
		eventsDuplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_duplicate_total",
			Help: "Events handle returned that were not published again: seen before within the dedup TTL, by integration.",
		}, []string{"integration"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_ingest_dead_letters_total",
			Help: "Requests whose handle failed, kept as dead letters for replay, by integration.",
		}, []string{"integration"}),
	}
	reg.MustRegister(
		m.ingestRequests, m.ingestDuration, m.handleDuration, m.eventsPublished, m.scriptErrors, m.stateChangeFailures,
		m.eventsDuplicate, m.deadLettered,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
