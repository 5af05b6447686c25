package router

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/infrapilot/infrapilot/events"
)

// middlewares is the chain around one handler, outermost first. Everything
// is handler-level middleware because the dead-letter topic is per handler
// and watermill runs router-level middleware outside handler-level ones,
// while the recoverer must sit inside the retry decision.
func (r *Router) middlewares(h *handlerSpec) ([]message.HandlerMiddleware, error) {
	poison, err := middleware.PoisonQueueWithFilter(
		&deadLetterPublisher{js: r.deps.JS, log: r.log, metrics: r.metrics},
		events.DeadLetter(r.cfg.Service, h.name),
		isDeadLetter,
	)
	if err != nil {
		return nil, err
	}
	return []message.HandlerMiddleware{
		r.deliveryContext(h),
		r.metrics.middleware(h.name),
		poison,
		r.retryOrDeadLetter,
		middleware.Recoverer,
	}, nil
}

// deliveryContext puts the Delivery, a logger with its fields and the
// per-delivery state into the message's context. For event handlers it
// decodes the envelope here, so that the correlation and event ids are in
// every log line about the message; a decoding error is kept for the
// handler adapter, which returns it as Permanent.
//
// This is the router's equivalent of watermill's CorrelationID middleware,
// which only copies the id onto produced messages (consumer handlers
// produce none) and knows nothing of the envelope.
func (r *Router) deliveryContext(h *handlerSpec) message.HandlerMiddleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			d := deliveryOf(h.name, msg)
			st := &deliveryState{}
			if h.event {
				env, err := events.Unmarshal(msg.Payload)
				if err != nil {
					st.envErr = err
				} else {
					env.Sequence = d.Sequence
					st.env = env
					d.CorrelationID, d.EventID = env.CorrelationID, env.ID
				}
			} else {
				d.CorrelationID = msg.Metadata.Get(events.HeaderCorrelationID)
				if d.CorrelationID == "" {
					d.CorrelationID = middleware.MessageCorrelationID(msg)
				}
			}
			args := []any{"handler", d.Handler, "subject", d.Subject, "seq", d.Sequence, "attempt", d.Attempt}
			if d.CorrelationID != "" {
				args = append(args, "correlation_id", d.CorrelationID)
			}
			if d.EventID != "" {
				args = append(args, "event_id", d.EventID)
			} else {
				args = append(args, "msg_id", d.MessageID)
			}
			log := r.log.With(args...)
			if h.event && st.envErr == nil && !events.Catalogue.Known(st.env.Type, st.env.Version) {
				// Kept and handed on whole (Decode yields *events.Unknown):
				// a newer writer must never crash an older reader.
				log.Warn("event of an unknown type or version", "type", st.env.Type, "version", st.env.Version)
			}
			ctx := msg.Context()
			ctx = context.WithValue(ctx, deliveryKey, d)
			ctx = context.WithValue(ctx, loggerKey, log)
			ctx = context.WithValue(ctx, stateKey, st)
			msg.SetContext(ctx)
			return next(msg)
		}
	}
}

// deadLetterError marks a failure the dead-letter middleware must take.
type deadLetterError struct{ err error }

func (e *deadLetterError) Error() string { return e.err.Error() }
func (e *deadLetterError) Unwrap() error { return e.err }

func isDeadLetter(err error) bool {
	var dl *deadLetterError
	return errors.As(err, &dl)
}

// retryOrDeadLetter decides what a handler error means. A Permanent error,
// or one on the MaxAttempts-th delivery, is marked for the dead-letter
// middleware; any other error Naks the message, and the subscriber's
// NakDelay (Config.Backoff) schedules the redelivery on the broker.
func (r *Router) retryOrDeadLetter(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := next(msg)
		if err == nil {
			return out, nil
		}
		ctx := msg.Context()
		d, _ := DeliveryFrom(ctx)
		if IsPermanent(err) || d.Attempt >= uint64(r.cfg.MaxAttempts) {
			return out, &deadLetterError{err: err}
		}
		Logger(ctx, r.log).Warn("handler failed; message will be redelivered",
			"err", err, "max_attempts", r.cfg.MaxAttempts, "retry_in", r.cfg.Backoff.Delay(d.Attempt))
		return out, err
	}
}
