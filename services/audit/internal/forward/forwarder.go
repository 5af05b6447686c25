package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Status is a destination's delivery state on this instance, plus its lag
// as the server counts it (shared by every replica).
type Status struct {
	DestinationID string     `json:"destination_id"`
	OrgID         string     `json:"org_id"`
	Kind          Kind       `json:"kind"`
	Running       bool       `json:"running"`
	LastSuccess   *time.Time `json:"last_success,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`
	// Failures counts the consecutive failed attempts (0 when healthy).
	Failures int `json:"failures"`
	// LastIndex is the chain index of the last entry delivered.
	LastIndex uint64 `json:"last_index"`
	// Delivered counts the entries this instance delivered since it started.
	Delivered uint64 `json:"delivered"`
	// Lag is the number of entries not yet delivered: pending in the
	// consumer plus delivered to a forwarder but not yet accepted.
	Lag uint64 `json:"lag"`
}

// Forwarder delivers one destination's org chain through its durable
// consumer. Build it with NewForwarder and call Run.
type Forwarder struct {
	d      Destination
	cfg    Config
	js     jetstream.JetStream
	sender Sender
	log    *slog.Logger

	mu     sync.Mutex
	status Status
	cons   jetstream.Consumer
}

// NewForwarder validates d; it starts nothing.
func NewForwarder(js jetstream.JetStream, d Destination, cfg Config, log *slog.Logger) (*Forwarder, error) {
	cfg.setDefaults()
	s, err := NewSender(d, cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Forwarder{d: d, cfg: cfg, js: js, sender: s,
		log:    log.With("component", "audit_forward", "org_id", d.OrgID, "destination", d.ID, "kind", d.Kind),
		status: Status{DestinationID: d.ID, OrgID: d.OrgID, Kind: d.Kind}}, nil
}

// consumerConfig: one outstanding batch per destination (MaxAckPending =
// Batch), so that replicas sharing the consumer take turns and entries
// arrive in chain order; AckWait is renewed while a delivery is retried.
func (f *Forwarder) consumerConfig() jetstream.ConsumerConfig {
	deliver := jetstream.DeliverNewPolicy
	if f.d.FromStart {
		deliver = jetstream.DeliverAllPolicy
	}
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(f.d.OrgID, f.d.ID),
		Description:   fmt.Sprintf("SIEM forwarding of org %s to %s %s", f.d.OrgID, f.d.Kind, f.d.ID),
		FilterSubject: events.AuditChain(f.d.OrgID),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: deliver,
		AckWait:       5 * time.Minute,
		MaxAckPending: f.cfg.Batch,
		MaxDeliver:    -1,
	}
}

// ensureConsumer gets the destination's consumer, creating it the first
// time. An existing consumer keeps its position (and its deliver policy,
// which JetStream cannot change).
func (f *Forwarder) ensureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	c, err := f.js.Consumer(ctx, events.StreamAudit, ConsumerName(f.d.OrgID, f.d.ID))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = f.js.CreateConsumer(ctx, events.StreamAudit, f.consumerConfig())
		if errors.Is(err, jetstream.ErrConsumerExists) { // another replica won
			c, err = f.js.Consumer(ctx, events.StreamAudit, ConsumerName(f.d.OrgID, f.d.ID))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("forward: consumer for %s: %w", f.d.ID, err)
	}
	f.mu.Lock()
	f.cons = c
	f.mu.Unlock()
	return c, nil
}

// Run delivers until ctx ends. It returns an error only when the
// consumer cannot be set up or was deleted (the destination was removed).
func (f *Forwarder) Run(ctx context.Context) error {
	defer f.sender.Close()
	f.setRunning(true)
	defer f.setRunning(false)
	var cons jetstream.Consumer
	delay := f.cfg.MinBackoff
	for {
		c, err := f.ensureConsumer(ctx)
		if err == nil {
			cons = c
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		f.failed(err)
		if !sleep(ctx, jitter(delay)) {
			return nil
		}
		delay = min(2*delay, f.cfg.MaxBackoff)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(f.cfg.Batch, jetstream.FetchMaxWait(f.cfg.MaxWait))
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				return fmt.Errorf("forward: consumer of %s is gone: %w", f.d.ID, err)
			}
			f.failed(fmt.Errorf("fetch: %w", err))
			if !sleep(ctx, f.cfg.MinBackoff) {
				return nil
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			if err := batch.Error(); errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("forward: consumer of %s is gone: %w", f.d.ID, err)
			}
			continue
		}
		f.deliver(ctx, msgs)
	}
	return nil
}

// deliver sends a batch until the destination has accepted all of it or
// ctx ends, acking each message once accepted. On ctx end the rest is
// handed back (Nak) for whoever runs next.
func (f *Forwarder) deliver(ctx context.Context, msgs []jetstream.Msg) {
	entries := make([]events.AuditEntry, 0, len(msgs))
	keep := make([]jetstream.Msg, 0, len(msgs))
	for _, m := range msgs {
		var e events.AuditEntry
		if err := json.Unmarshal(m.Data(), &e); err != nil || e.OrgID != f.d.OrgID {
			f.log.Error("not an audit entry of this org: terminated", "subject", m.Subject(), "err", err)
			_ = m.Term()
			continue
		}
		entries, keep = append(entries, e), append(keep, m)
	}
	delay := f.cfg.MinBackoff
	for len(entries) > 0 {
		actx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		n, err := f.sender.Send(actx, entries)
		cancel()
		if err == nil && n == 0 {
			err = errors.New("forward: the sender accepted nothing") // never spin
		}
		for _, m := range keep[:n] {
			_ = m.Ack()
		}
		if n > 0 {
			f.delivered(entries[n-1].Index, n)
		}
		entries, keep = entries[n:], keep[n:]
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		f.failed(err)
		for _, m := range keep {
			_ = m.InProgress()
		}
		if !sleep(ctx, jitter(delay)) {
			break
		}
		delay = min(2*delay, f.cfg.MaxBackoff)
	}
	for _, m := range keep {
		_ = m.Nak()
	}
}

func (f *Forwarder) setRunning(v bool) {
	f.mu.Lock()
	f.status.Running = v
	f.mu.Unlock()
}

func (f *Forwarder) delivered(last uint64, n int) {
	now := f.cfg.Now().UTC()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.LastSuccess, f.status.LastIndex = &now, last
	f.status.Delivered += uint64(n)
	f.status.Failures = 0
}

func (f *Forwarder) failed(err error) {
	now := f.cfg.Now().UTC()
	f.mu.Lock()
	f.status.LastError, f.status.LastErrorAt = err.Error(), &now
	f.status.Failures++
	n := f.status.Failures
	f.mu.Unlock()
	f.log.Warn("delivery failed; retrying", "failures", n, "err", err)
}

// Status returns the destination's status, with the lag read from the
// server (left at its last value if the server cannot be asked).
func (f *Forwarder) Status(ctx context.Context) Status {
	f.mu.Lock()
	cons := f.cons
	f.mu.Unlock()
	var lag uint64
	var haveLag bool
	if cons != nil {
		if info, err := cons.Info(ctx); err == nil {
			lag, haveLag = info.NumPending+uint64(info.NumAckPending), true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if haveLag {
		f.status.Lag = lag
	}
	return f.status
}

// jitter spreads d by ±20% so that forwarders failing together do not
// retry in lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
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
