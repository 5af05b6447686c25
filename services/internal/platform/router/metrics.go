package router

import (
	"github.com/infrapilot/infrapilot/services/internal/platform/obs"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one delivery, the "outcome" label of handled_total.
const (
	outcomeOK         = "ok"          // handled and acked
	outcomeError      = "error"       // failed and nacked: it will be redelivered
	outcomeDeadLetter = "dead_letter" // failed for good, dead-lettered and acked
)

type metrics struct {
	handled     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	deadLetters *prometheus.CounterVec
}

// newMetrics builds the router's collectors, labelled with the service, and
// registers them with reg unless it is nil. Collectors that are already
// registered (a second router of the same service in one process) are
// shared.
func newMetrics(service string, reg prometheus.Registerer) (*metrics, error) {
	labels := prometheus.Labels{"service": service}
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "infrapilot", Subsystem: "router", Name: "messages_handled_total",
			Help:        "Deliveries handled by a consumer handler, by outcome (ok, error = redelivered later, dead_letter).",
			ConstLabels: labels,
		}, []string{"handler", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "infrapilot", Subsystem: "router", Name: "handling_duration_seconds",
			Help:        "Time spent in a consumer handler per delivery, dead-lettering included.",
			ConstLabels: labels,
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"handler"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "infrapilot", Subsystem: "router", Name: "dead_letters_total",
			Help:        "Messages published to the dead-letter stream (first copies only).",
			ConstLabels: labels,
		}, []string{"handler"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.handled, err = obs.Register(reg, m.handled); err != nil {
		return nil, err
	}
	if m.duration, err = obs.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.deadLetters, err = obs.Register(reg, m.deadLetters); err != nil {
		return nil, err
	}
	return m, nil
}

// middleware records the duration and outcome of every delivery. It sits
// outside the dead-letter middleware, which swallows the error of a message
// it dead-letters; the outcome then comes from the delivery state.
func (m *metrics) middleware(handler string) message.HandlerMiddleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			out, err := next(msg)
			outcome := outcomeOK
			switch {
			case err != nil:
				outcome = outcomeError
			case stateFrom(msg.Context()).deadLettered:
				outcome = outcomeDeadLetter
			}
			m.handled.WithLabelValues(handler, outcome).Inc()
			m.duration.WithLabelValues(handler).Observe(time.Since(start).Seconds())
			return out, err
		}
	}
}
