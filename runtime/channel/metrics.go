package channel

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the channel runtime's Prometheus metrics. Register them where the server
// serves its metrics (the API's registry).
type Metrics struct {
	published     *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	unmatched     *prometheus.CounterVec
	workerErrors  *prometheus.CounterVec
	reconnects    *prometheus.CounterVec
	workers       *prometheus.GaugeVec
	publishFailed *prometheus.CounterVec
	leasesLost    *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_channel_events_published_total",
			Help: "Channel event envelopes acknowledged by the bus (one per matched subscription), by integration, channel and kind.",
		}, []string{"integration", "channel", "kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_channel_events_rejected_total",
			Help: "Channel events not published because their payload failed the event definition's schema.",
		}, []string{"integration", "channel", "kind"}),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_channel_messages_unmatched_total",
			Help: "Messages a channel received that no event definition recognised, or that could not be read.",
		}, []string{"integration", "channel", "kind"}),
		workerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_channel_worker_errors_total",
			Help: "Failed polls and SSE connections (connection errors, non-2xx statuses, unreadable responses), by channel and kind.",
		}, []string{"integration", "channel", "kind"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_channel_sse_reconnects_total",
			Help: "SSE reconnections, by reason: eof, error, silent, line_too_long, event_too_large.",
		}, []string{"integration", "channel", "reason"}),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_channel_workers",
			Help: "Running channel workers, by kind.",
		}, []string{"kind"}),
		publishFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_channel_publish_failures_total",
			Help: "Channel publishes that the store or bus refused (retried by workers, answered 503 to senders).",
		}, []string{"integration", "channel", "kind"}),
		leasesLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_channel_leases_lost_total",
			Help: "Workers stopped because this instance lost their channel's lease (taken over, or not renewed in time), by kind.",
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.rejected, m.unmatched, m.workerErrors, m.reconnects, m.workers, m.publishFailed, m.leasesLost)
	}
	return m
}
