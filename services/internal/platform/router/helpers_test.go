package router_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	svc = "tenancy"
	org = "org1"
)

var stream = events.DomainStream(svc)

// happened is a payload the catalogue does not know: handlers must still
// get it, and Decode turns it into *events.Unknown.
type happened struct {
	N int `json:"n"`
}

func (happened) EventType() string { return "tenancy.routertest.happened" }
func (happened) EventVersion() int { return 1 }

type published struct {
	env     events.Envelope
	subject string
	seq     uint64
	data    []byte
}

// publishN appends n events, one aggregate each, with Nats-Msg-Id = event id.
func publishN(t *testing.T, js jetstream.JetStream, n int) []published {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make([]published, 0, n)
	for i := range n {
		aggID := fmt.Sprintf("thing%d", i)
		env, err := events.New(happened{N: i}, events.Aggregate{Type: "thing", ID: aggID},
			events.Meta{OrgID: org, Actor: events.SystemActor("routertest")})
		if err != nil {
			t.Fatal(err)
		}
		data, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		subject := events.DomainEvent(svc, org, "thing", aggID)
		ack, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(env.ID))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, published{env: env, subject: subject, seq: ack.Sequence, data: data})
	}
	return out
}

// testLogger collects the router's logs and prints them only when the test
// fails (and never after it has ended, when t.Log would panic).
func testLogger(t *testing.T) *slog.Logger {
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Log("router logs:\n" + buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// connect opens a connection of its own (so a test can kill it) with a
// JetStream context on it.
func connect(t *testing.T, srv *natstest.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := srv.Connect()
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func newRouter(t *testing.T, nc *nats.Conn, js jetstream.JetStream, cfg router.Config, reg prometheus.Registerer) *router.Router {
	t.Helper()
	if cfg.Service == "" {
		cfg.Service = svc
	}
	r, err := router.New(cfg, router.Deps{Conn: nc, JS: js, Logger: testLogger(t), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// running is a router's Run in a goroutine; the test's cleanup stops it.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func start(t *testing.T, r *router.Router) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		if err := rr.stop(); err != nil {
			t.Errorf("stopping router: %v", err)
		}
	})
	return rr
}

// wait waits for Run to return (after cancel was called).
func (rr *running) wait() error {
	rr.once.Do(func() {
		select {
		case rr.err = <-rr.done:
		case <-time.After(20 * time.Second):
			rr.err = errors.New("Run did not return within 20s")
		}
	})
	return rr.err
}

func (rr *running) stop() error {
	rr.cancel()
	return rr.wait()
}

func consumerInfo(js jetstream.JetStream, name string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// allAcked reports whether the consumer has acked everything up to seq and
// has nothing in flight or waiting.
func allAcked(js jetstream.JetStream, name string, seq uint64) error {
	info, err := consumerInfo(js, name)
	if err != nil {
		return err
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != seq {
		return fmt.Errorf("consumer %s: ack pending %d, pending %d, ack floor %d, want 0/0/%d",
			name, info.NumAckPending, info.NumPending, info.AckFloor.Stream, seq)
	}
	return nil
}

// holdFor checks that fn keeps returning nil for d, polling every interval:
// it asserts that nothing more happens (no redelivery) without sleeping
// blindly.
func holdFor(t *testing.T, d, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := fn(); err != nil {
			t.Fatalf("condition broke during the hold window: %v", err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(interval)
	}
}

// deadLetters returns the messages on the DEADLETTER stream's subject.
func deadLetters(js jetstream.JetStream, subject string) ([]*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, err
	}
	n := info.State.Subjects[subject]
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && uint64(len(out)) < n; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out, nil
}

// metricValue reads one counter from reg; labels must all match.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
