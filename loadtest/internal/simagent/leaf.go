package simagent

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nkeys"
)

// ErrClosed is returned for operations on a closed connection, and
// completes requests pending when the link went down.
var ErrClosed = errors.New("simagent: leaf connection closed")

// HubError is an -ERR the hub sent (an authorization failure, a
// permissions violation). Its Kind groups it in reports.
type HubError struct{ Text string }

// Error implements error.
func (e *HubError) Error() string { return "hub: " + e.Text }

// Kind implements harness.Kinded.
func (e *HubError) Kind() string { return "hub_err" }

// Conn is one simulated agent's leafnode connection to the hub: one TCP
// connection and one goroutine (the reader). Writes happen on the
// caller's goroutine under a lock.
type Conn struct {
	org, agent string
	nc         net.Conn
	pr         *protoReader

	wmu sync.Mutex
	bw  *bufio.Writer
	buf []byte

	inbox     string // "_INBOX.agent.<org>.<agent>."
	cmdPrefix string // "agent.<org>.<agent>.cmd."
	handler   func(*Conn, Msg)

	mu      sync.Mutex
	pending map[string]func(Msg, error)
	seq     atomic.Uint64
	err     error
	done    chan struct{}

	// Counters since Dial.
	sent, received, pings atomic.Int64
}

// DialOptions tunes Dial.
type DialOptions struct {
	// Name is the leaf's server name in CONNECT (default "sim-<agent>").
	Name string
	// Handler receives every message on the agent's command subjects,
	// on the reader goroutine: it must not block for long.
	Handler func(*Conn, Msg)
	// TLS configures a tls:// hub (default: verify against the system
	// roots).
	TLS *tls.Config
}

// Dial connects to the hub's leafnode URL with the agent's credentials
// (the .creds text), subscribes to the agent's command subjects and
// private inbox, and returns once the hub has confirmed all of it (a
// PONG after the subscriptions). ctx bounds the whole handshake.
func Dial(ctx context.Context, leafURL string, org, agent string, creds []byte, opts DialOptions) (*Conn, error) {
	if !events.ValidToken(org) || !events.ValidToken(agent) {
		return nil, fmt.Errorf("simagent: invalid org %q or agent %q", org, agent)
	}
	jwt, err := nkeys.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("simagent: creds: %w", err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("simagent: creds: %w", err)
	}
	u, err := url.Parse(leafURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("simagent: leaf URL %q is not a URL", leafURL)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c := &Conn{org: org, agent: agent, nc: nc, pending: map[string]func(Msg, error){}, done: make(chan struct{}),
		inbox: events.AgentInbox(org, agent) + ".", cmdPrefix: events.AgentCommand(org, agent, ""), handler: opts.Handler}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	err = c.handshake(u, jwt, kp, opts)
	if stopped := stop(); !stopped || err != nil {
		nc.Close()
		switch {
		case ctx.Err() != nil:
			err = errors.Join(ctx.Err(), err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The connection's deadline is ctx's: it may fire a moment
			// before ctx reports it.
			err = errors.Join(context.DeadlineExceeded, err)
		}
		return nil, err
	}
	_ = c.nc.SetDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

// handshake reads INFO, upgrades to TLS when asked, sends CONNECT with the
// signed nonce and the subscriptions, and waits for the PONG that proves
// the hub accepted them.
func (c *Conn) handshake(u *url.URL, jwt string, kp nkeys.KeyPair, opts DialOptions) error {
	pr := newProtoReader(c.nc)
	f, err := pr.next()
	if err != nil {
		return fmt.Errorf("simagent: reading INFO: %w", err)
	}
	if f.Op != "INFO" {
		return fmt.Errorf("%w: expected INFO, got %s", ErrProtocol, f.Op)
	}
	var info struct {
		Nonce       string `json:"nonce"`
		TLSRequired bool   `json:"tls_required"`
	}
	if err := json.Unmarshal([]byte(f.Arg), &info); err != nil {
		return fmt.Errorf("%w: INFO: %v", ErrProtocol, err)
	}
	if u.Scheme == "tls" || info.TLSRequired {
		cfg := opts.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(c.nc, cfg)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("simagent: TLS: %w", err)
		}
		c.nc = tc
		pr = newProtoReader(tc)
	}
	sig, err := kp.Sign([]byte(info.Nonce))
	if err != nil {
		return fmt.Errorf("simagent: signing the nonce: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = "sim-" + c.agent
	}
	connect, err := json.Marshal(map[string]any{"jwt": jwt, "sig": base64.RawURLEncoding.EncodeToString(sig),
		"name": name, "headers": true})
	if err != nil {
		return err
	}
	c.pr = pr
	c.bw = bufio.NewWriterSize(c.nc, 4<<10)
	hello := fmt.Sprintf("CONNECT %s\r\nLS+ %s\r\nLS+ %s>\r\nPING\r\n", connect,
		events.AgentCommands(c.org, c.agent), c.inbox)
	if _, err := c.bw.WriteString(hello); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	for {
		f, err := pr.next()
		if err != nil {
			return fmt.Errorf("simagent: waiting for the hub's PONG: %w", err)
		}
		switch f.Op {
		case "PONG":
			return nil
		case "PING":
			if err := c.write([]byte("PONG\r\n")); err != nil {
				return err
			}
		case "-ERR":
			return &HubError{Text: strings.Trim(f.Arg, "'")}
		}
	}
}

// readLoop handles everything the hub sends until the link breaks.
func (c *Conn) readLoop() {
	var err error
	for {
		var f frame
		f, err = c.pr.next()
		if err != nil {
			break
		}
		switch f.Op {
		case "PING":
			c.pings.Add(1)
			if err = c.write([]byte("PONG\r\n")); err != nil {
				break
			}
		case "-ERR":
			// The hub closes the link after most errors; remember why.
			c.mu.Lock()
			if c.err == nil {
				c.err = &HubError{Text: strings.Trim(f.Arg, "'")}
			}
			c.mu.Unlock()
		case "LMSG", "HMSG":
			c.received.Add(1)
			c.dispatch(f.Msg)
		}
	}
	c.shutdown(err)
}

func (c *Conn) dispatch(m Msg) {
	if strings.HasPrefix(m.Subject, c.inbox) {
		c.mu.Lock()
		cb := c.pending[m.Subject]
		delete(c.pending, m.Subject)
		c.mu.Unlock()
		if cb != nil {
			cb(m, nil)
		}
		return
	}
	if strings.HasPrefix(m.Subject, c.cmdPrefix) && c.handler != nil {
		c.handler(c, m)
	}
}

// shutdown closes the link once and fails every pending request.
func (c *Conn) shutdown(cause error) {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return
	default:
	}
	if c.err == nil {
		c.err = cause
	}
	pending := c.pending
	c.pending = map[string]func(Msg, error){}
	close(c.done)
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, cb := range pending {
		cb(Msg{}, ErrClosed)
	}
}

// Close closes the link (the hub sees the agent disconnect).
func (c *Conn) Close() error {
	c.shutdown(ErrClosed)
	return nil
}

// Done is closed when the link is down.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the link went down (nil while it is up).
func (c *Conn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Sent counts the messages published since Dial.
func (c *Conn) Sent() int64 { return c.sent.Load() }

// Received counts the messages the hub delivered since Dial.
func (c *Conn) Received() int64 { return c.received.Load() }

func (c *Conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	return c.bw.Flush()
}

// Publish sends one message (core NATS: nobody acknowledges it).
func (c *Conn) Publish(subject, reply string, h Header, data []byte) error {
	if !validSubject(subject) || (reply != "" && !validSubject(reply)) {
		return fmt.Errorf("simagent: invalid subject %q or reply %q", subject, reply)
	}
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	c.wmu.Lock()
	c.buf = appendMsg(c.buf[:0], subject, reply, h, data)
	_, err := c.bw.Write(c.buf)
	if err == nil {
		err = c.bw.Flush()
	}
	if cap(c.buf) > 1<<20 {
		c.buf = nil // do not keep a large batch's buffer per agent
	}
	c.wmu.Unlock()
	if err != nil {
		c.shutdown(err)
		return err
	}
	c.sent.Add(1)
	return nil
}

// RequestAsync publishes with a reply subject on the agent's private
// inbox and calls cb (on the reader goroutine, or on the caller's when
// the publish fails) with the first answer, or with an error when the
// link goes down first. Cancel forgets the request (cb is then never
// called); it reports whether it did.
func (c *Conn) RequestAsync(subject string, h Header, data []byte, cb func(Msg, error)) (cancel func() bool) {
	reply := c.inbox + strconv.FormatUint(c.seq.Add(1), 36)
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		cb(Msg{}, ErrClosed)
		return func() bool { return false }
	default:
	}
	c.pending[reply] = cb
	c.mu.Unlock()
	cancel = func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.pending[reply]; !ok {
			return false
		}
		delete(c.pending, reply)
		return true
	}
	if err := c.Publish(subject, reply, h, data); err != nil {
		if cancel() {
			cb(Msg{}, err)
		}
	}
	return cancel
}

// Request is RequestAsync waiting for the answer until ctx ends.
func (c *Conn) Request(ctx context.Context, subject string, h Header, data []byte) (Msg, error) {
	type answer struct {
		m   Msg
		err error
	}
	ch := make(chan answer, 1)
	cancel := c.RequestAsync(subject, h, data, func(m Msg, err error) { ch <- answer{m, err} })
	select {
	case a := <-ch:
		return a.m, a.err
	case <-ctx.Done():
		if !cancel() {
			a := <-ch // answered meanwhile
			return a.m, a.err
		}
		return Msg{}, ctx.Err()
	}
}
