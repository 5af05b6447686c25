// Package projection writes the audit chains and checkpoints of stream
// AUDIT into the Postgres projection (package store). It is the only writer
// of those tables. It consumes in batches — one multi-row, idempotent
// INSERT per batch — on a durable consumer of its own, so a projection
// rebuilt from the stream (drop the consumer, empty the tables as the
// retention role) catches up at insert speed.
package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Durable is the projection consumer's name.
const Durable = "audit_projection"

// Config tunes the projector; zero fields take their defaults.
type Config struct {
	// Batch is the most messages one INSERT takes (default 500).
	Batch int
	// MaxWait is how long a fetch waits for a full batch (default 250ms).
	MaxWait time.Duration
	// AckWait is the consumer's ack wait (default 30s).
	AckWait time.Duration
}

func (c *Config) setDefaults() {
	if c.Batch <= 0 {
		c.Batch = 500
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 250 * time.Millisecond
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
}

// Projector projects AUDIT's chains and checkpoints into the store.
type Projector struct {
	cfg   Config
	js    jetstream.JetStream
	store *store.Store
	log   *slog.Logger
}

// New returns a projector; it connects to nothing until Run.
func New(cfg Config, js jetstream.JetStream, st *store.Store, log *slog.Logger) *Projector {
	cfg.setDefaults()
	return &Projector{cfg: cfg, js: js, store: st, log: log.With("component", "audit_projection")}
}

func (p *Projector) consumerConfig() jetstream.ConsumerConfig {
	cfg := events.Durable(Durable, events.AuditChain("*"), events.AuditCheckpoint("*"))
	cfg.AckWait = p.cfg.AckWait
	cfg.MaxAckPending = 4 * p.cfg.Batch
	return cfg
}

// Run projects until ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, events.StreamAudit, p.consumerConfig())
	if err != nil {
		return fmt.Errorf("audit projection: consumer: %w", err)
	}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		batch, err := cons.Fetch(p.cfg.Batch, jetstream.FetchMaxWait(p.cfg.MaxWait))
		if err != nil {
			if errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("audit projection: %w", err)
			}
			p.log.Warn("audit projection: fetch", "err", err)
			backoff = nextBackoff(backoff)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && len(msgs) == 0 {
			p.log.Warn("audit projection: fetch", "err", err)
			backoff = nextBackoff(backoff)
			continue
		}
		if len(msgs) == 0 {
			backoff = 0
			continue
		}
		if err := p.apply(ctx, msgs); err != nil {
			p.log.Warn("audit projection: write; will retry", "messages", len(msgs), "err", err)
			for _, m := range msgs {
				_ = m.NakWithDelay(time.Second)
			}
			backoff = nextBackoff(backoff)
			continue
		}
		backoff = 0
	}
	return nil
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 100 * time.Millisecond
	}
	return min(2*d, 10*time.Second)
}

// apply writes one batch and acks it. A message that is not an entry or a
// checkpoint is dead-lettered: no retry will ever make it one.
func (p *Projector) apply(ctx context.Context, msgs []jetstream.Msg) error {
	var (
		rows []store.Row
		cps  []store.CheckpointRow
		ok   = make([]jetstream.Msg, 0, len(msgs))
	)
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			p.deadLetter(ctx, m, err)
			continue
		}
		row, cp, err := decode(m.Subject(), m.Data(), meta)
		if err != nil {
			p.deadLetter(ctx, m, err)
			continue
		}
		if cp != nil {
			cps = append(cps, *cp)
		} else {
			rows = append(rows, row)
		}
		ok = append(ok, m)
	}
	if _, err := p.store.InsertEntries(ctx, rows); err != nil {
		return err
	}
	if err := p.store.InsertCheckpoints(ctx, cps); err != nil {
		return err
	}
	for _, m := range ok {
		_ = m.Ack()
	}
	return nil
}

// decode turns an AUDIT message into a row; cp is set for checkpoints.
func decode(subject string, data []byte, meta *jetstream.MsgMetadata) (store.Row, *store.CheckpointRow, error) {
	if org, ok := strings.CutPrefix(subject, events.AuditCheckpoint("")); ok {
		var c events.SignedCheckpoint
		if err := json.Unmarshal(data, &c); err != nil {
			return store.Row{}, nil, fmt.Errorf("malformed checkpoint: %w", err)
		}
		if c.OrgID != org {
			return store.Row{}, nil, fmt.Errorf("checkpoint of org %q on subject %s", c.OrgID, subject)
		}
		return store.Row{}, &store.CheckpointRow{SignedCheckpoint: c, StreamSeq: meta.Sequence.Stream}, nil
	}
	var e events.AuditEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return store.Row{}, nil, fmt.Errorf("malformed audit entry: %w", err)
	}
	if events.AuditChain(e.OrgID) != subject || e.Index == 0 {
		return store.Row{}, nil, fmt.Errorf("entry of org %q index %d on subject %s", e.OrgID, e.Index, subject)
	}
	return store.Row{AuditEntry: e, StreamSeq: meta.Sequence.Stream, Stored: meta.Timestamp}, nil, nil
}

func (p *Projector) deadLetter(ctx context.Context, m jetstream.Msg, cause error) {
	dl := nats.NewMsg(events.DeadLetter("audit", Durable))
	dl.Data = m.Data()
	dl.Header.Set(events.HeaderDLQSubject, m.Subject())
	dl.Header.Set(events.HeaderDLQStream, events.StreamAudit)
	dl.Header.Set(events.HeaderDLQError, cause.Error())
	dl.Header.Set(events.HeaderDLQConsumer, Durable)
	if meta, err := m.Metadata(); err == nil {
		dl.Header.Set(events.HeaderDLQSequence, fmt.Sprint(meta.Sequence.Stream))
		dl.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s:%d", events.StreamAudit, meta.Sequence.Stream))
	}
	if _, err := p.js.PublishMsg(ctx, dl); err != nil {
		p.log.Error("audit projection: dead-letter failed; will retry", "subject", m.Subject(), "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	p.log.Error("audit projection: not an audit entry; dead-lettered", "subject", m.Subject(), "err", cause)
	_ = m.Ack()
}

// Floor returns the stream sequence up to which every chain entry and
// checkpoint has been projected (or dead-lettered): the consumer's ack
// floor. Verification expects every entry at or below it in Postgres.
func (p *Projector) Floor(ctx context.Context) (uint64, error) {
	cons, err := p.js.Consumer(ctx, events.StreamAudit, Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit projection: consumer: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit projection: consumer info: %w", err)
	}
	return info.AckFloor.Stream, nil
}
