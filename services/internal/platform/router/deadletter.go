package router

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// deadLetterPublisher is the message.Publisher behind watermill's
// PoisonQueue middleware. It is ours rather than watermill-nats'
// jetstream.Publisher because that one
//
//   - turns every metadata entry into a header (the router's internal
//     keys, PoisonQueue's own keys, and the source's Nats-* publish
//     directives such as Nats-Expected-Last-Subject-Sequence, which would
//     make the dead-letter publish fail or misbehave);
//   - cannot set a Nats-Msg-Id of our choosing or take a context;
//   - gives no hook to log and count a dead letter only once the server
//     has acknowledged it; and
//   - closes the shared *nats.Conn in Close.
//
// The dead letter carries the original data, the original headers other
// than Nats-*, and the HeaderDLQ* headers. Its Nats-Msg-Id is
// "<stream>:<seq>:<consumer>", so when the ack of the source message is
// lost and the poison message comes back, the DEADLETTER stream's duplicate
// window (events.Topology.DuplicateWindow, 2h by default) drops the second
// copy; the source message is acked either way.
type deadLetterPublisher struct {
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *metrics
}

// Publish implements message.Publisher.
func (p *deadLetterPublisher) Publish(subject string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if err := p.publish(subject, m); err != nil {
			return err
		}
	}
	return nil
}

// Close implements message.Publisher; the connection is not ours to close.
func (p *deadLetterPublisher) Close() error { return nil }

func (p *deadLetterPublisher) publish(subject string, m *message.Message) error {
	ctx := m.Context()
	d, _ := DeliveryFrom(ctx)
	log := Logger(ctx, p.log)
	reason := m.Metadata.Get(middleware.ReasonForPoisonedKey)

	out := nats.NewMsg(subject)
	out.Data = m.Payload
	for k, v := range m.Metadata {
		if forwardHeader(k) {
			out.Header[k] = []string{v}
		}
	}
	out.Header[events.HeaderDLQSubject] = []string{d.Subject}
	out.Header[events.HeaderDLQStream] = []string{d.Stream}
	out.Header[events.HeaderDLQSequence] = []string{strconv.FormatUint(d.Sequence, 10)}
	out.Header[events.HeaderDLQAttempts] = []string{strconv.FormatUint(d.Attempt, 10)}
	out.Header[events.HeaderDLQError] = []string{headerValue(reason, 1024)}
	out.Header[events.HeaderDLQConsumer] = []string{d.Handler}

	msgID := fmt.Sprintf("%s:%d:%s", d.Stream, d.Sequence, d.Handler)
	ack, err := p.js.PublishMsg(ctx, out, jetstream.WithMsgID(msgID))
	if err != nil {
		log.Error("dead-letter publish failed; message will be redelivered", "dlq_subject", subject, "err", err, "handler_err", reason)
		return fmt.Errorf("router: dead-letter to %s: %w", subject, err)
	}
	stateFrom(ctx).deadLettered = true
	if ack.Duplicate {
		log.Warn("message was already dead-lettered; acking it", "dlq_subject", subject, "dlq_seq", ack.Sequence)
		return nil
	}
	p.metrics.deadLetters.WithLabelValues(d.Handler).Inc()
	// The logger already carries handler, subject, seq and attempt.
	log.Error("message dead-lettered", "err", reason, "dlq_subject", subject, "dlq_seq", ack.Sequence)
	return nil
}

// forwardHeader reports whether a metadata entry of the source message is
// one of its own headers worth keeping on the dead letter: not a router
// key ("_nats_…", "_watermill_…"), not a PoisonQueue key, not a Nats-*
// directive (the dead letter gets its own Nats-Msg-Id).
func forwardHeader(k string) bool {
	switch k {
	case middleware.ReasonForPoisonedKey, middleware.PoisonedTopicKey,
		middleware.PoisonedHandlerKey, middleware.PoisonedSubscriberKey:
		return false
	}
	return !strings.HasPrefix(k, "_") && !strings.HasPrefix(k, "Nats-")
}

// headerValue makes s safe as a NATS header value: one line (a panic's
// stack trace would otherwise break the header block), at most n bytes.
func headerValue(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
