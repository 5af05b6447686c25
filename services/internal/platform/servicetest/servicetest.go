// Package servicetest runs service modules for their tests the way
// production runs them, in a real app.Host on a real NATS server and
// Postgres database, and calls their operations as the gateway would.
//
// A service's test harness keeps what is its own (stand-ins for the
// services it calls, fixtures, assertions); the host's lifecycle, the
// request with its Ip-* headers and the test clock are here.
package servicetest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/internal/platform/svcclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Bounds of a host's start and stop, and of one call: generous, because
// they only matter when something hangs, and CI machines are loaded.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second
	callTimeout  = 30 * time.Second
)

// Clock is a service clock for tests: real time plus an offset the test
// moves forward (to an expiry, a retry or a renewal date). Pass its Now as
// the service's clock. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the current time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Start runs modules in an app.Host (cfg, on nc and js, logging to log; nil
// log discards) and returns once the host is ready and the NATS server has
// its endpoints' subscriptions, so a request from another connection
// reaches them. When the test ends the host is stopped and closed; a host
// that does not start, does not stop, or stops with an error fails the
// test.
func Start(t testing.TB, cfg app.Config, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, modules ...app.Module) *app.Host {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, err := app.New(cfg, nc, js, log, prometheus.NewRegistry(), modules)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- host.Run(ctx) }()
	select {
	case <-host.Ready():
	case err := <-done:
		cancel()
		host.Close()
		t.Fatalf("host failed to start: %v", err)
	case <-time.After(readyTimeout):
		cancel()
		t.Fatal("host not ready")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("host stopped with %v", err)
			}
		case <-time.After(stopTimeout):
			t.Error("host did not stop")
		}
		host.Close()
	})
	// Ready means subscribed on nc; a round trip makes sure the server has
	// the subscriptions before the test's own connection asks.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return host
}

// Call sends req (nil: no body) to subject with from in the Ip-* headers,
// as the gateway does, and decodes the reply into out (nil: ignored). It
// returns the service's error, if it answered with one; a request that
// gets no answer, or an answer that does not decode, fails the test.
func Call(t testing.TB, nc *nats.Conn, subject string, from reqctx.Info, req, out any) *events.Error {
	t.Helper()
	msg := nats.NewMsg(subject)
	from.Headers(msg.Header)
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		msg.Data = b
	}
	reply, err := nc.RequestMsg(msg, callTimeout)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return Decode(t, subject, reply, out)
}

// Decode reads a reply to a request on subject: the service's error, if
// it answered with one, else the body decoded into out (nil: ignored). An
// answer that does not decode fails the test.
func Decode(t testing.TB, subject string, reply *nats.Msg, out any) *events.Error {
	t.Helper()
	err := svcclient.Decode(subject, reply, out)
	var e *events.Error
	if errors.As(err, &e) {
		return e
	}
	if err != nil {
		t.Fatalf("%v (%s)", err, reply.Data)
	}
	return nil
}
