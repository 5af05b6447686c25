package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Run forwards OUTBOX to the hub until ctx ends. Messages go one at a
// time, in stream order: the next is sent only after the hub acknowledged
// the previous one, so the hub stores them in the order they were
// produced, and a message is removed from OUTBOX only after the hub's
// PubAck (a crash in between re-sends it; the hub's de-duplication by
// Nats-Msg-Id drops the copy).
//
// While the link is down Run waits for it; a failed publish is retried
// with exponential backoff up to MaxBackoff. A message the hub refuses
// with a JetStream error (not a timeout) DeadAfter times in a row moves to
// OUTBOX_DEAD, so that one bad message cannot block the rest.
func (o *Outbox) Run(ctx context.Context) error {
	cons, err := o.stream.Consumer(ctx, consumerName)
	if err != nil {
		return fmt.Errorf("outbox: consumer: %w", err)
	}
	hub, err := jetstream.New(o.nc)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(fetchBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			o.cfg.Log.Warn("outbox: fetch", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		// Messages come in stream order; each is forwarded only after
		// the one before it is acknowledged by the hub.
		for m := range batch.Messages() {
			if !o.forward(ctx, hub, m) {
				break
			}
		}
	}
	return nil
}

// forward delivers one message, retrying until the hub acknowledges it,
// it goes dead, or ctx ends (it then stays in OUTBOX and forward returns
// false).
func (o *Outbox) forward(ctx context.Context, hub jetstream.JetStream, m jetstream.Msg) bool {
	backoff := 50 * time.Millisecond
	refused := 0
	lastProgress := time.Now()
	for ctx.Err() == nil {
		if time.Since(lastProgress) > 10*time.Second {
			// Keep the local delivery ours while we retry.
			_ = m.InProgress()
			lastProgress = time.Now()
		}
		if !o.LinkUp() {
			o.setErr("link to the hub is down")
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		dup, err := o.publish(ctx, hub, m)
		if err == nil {
			// The hub has it. Should this ack be lost (a crash right
			// now), the message comes again and the hub drops the copy.
			if err := m.Ack(); err != nil {
				o.cfg.Log.Warn("outbox: local ack", "err", err)
			}
			if dup {
				o.duplicates.Add(1)
			} else {
				o.forwarded.Add(1)
			}
			o.setErr("")
			return true
		}
		o.attempts.Add(1)
		o.setErr(err.Error())
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			refused++
			if refused >= o.cfg.DeadAfter {
				o.bury(ctx, m, err)
				return true
			}
		}
		o.cfg.Log.Debug("outbox: forward failed", "subject", m.Subject(), "err", err, "retry_in", backoff)
		sleep(ctx, backoff)
		backoff = min(backoff*2, o.cfg.MaxBackoff)
	}
	return false
}

func (o *Outbox) publish(ctx context.Context, hub jetstream.JetStream, m jetstream.Msg) (duplicate bool, err error) {
	out := nats.NewMsg(hubSubject(m.Subject()))
	out.Data = m.Data()
	copyHeaders(out.Header, m.Headers())
	pctx, cancel := context.WithTimeout(ctx, o.cfg.PublishTimeout)
	defer cancel()
	ack, err := hub.PublishMsg(pctx, out)
	if err != nil {
		return false, err
	}
	if ack.Domain != o.cfg.HubDomain {
		return false, fmt.Errorf("outbox: %s was stored by stream %s in domain %q, not the hub's %q",
			out.Subject, ack.Stream, ack.Domain, o.cfg.HubDomain)
	}
	return ack.Duplicate, nil
}

// bury moves a refused message to OUTBOX_DEAD.
func (o *Outbox) bury(ctx context.Context, m jetstream.Msg, cause error) {
	dead := nats.NewMsg(deadPrefix + hubSubject(m.Subject()))
	dead.Data = m.Data()
	copyHeaders(dead.Header, m.Headers())
	dead.Header.Set("Ip-Dead-Reason", cause.Error())
	if _, err := o.js.PublishMsg(ctx, dead); err != nil {
		o.cfg.Log.Error("outbox: cannot keep a refused message; dropping it", "subject", m.Subject(), "err", err)
	} else {
		o.cfg.Log.Error("outbox: the hub refused a message; moved to "+DeadStreamName, "subject", m.Subject(), "err", cause)
	}
	o.deadN.Add(1)
	_ = m.Ack()
}

func (o *Outbox) setErr(s string) {
	o.mu.Lock()
	o.lastErr = s
	o.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// copyHeaders copies a stored message's headers for re-publishing: the
// producer's headers and its Nats-Msg-Id, but not the expectations that
// were about OUTBOX (Nats-Expected-Stream and the like).
func copyHeaders(dst, src nats.Header) {
	for k, v := range src {
		if strings.HasPrefix(k, "Nats-Expected-") {
			continue
		}
		dst[k] = v
	}
}
