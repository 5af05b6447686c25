package router_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

var allEvents = []string{events.DomainEvents(svc)}

func fastRetries(maxAttempts int) router.Config {
	return router.Config{
		MaxAttempts: maxAttempts,
		Backoff:     router.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		AckWait:     time.Second,
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	for name, cfg := range map[string]router.Config{
		"service with a dot": {Service: "ten.ancy"},
		"negative attempts":  {Service: svc, MaxAttempts: -1},
		"max below initial":  {Service: svc, Backoff: router.Backoff{Initial: time.Minute, Max: time.Second}},
	} {
		if _, err := router.New(cfg, router.Deps{Conn: nc, JS: js}); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	r := newRouter(t, nc, js, router.Config{}, nil)
	noop := func(context.Context, events.Envelope) error { return nil }
	if err := r.AddEventHandler("a.b", stream, nil, noop); err == nil {
		t.Error("handler name with a dot accepted")
	}
	if err := r.AddEventHandler("h", stream, nil, noop); err != nil {
		t.Fatal(err)
	}
	if err := r.AddEventHandler("h", stream, nil, noop); err == nil {
		t.Error("duplicate handler name accepted")
	}
}

func TestBackoffIsExponentialAndCapped(t *testing.T) {
	t.Parallel()
	b := router.Backoff{Initial: time.Second, Max: time.Minute}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for n, w := range want {
		if got := b.Delay(uint64(n)); got != w {
			t.Errorf("Delay(%d) = %s, want %s", n, got, w)
		}
	}
	if got := b.Delay(1 << 62); got != time.Minute {
		t.Errorf("Delay(huge) = %s, want the cap", got)
	}
}

// A handler that fails twice and then succeeds is called three times, the
// message is acked once, and it is not delivered again.
func TestRetryThenSucceed(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	r := newRouter(t, nc, js, fastRetries(5), nil)

	var (
		mu       sync.Mutex
		attempts []uint64
		corrIDs  []string
		payload  events.Payload
		seqs     []uint64
	)
	err := r.AddEventHandler("flaky", stream, allEvents, func(ctx context.Context, env events.Envelope) error {
		d, _ := router.DeliveryFrom(ctx)
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, d.Attempt)
		corrIDs = append(corrIDs, router.CorrelationID(ctx))
		seqs = append(seqs, env.Sequence)
		payload = p
		if len(attempts) <= 2 {
			return errors.New("transient failure")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := publishN(t, js, 1)[0]
	start(t, r)

	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts)
	}
	check := func() error {
		if n := calls(); n != 3 {
			return fmt.Errorf("%d calls, want 3", n)
		}
		info, err := consumerInfo(js, "flaky")
		if err != nil {
			return err
		}
		if info.NumRedelivered != 0 {
			return fmt.Errorf("%d messages waiting for redelivery", info.NumRedelivered)
		}
		return allAcked(js, "flaky", p.seq)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, check)
	// Past AckWait: a lost ack would show up as a redelivery here.
	holdFor(t, 1500*time.Millisecond, 50*time.Millisecond, check)

	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Errorf("attempts = %v, want [1 2 3]", attempts)
	}
	for i := range corrIDs {
		if corrIDs[i] != p.env.CorrelationID || seqs[i] != p.seq {
			t.Errorf("call %d: correlation %q seq %d, want %q %d", i, corrIDs[i], seqs[i], p.env.CorrelationID, p.seq)
		}
	}
	if u, ok := payload.(*events.Unknown); !ok || u.Type != "tenancy.routertest.happened" {
		t.Errorf("unknown event type decoded as %#v, want *events.Unknown", payload)
	}
}

// A handler that always fails has its message dead-lettered, exactly once,
// after MaxAttempts deliveries; the source message is then acked.
func TestDeadLetterAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	reg := prometheus.NewRegistry()
	r := newRouter(t, nc, js, fastRetries(3), reg)
	var calls atomic.Int32
	err := r.AddEventHandler("poisoned", stream, allEvents, func(context.Context, events.Envelope) error {
		calls.Add(1)
		return errors.New("always fails")
	})
	if err != nil {
		t.Fatal(err)
	}
	p := publishN(t, js, 1)[0]
	start(t, r)

	dlq := events.DeadLetter(svc, "poisoned")
	check := func() error {
		msgs, err := deadLetters(js, dlq)
		if err != nil {
			return err
		}
		if len(msgs) != 1 {
			return fmt.Errorf("%d dead letters on %s, want 1", len(msgs), dlq)
		}
		if n := calls.Load(); n != 3 {
			return fmt.Errorf("%d calls, want 3", n)
		}
		return allAcked(js, "poisoned", p.seq)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, check)
	holdFor(t, 1500*time.Millisecond, 50*time.Millisecond, check)

	msgs, err := deadLetters(js, dlq)
	if err != nil {
		t.Fatal(err)
	}
	dl := msgs[0]
	if string(dl.Data) != string(p.data) {
		t.Errorf("dead letter data = %q, want the original %q", dl.Data, p.data)
	}
	wantHeaders := map[string]string{
		events.HeaderDLQSubject:  p.subject,
		events.HeaderDLQStream:   stream,
		events.HeaderDLQSequence: strconv.FormatUint(p.seq, 10),
		events.HeaderDLQAttempts: "3",
		events.HeaderDLQError:    "always fails",
		events.HeaderDLQConsumer: "poisoned",
		nats.MsgIdHdr:            fmt.Sprintf("%s:%d:poisoned", stream, p.seq),
	}
	for k, want := range wantHeaders {
		if got := dl.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	for k := range dl.Header {
		if strings.HasPrefix(k, "_") || strings.HasSuffix(k, "_poisoned") {
			t.Errorf("internal key %q leaked into the dead letter's headers", k)
		}
	}

	labels := map[string]string{"service": svc, "handler": "poisoned"}
	if got := metricValue(t, reg, "infrapilot_router_dead_letters_total", labels); got != 1 {
		t.Errorf("dead_letters_total = %v, want 1", got)
	}
	for outcome, want := range map[string]float64{"error": 2, "dead_letter": 1, "ok": 0} {
		l := map[string]string{"handler": "poisoned", "outcome": outcome}
		if got := metricValue(t, reg, "infrapilot_router_messages_handled_total", l); got != want {
			t.Errorf("messages_handled_total{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
}

// A message that is not an envelope goes to the dead-letter subject on its
// first delivery, without reaching the handler; a panicking handler is
// retried like a failing one and its dead letter's error header stays on
// one line.
func TestMalformedAndPanickingMessagesAreDeadLettered(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	r := newRouter(t, nc, js, fastRetries(2), nil)
	var calls atomic.Int32
	err := r.AddEventHandler("strict", stream, []string{events.DomainEvent(svc, org, "bad", "x")}, func(context.Context, events.Envelope) error {
		calls.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.AddEventHandler("panicky", stream, []string{events.DomainEvent(svc, org, "thing", "thing0")}, func(context.Context, events.Envelope) error {
		panic("boom")
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	badSubject := events.DomainEvent(svc, org, "bad", "x")
	ack, err := js.Publish(ctx, badSubject, []byte("{not json"), jetstream.WithMsgID("bad-1"))
	if err != nil {
		t.Fatal(err)
	}
	good := publishN(t, js, 1)[0]
	start(t, r)

	cases := []struct {
		handler, attempts, errPart string
		seq                        uint64
		data                       []byte
	}{
		{"strict", "1", "malformed event envelope", ack.Sequence, []byte("{not json")},
		{"panicky", "2", "panic occurred", good.seq, good.data},
	}
	for _, c := range cases {
		dlq := events.DeadLetter(svc, c.handler)
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			msgs, err := deadLetters(js, dlq)
			if err != nil {
				return err
			}
			if len(msgs) != 1 {
				return fmt.Errorf("%d dead letters on %s, want 1", len(msgs), dlq)
			}
			return allAcked(js, c.handler, c.seq)
		})
		msgs, err := deadLetters(js, dlq)
		if err != nil {
			t.Fatal(err)
		}
		h := msgs[0].Header
		if got := h.Get(events.HeaderDLQAttempts); got != c.attempts {
			t.Errorf("%s: attempts header %q, want %q", c.handler, got, c.attempts)
		}
		if e := h.Get(events.HeaderDLQError); !strings.Contains(e, c.errPart) || strings.ContainsAny(e, "\r\n") {
			t.Errorf("%s: error header %q, want one line containing %q", c.handler, e, c.errPart)
		}
		if string(msgs[0].Data) != string(c.data) {
			t.Errorf("%s: dead letter data %q, want %q", c.handler, msgs[0].Data, c.data)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times for a malformed message", n)
	}
}

// When the dead letter of a message is already on the stream (its source
// ack was lost and it came back), the router acks the source without a
// second copy or a second count.
func TestDeadLetterIsPublishedOnce(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	reg := prometheus.NewRegistry()
	r := newRouter(t, nc, js, fastRetries(1), reg)
	err := r.AddEventHandler("once", stream, allEvents, func(context.Context, events.Envelope) error {
		return router.Permanent(errors.New("never valid"))
	})
	if err != nil {
		t.Fatal(err)
	}
	p := publishN(t, js, 1)[0]
	dlq := events.DeadLetter(svc, "once")
	// The copy a previous, crashed delivery would have published.
	if _, err := js.Publish(context.Background(), dlq, p.data, jetstream.WithMsgID(fmt.Sprintf("%s:%d:once", stream, p.seq))); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return allAcked(js, "once", p.seq) })
	msgs, err := deadLetters(js, dlq)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Errorf("%d dead letters, want 1", len(msgs))
	}
	if got := metricValue(t, reg, "infrapilot_router_dead_letters_total", map[string]string{"handler": "once"}); got != 0 {
		t.Errorf("dead_letters_total = %v, want 0 for a duplicate", got)
	}
}

// Cancelling Run's ctx while a handler is running stops taking messages,
// lets that handler finish with a live ctx, acks its message, then returns.
func TestGracefulStopDrainsInFlight(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc, js := srv.JetStream()
	r := newRouter(t, nc, js, router.Config{AckWait: 5 * time.Second}, nil)
	var (
		calls       atomic.Int32
		started     = make(chan struct{})
		release     = make(chan struct{})
		ctxErrAtEnd atomic.Value
	)
	err := r.AddEventHandler("slow", stream, allEvents, func(ctx context.Context, _ events.Envelope) error {
		if calls.Add(1) == 1 {
			close(started)
			<-release
			ctxErrAtEnd.Store(fmt.Sprint(ctx.Err()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := publishN(t, js, 2)
	rr := start(t, r)

	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never started")
	}
	rr.cancel()
	select {
	case err := <-rr.done:
		t.Fatalf("Run returned (%v) while a handler was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := rr.wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	if got := ctxErrAtEnd.Load(); got != "<nil>" {
		t.Errorf("handler ctx at the end of the drain: %v, want not cancelled", got)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls, want 1: no new message after the stop", n)
	}
	info, err := consumerInfo(js, "slow")
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != msgs[0].seq {
		t.Errorf("ack floor %d, want %d (the drained message acked, the next not)", info.AckFloor.Stream, msgs[0].seq)
	}
}
