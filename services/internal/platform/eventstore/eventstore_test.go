package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/nats-io/nats.go/jetstream"
)

// Sixteen writers, each on its own connection like replicas of a service,
// append to the same aggregate at the same expected version: exactly one
// wins, every other gets ErrConflict, and the aggregate holds the winner's
// events only.
func TestAppendConcurrentWritersOneWins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		prior int // events stored before the race
	}{
		{"new aggregate", 0},
		{"existing aggregate", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _, store := setup(t)
			ref := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "contended"}
			var (
				prior   []events.Envelope
				version uint64
			)
			if tc.prior > 0 {
				prior = newEvents(t, ref, 0, tc.prior)
				version = mustAppend(t, store, ref, 0, prior...)
			}

			const writers = 16
			stores := make([]*eventstore.Store, writers)
			batches := make([][]events.Envelope, writers)
			for i := range writers {
				js, err := natsx.JetStream(srv.Connect())
				if err != nil {
					t.Fatal(err)
				}
				stores[i] = eventstore.New(js, service)
				batches[i] = newEvents(t, ref, 100*(i+1), 2)
			}
			type result struct {
				version uint64
				err     error
			}
			results := make([]result, writers)
			ctx := testCtx(t)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					<-start
					v, err := stores[i].Append(ctx, ref, version, batches[i]...)
					results[i] = result{v, err}
				})
			}
			close(start)
			wg.Wait()

			winner := -1
			for i, r := range results {
				if r.err == nil {
					if winner >= 0 {
						t.Fatalf("writers %d and %d both appended at version %d", winner, i, version)
					}
					winner = i
					continue
				}
				wantConflict(t, r.err)
			}
			if winner < 0 {
				t.Fatal("no writer appended")
			}

			evs, v := mustLoad(t, store, ref)
			checkEvents(t, evs, append(prior, batches[winner]...), nil)
			if v != results[winner].version || v != evs[len(evs)-1].Sequence {
				t.Errorf("Load version = %d, want the winner's %d = last sequence %d", v, results[winner].version, evs[len(evs)-1].Sequence)
			}
		})
	}
}

// An event appended again, by the same call retried or at the current
// version, is stored once, and the retried Append returns the version its
// first call returned.
func TestAppendDuplicateIsStoredOnce(t *testing.T) {
	t.Parallel()
	_, js, store := setup(t)
	ref := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "dup"}
	other := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "other"}
	e := newEvents(t, ref, 1, 5)

	v1 := mustAppend(t, store, ref, 0, e[0])
	// The retry of a call whose ack was lost: the server reports a wrong
	// last sequence (it checks that first); Append finds e[0] stored.
	if v := mustAppend(t, store, ref, 0, e[0]); v != v1 {
		t.Errorf("retried append returned %d, want %d", v, v1)
	}
	// At the current version the server itself reports a duplicate.
	if v := mustAppend(t, store, ref, v1, e[0]); v != v1 {
		t.Errorf("duplicate at current version returned %d, want %d", v, v1)
	}
	// Another aggregate's event makes stream and aggregate sequences differ.
	mustAppend(t, store, other, 0, newEvent(t, other, 0))
	v2 := mustAppend(t, store, ref, v1, e[1])

	// The version has moved on; the old append retried still returns its
	// own version, not the aggregate's current one.
	if v := mustAppend(t, store, ref, 0, e[0]); v != v1 {
		t.Errorf("retried append after the version moved on returned %d, want %d", v, v1)
	}
	// A two-event append whose second event never reached the server,
	// retried: the first is found, the second appended after it.
	v3 := mustAppend(t, store, ref, v2, e[2])
	v4 := mustAppend(t, store, ref, v2, e[2], e[3])
	if v4 <= v3 {
		t.Fatalf("completed retry returned %d, want > %d", v4, v3)
	}
	// Several stored events re-appended together at the version before
	// them: each is found in place, and the last one's version returned.
	if v := mustAppend(t, store, ref, v1, e[1], e[2], e[3]); v != v4 {
		t.Errorf("retried three-event append returned %d, want %d", v, v4)
	}

	// A new event at a stale version is a conflict, also after a prefix
	// of already stored events.
	_, err := store.Append(testCtx(t), ref, 0, e[4])
	wantConflict(t, err)
	_, err = store.Append(testCtx(t), ref, v1, e[1], e[4])
	wantConflict(t, err)

	evs, v := mustLoad(t, store, ref)
	checkEvents(t, evs, e[:4], []uint64{v1, v2, v3, v4})
	if v != v4 {
		t.Errorf("Load version = %d, want %d", v, v4)
	}
	if n := streamMsgs(t, js); n != 5 {
		t.Errorf("stream holds %d messages, want 5 (4 events of %s, 1 of %s)", n, ref, other)
	}
}

// The server behaviour the package comment describes: a single server
// checks the expected last subject sequence before the message id, so a
// stored id re-published with a stale expected sequence gets "wrong last
// sequence", not a duplicate ack. Append does not depend on this order; if
// a server upgrade changes it, update the package comment.
func TestServerChecksExpectedSequenceBeforeMsgID(t *testing.T) {
	t.Parallel()
	_, js, _ := setup(t)
	ctx := testCtx(t)
	subject := events.DomainEvent(service, "org-1", "org", "raw")
	publish := func(id string, expected uint64) (*jetstream.PubAck, error) {
		return js.Publish(ctx, subject, []byte(`{}`), jetstream.WithMsgID(id), jetstream.WithExpectLastSequencePerSubject(expected))
	}
	if _, err := publish("a", 0); err != nil {
		t.Fatal(err)
	}
	ackB, err := publish("b", 1)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := publish("a", 0)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("stored id with stale expected sequence: ack %+v, err %v; want error %d", ack, err, jetstream.JSErrCodeStreamWrongLastSequence)
	}
	ack, err = publish("a", ackB.Sequence)
	if err != nil || !ack.Duplicate || ack.Sequence != 1 {
		t.Fatalf("stored id with current expected sequence: ack %+v, err %v; want duplicate of sequence 1", ack, err)
	}
}

// Events survive a server restart with their ids, sequences and data, and
// appends continue at the loaded version. While the server is down the
// store reports unavailable, and an append that failed then is completed by
// a retry without being stored twice, whether or not the client delivered
// its buffered publish after reconnecting.
func TestLoadAfterRestart(t *testing.T) {
	t.Parallel()
	srv, js, store := setup(t)
	ref := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "durable"}
	first := newEvents(t, ref, 0, 3)
	v := mustAppend(t, store, ref, 0, first...)
	before, vBefore := mustLoad(t, store, ref)
	if vBefore != v {
		t.Fatalf("Load version = %d, want %d", vBefore, v)
	}

	srv.Restart()
	var (
		after  []events.Envelope
		vAfter uint64
	)
	// The client reconnects on its own; wait for it rather than sleep.
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		var err error
		after, vAfter, err = store.Load(attemptCtx(t), ref)
		return err
	})
	if vAfter != vBefore {
		t.Fatalf("version after restart = %d, want %d", vAfter, vBefore)
	}
	checkEvents(t, after, first, []uint64{before[0].Sequence, before[1].Sequence, before[2].Sequence})
	// A retry of the pre-restart append is still recognised.
	if got := mustAppend(t, store, ref, 0, first...); got != v {
		t.Errorf("retried append after restart returned %d, want %d", got, v)
	}

	srv.Shutdown()
	next := newEvent(t, ref, 3)
	down, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	_, err := store.Append(down, ref, vAfter, next)
	wantCode(t, err, events.CodeUnavailable)
	_, _, err = store.Load(down, ref)
	wantCode(t, err, events.CodeUnavailable)

	srv.Restart()
	var v2 uint64
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		var err error
		v2, err = store.Append(attemptCtx(t), ref, vAfter, next)
		return err
	})
	_, err = store.Append(testCtx(t), ref, vAfter, newEvent(t, ref, 4))
	wantConflict(t, err)
	evs, v3 := mustLoad(t, store, ref)
	checkEvents(t, evs, append(first, next), nil)
	if v3 != v2 {
		t.Errorf("version = %d, want %d", v3, v2)
	}
	if n := streamMsgs(t, js); n != 4 {
		t.Errorf("stream holds %d messages, want 4", n)
	}
}

// A multi-event append keeps its order, and Load returns one aggregate of
// one org: not a sibling whose id shares a prefix, not another type with
// the same id, not the same aggregate of another org.
func TestLoadReturnsOneAggregateInOrder(t *testing.T) {
	t.Parallel()
	_, js, store := setup(t)
	ref := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "a"}
	neighbours := []eventstore.Ref{
		{OrgID: "org-1", Type: "org", ID: "a-1"},
		{OrgID: "org-1", Type: "member", ID: "a"},
		{OrgID: "org-2", Type: "org", ID: "a"},
	}

	// An empty aggregate loads at once, at version 0.
	evs, v := mustLoad(t, store, ref)
	if len(evs) != 0 || v != 0 {
		t.Fatalf("empty aggregate: %d events, version %d", len(evs), v)
	}

	// Interleave the neighbours' events with ref's so that ref's events
	// are not contiguous in the stream.
	var (
		want       []events.Envelope
		version    uint64
		neighbourV = make([]uint64, len(neighbours))
	)
	for round := range 3 {
		for i, n := range neighbours {
			neighbourV[i] = mustAppend(t, store, n, neighbourV[i], newEvent(t, n, 10*round+i))
		}
		batch := newEvents(t, ref, 10*round, 4)
		version = mustAppend(t, store, ref, version, batch...)
		want = append(want, batch...)
	}

	evs, v = mustLoad(t, store, ref)
	checkEvents(t, evs, want, nil)
	if v != version {
		t.Errorf("version = %d, want %d", v, version)
	}
	for i := range evs {
		var p thingChanged
		if err := json.Unmarshal(evs[i].Data, &p); err != nil {
			t.Fatal(err)
		}
		if wantN := 10*(i/4) + i%4; p.N != wantN {
			t.Errorf("event %d carries n=%d, want %d", i, p.N, wantN)
		}
	}

	// LoadFrom returns only the events after a version.
	tail, v2, err := store.LoadFrom(testCtx(t), ref, evs[7].Sequence)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, tail, want[8:], nil)
	if v2 != version {
		t.Errorf("LoadFrom version = %d, want %d", v2, version)
	}
	tail, v2, err = store.LoadFrom(testCtx(t), ref, version)
	if err != nil || len(tail) != 0 || v2 != version {
		t.Errorf("LoadFrom(current version) = %d events, version %d, err %v; want none at %d", len(tail), v2, err, version)
	}

	// Load cleans up the consumers it replays with.
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := streamInfo(t, js).State.Consumers; n != 0 {
			return fmt.Errorf("%d consumers left on the stream", n)
		}
		return nil
	})
}

// Events of a type this process does not know are stored and loaded whole.
func TestLoadKeepsUnknownEventTypes(t *testing.T) {
	t.Parallel()
	_, _, store := setup(t)
	ref := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "future"}
	env := newEvent(t, ref, 0)
	env.Type, env.Version = "tenancy.from.the_future", 7
	env.Data = json.RawMessage(`{"shape":{"nobody":["knows",1]}}`)
	v := mustAppend(t, store, ref, 0, env)

	evs, _ := mustLoad(t, store, ref)
	checkEvents(t, evs, []events.Envelope{env}, []uint64{v})
	p, err := events.Catalogue.Decode(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := p.(*events.Unknown); !ok || string(u.Raw) != string(env.Data) {
		t.Errorf("decoded %#v, want events.Unknown with the raw data", p)
	}
}

// Bad refs and bad envelopes are rejected as invalid before anything is
// published, so no prefix of a batch is left behind.
func TestAppendRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	_, js, store := setup(t)
	ref := eventstore.Ref{OrgID: "org-1", Type: "org", ID: "x"}
	good := func() events.Envelope { return newEvent(t, ref, 0) }
	with := func(f func(*events.Envelope)) events.Envelope {
		e := good()
		f(&e)
		return e
	}
	dup := good()

	refs := map[string]eventstore.Ref{
		"empty org":     {OrgID: "", Type: "org", ID: "x"},
		"wildcard org":  {OrgID: "*", Type: "org", ID: "x"},
		"dotted type":   {OrgID: "org-1", Type: "org.x", ID: "x"},
		"tail wildcard": {OrgID: "org-1", Type: "org", ID: ">"},
		"space in id":   {OrgID: "org-1", Type: "org", ID: "a b"},
		"long id":       {OrgID: "org-1", Type: "org", ID: strings.Repeat("a", 129)},
	}
	for name, r := range refs {
		t.Run("ref/"+name, func(t *testing.T) {
			_, err := store.Append(testCtx(t), r, 0, good())
			wantInvalid(t, err)
			_, _, err = store.Load(testCtx(t), r)
			wantInvalid(t, err)
			_, _, err = store.LoadFrom(testCtx(t), r, 1)
			wantInvalid(t, err)
		})
	}

	batches := map[string][]events.Envelope{
		"no events":         nil,
		"no id":             {with(func(e *events.Envelope) { e.ID = "" })},
		"version 0":         {with(func(e *events.Envelope) { e.Version = 0 })},
		"no actor":          {with(func(e *events.Envelope) { e.Actor = events.Actor{} })},
		"no data":           {with(func(e *events.Envelope) { e.Data = nil })},
		"other org":         {with(func(e *events.Envelope) { e.OrgID = "org-2" })},
		"other type":        {with(func(e *events.Envelope) { e.Aggregate.Type = "member" })},
		"other id":          {with(func(e *events.Envelope) { e.Aggregate.ID = "y" })},
		"other service":     {with(func(e *events.Envelope) { e.Type = "proxy.host.created" })},
		"unowned type":      {with(func(e *events.Envelope) { e.Type = "nobody.thing.happened" })},
		"same id twice":     {dup, dup},
		"bad second event":  {good(), with(func(e *events.Envelope) { e.OrgID = "org-2" })},
		"bad last of three": {good(), good(), with(func(e *events.Envelope) { e.Data = nil })},
	}
	for name, evs := range batches {
		t.Run("events/"+name, func(t *testing.T) {
			_, err := store.Append(testCtx(t), ref, 0, evs...)
			wantInvalid(t, err)
		})
	}

	if n := streamMsgs(t, js); n != 0 {
		t.Errorf("stream holds %d messages after invalid appends, want 0", n)
	}
	if _, err := eventstore.New(js, "no.such").Append(testCtx(t), ref, 0, good()); events.ErrorCode(err) != events.CodeInvalid {
		t.Errorf("invalid service: err = %v, want code invalid", err)
	}
}

func wantInvalid(t testing.TB, err error) {
	t.Helper()
	wantCode(t, err, events.CodeInvalid)
}

func wantCode(t testing.TB, err error, code events.Code) {
	t.Helper()
	if events.ErrorCode(err) != code {
		t.Fatalf("err = %v (code %q), want code %q", err, events.ErrorCode(err), code)
	}
}
