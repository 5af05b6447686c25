package router

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Router. The zero value of every field but Service
// means "use the default".
type Config struct {
	// Service is the owning service's subject name ("tenancy", "audit"…).
	// It names the dead-letter subjects (events.DeadLetter(Service, handler))
	// and labels the metrics.
	Service string

	// MaxAttempts is how many deliveries a message gets before it is
	// dead-lettered (default 5). The count is the broker's NumDelivered, so
	// it survives crashes and is shared by every replica of a handler.
	MaxAttempts int

	// Backoff is the redelivery delay after a failed attempt.
	Backoff Backoff

	// AckWait is how long the broker waits for an ack before redelivering
	// (default 30s). It also bounds how long one delivery may run: past it
	// the handler's ctx is cancelled, because the broker has already handed
	// the message to someone else.
	AckWait time.Duration

	// MaxAckPending bounds unacknowledged messages per durable consumer,
	// across all replicas (default 1024, as events.Durable).
	MaxAckPending int

	// Prefetch is how many messages one process buffers per handler
	// (default 16). watermill-nats hands messages to the handler one at a
	// time, and the AckWait clock of a buffered message runs while it
	// waits, so a large buffer behind a slow handler causes needless
	// redeliveries. Buffered messages not yet started when the router stops
	// are redelivered after AckWait.
	Prefetch int
}

// Backoff is an exponential redelivery delay: Initial after the first
// failed attempt, doubling per attempt, never above Max.
type Backoff struct {
	// Initial is the delay after the first failed attempt (default 1s).
	Initial time.Duration
	// Max caps the delay (default 1m).
	Max time.Duration
}

// Delay is the wait before redelivering a message that has been delivered
// numDelivered times and failed.
func (b Backoff) Delay(numDelivered uint64) time.Duration {
	d := b.Initial
	for i := uint64(1); i < numDelivered && d > 0; i++ {
		if d >= b.Max/2 {
			return b.Max
		}
		d *= 2
	}
	return min(d, b.Max)
}

// WaitTime implements watermill-nats' jetstream.Delay, which the subscriber
// consults on every Nack to choose the NakWithDelay. It never returns
// jetstream.TermSignal: giving up is the dead-letter middleware's decision,
// so that no message is dropped without a copy on the DEADLETTER stream.
func (b Backoff) WaitTime(numDelivered uint64) time.Duration { return b.Delay(numDelivered) }

func (c *Config) setDefaults() {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff.Initial == 0 {
		c.Backoff.Initial = time.Second
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = max(time.Minute, c.Backoff.Initial)
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 1024
	}
	if c.Prefetch == 0 {
		c.Prefetch = 16
	}
}

// Validate reports a configuration the router cannot run with. It is
// called by New after defaults are applied.
func (c Config) Validate() error {
	switch {
	case !events.ValidToken(c.Service):
		return fmt.Errorf("router: service %q is not a valid subject token", c.Service)
	case c.MaxAttempts < 1:
		return fmt.Errorf("router: MaxAttempts %d, want >= 1", c.MaxAttempts)
	case c.Backoff.Initial < 0 || c.Backoff.Max < c.Backoff.Initial:
		return fmt.Errorf("router: backoff initial %s / max %s is not a valid range", c.Backoff.Initial, c.Backoff.Max)
	case c.AckWait < 0:
		return fmt.Errorf("router: AckWait %s is negative", c.AckWait)
	case c.MaxAckPending < 1:
		return fmt.Errorf("router: MaxAckPending %d, want >= 1", c.MaxAckPending)
	case c.Prefetch < 1:
		return fmt.Errorf("router: Prefetch %d, want >= 1", c.Prefetch)
	}
	return nil
}

// Deps are the router's collaborators. JS must be a JetStream context on
// Conn: consumers are created and consumed through JS, while watermill-nats
// insists on a *nats.Conn of its own.
type Deps struct {
	Conn   *nats.Conn
	JS     jetstream.JetStream
	Logger *slog.Logger
	// Metrics registers the router's collectors; nil disables metrics.
	Metrics prometheus.Registerer
}

func (d *Deps) validate() error {
	if d.Conn == nil || d.JS == nil {
		return errors.New("router: Deps.Conn and Deps.JS are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
