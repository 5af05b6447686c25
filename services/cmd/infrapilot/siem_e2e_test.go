package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// siemConn is a SIEM's connection to the dev hub with nothing but the
// credentials POST /audit/siem-credentials returned; it records the
// permission violations the server reports.
type siemConn struct {
	*nats.Conn
	mu   sync.Mutex
	errs []string
}

func dialSIEMCreds(t *testing.T, url string, issued events.AuditSIEMCredentialsIssued) (*siemConn, error) {
	t.Helper()
	auth, err := natsauth.ConnectOption([]byte(issued.Credentials))
	if err != nil {
		t.Fatalf("the API's credentials do not parse: %v", err)
	}
	s := &siemConn{}
	nc, err := nats.Connect(url, auth, nats.CustomInboxPrefix(issued.InboxPrefix), nats.ReconnectWait(50*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			s.mu.Lock()
			s.errs = append(s.errs, err.Error())
			s.mu.Unlock()
		}))
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	s.Conn = nc
	return s, nil
}

// refused waits until the server reported a permissions violation naming
// subject.
func (s *siemConn) refused(t *testing.T, subject string) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.errs {
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, subject) {
				return nil
			}
		}
		return fmt.Errorf("no permissions violation for %q; got %q", subject, s.errs)
	})
}

// createSIEMCreds asks for SIEM credentials as token in org and decodes
// the 201 reply.
func createSIEMCreds(t *testing.T, c *apiClient, token, org, name string) (events.AuditSIEMCredentialsIssued, response) {
	t.Helper()
	r := c.call("POST", api+"/audit/siem-credentials", token, org, map[string]any{"name": name, "ttl": "720h"})
	if r.Status == http.StatusServiceUnavailable {
		t.Fatalf("POST /audit/siem-credentials is unavailable: `infrapilot dev` must set audit.Config.SIEMCredentials "+
			"(natsauth.NewSIEMIssuer): %s", r.Raw)
	}
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /audit/siem-credentials: %d %s", r.Status, r.Raw)
	}
	var out events.AuditSIEMCredentialsIssued
	if err := json.Unmarshal(r.Raw, &out); err != nil {
		t.Fatal(err)
	}
	return out, r
}

// TestSIEMCredentialsEndToEnd: an admin of org A gets SIEM credentials
// through the API of `infrapilot dev`; a SIEM holding only those connects
// to the dev hub, pulls A's audit chain (the activity before and the
// credential's own creation), and can neither read B's chain nor publish
// anything. Viewers and operators are refused; the list shows no secret;
// DELETE cuts the SIEM off and its credentials are refused from then on,
// and both changes are in A's audit log.
func TestSIEMCredentialsEndToEnd(t *testing.T) {
	c, run := identityDev(t)
	a := register(c, "alice@siem.example.com", "SIEM Alpha")
	b := register(c, "bob@siem.example.com", "SIEM Bravo")
	roles := map[string]string{}
	for _, role := range []string{"viewer", "operator"} {
		email := role + "@siem.example.com"
		c.must(201, "POST", api+"/users", a.access, a.orgID, map[string]any{
			"email": email, "password": role + "-password-1", "name": role, "role": role})
		r := login(c, email, role+"-password-1")
		if r.Status != 200 || r.str("access_token") == "" {
			t.Fatalf("%s login: %d %s", role, r.Status, r.Raw)
		}
		roles[role] = r.str("access_token")
	}
	// Activity in A before the SIEM exists.
	c.must(201, "POST", api+"/orgs/"+a.orgID+"/enrollment-tokens", a.access, a.orgID, map[string]any{"name": "fleet", "max_uses": 1})

	for role, tok := range roles {
		for _, m := range []struct{ method, path string }{
			{"POST", "/audit/siem-credentials"}, {"GET", "/audit/siem-credentials"}, {"DELETE", "/audit/siem-credentials/x"},
		} {
			if r := c.call(m.method, api+m.path, tok, a.orgID, map[string]any{"name": "x"}); r.Status != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d %s", m.method, m.path, role, r.Status, r.Raw)
			}
		}
	}

	issued, r := createSIEMCreds(t, c, a.access, a.orgID, "splunk")
	if r.Header.Get("Cache-Control") != "no-store" || issued.Stream != events.StreamAudit ||
		issued.Subject != events.AuditChain(a.orgID) || issued.Consumer == "" || issued.InboxPrefix == "" ||
		issued.ExpiresAt == "" || issued.NATSURL == "" || !strings.Contains(issued.Credentials, "NATS USER JWT") {
		t.Fatalf("create reply: %v %s", r.Header, r.Raw)
	}
	other, _ := createSIEMCreds(t, c, b.access, b.orgID, "bravo siem")

	siem, err := dialSIEMCreds(t, run.natsURL, issued)
	if err != nil {
		t.Fatalf("the SIEM cannot connect with its credentials: %v", err)
	}
	js, err := jetstream.New(siem.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cons, err := js.Consumer(ctx, events.StreamAudit, issued.Consumer)
	if err != nil {
		t.Fatalf("the SIEM cannot read its consumer: %v", err)
	}
	var entries []events.AuditEntry
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			if m.Subject() != events.AuditChain(a.orgID) {
				t.Fatalf("the SIEM of A read %s", m.Subject())
			}
			var e events.AuditEntry
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]bool{}
		for _, e := range entries {
			seen[e.Action] = true
		}
		for _, want := range []string{"tenancy.org.created", "tenancy.enrollment_token.created", "audit.siem_credential.created"} {
			if !seen[want] {
				return fmt.Errorf("%d entries read, no %s yet", len(entries), want)
			}
		}
		return nil
	})
	// The .creds text is a JWT line ("eyJ…") and a seed line ("SU…").
	var secrets []string
	for _, line := range strings.Split(issued.Credentials, "\n") {
		if strings.HasPrefix(line, "eyJ") || strings.HasPrefix(line, "SU") {
			secrets = append(secrets, line)
		}
	}
	if len(secrets) != 2 {
		t.Fatalf("credentials without a JWT and a seed: %d secret lines", len(secrets))
	}
	for i, e := range entries {
		if e.OrgID != a.orgID || e.Index != uint64(i+1) {
			t.Fatalf("entry %d read: %+v", i+1, e)
		}
		for _, secret := range secrets {
			if strings.Contains(string(e.Details), secret) {
				t.Fatalf("entry %d carries the credentials: %s", e.Index, e.Details)
			}
		}
	}

	// B's chain and everything else are out of reach; so is publishing.
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 300*time.Millisecond) }
	for _, tc := range []struct {
		subject string
		try     func() error
	}{
		{`Subscription to "` + events.AuditChain(b.orgID) + `"`, func() error {
			_, err := siem.SubscribeSync(events.AuditChain(b.orgID))
			return err
		}},
		{"$JS.API.CONSUMER.INFO.AUDIT." + other.Consumer, func() error {
			c, cancel := short()
			defer cancel()
			_, err := js.Consumer(c, events.StreamAudit, other.Consumer)
			return err
		}},
		{"$JS.API.CONSUMER.MSG.NEXT.AUDIT." + other.Consumer, func() error {
			return siem.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.AUDIT."+other.Consumer, issued.InboxPrefix+".x", []byte(`{"batch":1}`))
		}},
		{"$JS.API.CONSUMER.CREATE.AUDIT", func() error {
			c, cancel := short()
			defer cancel()
			_, err := js.CreateConsumer(c, events.StreamAudit, jetstream.ConsumerConfig{Name: "mine", FilterSubject: events.AuditChain(b.orgID)})
			return err
		}},
		{`Publish to "` + events.AuditChain(a.orgID) + `"`, func() error { return siem.Publish(events.AuditChain(a.orgID), []byte("{}")) }},
		{`Publish to "tenancy.evt.` + b.orgID, func() error {
			return siem.Publish(events.DomainEvent("tenancy", b.orgID, "org", b.orgID), []byte("{}"))
		}},
		{`Publish to "svc.tenancy.`, func() error { return siem.Publish(events.ServiceEndpoint("tenancy", "org_get"), []byte("{}")) }},
	} {
		if err := tc.try(); err != nil {
			t.Logf("%s: %v", tc.subject, err)
		}
		siem.refused(t, tc.subject)
	}

	list := c.must(200, "GET", api+"/audit/siem-credentials", a.access, a.orgID, nil)
	if !strings.Contains(string(list.Raw), issued.ID) || strings.Contains(string(list.Raw), `"credentials"`) ||
		strings.Contains(string(list.Raw), secrets[0]) || strings.Contains(string(list.Raw), secrets[1]) ||
		strings.Contains(string(list.Raw), other.ID) {
		t.Fatalf("list of A: %s", list.Raw)
	}
	c.must(404, "DELETE", api+"/audit/siem-credentials/"+issued.ID, b.access, b.orgID, nil)

	c.must(204, "DELETE", api+"/audit/siem-credentials/"+issued.ID, a.access, a.orgID, nil)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if siem.Status() == nats.CONNECTED {
			return errors.New("the SIEM is still connected after DELETE")
		}
		return nil
	})
	if _, err := dialSIEMCreds(t, run.natsURL, issued); err == nil {
		t.Fatal("revoked SIEM credentials connected again")
	}
	list = c.must(200, "GET", api+"/audit/siem-credentials", a.access, a.orgID, nil)
	if !strings.Contains(string(list.Raw), `"status":"revoked"`) {
		t.Fatalf("list after DELETE: %s", list.Raw)
	}
	// Both changes are in A's audit log, by A's admin.
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		r := c.must(200, "GET", api+"/audit?action=audit.siem_credential.*", a.access, a.orgID, nil)
		var page events.List[events.AuditEntry]
		if err := json.Unmarshal(r.Raw, &page); err != nil {
			return err
		}
		got := map[string]string{}
		for _, e := range page.Items {
			if e.Resource.ID == issued.ID {
				got[e.Action] = e.Actor.ID
			}
		}
		if got["audit.siem_credential.created"] != a.userID || got["audit.siem_credential.revoked"] != a.userID {
			return fmt.Errorf("audit log of A: %s", r.Raw)
		}
		return nil
	})
}
