package chain_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/chain"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// benchOrgs is how many org chains the benchmarks spread messages over.
const benchOrgs = 8

type signer struct{ key ed25519.PrivateKey }

func (s signer) Sign(cp *events.SignedCheckpoint) error { return cp.Sign("bench", s.key) }

func benchEnvelope(b *testing.B, i int) events.Envelope {
	org := fmt.Sprintf("org-%d", i%benchOrgs)
	env, err := events.New(events.OrgUpdated{Name: fmt.Sprintf("Organisation %d", i), Slug: fmt.Sprintf("org-%d", i)},
		events.Aggregate{Type: "org", ID: org},
		events.Meta{OrgID: org, Actor: events.Actor{Kind: events.ActorUser, ID: "u-12345678", IP: "203.0.113.9", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"}})
	if err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkRawAsyncPublish is the baseline: plain asynchronous JetStream
// publishes of audit-entry-sized messages to the AUDIT stream, over the same
// org subjects, on the same kind of embedded server, waiting for every
// acknowledgement. Compare its msgs/s with BenchmarkChainedAppends'
// entries/s.
func BenchmarkRawAsyncPublish(b *testing.B) {
	srv := natstest.Run(b)
	nc, _ := srv.JetStream()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	e := chain.EntryFor(benchEnvelope(b, 0))
	if err := chain.Seal(&e, 0, events.GenesisHash); err != nil {
		b.Fatal(err)
	}
	data, _ := json.Marshal(e)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := js.PublishAsync(events.AuditChain(fmt.Sprintf("org-%d", i%benchOrgs)), data); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishes not acknowledged")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkChainedAppends measures the chain writer end to end: b.N source
// events waiting on a domain stream are consumed, chained (canonical JSON,
// SHA-256, expected sequences and message ids) and appended, and the
// source events acknowledged, with a signed checkpoint every 1,000 entries
// of each org.
func BenchmarkChainedAppends(b *testing.B) {
	srv := natstest.Run(b)
	nc, js := srv.JetStream()
	pjs, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		env := benchEnvelope(b, i)
		data, _ := env.Marshal()
		if _, err := pjs.PublishAsync(events.DomainEvent("tenancy", env.OrgID, "org", env.OrgID), data, jetstream.WithMsgID(env.ID)); err != nil {
			b.Fatal(err)
		}
	}
	<-pjs.PublishAsyncComplete()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	w, err := chain.New(chain.Config{Sources: []chain.Source{{Durable: "bench", Stream: "TENANCY", Filter: events.DomainEvents("tenancy")}}},
		chain.Deps{NC: nc, Signer: signer{key}, Seen: func(context.Context, string, string) (bool, error) { return false, nil }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)

	b.ResetTimer()
	go func() { done <- w.Run(ctx) }()
	cons, err := js.Consumer(context.Background(), "TENANCY", "bench")
	for err != nil {
		time.Sleep(time.Millisecond)
		cons, err = js.Consumer(context.Background(), "TENANCY", "bench")
	}
	for {
		info, err := cons.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if info.AckFloor.Consumer >= uint64(b.N) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	st, _ := js.Stream(context.Background(), events.StreamAudit)
	for i := range benchOrgs {
		last, err := st.GetLastMsgForSubject(context.Background(), events.AuditChain(fmt.Sprintf("org-%d", i)))
		if err != nil {
			continue
		}
		var e events.AuditEntry
		_ = json.Unmarshal(last.Data, &e)
		if want := uint64((b.N - i + benchOrgs - 1) / benchOrgs); e.Index != want {
			b.Fatalf("org-%d chain ends at %d, want %d", i, e.Index, want)
		}
	}
}
