// Package chainstream reads audit chains and checkpoints from stream AUDIT,
// the source of truth every projection is rebuilt from and verified
// against.
package chainstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Entry is a chain entry and the stream sequence it is stored at.
type Entry struct {
	events.AuditEntry
	Seq    uint64
	Stored time.Time // the stream's timestamp
}

// Checkpoint is a checkpoint and its stream sequence.
type Checkpoint struct {
	events.SignedCheckpoint
	Seq uint64
}

// Reader reads the AUDIT stream.
type Reader struct {
	js jetstream.JetStream
}

// New returns a reader on js.
func New(js jetstream.JetStream) *Reader { return &Reader{js: js} }

// DecodeEntry decodes a chain message.
func DecodeEntry(data []byte) (events.AuditEntry, error) {
	var e events.AuditEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return events.AuditEntry{}, fmt.Errorf("chainstream: malformed audit entry: %w", err)
	}
	return e, nil
}

// Tail returns the last entry of org's chain; ok is false for an empty
// chain.
func (r *Reader) Tail(ctx context.Context, org string) (Entry, bool, error) {
	msg, ok, err := r.last(ctx, events.AuditChain(org))
	if err != nil || !ok {
		return Entry{}, false, err
	}
	e, err := DecodeEntry(msg.Data)
	if err != nil {
		return Entry{}, false, fmt.Errorf("chainstream: tail of %s (seq %d): %w", org, msg.Sequence, err)
	}
	return Entry{AuditEntry: e, Seq: msg.Sequence, Stored: msg.Time}, true, nil
}

// LastCheckpoint returns org's latest checkpoint; ok is false when it has
// none.
func (r *Reader) LastCheckpoint(ctx context.Context, org string) (Checkpoint, bool, error) {
	msg, ok, err := r.last(ctx, events.AuditCheckpoint(org))
	if err != nil || !ok {
		return Checkpoint{}, false, err
	}
	var c events.SignedCheckpoint
	if err := json.Unmarshal(msg.Data, &c); err != nil {
		return Checkpoint{}, false, fmt.Errorf("chainstream: malformed checkpoint of %s (seq %d): %w", org, msg.Sequence, err)
	}
	return Checkpoint{SignedCheckpoint: c, Seq: msg.Sequence}, true, nil
}

func (r *Reader) last(ctx context.Context, subject string) (*jetstream.RawStreamMsg, bool, error) {
	st, err := r.js.Stream(ctx, events.StreamAudit)
	if err != nil {
		return nil, false, fmt.Errorf("chainstream: stream %s: %w", events.StreamAudit, err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("chainstream: last message of %s: %w", subject, err)
	}
	return msg, true, nil
}

// Msg returns the message at stream sequence seq if it is on subject.
func (r *Reader) Msg(ctx context.Context, seq uint64, subject string) (*jetstream.RawStreamMsg, bool, error) {
	st, err := r.js.Stream(ctx, events.StreamAudit)
	if err != nil {
		return nil, false, fmt.Errorf("chainstream: stream %s: %w", events.StreamAudit, err)
	}
	msg, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("chainstream: message %d: %w", seq, err)
	}
	if msg.Subject != subject {
		return nil, false, nil
	}
	return msg, true, nil
}

// Entries yields org's chain entries from stream sequence startSeq (0: the
// beginning) up to and including the chain's tail as it was when Entries
// started, in stream order. It reads with an ordered consumer, which the
// client library recreates from the last sequence seen if a message is lost,
// so the read has no gaps and no duplicates. The sequence stops at the first
// error it yields.
func (r *Reader) Entries(ctx context.Context, org string, startSeq uint64) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		tail, ok, err := r.Tail(ctx, org)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		if !ok || tail.Seq < startSeq {
			return
		}
		cfg := jetstream.OrderedConsumerConfig{
			FilterSubjects:    []string{events.AuditChain(org)},
			DeliverPolicy:     jetstream.DeliverAllPolicy,
			InactiveThreshold: time.Minute,
		}
		if startSeq > 1 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = startSeq
		}
		cons, err := r.js.OrderedConsumer(ctx, events.StreamAudit, cfg)
		if err != nil {
			yield(Entry{}, fmt.Errorf("chainstream: read chain of %s: %w", org, err))
			return
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(512))
		if err != nil {
			yield(Entry{}, fmt.Errorf("chainstream: read chain of %s: %w", org, err))
			return
		}
		defer it.Stop()
		stop := context.AfterFunc(ctx, it.Stop)
		defer stop()
		for {
			msg, err := it.Next()
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				yield(Entry{}, fmt.Errorf("chainstream: read chain of %s: %w", org, err))
				return
			}
			meta, err := msg.Metadata()
			if err != nil {
				yield(Entry{}, fmt.Errorf("chainstream: read chain of %s: %w", org, err))
				return
			}
			e, err := DecodeEntry(msg.Data())
			if err != nil {
				yield(Entry{}, fmt.Errorf("chainstream: entry at seq %d of %s: %w", meta.Sequence.Stream, org, err))
				return
			}
			if !yield(Entry{AuditEntry: e, Seq: meta.Sequence.Stream, Stored: meta.Timestamp}, nil) {
				return
			}
			if meta.Sequence.Stream >= tail.Seq {
				return
			}
		}
	}
}
