// Package eventstore appends and replays the events of event-sourced
// aggregates on a service's JetStream domain stream.
//
// Each aggregate of one org has its own subject,
// events.DomainEvent(service, org, type, id), and its version is the stream
// sequence of its last event (0 when it has none). Append publishes with
// Nats-Msg-Id = event id, so a re-published event is stored once, and with
// Nats-Expected-Last-Subject-Sequence = the expected version, so of two
// writers that loaded the same version only one can append; the other gets
// ErrConflict and must reload.
//
// A retried append is idempotent. JetStream answers a re-published event id
// in two ways depending on where the stream runs: a single server checks the
// expected sequence first and reports "wrong last sequence" (a conflict), a
// replicated stream checks the id first and acks a duplicate. Append treats
// both as the same outcome: when the server reports a conflict it looks at
// the message stored right after the expected version and, if that message
// is the event being appended, takes it as already stored. A retry after a
// lost ack therefore succeeds on every topology and even after the stream's
// duplicate window has passed.
package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict is the error of an append that lost an optimistic-concurrency
// race: the aggregate has events after the expected version that are not
// the ones being appended. The caller reloads the aggregate, decides again
// and appends at the new version. Append wraps it with context, so compare
// with errors.Is; events.ErrorCode reports events.CodeConflict for it.
var ErrConflict = &events.Error{
	Code:    events.CodeConflict,
	Message: "the aggregate was changed concurrently; reload it and retry",
}

// Ref names one aggregate of one org: its type (for example "org" in the
// tenancy service) and its id. Every field must be a valid subject token
// (events.ValidToken).
type Ref struct {
	OrgID string
	Type  string
	ID    string
}

// String returns the ref as "org/type/id" for logs and error messages.
func (r Ref) String() string { return r.OrgID + "/" + r.Type + "/" + r.ID }

// Store appends and loads the aggregates of one service. It holds no state
// of its own beyond a cached stream handle, and is safe for concurrent use.
type Store struct {
	js      jetstream.JetStream
	service string
	stream  string

	mu     sync.Mutex
	handle jetstream.Stream // looked up on first use, see streamHandle
}

// New returns the event store of service (for example "tenancy"). Its
// events live on stream events.DomainStream(service), which events.Ensure
// creates; New does no I/O.
func New(js jetstream.JetStream, service string) *Store {
	return &Store{js: js, service: service, stream: events.DomainStream(service)}
}

// Append stores evs, in order, as the next events of the aggregate ref and
// returns the aggregate's new version: the stream sequence of the last of
// evs.
//
// expectedVersion is the version the caller's decision was based on (0 for
// a new aggregate). When the aggregate has moved on since, Append returns
// an error wrapping ErrConflict and stores nothing further.
//
// Every envelope must be valid (events.Envelope.Validate), belong to ref
// (org, aggregate type and id), have a type owned by the store's service,
// and have an id not used by another envelope of the same call; otherwise
// Append returns an events.CodeInvalid error before publishing anything.
//
// Appending an event that is already stored is not an error and stores
// nothing: this makes a retry after a lost ack or a timeout safe. The
// version returned for such an event is the sequence it was first stored
// at, so a retried Append returns what the original call would have
// returned, even when other events have been appended since; a caller that
// needs the current version loads the aggregate.
//
// Several events are published one after the other, each expecting the
// sequence of the previous one, so no other writer can interleave with
// them. They are not atomic: if the call fails halfway (a crash, a lost
// connection) a prefix of evs is stored and visible to readers. Retrying the
// same Append with the same envelopes completes it.
func (s *Store) Append(ctx context.Context, ref Ref, expectedVersion uint64, evs ...events.Envelope) (uint64, error) {
	subject, err := s.subject(ref)
	if err != nil {
		return 0, err
	}
	payloads, err := s.encode(ref, evs)
	if err != nil {
		return 0, err
	}
	version := expectedVersion
	for i, env := range evs {
		v, err := s.appendOne(ctx, subject, version, env.ID, payloads[i])
		if err != nil {
			return 0, fmt.Errorf("eventstore: append %s (event %d of %d, %s) at version %d: %w",
				ref, i+1, len(evs), env.ID, version, err)
		}
		version = v
	}
	return version, nil
}

// encode validates evs against ref and encodes them. It runs before
// anything is published so that an invalid event never leaves a prefix of
// its batch behind.
func (s *Store) encode(ref Ref, evs []events.Envelope) ([][]byte, error) {
	if len(evs) == 0 {
		return nil, events.Invalid("append to %s: no events", ref)
	}
	seen := make(map[string]bool, len(evs))
	out := make([][]byte, len(evs))
	for i, env := range evs {
		if err := env.Validate(); err != nil {
			return nil, fmt.Errorf("eventstore: append to %s: event %d: %w", ref, i+1, err)
		}
		switch {
		case env.OrgID != ref.OrgID:
			return nil, events.Invalid("append to %s: event %s belongs to org %q", ref, env.ID, env.OrgID)
		case env.Aggregate.Type != ref.Type || env.Aggregate.ID != ref.ID:
			return nil, events.Invalid("append to %s: event %s belongs to aggregate %s/%s",
				ref, env.ID, env.Aggregate.Type, env.Aggregate.ID)
		case !s.owns(env.Type):
			return nil, events.Invalid("append to %s: event type %q is not a %s event", ref, env.Type, s.service)
		case seen[env.ID]:
			return nil, events.Invalid("append to %s: event id %s appears twice", ref, env.ID)
		}
		seen[env.ID] = true
		b, err := env.Marshal()
		if err != nil {
			return nil, fmt.Errorf("eventstore: encode event %s: %w", env.ID, err)
		}
		out[i] = b
	}
	return out, nil
}

// owns reports whether an event type belongs to the store's service: its
// first token names the owning service (the rule events.StreamForEventType
// and the registry follow), so a misrouted event is caught before it lands
// on another service's stream.
func (s *Store) owns(typ string) bool {
	stream, ok := events.StreamForEventType(typ)
	return ok && stream == s.stream
}

// appendOne publishes one encoded event expecting the subject's last
// sequence to be expected, and returns the sequence the event is stored at.
func (s *Store) appendOne(ctx context.Context, subject string, expected uint64, id string, data []byte) (uint64, error) {
	ack, err := s.js.Publish(ctx, subject, data,
		jetstream.WithMsgID(id),
		jetstream.WithExpectLastSequencePerSubject(expected))
	if err == nil {
		// ack.Duplicate: the id was already stored (a replicated stream
		// checks ids before the expected sequence); ack.Sequence is where.
		return ack.Sequence, nil
	}
	if !isWrongLastSequence(err) {
		return 0, classify(err)
	}
	// A single server checks the expected sequence before the id, so a
	// retry of an append that did succeed lands here too. It succeeded if
	// this event is the subject's first message after expected.
	seq, stored, lerr := s.storedAfter(ctx, subject, expected, id)
	if lerr != nil {
		// Not knowing whether the event is stored, report neither success
		// nor a conflict (which would make the caller decide again on a
		// state that may already hold this event): a retry will tell.
		return 0, fmt.Errorf("expected version is stale; checking whether the event is already stored: %w", lerr)
	}
	if stored {
		return seq, nil
	}
	return 0, ErrConflict
}

// storedAfter reports whether the first message on subject after sequence
// after carries msg id id, and if so its sequence.
func (s *Store) storedAfter(ctx context.Context, subject string, after uint64, id string) (uint64, bool, error) {
	st, err := s.streamHandle(ctx)
	if err != nil {
		return 0, false, err
	}
	msg, err := st.GetMsg(ctx, after+1, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify(err)
	}
	if msg.Header.Get(jetstream.MsgIDHeader) != id {
		return 0, false, nil
	}
	return msg.Sequence, true, nil
}

// streamHandle returns the service's stream, looking it up once. The
// handle only names the stream, so it stays valid across server restarts.
func (s *Store) streamHandle(ctx context.Context) (jetstream.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle != nil {
		return s.handle, nil
	}
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return nil, classify(err)
	}
	s.handle = st
	return st, nil
}

// subject checks ref and returns its subject. The tokens are checked so
// that no id can widen a subject (".", "*", ">") into another aggregate's
// or another org's events.
func (s *Store) subject(ref Ref) (string, error) {
	switch {
	case !events.ValidToken(s.service):
		return "", events.Invalid("event store: service %q is not a valid subject token", s.service)
	case !events.ValidToken(ref.OrgID):
		return "", events.Invalid("aggregate ref: org id %q is not a valid subject token", ref.OrgID)
	case !events.ValidToken(ref.Type):
		return "", events.Invalid("aggregate ref: type %q is not a valid subject token", ref.Type)
	case !events.ValidToken(ref.ID):
		return "", events.Invalid("aggregate ref: id %q is not a valid subject token", ref.ID)
	}
	return events.DomainEvent(s.service, ref.OrgID, ref.Type, ref.ID), nil
}

// isWrongLastSequence reports whether err is JetStream's answer to a failed
// expected-sequence check: 10071 on a single server, 10164 on a replicated
// stream (which also uses it while another publish to the same subject is in
// flight; either way another writer got there first).
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// jsErrCodeDuplicateInProcess is JetStream's "duplicate message id is in
// process" (10158): on a replicated stream, a publish whose id matches one
// still being replicated. nats.go has no constant for it.
const jsErrCodeDuplicateInProcess jetstream.ErrorCode = 10158

// classify gives a NATS or JetStream error that is not a conflict its
// events code. Errors that retrying the same call can cure (no stream
// responding, a timeout, a lost connection, a duplicate still in flight)
// are events.CodeUnavailable: retrying is safe because Load only reads and
// Append is idempotent. Anything else stays internal.
func classify(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeDuplicateInProcess,
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, context.DeadlineExceeded):
		return &events.Error{Code: events.CodeUnavailable, Message: "event store unavailable; retry", Err: err}
	}
	return err
}
