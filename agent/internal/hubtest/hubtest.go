// Package hubtest runs the hub side of the agent's tests: a real embedded
// nats-server with JetStream in domain "hub", InfraPilot's streams
// (events.Ensure), a leafnode port, and a TCP proxy in front of that port
// whose link the tests can cut and restore. The hub has no
// authentication; the credentials of a real deployment are natsauth's.
package hubtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Domain is the hub's JetStream domain.
const Domain = "hub"

// Hub is an embedded hub bound to a test. Restart keeps its store and
// ports, as a real server restart would.
type Hub struct {
	t         testing.TB
	dir       string
	port      int
	leafPort  int
	srv       *server.Server
	proxy     *Proxy
	mu        sync.Mutex
	connected []*nats.Conn
}

// Start runs a hub; it is shut down when the test ends.
func Start(t testing.TB) *Hub {
	t.Helper()
	h := &Hub{t: t, dir: t.TempDir(), port: freePort(t), leafPort: freePort(t)}
	h.start()
	h.proxy = newProxy(t, fmt.Sprintf("127.0.0.1:%d", h.leafPort))
	t.Cleanup(func() {
		h.proxy.close()
		h.Shutdown()
	})
	nc, js := h.JetStream()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := events.Ensure(ctx, js, events.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *Hub) start() {
	h.t.Helper()
	opts := &server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: h.port,
		JetStream: true, JetStreamDomain: Domain, StoreDir: h.dir,
		NoSigs: true, NoLog: true,
	}
	opts.LeafNode.Host = "127.0.0.1"
	opts.LeafNode.Port = h.leafPort
	// Without this the hub tells leaves its real leafnode URL, and a leaf
	// reconnecting after Proxy.Cut would go around the proxy.
	opts.LeafNode.NoAdvertise = true
	srv, err := server.NewServer(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		h.t.Fatal("hub did not start")
	}
	h.srv = srv
}

// LeafURL is the URL agents dial: the proxy in front of the leafnode port.
func (h *Hub) LeafURL() string { return "nats-leaf://" + h.proxy.Addr() }

// ClientURL is the hub's client URL.
func (h *Hub) ClientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", h.port) }

// Proxy is the cuttable link between agents and the hub.
func (h *Hub) Proxy() *Proxy { return h.proxy }

// Shutdown stops the hub, keeping its store.
func (h *Hub) Shutdown() {
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
		h.srv = nil
	}
}

// Restart starts a stopped hub again (or stops and starts a running one)
// on the same ports and store.
func (h *Hub) Restart() {
	h.t.Helper()
	h.Shutdown()
	h.start()
}

// LeafNodes is the number of leaf connections the hub has.
func (h *Hub) LeafNodes() int {
	if h.srv == nil {
		return 0
	}
	return h.srv.NumLeafNodes()
}

// Connect opens a client connection, closed at the end of the test, that
// reconnects across hub restarts.
func (h *Hub) Connect() *nats.Conn {
	h.t.Helper()
	nc, err := nats.Connect(h.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(nc.Close)
	return nc
}

// JetStream connects with a JetStream context.
func (h *Hub) JetStream() (*nats.Conn, jetstream.JetStream) {
	h.t.Helper()
	nc := h.Connect()
	js, err := jetstream.New(nc)
	if err != nil {
		h.t.Fatal(err)
	}
	return nc, js
}

// Messages reads every message of a hub stream on subject (all subjects
// when empty), in stream order.
func (h *Hub) Messages(stream, subject string) ([]jetstream.RawStreamMsg, error) {
	nc, err := nats.Connect(h.ClientURL())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if subject == "" || m.Subject == subject {
			out = append(out, *m)
		}
	}
	return out, nil
}

// Proxy forwards TCP connections to a target until cut.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	done   chan struct{}
}

func newProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	go p.accept()
	return p
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and refuses new ones until Restore:
// for the agent, the network is gone.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Cut()
}

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns[in] = struct{}{}
		p.conns[out] = struct{}{}
		p.mu.Unlock()
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
