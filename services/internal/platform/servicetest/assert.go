package servicetest

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// WantOK fails the test when e, the outcome of op, is an error.
func WantOK(t testing.TB, op string, e *events.Error) {
	t.Helper()
	if e != nil {
		t.Fatalf("%s: %s: %s %+v", op, e.Code, e.Message, e.Fields)
	}
}

// WantError asserts that e, the outcome of op, is an error with code and a
// message containing msg, and returns it.
func WantError(t testing.TB, op string, e *events.Error, code events.Code, msg string) *events.Error {
	t.Helper()
	if e == nil {
		t.Fatalf("%s succeeded, want %s", op, code)
	}
	if e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("%s: got %s %q %+v, want %s containing %q", op, e.Code, e.Message, e.Fields, code, msg)
	}
	return e
}

// HasField asserts that e lists a field error for field.
func HasField(t testing.TB, e *events.Error, field string) {
	t.Helper()
	for _, f := range e.Fields {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("no field error for %q in %+v", field, e.Fields)
}

// StandIn serves a stand-in for another service on nc for the rest of the
// test: register adds its operations (endpoint.Handle), which answer like
// the real service's do, error replies included. A stand-in tests nothing
// about the service it replaces; it gives the service under test someone
// to call.
func StandIn(t testing.TB, nc *nats.Conn, service string, register func(*endpoint.Server)) {
	t.Helper()
	srv, err := endpoint.New(endpoint.Config{Service: service, Version: "0.0.0-fake"}, nc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Stop()
		cancel()
	})
}
