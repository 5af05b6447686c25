package natsauth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestSIEMIssuerIssuesAndRevokes: what the issuer hands out reads its
// org's chain once its consumer exists, and Revoke closes the SIEM's
// connection and refuses the credential from then on.
func TestSIEMIssuerIssuesAndRevokes(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	if _, err := natsauth.NewSIEMIssuer(h.keys, nil, h.url()); err == nil {
		t.Fatal("an issuer without a revoker was built")
	}
	iss, err := natsauth.NewSIEMIssuer(h.keys, h.revoker(), h.url())
	if err != nil {
		t.Fatal(err)
	}
	if iss.URL() != h.url() {
		t.Fatalf("URL %q", iss.URL())
	}
	if _, err := iss.Issue("o1", natsauth.MaxCredentialTTL+time.Hour); err == nil {
		t.Fatal("a credential beyond MaxCredentialTTL was issued")
	}
	if _, err := iss.Issue("O1", time.Hour); err == nil {
		t.Fatal("a credential for an upper-case org id was issued")
	}
	_, js := h.services()
	ctx := ctxT(t)
	if _, err := js.Publish(ctx, events.AuditChain("o1"), []byte(`{"index":1}`)); err != nil {
		t.Fatal(err)
	}
	a, err := iss.Issue("o1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if key, err := natsauth.UserPublicKey(a.Creds); err != nil || key != a.UserPub || a.Org != "o1" {
		t.Fatalf("access %+v: key %q %v", a, key, err)
	}
	if _, err := js.CreateConsumer(ctx, events.StreamAudit, a.ConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	siem := mustDial(t, iss.URL(), a.Creds, nats.CustomInboxPrefix(a.InboxPrefix))
	sjs, err := jetstream.New(siem.Conn)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sjs.Consumer(ctx, events.StreamAudit, a.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range msgs.Messages() {
		if m.Subject() != events.AuditChain("o1") {
			t.Fatalf("read %s", m.Subject())
		}
		n++
	}
	if n != 1 {
		t.Fatalf("read %d entries, want 1", n)
	}

	if err := iss.Revoke(ctx, a.UserPub); err != nil {
		t.Fatal(err)
	}
	natsCheck(t, func() error {
		if siem.Status() == nats.CONNECTED {
			return errors.New("the revoked SIEM is still connected")
		}
		return nil
	})
	if _, err := dial(t, iss.URL(), a.Creds); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("revoked credential connected again: %v", err)
	}
}
