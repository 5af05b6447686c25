package simagent

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nkeys"
)

// fakeHub is a loopback stand-in for the hub's leafnode port that checks
// the simulated agent's framing: INFO with a nonce, a CONNECT whose
// signature verifies with the creds' key, the two LS+ subscriptions, a
// PING answered by PONG. It is a test of the protocol's framing only —
// the real hub's behaviour (authentication, permissions, JetStream,
// account imports) is exercised by running the scenarios against
// `infrapilot dev`.
type fakeHub struct {
	t    *testing.T
	ln   net.Listener
	conn chan net.Conn
}

func newFakeHub(t *testing.T) *fakeHub {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &fakeHub{t: t, ln: ln, conn: make(chan net.Conn, 1)}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			h.conn <- c
		}
	}()
	return h
}

func (h *fakeHub) url() string { return "nats-leaf://" + h.ln.Addr().String() }

// testCreds makes a .creds text with a fresh user key (the JWT is not
// checked by the fake).
func testCreds(t *testing.T) ([]byte, nkeys.KeyPair) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds := fmt.Sprintf("-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.sig\n------END NATS USER JWT------\n\n"+
		"-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", seed)
	return []byte(creds), kp
}

// accept plays the hub's side of the handshake and returns the link.
func (h *fakeHub) accept(kp nkeys.KeyPair, org, agent string) (net.Conn, *bufio.Reader) {
	t := h.t
	var c net.Conn
	select {
	case c = <-h.conn:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "INFO {\"server_id\":\"fake\",\"nonce\":\"n0nce\",\"headers\":true}\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var connect struct {
		JWT, Sig, Name string
		Headers        bool
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "CONNECT ")), &connect); err != nil {
		t.Fatalf("CONNECT %q: %v", line, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(connect.Sig)
	if err != nil || kp.Verify([]byte("n0nce"), sig) != nil {
		t.Fatalf("nonce signature does not verify: %q", connect.Sig)
	}
	if connect.JWT != "eyJ0eXAiOiJKV1QifQ.e30.sig" || !connect.Headers || connect.Name != "sim-"+agent {
		t.Fatalf("CONNECT: %+v", connect)
	}
	want := []string{"LS+ " + events.AgentCommands(org, agent), "LS+ " + events.AgentInbox(org, agent) + ".>", "PING"}
	for _, w := range want {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(l) != w {
			t.Fatalf("got %q, want %q", l, w)
		}
	}
	// An INFO and the hub's own interest come first, as from a real hub.
	fmt.Fprintf(c, "INFO {\"server_id\":\"fake\"}\r\nLS+ agent.*.*.*\r\nPONG\r\n")
	return c, br
}

func TestConnFraming(t *testing.T) {
	hub := newFakeHub(t)
	creds, kp := testCreds(t)
	var got = make(chan Msg, 1)
	done := make(chan *Conn, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, hub.url(), "o1", "a1", creds, DialOptions{Handler: func(c *Conn, m Msg) {
			got <- m
			_ = c.Reply(m, map[string]string{"ok": "yes"}, nil)
		}})
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	hc, br := hub.accept(kp, "o1", "a1")
	c := <-done
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	expect := func(want string) {
		t.Helper()
		_ = hc.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := br.ReadString('\n')
		if err != nil || strings.TrimSpace(l) != want {
			t.Fatalf("got %q (%v), want %q", l, err, want)
		}
	}

	// A PING from the hub is answered.
	fmt.Fprintf(hc, "PING\r\n")
	expect("PONG")

	// A command with headers reaches the handler; its reply goes to the
	// reply subject.
	hdr := "NATS/1.0\r\nIp-Deadline: 2030-01-01T00:00:00Z\r\n\r\n"
	fmt.Fprintf(hc, "HMSG agent.o1.a1.cmd.ping _R_.x.y %d %d\r\n%s{}\r\n", len(hdr), len(hdr)+2, hdr)
	select {
	case m := <-got:
		if m.Subject != "agent.o1.a1.cmd.ping" || m.Reply != "_R_.x.y" || m.Header.Get(events.HeaderDeadline) == "" {
			t.Fatalf("handler got %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called")
	}
	expect(`LMSG _R_.x.y 12`)
	expect(`{"ok":"yes"}`)

	// A JetStream publish carries Nats-Msg-Id and an inbox reply; the
	// PubAck on that inbox completes it.
	acks := make(chan error, 1)
	c.PublishJS("agent.o1.a1.metrics", "metrics-1", []byte(`{"v":1}`), func(a PubAck, err error) {
		if err == nil && (a.Stream != "METRICS" || a.Seq != 7) {
			err = fmt.Errorf("ack %+v", a)
		}
		acks <- err
	})
	_ = hc.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, _ := br.ReadString('\n')
	f := strings.Fields(l)
	if len(f) != 5 || f[0] != "HMSG" || f[1] != "agent.o1.a1.metrics" || !strings.HasPrefix(f[2], "_INBOX.agent.o1.a1.") {
		t.Fatalf("publish line %q", l)
	}
	body := make([]byte, 0, 64)
	for !strings.HasSuffix(string(body), "{\"v\":1}\r\n") {
		b, err := br.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, b)
	}
	if !strings.Contains(string(body), "Nats-Msg-Id: metrics-1\r\n") {
		t.Fatalf("publish headers %q", body)
	}
	ack := `{"stream":"METRICS","seq":7,"domain":"hub"}`
	fmt.Fprintf(hc, "LMSG %s %d\r\n%s\r\n", f[2], len(ack), ack)
	if err := <-acks; err != nil {
		t.Fatal(err)
	}

	// A PubAck from another domain is refused, as by the real forwarder.
	c.PublishJS("agent.o1.a1.metrics", "metrics-2", []byte(`{}`), func(_ PubAck, err error) { acks <- err })
	l, _ = br.ReadString('\n')
	f = strings.Fields(l)
	for range 4 { // the headers block's three lines, then the payload's
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	ack = `{"stream":"OUTBOX","seq":1,"domain":"leaf"}`
	fmt.Fprintf(hc, "LMSG %s %d\r\n%s\r\n", f[2], len(ack), ack)
	var jsErr *JSError
	if err := <-acks; !errors.As(err, &jsErr) {
		t.Fatalf("PubAck from domain leaf: %v", err)
	}

	// The hub closing the link fails what is pending and reports why.
	c.PublishJS("agent.o1.a1.metrics", "metrics-3", []byte(`{}`), func(_ PubAck, err error) { acks <- err })
	fmt.Fprintf(hc, "-ERR 'User Authentication Revoked'\r\n")
	hc.Close()
	if err := <-acks; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending publish after the link closed: %v", err)
	}
	<-c.Done()
	var he *HubError
	if !errors.As(c.Err(), &he) || !strings.Contains(he.Text, "Revoked") {
		t.Fatalf("Err() = %v", c.Err())
	}
	if err := c.Publish("agent.o1.a1.heartbeat", "", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish on a closed link: %v", err)
	}
}

func TestDialRefusedByHub(t *testing.T) {
	hub := newFakeHub(t)
	creds, _ := testCreds(t)
	go func() {
		c := <-hub.conn
		defer c.Close()
		fmt.Fprintf(c, "INFO {\"nonce\":\"x\"}\r\n")
		_, _ = bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "-ERR 'Authorization Violation'\r\n")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, hub.url(), "o1", "a1", creds, DialOptions{})
	var he *HubError
	if !errors.As(err, &he) || he.Text != "Authorization Violation" {
		t.Fatalf("Dial: %v", err)
	}
}

func TestDialHonoursContext(t *testing.T) {
	hub := newFakeHub(t) // accepts, never speaks
	creds, _ := testCreds(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, hub.url(), "o1", "a1", creds, DialOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent hub: %v", err)
	}
}

func TestDialRejectsBadInput(t *testing.T) {
	creds, _ := testCreds(t)
	ctx := context.Background()
	if _, err := Dial(ctx, "nats-leaf://127.0.0.1:1", "o.1", "a1", creds, DialOptions{}); err == nil {
		t.Fatal("an org id with a dot was accepted")
	}
	if _, err := Dial(ctx, "nats-leaf://127.0.0.1:1", "o1", "a1", []byte("no creds"), DialOptions{}); err == nil {
		t.Fatal("creds without a seed were accepted")
	}
}
