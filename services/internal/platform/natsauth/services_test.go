package natsauth_test

import (
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// (6) Service credentials can do everything the services and the gateway
// do: the JetStream API (streams, consumers, KV), micro endpoints on
// svc.>, requests to agents' commands, and reading agents' telemetry.
func TestServicesCanDoEverythingTheyNeed(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	svc, js := h.services() // Ensure: every stream and bucket created
	ctx := ctxT(t)

	// Domain events with optimistic concurrency and dedup; a durable
	// consumer reads them back.
	subject := events.DomainEvent("tenancy", "o1", "org", "o1")
	if _, err := js.Publish(ctx, subject, []byte(`{}`), jetstream.WithMsgID("e-1"), jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "TENANCY", events.Durable("tenancy-projection"))
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second)); err != nil {
		t.Fatal(err)
	} else {
		for m := range msgs.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	kv, err := js.KeyValue(ctx, events.BucketAgentDesired)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.AgentDesiredKey("o1", "a1"), []byte("conf")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, events.AuditChain("o1"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	// A micro endpoint served by one service, called by another (the
	// gateway uses the same credentials kind).
	srv, err := micro.AddService(svc.Conn, micro.Config{Name: "tenancy", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.AddEndpoint("ping", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte("pong")) }),
		micro.WithEndpointSubject(events.ServiceEndpoint("tenancy", "ping"))); err != nil {
		t.Fatal(err)
	}
	gwCreds, err := h.keys.ServiceCreds("gateway")
	if err != nil {
		t.Fatal(err)
	}
	gw := mustDial(t, h.url(), gwCreds)
	if m, err := gw.Request(events.ServiceEndpoint("tenancy", "ping"), nil, 2*time.Second); err != nil || string(m.Data) != "pong" {
		t.Fatalf("service request: %v %v", m, err)
	}

	// Agents: commands out, telemetry in (core and JetStream).
	telemetry := record(t, svc, "agent.*.*.heartbeat")
	_, agent, _ := h.agentOnLeaf("o1", "a1")
	if _, err := agent.Subscribe(events.AgentCommands("o1", "a1"), func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	checkRequest(t, gw, events.AgentCommand("o1", "a1", "containers.list"), "ok")
	if err := agent.Publish("agent.o1.a1.heartbeat", []byte("1")); err != nil {
		t.Fatal(err)
	}
	telemetry.waitFor(t, "agent.o1.a1.heartbeat")
	ajs, err := jetstream.New(agent.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.Publish(ctx, events.AgentLogs("o1", "a1"), []byte("line")); err != nil {
		t.Fatal(err)
	}
	logs, err := js.CreateOrUpdateConsumer(ctx, events.StreamLogs, events.Durable("logingest", "agent.*.*.logs"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := logs.Next(jetstream.FetchMaxWait(2 * time.Second))
	if err != nil || m.Subject() != events.AgentLogs("o1", "a1") {
		t.Fatalf("logs consumer: %v %v", m, err)
	}
	if len(svc.violations())+len(gw.violations()) != 0 {
		t.Fatalf("services hit permission errors: %s %s", svc.violations(), gw.violations())
	}
}

// checkRequest retries a request until answered (the agent's interest
// may still be on its way over the leaf link) and checks the answer.
func checkRequest(t *testing.T, c *conn, subject, want string) {
	t.Helper()
	var got string
	natsCheck(t, func() error {
		m, err := c.Request(subject, nil, 500*time.Millisecond)
		if err != nil {
			return err
		}
		got = string(m.Data)
		return nil
	})
	if got != want {
		t.Fatalf("%s answered %q, want %q", subject, got, want)
	}
}
