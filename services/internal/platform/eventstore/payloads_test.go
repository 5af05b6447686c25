package eventstore_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
)

func TestRetryConflicts(t *testing.T) {
	t.Parallel()
	other := errors.New("unavailable")
	conflict := fmt.Errorf("append: %w", eventstore.ErrConflict)
	for _, tc := range []struct {
		name      string
		results   []error // fn's results, in order; past the end: conflict
		wantCalls int
		want      error
	}{
		{"success", []error{nil}, 1, nil},
		{"another error is not retried", []error{other}, 1, other},
		{"conflict then success", []error{conflict, conflict, nil}, 3, nil},
		{"gives up after five", nil, 5, eventstore.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := eventstore.RetryConflicts(func() error {
				calls++
				if calls <= len(tc.results) {
					return tc.results[calls-1]
				}
				return conflict
			})
			if calls != tc.wantCalls || !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("%d calls, %v; want %d, %v", calls, err, tc.wantCalls, tc.want)
			}
		})
	}
}

// TestAppendPayloads: payloads become envelopes of the aggregate with the
// metadata given, stored in order at the next versions.
func TestAppendPayloads(t *testing.T) {
	t.Parallel()
	_, _, s := setup(t)
	ctx := testCtx(t)
	ref := eventstore.Ref{OrgID: "org1", Type: "thing", ID: "t1"}
	m := events.Meta{OrgID: "org1", Actor: events.SystemActor("tenancy"), CorrelationID: "c1"}
	v, err := s.AppendPayloads(ctx, ref, 0, m, thingChanged{N: 1}, thingChanged{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	evs, loaded := mustLoad(t, s, ref)
	if loaded != v || len(evs) != 2 {
		t.Fatalf("stored %d events at version %d, appended at %d", len(evs), loaded, v)
	}
	for _, env := range evs {
		if env.Aggregate != (events.Aggregate{Type: "thing", ID: "t1"}) || env.OrgID != "org1" || env.CorrelationID != "c1" || env.Actor != m.Actor {
			t.Fatalf("envelope %+v", env)
		}
	}
	if _, err := s.AppendPayloads(ctx, ref, 0, m, thingChanged{N: 3}); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("append at a stale version: %v", err)
	}
}
