package router

import (
	"context"
	"errors"
	"log/slog"

	"github.com/infrapilot/infrapilot/events"
)

// Permanent marks err as one that no retry can fix (a malformed message, a
// payload the handler can never accept): the router dead-letters the
// message at once instead of redelivering it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err or any error it wraps was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Delivery describes the message a handler is working on. The router puts
// it into the handler's ctx.
type Delivery struct {
	// Handler is the handler name, which is also the durable consumer name.
	Handler string
	// Subject the message was published on.
	Subject string
	// Stream and Sequence locate the message in JetStream.
	Stream   string
	Sequence uint64
	// Attempt is the broker's delivery count, 1 on the first delivery.
	Attempt uint64
	// MessageID is the Nats-Msg-Id (the event id for domain events), or
	// "<stream>:<seq>" when the publisher set none.
	MessageID string
	// CorrelationID is the envelope's correlation_id for event handlers,
	// and the Ip-Correlation-Id header (if any) for raw handlers.
	CorrelationID string
	// EventID is the envelope id; empty for raw handlers.
	EventID string
}

type ctxKey int

const (
	deliveryKey ctxKey = iota
	loggerKey
	stateKey
)

// DeliveryFrom returns the delivery the router is handling in ctx.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey).(Delivery)
	return d, ok
}

// CorrelationID returns the correlation id of the message being handled,
// or "" outside a handler.
func CorrelationID(ctx context.Context) string {
	d, _ := DeliveryFrom(ctx)
	return d.CorrelationID
}

// Logger returns the router's logger with the fields of the delivery in
// ctx (handler, subject, seq, attempt, correlation_id, event_id), or
// fallback when ctx holds no delivery.
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// deliveryState is shared, per delivery, between middleware layers that
// cannot see each other's return values: PoisonQueue swallows the error it
// dead-letters, so the metrics layer learns the outcome here. One delivery
// is handled by one goroutine, so it needs no lock.
type deliveryState struct {
	// env is the decoded envelope of an event handler's message, or
	// envErr why it could not be decoded.
	env    events.Envelope
	envErr error
	// deadLettered is set once the dead-letter publish is acknowledged.
	deadLettered bool
}

func stateFrom(ctx context.Context) *deliveryState {
	if s, ok := ctx.Value(stateKey).(*deliveryState); ok {
		return s
	}
	return &deliveryState{}
}
