package natsauth_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// agentOnLeaf starts a leaf node with fresh creds for org/agent and
// connects a local client to it.
func (h *hub) agentOnLeaf(org, agent string) (*leaf, *conn, string) {
	h.t.Helper()
	creds, pub, err := h.keys.AgentCreds(org, agent, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	l := h.startLeaf(creds)
	l.waitConnected(h.t)
	return l, l.client(h.t, org, agent), pub
}

// (1) An agent's messages reach the hub only on its own subjects.
func TestAgentPublishesOnlyItsOwnSubjects(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	svc, _ := h.services()
	l, agent, _ := h.agentOnLeaf("o1", "a1")
	rec := record(t, svc, ">")

	forbidden := []string{
		events.AgentMetrics("o1", "a2"),         // another agent of the org
		events.AgentMetrics("o2", "a1"),         // same agent id in another org
		"svc.tenancy.x",                         // a service endpoint
		"tenancy.evt.o1.org.o1",                 // a domain event
		events.AuditChain("o1"),                 // the audit chain
		events.AgentCommand("o1", "a1", "ping"), // its own command subject: hub to agent only
		"$JS.hub.API.STREAM.LIST",               // the hub's JetStream API
		"$JS.API.STREAM.LIST",
		"_INBOX.anything",
	}
	for _, s := range forbidden {
		if err := agent.Publish(s, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	allowed := []string{events.AgentLogs("o1", "a1"), events.AgentEvents("o1", "a1"), "agent.o1.a1.heartbeat", "agent.o1.a1.out.exec-1"}
	for _, s := range allowed {
		if err := agent.Publish(s, []byte("ok")); err != nil {
			t.Fatal(err)
		}
	}
	// Sentinel last: everything published before it on this path has
	// arrived (or been dropped) once it is recorded.
	if err := agent.Publish(events.AgentMetrics("o1", "a1"), []byte("ok")); err != nil {
		t.Fatal(err)
	}
	got := rec.waitFor(t, events.AgentMetrics("o1", "a1"))
	for _, s := range forbidden {
		if slices.Contains(got, s) {
			t.Errorf("agent o1/a1 reached the hub on %s", s)
		}
	}
	for _, s := range allowed {
		if !slices.Contains(got, s) {
			t.Errorf("agent o1/a1 did not reach the hub on its own subject %s (got %v)", s, got)
		}
	}
	// A local client's forbidden publish is filtered on the leaf itself
	// (the hub told it its permissions); the link stays up.
	if n := l.srv.NumLeafNodes(); n != 1 {
		t.Fatalf("leaf link dropped: %d", n)
	}
}

// (2) Commands: the hub reaches an agent only on its own command subjects,
// and an agent cannot receive another agent's commands or replies.
func TestAgentReceivesOnlyItsOwnCommands(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	svc, _ := h.services()
	_, a1, _ := h.agentOnLeaf("o1", "a1")
	_, a2, _ := h.agentOnLeaf("o1", "a2")

	for _, a := range []struct {
		c  *conn
		id string
	}{{a1, "a1"}, {a2, "a2"}} {
		id := a.id
		if _, err := a.c.Subscribe(events.AgentCommands("o1", id), func(m *nats.Msg) {
			_ = m.Respond([]byte("pong from " + id))
		}); err != nil {
			t.Fatal(err)
		}
		if err := a.c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// a1 tries to listen to everything that is not its own.
	var spies []*nats.Subscription
	for _, s := range []string{
		events.AgentCommands("o1", "a2"), "agent.o1.a2.cmd.ping", "agent.>", "agent.*.*.cmd.>",
		events.AgentInbox("o1", "a2") + ".>", "_INBOX.>", "_R_.>", ">",
	} {
		sub, err := a1.SubscribeSync(s)
		if err != nil {
			t.Fatal(err)
		}
		spies = append(spies, sub)
	}
	if err := a1.Flush(); err != nil {
		t.Fatal(err)
	}

	ask := func(agent string) string {
		t.Helper()
		var reply string
		// The first request can race the interest the leaf just sent.
		natsCheck(t, func() error {
			m, err := svc.Request(events.AgentCommand("o1", agent, "ping"), []byte("hi"), 500*time.Millisecond)
			if err != nil {
				return err
			}
			reply = string(m.Data)
			return nil
		})
		return reply
	}
	if got := ask("a2"); got != "pong from a2" {
		t.Fatalf("a2 answered %q", got)
	}
	// a2 also gets a JetStream ack on its inbox, which a1 must not see.
	a2js, err := jetstream.New(a2.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a2js.Publish(ctxT(t), events.AgentMetrics("o1", "a2"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	// Barrier: a1's own command arrives on the same leaf connection after
	// anything the hub would have forwarded to a1 before it.
	if got := ask("a1"); got != "pong from a1" {
		t.Fatalf("a1 answered %q", got)
	}
	// Locally, a1's wildcards also see a1's own command and reply: the
	// leaf delivers its own traffic. Nothing of a2's may be among them.
	for _, sub := range spies {
		for {
			if n, _, _ := sub.Pending(); n == 0 {
				break
			}
			m, err := sub.NextMsg(time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(m.Subject, "a2") || strings.Contains(string(m.Data), "a2") || strings.Contains(string(m.Data), `"stream"`) {
				t.Errorf("a1's subscription %q received a2's message %s %q", sub.Subject, m.Subject, m.Data)
			}
		}
	}
}

// (3) A JetStream publish from the leaf is stored in the hub's stream and
// acknowledged on the agent's private inbox; dedup works across the link.
func TestAgentJetStreamPublishIsAckedByHub(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	_, js := h.services()
	_, agent, _ := h.agentOnLeaf("o1", "a1")
	ajs, err := jetstream.New(agent.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	var ack *jetstream.PubAck
	natsCheck(t, func() error {
		ack, err = ajs.Publish(ctx, events.AgentMetrics("o1", "a1"), []byte(`{"cpu":1}`), jetstream.WithMsgID("m-1"))
		return err
	})
	if ack.Stream != events.StreamMetrics || ack.Domain != "hub" || ack.Duplicate {
		t.Fatalf("ack %+v, want stream METRICS in domain hub", ack)
	}
	dup, err := ajs.Publish(ctx, events.AgentMetrics("o1", "a1"), []byte(`{"cpu":1}`), jetstream.WithMsgID("m-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !dup.Duplicate || dup.Sequence != ack.Sequence {
		t.Fatalf("resend not deduplicated: %+v", dup)
	}
	for _, subject := range []string{events.AgentLogs("o1", "a1"), events.AgentEvents("o1", "a1")} {
		if _, err := ajs.Publish(ctx, subject, []byte("x")); err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
	}
	s, err := js.Stream(ctx, events.StreamMetrics)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, events.AgentMetrics("o1", "a1"))
	if err != nil || string(m.Data) != `{"cpu":1}` {
		t.Fatalf("stored message %v, %v", m, err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("METRICS holds %d messages, want 1", n)
	}
	// The agent cannot reach the hub's JetStream API. ($JS.API on the
	// leaf is the agent's own local JetStream, domain "leaf".)
	if m, err := agent.Request("$JS.hub.API.STREAM.INFO.METRICS", nil, 300*time.Millisecond); err == nil {
		t.Errorf("agent got an answer from the hub's JetStream API: %s", m.Data)
	}
	hubJS, err := jetstream.NewWithDomain(agent.Conn, "hub")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := hubJS.Stream(short, events.StreamMetrics); err == nil {
		t.Error("agent read stream info through domain hub")
	}
}
