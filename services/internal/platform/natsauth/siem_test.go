package natsauth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// siemSetup issues SIEM access for org, creates its consumer through the
// services connection, and connects the SIEM client.
func siemSetup(t *testing.T, h *hub, js jetstream.JetStream, org string) (natsauth.SIEMAccess, *conn) {
	t.Helper()
	a, err := h.keys.SIEMCreds(org, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctxT(t), events.StreamAudit, a.ConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	return a, mustDial(t, h.url(), a.Creds, nats.CustomInboxPrefix(a.InboxPrefix))
}

// (5) A SIEM credential reads exactly its org's audit chain and nothing
// else, and can change nothing.
func TestSIEMReadsOnlyItsOrgsChain(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	svc, js := h.services()
	ctx := ctxT(t)
	for i, org := range []string{"o1", "o2", "o1", "o2", "o1"} {
		if _, err := js.Publish(ctx, events.AuditChain(org), fmt.Appendf(nil, `{"org":%q,"index":%d}`, org, i)); err != nil {
			t.Fatal(err)
		}
	}
	// The audit service's own consumer over every org's chain.
	if _, err := js.CreateOrUpdateConsumer(ctx, events.StreamAudit, events.Durable("audit-projection", "audit.chain.*")); err != nil {
		t.Fatal(err)
	}
	a1, siem := siemSetup(t, h, js, "o1")
	a2, _ := siemSetup(t, h, js, "o2")

	sjs, err := jetstream.New(siem.Conn)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sjs.Consumer(ctx, events.StreamAudit, a1.Consumer)
	if err != nil {
		t.Fatalf("SIEM cannot read its consumer's info: %v (violations: %s)", err, siem.violations())
	}
	if cons.CachedInfo().NumPending != 3 {
		t.Fatalf("consumer pending %d, want o1's 3 entries", cons.CachedInfo().NumPending)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Subject())
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if batch.Error() != nil {
		t.Fatal(batch.Error())
	}
	if len(got) != 3 {
		t.Fatalf("SIEM read %v, want o1's 3 entries", got)
	}
	for _, s := range got {
		if s != events.AuditChain("o1") {
			t.Fatalf("SIEM for o1 read %s", s)
		}
	}

	// Every refusal is the real server's: a permissions violation.
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 300*time.Millisecond) }
	refused := []struct {
		name    string
		subject string
		try     func() error
	}{
		{"create a consumer on another org's chain", "$JS.API.CONSUMER.CREATE.AUDIT", func() error {
			c, cancel := short()
			defer cancel()
			_, err := sjs.CreateOrUpdateConsumer(c, events.StreamAudit, jetstream.ConsumerConfig{Name: "mine", FilterSubject: events.AuditChain("o2")})
			return err
		}},
		{"create a consumer on its own chain", "$JS.API.CONSUMER.CREATE.AUDIT", func() error {
			c, cancel := short()
			defer cancel()
			_, err := sjs.OrderedConsumer(c, events.StreamAudit, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.AuditChain("o1")}})
			if err == nil {
				_, err = cons.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
			}
			return err
		}},
		{"read another org's SIEM consumer", "$JS.API.CONSUMER.INFO.AUDIT." + a2.Consumer, func() error {
			c, cancel := short()
			defer cancel()
			_, err := sjs.Consumer(c, events.StreamAudit, a2.Consumer)
			return err
		}},
		{"pull from another org's SIEM consumer", "$JS.API.CONSUMER.MSG.NEXT.AUDIT." + a2.Consumer, func() error {
			return pullRaw(siem, a1, "$JS.API.CONSUMER.MSG.NEXT.AUDIT."+a2.Consumer)
		}},
		{"pull from the audit service's consumer", "$JS.API.CONSUMER.MSG.NEXT.AUDIT.audit-projection", func() error {
			return pullRaw(siem, a1, "$JS.API.CONSUMER.MSG.NEXT.AUDIT.audit-projection")
		}},
		{"read stream info", "$JS.API.STREAM.INFO.AUDIT", func() error {
			c, cancel := short()
			defer cancel()
			_, err := sjs.Stream(c, events.StreamAudit)
			return err
		}},
		{"direct-get another org's entry", "$JS.API.DIRECT.GET.AUDIT.audit.chain.o2", func() error {
			return pullRaw(siem, a1, "$JS.API.DIRECT.GET.AUDIT.audit.chain.o2")
		}},
		{"read the platform's JetStream account info", "$JS.API.INFO", func() error {
			c, cancel := short()
			defer cancel()
			_, err := sjs.AccountInfo(c)
			return err
		}},
		{"pull from another stream", "$JS.API.CONSUMER.MSG.NEXT.TENANCY.x", func() error {
			return pullRaw(siem, a1, "$JS.API.CONSUMER.MSG.NEXT.TENANCY.x")
		}},
		{"ack for the audit service's consumer", "$JS.ACK.AUDIT.audit-projection", func() error {
			return siem.Publish("$JS.ACK.AUDIT.audit-projection.1.1.1.1.0", []byte("+TERM"))
		}},
		{"append to its chain", `Publish to "audit.chain.o1"`, func() error {
			return siem.Publish(events.AuditChain("o1"), []byte("{}"))
		}},
		{"call a service", `Publish to "svc.audit.verify"`, func() error {
			return siem.Publish("svc.audit.verify", []byte("{}"))
		}},
		{"subscribe to another org's chain", `Subscription to "audit.chain.o2"`, func() error {
			_, err := siem.SubscribeSync(events.AuditChain("o2"))
			return err
		}},
		{"subscribe to every inbox", `Subscription to "_INBOX.>"`, func() error {
			_, err := siem.SubscribeSync("_INBOX.>")
			return err
		}},
	}
	for _, tc := range refused {
		siem.reset()
		if err := tc.try(); err != nil {
			t.Logf("%s: %v", tc.name, err)
		}
		if err := siem.Flush(); err != nil {
			t.Fatal(err)
		}
		siem.waitViolation(t, tc.subject)
	}

	// A pull whose reply subject names another tenant's event subject is
	// answered in the SIEM account, not in APP.
	rec := record(t, svc, "tenancy.evt.>")
	if _, err := js.Publish(ctx, events.AuditChain("o1"), []byte(`{"index":9}`)); err != nil {
		t.Fatal(err)
	}
	victim := events.DomainEvent("tenancy", "o2", "org", "o2")
	if err := siem.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.AUDIT."+a1.Consumer, victim, []byte(`{"batch":1}`)); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		info, err := js.Consumer(ctx, events.StreamAudit, a1.Consumer)
		if err != nil {
			return err
		}
		if n := info.CachedInfo().NumAckPending; n != 1 {
			return fmt.Errorf("steered pull not delivered yet (ack pending %d)", n)
		}
		return nil
	})
	s, err := js.Stream(ctx, "TENANCY")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 || len(rec.subjects()) != 0 {
		t.Fatalf("a SIEM pull wrote into APP's %s: %d messages, %v", victim, n, rec.subjects())
	}
}

// pullRaw sends a JetStream API request on subject with a reply on the
// SIEM's own inbox, bypassing client-side helpers.
func pullRaw(c *conn, a natsauth.SIEMAccess, subject string) error {
	return c.PublishRequest(subject, a.InboxPrefix+".raw", []byte(`{"batch":1,"expires":100000000}`))
}
