// Package outbox is the agent's store-and-forward link to the hub: an
// embedded nats-server in leaf mode (JetStream domain "leaf", no listening
// port: every local client connects in-process) that dials out to the
// hub's leafnode port, and a local JetStream stream OUTBOX holding every
// message the agent wants delivered (metrics, logs, events). A forwarder
// reads OUTBOX in order and publishes each message to the hub's JetStream
// with its Nats-Msg-Id, acknowledging it locally only after the hub's
// PubAck, and retries with backoff while the link is down. A link cut, a
// hub restart or an agent restart therefore loses nothing (what is in
// OUTBOX stays until the hub has it) and stores nothing twice (a message
// re-sent after a lost PubAck has the same id, which the hub's stream
// de-duplicates).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the local JetStream objects.
const (
	// StreamName is the local outbox stream.
	StreamName = "OUTBOX"
	// DeadStreamName keeps messages the hub refused outright (see
	// Forwarder), so that one bad message cannot block the outbox.
	DeadStreamName = "OUTBOX_DEAD"
	// LocalDomain is the JetStream domain of the agent's leaf server.
	LocalDomain = "leaf"
	// DefaultHubDomain is the JetStream domain of the hub.
	DefaultHubDomain = "hub"

	subjectPrefix = "outbox."
	deadPrefix    = "outbox_dead."
	consumerName  = "forwarder"
	fetchBatch    = 256
)

// LeafConfig is how the leaf node reaches the hub. It is all the outbox
// needs to know about the agent's credentials.
type LeafConfig struct {
	// HubURL is the hub's leafnode URL, for example
	// "nats-leaf://hub.example.com:7422" or "tls://…". Empty: no link;
	// messages wait in OUTBOX.
	HubURL string
	// CredsFile is the agent's NATS credentials file (.creds: user JWT and
	// nkey seed) the leaf connection authenticates with. Empty: none.
	CredsFile string
}

// Config configures an Outbox.
type Config struct {
	// StateDir is the agent's state directory; the JetStream store is
	// StateDir/jetstream.
	StateDir string
	// Name is the embedded server's name, unique per agent
	// ("agent-<id>").
	Name string
	// InboxPrefix is the inbox prefix of local connections; with scoped
	// credentials it must be the agent's private inbox
	// (events.AgentInbox). Empty: the default "_INBOX".
	InboxPrefix string
	Leaf        LeafConfig
	// HubDomain is the hub's JetStream domain; a PubAck from any other
	// domain is an error. Default "hub".
	HubDomain string
	// MaxBytes bounds OUTBOX (default 1 GiB). When it is full, Publish
	// fails; producers keep what they could not store and retry.
	MaxBytes int64
	// PublishTimeout bounds one publish to the hub (default 5 s).
	PublishTimeout time.Duration
	// MaxBackoff caps the wait between attempts (default 5 s).
	MaxBackoff time.Duration
	// DeadAfter is how many times the hub may refuse a message with a
	// JetStream error before it moves to OUTBOX_DEAD (default 10).
	// Timeouts and a missing link never count.
	DeadAfter int
	Log       *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.StateDir == "" {
		return errors.New("outbox: no state directory")
	}
	if c.Name == "" {
		c.Name = "agent"
	}
	if c.HubDomain == "" {
		c.HubDomain = DefaultHubDomain
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 10
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Message is one message for the hub.
type Message struct {
	// Subject is the hub subject, for example events.AgentLogs(org, agent).
	Subject string
	// ID is the Nats-Msg-Id: the same content must always get the same id.
	ID   string
	Data []byte
	// Header holds extra headers to deliver (optional).
	Header nats.Header
}

// Stats are the outbox's counters since Open.
type Stats struct {
	// Pending is how many messages wait in OUTBOX.
	Pending uint64
	// Forwarded counts messages the hub acknowledged, Duplicates those it
	// already had, Dead those moved to OUTBOX_DEAD.
	Forwarded, Duplicates, Dead uint64
	// Attempts counts failed attempts to forward.
	Attempts uint64
	LinkUp   bool
	// LastError is the last forwarding error, if the last attempt failed.
	LastError string
}

// Outbox is the embedded leaf server, its OUTBOX stream and the forwarder.
type Outbox struct {
	cfg    Config
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	dead   jetstream.Stream

	forwarded, duplicates, deadN, attempts atomic.Uint64
	mu                                     sync.Mutex
	lastErr                                string
}

// Open starts the embedded leaf server on cfg.StateDir, connects to it
// in-process and makes sure OUTBOX and its forwarder consumer exist. It
// starts no forwarding: Run does.
func Open(cfg Config) (*Outbox, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	store := filepath.Join(cfg.StateDir, "jetstream")
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		DontListen:         true,
		JetStream:          true,
		JetStreamDomain:    LocalDomain,
		StoreDir:           store,
		JetStreamMaxMemory: 16 << 20,
		JetStreamMaxStore:  cfg.MaxBytes + 128<<20,
		NoSigs:             true,
	}
	if cfg.Leaf.HubURL != "" {
		u, err := url.Parse(cfg.Leaf.HubURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("outbox: hub URL %q is not a URL", cfg.Leaf.HubURL)
		}
		remote := &server.RemoteLeafOpts{URLs: []*url.URL{u}, Credentials: cfg.Leaf.CredsFile}
		if u.Scheme == "tls" {
			remote.TLS = true
		}
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
		opts.LeafNode.ReconnectInterval = time.Second
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("outbox: leaf server: %w", err)
	}
	srv.SetLoggerV2(&serverLog{log: cfg.Log.With("component", "leaf")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("outbox: leaf server did not start")
	}
	o := &Outbox{cfg: cfg, srv: srv}
	if err := o.connect(); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

func (o *Outbox) connect() error {
	nc, err := o.Connect("outbox")
	if err != nil {
		return err
	}
	o.nc = nc
	js, err := jetstream.NewWithDomain(nc, LocalDomain)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	o.js = js
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "messages waiting for the hub, in the order they were produced",
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    o.cfg.MaxBytes,
		// Producers retry a Publish whose answer they missed with the
		// same id; the window covers those retries.
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("outbox: stream %s: %w", StreamName, err)
	}
	o.dead, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadStreamName,
		Description: "messages the hub refused; kept for inspection",
		Subjects:    []string{deadPrefix + ">"},
		Storage:     jetstream.FileStorage,
		MaxBytes:    64 << 20,
	})
	if err != nil {
		return fmt.Errorf("outbox: stream %s: %w", DeadStreamName, err)
	}
	// The forwarder's consumer starts afresh with every Open: messages a
	// previous process fetched but had not forwarded would otherwise be
	// held back until their ack wait expired, and come after later ones.
	// OUTBOX is a work queue, so what was forwarded is gone already and
	// the new consumer starts at the oldest message still waiting.
	if err := o.stream.DeleteConsumer(ctx, consumerName); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("outbox: reset consumer: %w", err)
	}
	_, err = o.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: consumerName,
		// The forwarder handles a fetched batch one message at a time,
		// in order, and acknowledges each after the hub's PubAck.
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: fetchBatch * 2,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("outbox: consumer: %w", err)
	}
	return nil
}

// Connect opens another in-process connection to the leaf server, with the
// configured inbox prefix; the agent's command responder uses one. The
// caller closes it.
func (o *Outbox) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.InProcessServer(o.srv), nats.Name(o.cfg.Name + "-" + name), nats.MaxReconnects(-1)}
	if o.cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.cfg.InboxPrefix))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("outbox: connect: %w", err)
	}
	return nc, nil
}

// Publish stores m in OUTBOX. It returns once the local store has it; the
// forwarder delivers it later. Publishing the same id again within ten
// minutes is accepted and stores nothing.
func (o *Outbox) Publish(ctx context.Context, m Message) error {
	if m.Subject == "" || m.ID == "" {
		return errors.New("outbox: message without subject or id")
	}
	msg := nats.NewMsg(subjectPrefix + m.Subject)
	msg.Data = m.Data
	for k, v := range m.Header {
		msg.Header[k] = v
	}
	_, err := o.js.PublishMsg(ctx, msg, jetstream.WithMsgID(m.ID), jetstream.WithExpectStream(StreamName))
	if err != nil {
		return fmt.Errorf("outbox: store %s: %w", m.Subject, err)
	}
	return nil
}

// LinkUp reports whether the leaf node is connected to the hub.
func (o *Outbox) LinkUp() bool { return o.srv.NumLeafNodes() > 0 }

// Stats returns the outbox's counters.
func (o *Outbox) Stats(ctx context.Context) Stats {
	s := Stats{Forwarded: o.forwarded.Load(), Duplicates: o.duplicates.Load(), Dead: o.deadN.Load(),
		Attempts: o.attempts.Load(), LinkUp: o.LinkUp()}
	if info, err := o.stream.Info(ctx); err == nil {
		s.Pending = info.State.Msgs
	}
	o.mu.Lock()
	s.LastError = o.lastErr
	o.mu.Unlock()
	return s
}

// Close stops the leaf server. Messages not yet forwarded stay in the
// store for the next Open.
func (o *Outbox) Close() error {
	if o.nc != nil {
		o.nc.Close()
	}
	o.srv.Shutdown()
	o.srv.WaitForShutdown()
	return nil
}

// hubSubject is the hub subject of a local OUTBOX subject.
func hubSubject(local string) string { return strings.TrimPrefix(local, subjectPrefix) }
