package natsauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const wait = 10 * time.Second

// hub is a real nats-server in InfraPilot's operator mode with JetStream
// (domain "hub") and a leafnode port, as `infrapilot dev` runs it.
type hub struct {
	t        *testing.T
	keys     *natsauth.Keys
	dir      string
	port     int
	leafPort int
	srv      *server.Server
}

func newHub(t *testing.T, keys *natsauth.Keys) *hub {
	t.Helper()
	h := &hub{t: t, keys: keys, dir: t.TempDir()}
	var err error
	if h.port, err = natsx.FreePort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	// There is no getter for a randomly bound leafnode port.
	if h.leafPort, err = natsx.FreePort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *hub) start() {
	h.t.Helper()
	opts := &server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: h.port,
		JetStream: true, JetStreamDomain: "hub", StoreDir: filepath.Join(h.dir, "js"),
		NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
	}
	opts.LeafNode.Host = "127.0.0.1"
	opts.LeafNode.Port = h.leafPort
	if err := h.keys.ConfigureServer(opts, filepath.Join(h.dir, "accounts")); err != nil {
		h.t.Fatal(err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(wait) {
		h.t.Fatal("hub not ready")
	}
	h.srv = srv
}

func (h *hub) stop() {
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
		h.srv = nil
	}
}

func (h *hub) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

func (h *hub) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", h.port) }

// conn is a client connection that records the asynchronous errors the
// server sends it (permission violations).
type conn struct {
	*nats.Conn
	mu   sync.Mutex
	errs []string
}

func (c *conn) violations() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "\n")
}

// reset forgets the errors recorded so far.
func (c *conn) reset() {
	c.mu.Lock()
	c.errs = nil
	c.mu.Unlock()
}

// waitViolation waits until the server reported a permission violation
// naming subject.
func (c *conn) waitViolation(t *testing.T, subject string) {
	t.Helper()
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		if v := c.violations(); !strings.Contains(v, subject) {
			return fmt.Errorf("no permissions violation for %q; got %q", subject, v)
		}
		return nil
	})
}

// dial connects to url with creds; it does not fail the test, so refusals
// can be asserted.
func dial(t *testing.T, url string, creds []byte, opts ...nats.Option) (*conn, error) {
	t.Helper()
	c := &conn{}
	auth, err := natsauth.ConnectOption(creds)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]nats.Option{auth, nats.Name(t.Name()), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		})}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c, nil
}

func mustDial(t *testing.T, url string, creds []byte, opts ...nats.Option) *conn {
	t.Helper()
	c, err := dial(t, url, creds, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// services connects with service creds and ensures every stream exists.
func (h *hub) services() (*conn, jetstream.JetStream) {
	h.t.Helper()
	creds, err := h.keys.ServiceCreds("test")
	if err != nil {
		h.t.Fatal(err)
	}
	c := mustDial(h.t, h.url(), creds)
	js, err := natsx.JetStream(c.Conn)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := events.Ensure(ctx, js, events.DefaultTopology()); err != nil {
		h.t.Fatal(err)
	}
	return c, js
}

// system connects with the system account's creds.
func (h *hub) system() *conn {
	h.t.Helper()
	creds, err := h.keys.SystemCreds()
	if err != nil {
		h.t.Fatal(err)
	}
	return mustDial(h.t, h.url(), creds)
}

// revoker connects a services and a system connection and returns a
// Revoker for this hub.
func (h *hub) revoker() *natsauth.Revoker {
	h.t.Helper()
	_, js := h.services()
	r, err := h.keys.NewRevoker(ctxT(h.t), js, h.system().Conn, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// leaf is an agent's embedded nats-server in leaf mode (JetStream domain
// "leaf"), dialling the hub's leafnode port with the agent's creds.
type leaf struct {
	srv *server.Server
}

func (h *hub) startLeaf(creds []byte) *leaf {
	h.t.Helper()
	dir := h.t.TempDir()
	credsPath := filepath.Join(dir, "agent.creds")
	if err := os.WriteFile(credsPath, creds, 0o600); err != nil {
		h.t.Fatal(err)
	}
	u, err := url.Parse(fmt.Sprintf("nats-leaf://127.0.0.1:%d", h.leafPort))
	if err != nil {
		h.t.Fatal(err)
	}
	opts := &server.Options{
		ServerName: "leaf-" + filepath.Base(dir), Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, JetStreamDomain: "leaf", StoreDir: filepath.Join(dir, "js"),
		NoSigs: true, NoLog: true,
	}
	opts.LeafNode.ReconnectInterval = 100 * time.Millisecond
	opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, Credentials: credsPath}}
	srv, err := server.NewServer(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(wait) {
		h.t.Fatal("leaf not ready")
	}
	h.t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return &leaf{srv: srv}
}

// waitConnected waits until the leaf link is up and the hub's interest in
// agent telemetry has reached the leaf: before that, the leaf drops what a
// local client publishes, as it knows of nobody interested.
func (l *leaf) waitConnected(t *testing.T) {
	t.Helper()
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		if n := l.srv.NumLeafNodes(); n != 1 {
			return fmt.Errorf("leaf has %d leafnode connections", n)
		}
		if !l.srv.GlobalAccount().SubscriptionInterest("agent.probe.probe.metrics") {
			return errors.New("the hub's interest in agent telemetry has not reached the leaf")
		}
		return nil
	})
}

// client connects a local client to the leaf, as the agent's collectors
// and command handlers do: no credentials, and the agent's private inbox.
func (l *leaf) client(t *testing.T, org, agent string) *conn {
	t.Helper()
	c := &conn{}
	nc, err := nats.Connect(l.srv.ClientURL(), nats.CustomInboxPrefix(events.AgentInbox(org, agent)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// recorder subscribes on a hub connection and records every subject it
// receives, in order.
type recorder struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func record(t *testing.T, nc *conn, subject string) *recorder {
	t.Helper()
	r := &recorder{}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *recorder) subjects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		out = append(out, m.Subject)
	}
	return out
}

// waitFor waits until subject was recorded and returns everything recorded
// so far. Messages on one leaf connection arrive in order, so a forbidden
// message published before this sentinel would be recorded by now.
func (r *recorder) waitFor(t *testing.T, subject string) []string {
	t.Helper()
	var got []string
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		got = r.subjects()
		for _, s := range got {
			if s == subject {
				return nil
			}
		}
		return fmt.Errorf("%s not received; got %v", subject, got)
	})
	return got
}

func newKeys(t *testing.T) *natsauth.Keys {
	t.Helper()
	k, err := natsauth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// natsCheck polls fn until it succeeds or wait passes.
func natsCheck(t *testing.T, fn func() error) {
	t.Helper()
	natstest.CheckFor(t, wait, 20*time.Millisecond, fn)
}
