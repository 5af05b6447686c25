package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerConfig configures the projection consumer.
type ConsumerConfig struct {
	// Name is the durable consumer's name (default "audit_clickhouse").
	// Renaming it re-reads every chain, which the projection tolerates.
	Name string
	// Batch is the most entries one insert carries (default 1000).
	// ClickHouse wants few large inserts: each insert is a part on disk.
	Batch int
	// MaxWait bounds how long a batch waits to fill (default 1s), so the
	// projection lags the chain by about this much under light load.
	MaxWait time.Duration
	// MinBackoff and MaxBackoff bound the retry delay of a failed insert
	// (defaults 100ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// Log receives failures (slog.Default when nil).
	Log *slog.Logger
}

func (c *ConsumerConfig) setDefaults() {
	if c.Name == "" {
		c.Name = "audit_clickhouse"
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.MaxWait <= 0 {
		c.MaxWait = time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Consume projects every org's chain (stream AUDIT, subjects
// audit.chain.*) into the store until ctx ends, through a durable pull
// consumer shared by every replica. It fetches up to Batch entries, calls
// Project, and acks them only after the insert succeeded: at-least-once,
// made exactly-once in effect by Project's idempotency. A failed insert is
// retried with exponential backoff, keeping the batch (the messages are
// kept from redelivery meanwhile); a message that is not an audit entry is
// logged and terminated, as no retry can fix it.
func (s *Store) Consume(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig) error {
	cfg.setDefaults()
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamAudit, jetstream.ConsumerConfig{
		Durable:       cfg.Name,
		Description:   "ClickHouse projection of the audit chains",
		FilterSubject: events.AuditChain("*"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 4 * cfg.Batch,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("clickhouse: consumer %s: %w", cfg.Name, err)
	}
	log := cfg.Log.With("component", "audit_clickhouse", "consumer", cfg.Name)
	for ctx.Err() == nil {
		msgs, err := fetch(cons, cfg.Batch, cfg.MaxWait)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn("fetch failed", "err", err)
			if !sleep(ctx, cfg.MinBackoff) {
				break
			}
			continue
		}
		entries := make([]events.AuditEntry, 0, len(msgs))
		keep := msgs[:0]
		for _, m := range msgs {
			var e events.AuditEntry
			if err := json.Unmarshal(m.Data(), &e); err != nil || e.OrgID == "" || e.Index == 0 {
				log.Error("not an audit entry: terminated", "subject", m.Subject(), "err", err)
				_ = m.Term()
				continue
			}
			entries = append(entries, e)
			keep = append(keep, m)
		}
		if err := retry(ctx, cfg.MinBackoff, cfg.MaxBackoff, keep, func() error { return s.Project(ctx, entries) }, log); err != nil {
			// ctx ended: hand the batch back at once to whoever runs next.
			for _, m := range keep {
				_ = m.Nak()
			}
			break
		}
		for _, m := range keep {
			_ = m.Ack()
		}
	}
	return nil
}

// fetch returns up to n messages, waiting at most maxWait for them. The
// wait is the pull request's server-side expiry, not a context: cancelling
// a pull on the client would drop messages already on their way, which
// then sit unacknowledged until AckWait before anyone gets them again.
func fetch(cons jetstream.Consumer, n int, maxWait time.Duration) ([]jetstream.Msg, error) {
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(maxWait))
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	if err := batch.Error(); err != nil && len(out) == 0 && !errors.Is(err, jetstream.ErrNoMessages) {
		return nil, err
	}
	return out, nil
}

// retry runs fn until it succeeds or ctx ends, with exponential backoff
// between attempts; meanwhile it tells the server the messages are still
// being worked on, so they are not redelivered to another replica.
func retry(ctx context.Context, minB, maxB time.Duration, msgs []jetstream.Msg, fn func() error, log *slog.Logger) error {
	delay := minB
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("projection insert failed; retrying", "attempt", attempt, "in", delay, "err", err)
		for _, m := range msgs {
			_ = m.InProgress()
		}
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, maxB)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
