package eventstore_test

import (
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
)

// BenchmarkAppend and BenchmarkRawPublish run against the same embedded
// server and write envelopes of the same size to the same kind of subject,
// so one `go test -bench .` run gives the cost of the event store over a
// plain synchronous JetStream publish (validation, encoding, the Nats-Msg-Id
// dedup and the expected-sequence check).

// BenchmarkAppend appends one event at a time to one aggregate, each at the
// version the previous append returned, as a command handler does.
func BenchmarkAppend(b *testing.B) {
	_, _, store := setup(b)
	ref := eventstore.Ref{OrgID: "org-bench", Type: "org", ID: "bench"}
	envs := newEvents(b, ref, 0, b.N)
	ctx := testCtx(b)
	var version uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		v, err := store.Append(ctx, ref, version, envs[i])
		if err != nil {
			b.Fatal(err)
		}
		version = v
	}
}

// BenchmarkRawPublish publishes the bytes of one encoded envelope with a
// plain js.Publish: no message id, no expected sequence, no validation.
func BenchmarkRawPublish(b *testing.B) {
	_, js, _ := setup(b)
	ref := eventstore.Ref{OrgID: "org-bench", Type: "org", ID: "raw"}
	data, err := newEvent(b, ref, 0).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	subject := events.DomainEvent(service, ref.OrgID, ref.Type, ref.ID)
	ctx := testCtx(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := js.Publish(ctx, subject, data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad replays an aggregate of 20 events, a typical size, to show
// what rebuilding an aggregate before each command costs.
func BenchmarkLoad(b *testing.B) {
	_, _, store := setup(b)
	ref := eventstore.Ref{OrgID: "org-bench", Type: "org", ID: "load"}
	mustAppend(b, store, ref, 0, newEvents(b, ref, 0, 20)...)
	ctx := testCtx(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		evs, _, err := store.Load(ctx, ref)
		if err != nil || len(evs) != 20 {
			b.Fatalf("loaded %d events: %v", len(evs), err)
		}
	}
}
