package delivery

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a delivery attempt, the outcome label of switchboard_deliveries_total.
const (
	outcomeDelivered    = "delivered"     // 2xx
	outcomeRetried      = "retried"       // failed, another attempt is scheduled
	outcomeDeadLettered = "dead_lettered" // no attempt left, or endpoint disabled
	outcomeDisabled     = "disabled"      // 410 Gone: the endpoint was disabled
	outcomeDropped      = "dropped"       // the endpoint was deleted
)

type metrics struct {
	deliveries      *prometheus.CounterVec
	attemptDuration *prometheus.HistogramVec
	queueDepth      *prometheus.GaugeVec
	fanoutPending   prometheus.Gauge
	deadLetters     *prometheus.CounterVec
	replays         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_deliveries_total",
			Help: "Delivery attempts and what became of their message: delivered, retried, dead_lettered, disabled (410), dropped (endpoint deleted).",
		}, []string{"integration", "outcome"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_delivery_attempt_duration_seconds",
			Help:    "Time from sending a delivery request to its response (or failure).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}, []string{"integration"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_delivery_queue_depth",
			Help: "Messages of an endpoint not yet delivered: waiting, in flight or waiting for a retry (measured every scan).",
		}, []string{"integration", "endpoint"}),
		fanoutPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_delivery_fanout_pending",
			Help: "Routed events not yet fanned out to their endpoints (measured every scan).",
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_dead_letters_total",
			Help: "Messages dead-lettered after their last retry, or because their endpoint was disabled.",
		}, []string{"integration"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_dead_letter_replays_total",
			Help: "Dead letters enqueued again through the API.",
		}, []string{"integration"}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.attemptDuration, m.queueDepth, m.fanoutPending, m.deadLetters, m.replays} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering delivery metrics: %w", err)
		}
	}
	return m, nil
}
