package router_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
)

// effects is an idempotent projection: an event's effect is applied only if
// absent. calls counts raw deliveries, applied counts effects.
type effects struct {
	mu      sync.Mutex
	applied map[string]int
	calls   int
	redeliv int // deliveries with Attempt > 1
	byProc  map[string]int
}

func newEffects() *effects {
	return &effects{applied: map[string]int{}, byProc: map[string]int{}}
}

// handler records deliveries for proc; after is called (if set) once the
// effect is applied and before the handler returns, that is before the ack.
func (e *effects) handler(proc string, after func(calls int)) router.EventHandler {
	return func(ctx context.Context, env events.Envelope) error {
		d, _ := router.DeliveryFrom(ctx)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.calls++
		if d.Attempt > 1 {
			e.redeliv++
		}
		e.byProc[proc]++
		if _, done := e.applied[env.ID]; !done {
			e.applied[env.ID]++
		}
		if after != nil {
			after(e.calls)
		}
		return nil
	}
}

func (e *effects) snapshot() (calls, distinct int, byProc map[string]int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	byProc = map[string]int{}
	for k, v := range e.byProc {
		byProc[k] = v
	}
	return e.calls, len(e.applied), byProc
}

// A router killed mid-batch (connection closed, no drain) loses nothing:
// another process on the same durable resumes, and every event has exactly
// one effect.
func TestKilledRouterResumesElsewhere(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	_, js := srv.JetStream()
	const total = 500
	msgs := publishN(t, js, total)
	last := msgs[total-1].seq
	cfg := router.Config{AckWait: time.Second, Backoff: router.Backoff{Initial: 50 * time.Millisecond}}
	fx := newEffects()

	ncA, jsA := connect(t, srv)
	a := newRouter(t, ncA, jsA, cfg, nil)
	killed := make(chan struct{})
	// The crash: on the 200th delivery, after its effect and before its
	// ack, A's connection goes away without a drain.
	crash := func(calls int) {
		if calls == 200 {
			ncA.Close()
			close(killed)
		}
	}
	if err := a.AddEventHandler("projector", stream, allEvents, fx.handler("A", crash)); err != nil {
		t.Fatal(err)
	}
	ra := start(t, a)
	select {
	case <-killed:
	case <-time.After(20 * time.Second):
		t.Fatal("router A never reached 200 deliveries")
	}
	ra.cancel()
	if err := ra.wait(); err != nil {
		t.Logf("router A after the kill: %v", err)
	}
	callsA, _, _ := fx.snapshot()

	ncB, jsB := connect(t, srv)
	b := newRouter(t, ncB, jsB, cfg, nil)
	if err := b.AddEventHandler("projector", stream, allEvents, fx.handler("B", nil)); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if _, distinct, _ := fx.snapshot(); distinct != total {
			return fmt.Errorf("%d of %d events have an effect", distinct, total)
		}
		return allAcked(js, "projector", last)
	})

	fx.mu.Lock()
	defer fx.mu.Unlock()
	for _, m := range msgs {
		if n := fx.applied[m.env.ID]; n != 1 {
			t.Errorf("event %s (seq %d) applied %d times, want 1", m.env.ID, m.seq, n)
		}
	}
	if fx.calls == total {
		t.Error("no event was handled twice: the delivery cut off before its ack should have come back")
	}
	t.Logf("A handled %d before the kill, B %d: %d handler calls for %d events (%d handled twice); %d calls were broker redeliveries",
		callsA, fx.byProc["B"], fx.calls, total, fx.calls-total, fx.redeliv)
}

// Two processes running the same handler share its durable consumer: each
// message is handled once in total, and both do some of the work.
func TestSameHandlerInTwoProcessesSharesWork(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	_, js := srv.JetStream()
	fx := newEffects()
	for _, proc := range []string{"A", "B"} {
		nc, pjs := connect(t, srv)
		r := newRouter(t, nc, pjs, router.Config{}, nil)
		if err := r.AddEventHandler("shared", stream, allEvents, fx.handler(proc, nil)); err != nil {
			t.Fatal(err)
		}
		start(t, r)
	}
	// Both processes have a pull request waiting before anything is sent.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := consumerInfo(js, "shared")
		if err != nil {
			return err
		}
		if info.NumWaiting < 2 {
			return fmt.Errorf("%d pull requests waiting", info.NumWaiting)
		}
		return nil
	})
	const total = 200
	msgs := publishN(t, js, total)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if _, distinct, _ := fx.snapshot(); distinct != total {
			return fmt.Errorf("%d of %d handled", distinct, total)
		}
		return allAcked(js, "shared", msgs[total-1].seq)
	})
	calls, _, byProc := fx.snapshot()
	if calls != total {
		t.Errorf("%d deliveries for %d messages, want each handled once", calls, total)
	}
	if byProc["A"] == 0 || byProc["B"] == 0 {
		t.Errorf("work not shared: %v", byProc)
	}
	t.Logf("handled per process: %v", byProc)
}

// A router stopped gracefully under load hands over cleanly: the delivery
// in flight is finished and acked, nothing is handled twice, and the next
// process picks up the rest.
func TestGracefulStopUnderLoadThenResume(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	_, js := srv.JetStream()
	const total = 300
	msgs := publishN(t, js, total)
	cfg := router.Config{AckWait: time.Second}
	fx := newEffects()

	ncA, jsA := connect(t, srv)
	a := newRouter(t, ncA, jsA, cfg, nil)
	if err := a.AddEventHandler("handover", stream, allEvents, fx.handler("A", nil)); err != nil {
		t.Fatal(err)
	}
	ra := start(t, a)
	natstest.CheckFor(t, 20*time.Second, time.Millisecond, func() error {
		if calls, _, _ := fx.snapshot(); calls < 100 {
			return fmt.Errorf("%d handled", calls)
		}
		return nil
	})
	if err := ra.stop(); err != nil {
		t.Fatalf("router A: %v", err)
	}

	ncB, jsB := connect(t, srv)
	b := newRouter(t, ncB, jsB, cfg, nil)
	if err := b.AddEventHandler("handover", stream, allEvents, fx.handler("B", nil)); err != nil {
		t.Fatal(err)
	}
	start(t, b)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if _, distinct, _ := fx.snapshot(); distinct != total {
			return fmt.Errorf("%d of %d events handled", distinct, total)
		}
		return allAcked(js, "handover", msgs[total-1].seq)
	})
	if calls, _, byProc := fx.snapshot(); calls != total {
		t.Errorf("%d handler calls for %d events (%v): a graceful stop must not cause duplicates", calls, total, byProc)
	}
}
