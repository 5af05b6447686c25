package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

// readerInactiveThreshold is how long the server keeps a replay consumer
// that Load could not delete (its context ended, the connection dropped).
// Load deletes its consumer when done; this only bounds the leftovers.
const readerInactiveThreshold = time.Minute

// Load replays every event of the aggregate ref in the order it was stored,
// with each envelope's Sequence set, and returns the aggregate's version:
// the sequence of its last event, or 0 when it has none. Pass the version to
// Append as the expected version.
//
// Payloads are not decoded: an event of a type or version this process does
// not know is returned whole, its Data kept raw, for events.Registry.Decode
// to turn into an events.Unknown. Events appended while Load runs are left
// out, so the events and the version always agree.
func (s *Store) Load(ctx context.Context, ref Ref) ([]events.Envelope, uint64, error) {
	return s.LoadFrom(ctx, ref, 0)
}

// LoadFrom is Load for the events stored after version afterVersion, for a
// caller that rebuilt the aggregate up to that version from a snapshot. It
// returns the aggregate's version, which is afterVersion when no event has
// been stored since.
func (s *Store) LoadFrom(ctx context.Context, ref Ref, afterVersion uint64) ([]events.Envelope, uint64, error) {
	subject, err := s.subject(ref)
	if err != nil {
		return nil, 0, err
	}
	last, err := s.lastSequence(ctx, subject)
	if err != nil {
		return nil, 0, fmt.Errorf("eventstore: load %s: %w", ref, err)
	}
	if last <= afterVersion {
		// Also covers the empty subject, where a consumer would wait for
		// messages that never come.
		return nil, afterVersion, nil
	}
	evs, err := s.read(ctx, ref, subject, afterVersion+1, last)
	if err != nil {
		return nil, 0, fmt.Errorf("eventstore: load %s: %w", ref, err)
	}
	return evs, last, nil
}

// lastSequence returns the sequence of the last message on subject, 0 when
// there is none. It marks where a replay ends.
func (s *Store) lastSequence(ctx context.Context, subject string) (uint64, error) {
	st, err := s.streamHandle(ctx)
	if err != nil {
		return 0, err
	}
	msg, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, classify(err)
	}
	return msg.Sequence, nil
}

// read replays subject from sequence from up to and including sequence
// last with an ordered consumer, which the client library recreates from
// the last sequence seen if a message is lost or the server restarts, so
// the replay has no gaps and no duplicates.
func (s *Store) read(ctx context.Context, ref Ref, subject string, from, last uint64) ([]events.Envelope, error) {
	cons, err := s.js.OrderedConsumer(ctx, s.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: readerInactiveThreshold,
	})
	if err != nil {
		return nil, classify(err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, classify(err)
	}
	evs, err := collect(ctx, it, ref, subject, last)
	it.Stop()
	if err != nil {
		// Leave the consumer to expire: the connection may be down, and
		// deleting it must not hold up the error.
		return nil, err
	}
	if info := cons.CachedInfo(); info != nil {
		// Best effort; a consumer left behind expires on its own.
		_ = s.js.DeleteConsumer(ctx, s.stream, info.Name)
	}
	return evs, nil
}

// collect reads it up to and including sequence last.
func collect(ctx context.Context, it jetstream.MessagesContext, ref Ref, subject string, last uint64) ([]events.Envelope, error) {
	var evs []events.Envelope
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, classify(err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		seq := meta.Sequence.Stream
		if seq > last {
			// Only possible if the last message was purged after it was
			// looked up (the stream denies deletes). What came before it
			// may be gone too: fail rather than rebuild from a part.
			return nil, fmt.Errorf("replay of %s went past sequence %d without reading it", subject, last)
		}
		env, err := decode(ref, subject, seq, msg.Data())
		if err != nil {
			return nil, err
		}
		evs = append(evs, env)
		if seq == last {
			return evs, nil
		}
	}
}

// decode turns a stored message into an envelope. A message that is not an
// envelope of ref is corrupt data in the store: an internal error, never
// skipped, since replaying without it would rebuild a wrong aggregate.
func decode(ref Ref, subject string, seq uint64, data []byte) (events.Envelope, error) {
	env, err := events.Unmarshal(data)
	if err != nil {
		return events.Envelope{}, fmt.Errorf("corrupt event at %s sequence %d: %v", subject, seq, err)
	}
	if env.OrgID != ref.OrgID || env.Aggregate.Type != ref.Type || env.Aggregate.ID != ref.ID {
		return events.Envelope{}, fmt.Errorf("event %s at %s sequence %d belongs to %s/%s/%s",
			env.ID, subject, seq, env.OrgID, env.Aggregate.Type, env.Aggregate.ID)
	}
	env.Sequence = seq
	return env, nil
}
