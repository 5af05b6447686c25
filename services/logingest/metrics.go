package logingest

import (
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ingest counters of the service.
type metrics struct {
	rows    *prometheus.CounterVec
	flushes *prometheus.HistogramVec
	dead    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "infrapilot", Subsystem: "logingest",
			Name: "rows_stored_total", Help: "Rows (log lines, metric samples) written to the store, duplicates included."}, []string{"consumer"}),
		flushes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "infrapilot", Subsystem: "logingest",
			Name: "flush_seconds", Help: "Time to write one batch to the store, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"consumer"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "infrapilot", Subsystem: "logingest",
			Name: "dead_letters_total", Help: "Malformed telemetry messages moved to the DEADLETTER stream."}, []string{"consumer"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.rows, err = obs.Register(reg, m.rows); err != nil {
		return nil, err
	}
	if m.flushes, err = obs.Register(reg, m.flushes); err != nil {
		return nil, err
	}
	if m.dead, err = obs.Register(reg, m.dead); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) flushed(consumer string) func(rows, msgs int, took time.Duration) {
	return func(rows, _ int, took time.Duration) {
		m.rows.WithLabelValues(consumer).Add(float64(rows))
		m.flushes.WithLabelValues(consumer).Observe(took.Seconds())
	}
}

func (m *metrics) deadLetter(consumer string) func() {
	return func() { m.dead.WithLabelValues(consumer).Inc() }
}
