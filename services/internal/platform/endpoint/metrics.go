package endpoint

import (
	"bytes"
	"github.com/infrapilot/infrapilot/services/internal/platform/obs"
	"io"

	"github.com/infrapilot/infrapilot/events"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newMetrics registers the endpoint metrics once per registry; several
// services in one process share the same collectors (labelled by service).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infrapilot_endpoint_requests_total",
			Help: "Request-reply requests handled, by service, operation and outcome code.",
		}, []string{"service", "op", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "infrapilot_endpoint_duration_seconds",
			Help:    "Time spent handling request-reply requests.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"service", "op"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = obs.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = obs.Register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observe(service, op string, code events.Code, n float64) {
	m.requests.WithLabelValues(service, op, string(code)).Add(n)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// RequestsCounter returns the request counter registered on reg, for tests
// and dashboards that read it directly.
func RequestsCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return m.requests, nil
}
