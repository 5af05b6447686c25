package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// service is the service whose stream the tests write to.
const service = "tenancy"

// thingChanged is a payload of the tenancy service known only to these
// tests.
type thingChanged struct {
	N int `json:"n"`
}

func (thingChanged) EventType() string { return "tenancy.thing.changed" }
func (thingChanged) EventVersion() int { return 1 }

// setup starts a server, creates the streams and returns a store on them.
func setup(t testing.TB) (*natstest.Server, jetstream.JetStream, *eventstore.Store) {
	t.Helper()
	srv := natstest.Run(t)
	_, js := srv.JetStream()
	return srv, js, eventstore.New(js, service)
}

// testCtx bounds a test's I/O so that a hang fails the test instead of
// stalling the run.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// attemptCtx bounds one attempt of an operation polled with CheckFor. A
// request written just as the server went away is lost (core NATS request
// reply is at-most-once) and only its deadline ends the wait, so each
// attempt needs a deadline well inside the polling timeout.
func attemptCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newEvent builds an event of ref whose payload carries n.
func newEvent(t testing.TB, ref eventstore.Ref, n int) events.Envelope {
	t.Helper()
	env, err := events.New(thingChanged{N: n}, events.Aggregate{Type: ref.Type, ID: ref.ID},
		events.Meta{OrgID: ref.OrgID, Actor: events.SystemActor("eventstore-test")})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// newEvents builds count events of ref numbered from first.
func newEvents(t testing.TB, ref eventstore.Ref, first, count int) []events.Envelope {
	t.Helper()
	out := make([]events.Envelope, count)
	for i := range out {
		out[i] = newEvent(t, ref, first+i)
	}
	return out
}

// mustAppend appends and fails the test on error.
func mustAppend(t testing.TB, s *eventstore.Store, ref eventstore.Ref, expected uint64, evs ...events.Envelope) uint64 {
	t.Helper()
	v, err := s.Append(testCtx(t), ref, expected, evs...)
	if err != nil {
		t.Fatalf("Append(%s, %d): %v", ref, expected, err)
	}
	return v
}

// mustLoad loads and fails the test on error.
func mustLoad(t testing.TB, s *eventstore.Store, ref eventstore.Ref) ([]events.Envelope, uint64) {
	t.Helper()
	evs, v, err := s.Load(testCtx(t), ref)
	if err != nil {
		t.Fatalf("Load(%s): %v", ref, err)
	}
	return evs, v
}

// wantConflict fails the test unless err is the store's conflict error.
func wantConflict(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrConflict) || events.ErrorCode(err) != events.CodeConflict {
		t.Fatalf("err = %v (code %q), want ErrConflict with code %q", err, events.ErrorCode(err), events.CodeConflict)
	}
}

// streamInfo describes the service's stream.
func streamInfo(t testing.TB, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	ctx := testCtx(t)
	st, err := js.Stream(ctx, events.DomainStream(service))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// streamMsgs is the number of messages in the service's stream.
func streamMsgs(t testing.TB, js jetstream.JetStream) uint64 {
	t.Helper()
	return streamInfo(t, js).State.Msgs
}

// checkEvents compares loaded events with the envelopes that were appended
// (field by field, through their wire form) and their sequences with
// wantSeqs; a nil wantSeqs only requires increasing sequences.
func checkEvents(t testing.TB, got, want []events.Envelope, wantSeqs []uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("loaded %d events, want %d:\n got %v\nwant %v", len(got), len(want), ids(got), ids(want))
	}
	var prev uint64
	for i := range want {
		g, w := mustMarshal(t, got[i]), mustMarshal(t, want[i])
		if g != w {
			t.Errorf("event %d:\n got %s\nwant %s", i, g, w)
		}
		if got[i].Sequence <= prev {
			t.Errorf("event %d has sequence %d after %d", i, got[i].Sequence, prev)
		}
		if wantSeqs != nil && got[i].Sequence != wantSeqs[i] {
			t.Errorf("event %d has sequence %d, want %d", i, got[i].Sequence, wantSeqs[i])
		}
		prev = got[i].Sequence
	}
}

func mustMarshal(t testing.TB, env events.Envelope) string {
	t.Helper()
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ids(evs []events.Envelope) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s@%d", e.ID, e.Sequence)
	}
	return out
}
