package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/siemcreds"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// newSecuredEnv is newEnv on a hub in operator mode, as `infrapilot dev`
// runs it: the test and the audit hosts connect to account APP with
// service credentials, and the issuer is the real natsauth one, revoking
// through the system account.
func newSecuredEnv(t *testing.T) (*env, *natsauth.SIEMIssuer) {
	t.Helper()
	keys, err := natsauth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, err := natsx.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	hub, err := natsx.StartHub(natsx.HubConfig{Host: "127.0.0.1", Port: port, StoreDir: filepath.Join(dir, "js"),
		Configure: func(o *server.Options) error { return keys.ConfigureServer(o, filepath.Join(dir, "accounts")) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Shutdown)
	connect := func(name string, creds []byte) (*nats.Conn, nats.Option) {
		opt, err := natsauth.ConnectOption(creds)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := natsx.Connect(natsx.ConnConfig{URL: hub.ClientURL(), Name: name, Options: []nats.Option{opt}}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc, opt
	}
	svcCreds, err := keys.ServiceCreds("audit-test")
	if err != nil {
		t.Fatal(err)
	}
	nc, svcOpt := connect("test", svcCreds)
	js, err := natsx.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := events.Ensure(ctx, js, events.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	sysCreds, err := keys.SystemCreds()
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := connect("test-system", sysCreds)
	rev, err := keys.NewRevoker(ctx, js, sys, 1)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := natsauth.NewSIEMIssuer(keys, rev, hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, pgURL: pgtest.URL(t), hostURL: hub.ClientURL(), hostOpts: []nats.Option{svcOpt}}, iss
}

// siemClient is a SIEM's own NATS connection, holding nothing but the
// credentials the API returned. It records what the server refuses.
type siemClient struct {
	*nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	errs []string
}

func dialSIEM(t *testing.T, url string, c events.AuditSIEMCredentialsIssued) (*siemClient, error) {
	t.Helper()
	auth, err := natsauth.ConnectOption([]byte(c.Credentials))
	if err != nil {
		t.Fatal(err)
	}
	s := &siemClient{}
	nc, err := nats.Connect(url, auth, nats.CustomInboxPrefix(c.InboxPrefix), nats.ReconnectWait(50*time.Millisecond),
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
	if s.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return s, nil
}

// refused waits until the server reported a permissions violation naming
// subject.
func (s *siemClient) refused(t *testing.T, subject string) {
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

// read pulls from the credential's consumer until the entries include an
// entry with action, and returns every entry read (acknowledged).
func (s *siemClient) read(t *testing.T, consumer, action string) []events.AuditEntry {
	t.Helper()
	ctx := context.Background()
	cons, err := s.js.Consumer(ctx, events.StreamAudit, consumer)
	if err != nil {
		t.Fatalf("the SIEM cannot read its consumer: %v", err)
	}
	var got []events.AuditEntry
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			var e events.AuditEntry
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatalf("%s: %v", m.Subject(), err)
			}
			got = append(got, e)
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range got {
			if e.Action == action {
				return nil
			}
		}
		return fmt.Errorf("%d entries read, none %s yet", len(got), action)
	})
	return got
}

// credsSecrets returns the user seed and the JWT of a .creds text.
func credsSecrets(t *testing.T, creds string) (seed, tok string) {
	t.Helper()
	kp, err := jwt.ParseDecoratedUserNKey([]byte(creds))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	if tok, err = jwt.ParseDecoratedJWT([]byte(creds)); err != nil {
		t.Fatal(err)
	}
	return string(raw), tok
}

func (e *env) createSIEM(org, role string, req events.AuditSIEMCredentialsRequest) (events.AuditSIEMCredentialsIssued, *events.Error) {
	e.t.Helper()
	var out events.AuditSIEMCredentialsIssued
	err := e.call(org, role, events.OpAuditSIEMCredentialsCreate, req, &out)
	return out, err
}

func (e *env) listSIEM(org string) (events.List[events.AuditSIEMCredential], string) {
	e.t.Helper()
	var raw json.RawMessage
	if err := e.call(org, "admin", events.OpAuditSIEMCredentialsList, events.AuditPageRequest{}, &raw); err != nil {
		e.t.Fatalf("list: %v", err)
	}
	var out events.List[events.AuditSIEMCredential]
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatal(err)
	}
	return out, string(raw)
}

// TestSIEMCredentialsReadOnlyTheirOrgsChain: an admin's SIEM credentials
// read the org's chain — the history before them and the entry recording
// their own creation — through their consumer, on a real hub in operator
// mode, and nothing of another org; they can publish nothing. The list
// shows them without any secret, the events carry only the user key, and
// revoking closes the SIEM's connection, refuses the credentials and
// deletes the consumer.
func TestSIEMCredentialsReadOnlyTheirOrgsChain(t *testing.T) {
	e, iss := newSecuredEnv(t)
	cfg := testConfig()
	cfg.SIEMCredentials = iss
	cfg.SIEM = siemcreds.Config{MaxActivePerOrg: 2}
	e.startHost(cfg, "a1")
	orgA, orgB := "org-siem-a", "org-siem-b"
	for i := range 3 {
		e.publish(event(t, orgA, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: orgA}, i))
		e.publish(event(t, orgB, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: orgB}, i))
	}
	e.waitChained(orgA, 3, 30*time.Second)
	e.waitChained(orgB, 3, 30*time.Second)

	for _, role := range []string{"viewer", "operator"} {
		if _, err := e.createSIEM(orgA, role, events.AuditSIEMCredentialsRequest{Name: "x"}); err == nil || err.Code != events.CodeForbidden {
			t.Fatalf("create as %s: %v", role, err)
		}
		if err := e.call(orgA, role, events.OpAuditSIEMCredentialsList, events.AuditPageRequest{}, nil); err == nil || err.Code != events.CodeForbidden {
			t.Fatalf("list as %s: %v", role, err)
		}
		if err := e.call(orgA, role, events.OpAuditSIEMCredentialsRevoke, events.AuditIDRequest{ID: "x"}, nil); err == nil || err.Code != events.CodeForbidden {
			t.Fatalf("revoke as %s: %v", role, err)
		}
	}
	for _, c := range []struct {
		req   events.AuditSIEMCredentialsRequest
		field string
	}{
		{events.AuditSIEMCredentialsRequest{}, "name"},
		{events.AuditSIEMCredentialsRequest{Name: "bad\x00name"}, "name"},
		{events.AuditSIEMCredentialsRequest{Name: "s", TTL: "soon"}, "ttl"},
		{events.AuditSIEMCredentialsRequest{Name: "s", TTL: "401d"}, "ttl"},
		{events.AuditSIEMCredentialsRequest{Name: "s", TTL: "9601h"}, "ttl"},
		{events.AuditSIEMCredentialsRequest{Name: "s", TTL: "10s"}, "ttl"},
	} {
		_, err := e.createSIEM(orgA, "admin", c.req)
		if err == nil || err.Code != events.CodeInvalid || len(err.Fields) != 1 || err.Fields[0].Field != c.field {
			t.Fatalf("create %+v: %+v", c.req, err)
		}
	}

	before := time.Now()
	a, err := e.createSIEM(orgA, "admin", events.AuditSIEMCredentialsRequest{Name: "splunk-prod", TTL: "720h"})
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := time.Parse(time.RFC3339Nano, a.ExpiresAt)
	if !strings.Contains(a.Credentials, "NATS USER JWT") || a.NATSURL != iss.URL() || a.Stream != events.StreamAudit ||
		a.Consumer != natsauth.SIEMConsumerName(a.ID) || a.Subject != events.AuditChain(orgA) ||
		a.InboxPrefix != natsauth.SIEMInbox(a.ID) || a.Status != events.AuditSIEMStatusActive || a.Name != "splunk-prod" ||
		a.CreatedBy != "admin-1" || exp.Before(before.Add(720*time.Hour-2*time.Second)) || exp.After(time.Now().Add(720*time.Hour)) {
		t.Fatalf("issued %+v", a)
	}
	if key, err := natsauth.UserPublicKey([]byte(a.Credentials)); err != nil || key != a.UserKey {
		t.Fatalf("user key %q, the creds' %q (%v)", a.UserKey, key, err)
	}
	b, err := e.createSIEM(orgB, "owner", events.AuditSIEMCredentialsRequest{Name: "b's siem"})
	if err != nil {
		t.Fatal(err)
	}
	if exp, _ := time.Parse(time.RFC3339Nano, b.ExpiresAt); exp.Before(before.Add(90*24*time.Hour - 2*time.Second)) {
		t.Fatalf("default lifetime: expires %s", b.ExpiresAt)
	}

	siem, derr := dialSIEM(t, a.NATSURL, a)
	if derr != nil {
		t.Fatal(derr)
	}
	got := siem.read(t, a.Consumer, "audit.siem_credential.created")
	for i, en := range got {
		if en.OrgID != orgA || en.Index != uint64(i+1) {
			t.Fatalf("SIEM of %s read entry %d: %+v", orgA, i+1, en)
		}
	}
	created := got[len(got)-1]
	if len(got) != 4 || created.Resource != (events.AuditResource{Type: events.AuditAggSIEMCredential, ID: a.ID}) ||
		created.Actor.ID != "admin-1" || !strings.Contains(string(created.Details), a.UserKey) {
		t.Fatalf("entries read: %+v", got)
	}
	seed, tok := credsSecrets(t, a.Credentials)
	if strings.Contains(string(created.Details), seed) || strings.Contains(string(created.Details), tok) {
		t.Fatalf("the creation entry carries the credentials: %s", created.Details)
	}

	// Nothing of org B, nothing else, and no publishing.
	ctx := context.Background()
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 300*time.Millisecond) }
	for _, c := range []struct {
		subject string
		try     func() error
	}{
		{"$JS.API.CONSUMER.INFO.AUDIT." + b.Consumer, func() error {
			c, cancel := short()
			defer cancel()
			_, err := siem.js.Consumer(c, events.StreamAudit, b.Consumer)
			return err
		}},
		{"$JS.API.CONSUMER.MSG.NEXT.AUDIT." + b.Consumer, func() error {
			return siem.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.AUDIT."+b.Consumer, a.InboxPrefix+".x", []byte(`{"batch":1}`))
		}},
		{"$JS.API.CONSUMER.CREATE.AUDIT", func() error {
			c, cancel := short()
			defer cancel()
			_, err := siem.js.CreateConsumer(c, events.StreamAudit, jetstream.ConsumerConfig{Name: "mine", FilterSubject: events.AuditChain(orgB)})
			return err
		}},
		{`Subscription to "audit.chain.` + orgB + `"`, func() error {
			_, err := siem.SubscribeSync(events.AuditChain(orgB))
			return err
		}},
		{`Publish to "audit.chain.` + orgA + `"`, func() error { return siem.Publish(events.AuditChain(orgA), []byte("{}")) }},
		{`Publish to "svc.audit.siem_credentials_create"`, func() error {
			return siem.Publish(events.ServiceEndpoint("audit", events.OpAuditSIEMCredentialsCreate), []byte("{}"))
		}},
	} {
		if err := c.try(); err != nil {
			t.Logf("%s: %v", c.subject, err)
		}
		siem.refused(t, c.subject)
	}

	// The list shows both orgs' credentials to their own org only, and no
	// secret.
	list, raw := e.listSIEM(orgA)
	if len(list.Items) != 1 || list.Items[0].ID != a.ID || list.Items[0].UserKey != a.UserKey ||
		list.Items[0].Status != events.AuditSIEMStatusActive || strings.Contains(raw, "credentials") || strings.Contains(raw, seed) ||
		strings.Contains(raw, tok) {
		t.Fatalf("list of %s: %s", orgA, raw)
	}
	if list, raw := e.listSIEM(orgB); len(list.Items) != 1 || list.Items[0].ID != b.ID {
		t.Fatalf("list of %s: %s", orgB, raw)
	}

	// Another org cannot revoke it; its own admin can, and the SIEM is cut
	// off at once.
	if err := e.call(orgB, "admin", events.OpAuditSIEMCredentialsRevoke, events.AuditIDRequest{ID: a.ID}, nil); err == nil || err.Code != events.CodeNotFound {
		t.Fatalf("revoke of %s's credential from %s: %v", orgA, orgB, err)
	}
	if err := e.call(orgA, "admin", events.OpAuditSIEMCredentialsRevoke, events.AuditIDRequest{ID: a.ID}, nil); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if s := siem.Status(); s == nats.CONNECTED {
			return errors.New("the revoked SIEM is still connected")
		}
		return nil
	})
	if _, err := dialSIEM(t, a.NATSURL, a); err == nil {
		t.Fatal("revoked credentials connected again")
	}
	if _, err := e.js.Consumer(ctx, events.StreamAudit, a.Consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the revoked credential's consumer: %v", err)
	}
	if _, err := e.js.Consumer(ctx, events.StreamAudit, b.Consumer); err != nil {
		t.Fatalf("another org's consumer went with it: %v", err)
	}
	list, raw = e.listSIEM(orgA)
	if len(list.Items) != 1 || list.Items[0].Status != events.AuditSIEMStatusRevoked || list.Items[0].RevokedBy != "admin-1" {
		t.Fatalf("list after revoking: %s", raw)
	}
	if err := e.call(orgA, "admin", events.OpAuditSIEMCredentialsRevoke, events.AuditIDRequest{ID: a.ID}, nil); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	if err := e.call(orgA, "admin", events.OpAuditSIEMCredentialsRevoke, events.AuditIDRequest{ID: "nosuchcredential"}, nil); err == nil || err.Code != events.CodeNotFound {
		t.Fatalf("revoking an unknown credential: %v", err)
	}
	e.waitChained(orgA, 5, 30*time.Second)
	actions := e.actions(orgA)
	if n := strings.Count(strings.Join(actions, " "), "audit.siem_credential.revoked"); n != 1 {
		t.Fatalf("chain of %s: %v", orgA, actions)
	}

	// The cap counts active credentials only.
	for i := range 2 {
		if _, err := e.createSIEM(orgA, "admin", events.AuditSIEMCredentialsRequest{Name: fmt.Sprint("s", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.createSIEM(orgA, "admin", events.AuditSIEMCredentialsRequest{Name: "one too many"}); err == nil || err.Code != events.CodeConflict {
		t.Fatalf("third active credential: %v", err)
	}
}

// TestSIEMCredentialsUnavailableWithoutIssuer: a control plane whose hub
// is not in operator mode says so instead of issuing anything.
func TestSIEMCredentialsUnavailableWithoutIssuer(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1")
	_, err := e.createSIEM("org-x", "admin", events.AuditSIEMCredentialsRequest{Name: "splunk"})
	if err == nil || err.Code != events.CodeUnavailable || !strings.Contains(err.Message, "operator mode") {
		t.Fatalf("create without an issuer: %+v", err)
	}
	if list, raw := e.listSIEM("org-x"); len(list.Items) != 0 {
		t.Fatalf("list: %s", raw)
	}
}
