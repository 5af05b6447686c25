// Package natstest runs a real embedded NATS server with JetStream for tests.
package natstest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an embedded JetStream server bound to a test. Restart keeps the
// store directory and the port, as a real server restart would.
type Server struct {
	t    testing.TB
	cfg  natsx.HubConfig
	hub  *natsx.Hub
	port int
}

// Run starts a server on a random port with a temporary store directory;
// it is shut down when the test ends.
func Run(t testing.TB) *Server {
	t.Helper()
	port, err := natsx.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, cfg: natsx.HubConfig{Host: "127.0.0.1", Port: port, StoreDir: t.TempDir()}, port: port}
	s.start()
	t.Cleanup(func() {
		if s.hub != nil {
			s.hub.Shutdown()
		}
	})
	return s
}

func (s *Server) start() {
	s.t.Helper()
	hub, err := natsx.StartHub(s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.hub = hub
}

// URL is the client URL; it stays the same across restarts.
func (s *Server) URL() string { return s.hub.ClientURL() }

// Shutdown stops the server, keeping its store.
func (s *Server) Shutdown() {
	if s.hub != nil {
		s.hub.Shutdown()
		s.hub = nil
	}
}

// Restart stops the server and starts it again on the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// Connect opens a client connection closed at the end of the test.
func (s *Server) Connect() *nats.Conn {
	s.t.Helper()
	nc, err := natsx.Connect(natsx.ConnConfig{URL: s.URL(), Name: s.t.Name()}, slog.New(slog.DiscardHandler))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}

// JetStream connects and ensures every InfraPilot stream and bucket exists.
func (s *Server) JetStream() (*nats.Conn, jetstream.JetStream) {
	s.t.Helper()
	nc := s.Connect()
	js, err := natsx.JetStream(nc)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.Ensure(ctx, js, events.DefaultTopology()); err != nil {
		s.t.Fatal(err)
	}
	return nc, js
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
