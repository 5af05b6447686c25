package gateway

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is where the gateway registers its metrics and what /metrics
// serves; a *prometheus.Registry is one.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// routeUnmatched labels requests no route matched, so that scanners cannot
// create one time series per probed path.
const routeUnmatched = "unmatched"

// httpMetrics are the gateway's request metrics. Labels are bounded: route
// is a pattern ("/api/v1/agents/{id}"), never a path; method is one of the
// standard methods or OTHER.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics(reg Registry, version string) (*httpMetrics, error) {
	if err := ensureRuntimeCollectors(reg); err != nil {
		return nil, err
	}
	m := &httpMetrics{}
	var err error
	if m.requests, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infrapilot_gateway_http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status.",
	}, []string{"route", "method", "status"})); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "infrapilot_gateway_http_request_duration_seconds",
		Help:    "HTTP request duration, by route pattern and method.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method"})); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "infrapilot_gateway_http_requests_in_flight",
		Help: "HTTP requests being served.",
	})); err != nil {
		return nil, err
	}
	info, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "infrapilot_gateway_build_info",
		Help: "Always 1; the version label is the gateway's version.",
	}, []string{"version"}))
	if err != nil {
		return nil, err
	}
	info.WithLabelValues(version).Set(1)
	return m, nil
}

// register registers c, or returns the equal collector registered before
// (a second gateway on the same registry, as in `infrapilot dev` restarts).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("gateway: register metrics: %w", err)
}

// ensureRuntimeCollectors adds the Go and process collectors unless the
// caller registered them already (in any configuration).
func ensureRuntimeCollectors(reg Registry) error {
	families, _ := reg.Gather() // a partial result is enough to look for names
	has := map[string]bool{}
	for _, f := range families {
		has[f.GetName()] = true
	}
	if !has["go_goroutines"] {
		if _, err := register(reg, collectors.NewGoCollector()); err != nil {
			return err
		}
	}
	if !has["process_start_time_seconds"] {
		if _, err := register(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return err
		}
	}
	return nil
}

// metricMethod bounds the method label.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	default:
		return "OTHER"
	}
}
