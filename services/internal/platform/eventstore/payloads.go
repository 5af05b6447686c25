package eventstore

import (
	"context"
	"errors"

	"github.com/infrapilot/infrapilot/events"
)

// Envelopes builds one envelope per payload, in order, for the aggregate
// ref with metadata m. Each gets a new event id here, so a caller that may
// retry an append after a lost ack builds them once and appends the same
// envelopes again.
func Envelopes(ref Ref, m events.Meta, payloads ...events.Payload) ([]events.Envelope, error) {
	envs := make([]events.Envelope, 0, len(payloads))
	for _, p := range payloads {
		env, err := events.New(p, events.Aggregate{Type: ref.Type, ID: ref.ID}, m)
		if err != nil {
			return nil, err
		}
		envs = append(envs, env)
	}
	return envs, nil
}

// AppendPayloads is Append of the Envelopes of payloads: it stores them as
// the next events of ref, expecting expectedVersion, and returns the
// aggregate's new version.
func (s *Store) AppendPayloads(ctx context.Context, ref Ref, expectedVersion uint64, m events.Meta, payloads ...events.Payload) (uint64, error) {
	envs, err := Envelopes(ref, m, payloads...)
	if err != nil {
		return 0, err
	}
	return s.Append(ctx, ref, expectedVersion, envs...)
}

// conflictAttempts is how many times RetryConflicts runs a decision.
const conflictAttempts = 5

// RetryConflicts runs a load-decide-append fn again while its append loses
// an optimistic-concurrency race (ErrConflict), at most five times in all:
// fn reloads, so it decides again on the newer state. Any other outcome,
// and the fifth conflict, is returned.
func RetryConflicts(fn func() error) error {
	for i := 1; ; i++ {
		err := fn()
		if !errors.Is(err, ErrConflict) || i == conflictAttempts {
			return err
		}
	}
}
