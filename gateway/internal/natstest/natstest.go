// Package natstest runs a real embedded NATS server for the gateway's
// tests. The gateway uses only core request-reply, so JetStream stays off.
// Only test files import this package; it never reaches the binary.
package natstest

import (
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Run starts a server on a random loopback port; it is shut down when the
// test ends.
func Run(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: server not ready")
	}
	return s
}

// Connect opens a client connection to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Name(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// CheckFor polls fn every interval until it returns nil or timeout passes,
// then fails the test with fn's last error. Tests wait for effects with it,
// never with time.Sleep.
func CheckFor(t testing.TB, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// Service starts a NATS micro service named name that answers each
// operation in ops on events.ServiceEndpoint(name, op). It is a stand-in for
// a real InfraPilot service (those live in the services module, which the
// gateway must not import): tests script its answers, including micro
// errors, slowness and absence. It is stopped when the test ends, or
// earlier with Stop.
func Service(t testing.TB, nc *nats.Conn, name string, ops map[string]micro.HandlerFunc) micro.Service {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: name, Version: "0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	for op, h := range ops {
		if err := svc.AddEndpoint(op, h, micro.WithEndpointSubject(events.ServiceEndpoint(name, op))); err != nil {
			t.Fatal(err)
		}
	}
	return svc
}

// Health is a micro handler answering a health request with status and
// checks, the way a real service's health endpoint does.
func Health(service, status string, checks map[string]string) micro.HandlerFunc {
	return func(req micro.Request) {
		_ = req.RespondJSON(events.HealthReply{
			Service: service, Instance: "test", Version: "0.0.0", Status: status, Checks: checks,
		})
	}
}
