package natsauth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// A malicious agent speaking the leafnode protocol by hand. nats-server
// lets any leaf publish JetStream ack subjects ($JS.ACK.>) and service
// reply subjects (_R_.>) whatever its permissions say; in an account with
// the services' consumers a forged +TERM drops another tenant's pending
// event. Agents live in AGENTS, which has no consumer to reach.
func TestRawLeafCannotAckServiceConsumers(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	_, js := h.services()
	ctx := ctxT(t)
	if _, err := js.Publish(ctx, events.DomainEvent("tenancy", "o2", "org", "o2"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "TENANCY", events.Durable("tenancy-projection"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	var ackSubject string
	for m := range batch.Messages() {
		ackSubject = m.Reply()
	}
	if ackSubject == "" {
		t.Fatal("no message fetched")
	}

	creds, _, err := h.keys.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	raw := dialRawLeaf(t, h.leafPort, creds)
	raw.waitLine(t, "PONG")
	raw.pub(t, ackSubject, "", "+TERM")
	raw.pub(t, "$JS.ACK.TENANCY.tenancy-projection.1.1.1.1.0", "", "+ACK")
	natsWaitPongs(t, raw, 3)

	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
		t.Fatalf("a forged ack from an agent reached the services' consumer: pending %d, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
	}
}

// natsWaitPongs waits until the server answered n PINGs in total, i.e.
// processed everything sent before the n-th.
func natsWaitPongs(t *testing.T, r *rawLeaf, n int) {
	t.Helper()
	checkLines(t, r, func(lines []string) error {
		got := 0
		for _, l := range lines {
			if l == "PONG\r\n" {
				got++
			}
		}
		if got < n {
			return fmt.Errorf("%d PONGs, want %d; lines %q", got, n, lines)
		}
		return nil
	})
}

// An agent chooses the reply subject of what it publishes. JetStream and
// services publish their answer there; were agents in APP, a PubAck could
// be steered into another tenant's domain-event subject and stored by its
// stream. From AGENTS the reply is mapped back into AGENTS.
func TestAgentCannotSteerRepliesIntoApp(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	svc, js := h.services()
	rec := record(t, svc, "tenancy.evt.>")
	victim := events.DomainEvent("tenancy", "o2", "org", "o2")

	// Through a real leaf and a client...
	_, agent, _ := h.agentOnLeaf("o1", "a1")
	if err := agent.PublishRequest(events.AgentMetrics("o1", "a1"), victim, []byte("1")); err != nil {
		t.Fatal(err)
	}
	// ...and by hand.
	creds, _, err := h.keys.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	raw := dialRawLeaf(t, h.leafPort, creds)
	raw.waitLine(t, "PONG")
	if _, err := fmt.Fprintf(raw.c, "LS+ %s.>\r\n", events.AgentInbox("o1", "a1")); err != nil {
		t.Fatal(err)
	}
	raw.pub(t, events.AgentMetrics("o1", "a1"), victim, "2")
	raw.pub(t, events.AgentMetrics("o1", "a1"), "_R_.forged.reply", "3")
	// Barrier: a legitimate publish whose ack comes back to the raw leaf.
	raw.pub(t, events.AgentMetrics("o1", "a1"), events.AgentInbox("o1", "a1")+".ok", "4")
	raw.waitLine(t, "LMSG "+events.AgentInbox("o1", "a1")+".ok")

	ctx := ctxT(t)
	s, err := js.Stream(ctx, "TENANCY")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("TENANCY holds %d messages written through an agent's reply subject", n)
	}
	if got := rec.subjects(); len(got) != 0 {
		t.Fatalf("APP received %v through an agent's reply subject", got)
	}
	m, err := js.Stream(ctx, events.StreamMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if n := m.CachedInfo().State.Msgs; n != 4 {
		t.Fatalf("METRICS holds %d messages, want the 4 published", n)
	}
}

// A hand-made leaf gets no further than a real one: the hub closes it on
// the first forbidden publish or subscription.
func TestRawLeafViolationsCloseTheLink(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	svc, _ := h.services()
	rec := record(t, svc, ">")
	creds, _, err := h.keys.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ proto, want string }{
		{"LMSG svc.tenancy.x 1\r\nx\r\n", `Permissions Violation for Publish to "svc.tenancy.x"`},
		{"LMSG agent.o1.a2.metrics 1\r\nx\r\n", `Permissions Violation for Publish to "agent.o1.a2.metrics"`},
		{"LMSG $JS.API.STREAM.LIST _R_.x.y 0\r\n\r\n", `Permissions Violation for Publish to "$JS.API.STREAM.LIST"`},
		{"LS+ agent.o1.a2.cmd.ping\r\n", `Permissions Violation for Subscription to "agent.o1.a2.cmd.ping"`},
		{"LS+ _INBOX.agent.o1.a2.x\r\n", `Permissions Violation for Subscription to "_INBOX.agent.o1.a2.x"`},
	} {
		raw := dialRawLeaf(t, h.leafPort, creds)
		raw.waitLine(t, "PONG")
		if _, err := fmt.Fprint(raw.c, tc.proto); err != nil {
			t.Fatal(err)
		}
		raw.waitLine(t, tc.want)
	}
	for _, s := range rec.subjects() {
		if s == "svc.tenancy.x" || s == "agent.o1.a2.metrics" {
			t.Errorf("forbidden message reached the hub: %s", s)
		}
	}
}

// Credentials are bound to their connection type: an agent's only work as
// a leaf node, a service's never do.
func TestCredentialsAreBoundToTheirConnectionType(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	agentCreds, _, err := h.keys.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, h.url(), agentCreds); err == nil {
		t.Fatal("agent creds connected as a client")
	}
	svcCreds, err := h.keys.ServiceCreds("svc")
	if err != nil {
		t.Fatal(err)
	}
	raw := dialRawLeaf(t, h.leafPort, svcCreds)
	raw.waitLine(t, "Authorization Violation")
	sysCreds, err := h.keys.SystemCreds()
	if err != nil {
		t.Fatal(err)
	}
	raw = dialRawLeaf(t, h.leafPort, sysCreds)
	raw.waitLine(t, "Authorization Violation")
	siem, err := h.keys.SIEMCreds("o1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	raw = dialRawLeaf(t, h.leafPort, siem.Creds)
	raw.waitLine(t, "Authorization Violation")
}
