package chain

import (
	"github.com/infrapilot/infrapilot/services/internal/platform/obs"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appended    prometheus.Counter
	latency     prometheus.Histogram
	checkpoints prometheus.Counter
	retries     *prometheus.CounterVec
	skipped     prometheus.Counter
	inflight    prometheus.Gauge
	deadLetters prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "infrapilot_audit_entries_appended_total",
			Help: "Audit chain entries appended (acknowledged by JetStream) by this process.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "infrapilot_audit_append_latency_seconds",
			Help:    "Time from receiving a source event to its audit entry being acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "infrapilot_audit_checkpoints_total",
			Help: "Signed audit checkpoints published by this process.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infrapilot_audit_append_retries_total",
			Help: "Audit appends the stream refused or did not confirm, by reason; each is retried.",
		}, []string{"reason"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "infrapilot_audit_events_already_chained_total",
			Help: "Redelivered source events found already chained and not appended again.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "infrapilot_audit_appends_in_flight",
			Help: "Audit appends published and awaiting acknowledgement.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "infrapilot_audit_source_dead_letters_total",
			Help: "Source messages that were not event envelopes and went to the dead-letter stream.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.appended, err = obs.Register(reg, m.appended); err != nil {
		return nil, err
	}
	if m.latency, err = obs.Register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.checkpoints, err = obs.Register(reg, m.checkpoints); err != nil {
		return nil, err
	}
	if m.retries, err = obs.Register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.skipped, err = obs.Register(reg, m.skipped); err != nil {
		return nil, err
	}
	if m.inflight, err = obs.Register(reg, m.inflight); err != nil {
		return nil, err
	}
	if m.deadLetters, err = obs.Register(reg, m.deadLetters); err != nil {
		return nil, err
	}
	return m, nil
}
