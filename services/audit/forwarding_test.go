package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/forward"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// siem is a webhook receiver that verifies every delivery's signature
// with the secret it currently expects, and refuses the others.
type siem struct {
	mu      sync.Mutex
	secret  string
	got     map[uint64]events.AuditEntry
	tests   int
	refused int
}

func (s *siem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := forward.Verify([]byte(s.secret), r.Header, body, time.Now(), 0); err != nil {
		s.refused++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var e events.AuditEntry
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if e.Action == forward.TestAction {
		s.tests++
	} else {
		s.got[e.Index] = e
	}
}

func (s *siem) expect(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = secret
}

// received reports the number of chain entries received, and whether they
// are exactly 1…n of org.
func (s *siem) received(org string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := uint64(1); i <= uint64(len(s.got)); i++ {
		if e, ok := s.got[i]; !ok || e.OrgID != org {
			return len(s.got), fmt.Errorf("entry %d missing (of %d)", i, len(s.got))
		}
	}
	return len(s.got), nil
}

func (e *env) putConfig(org string, req events.AuditConfigRequest) (events.AuditConfig, *events.Error) {
	e.t.Helper()
	var c events.AuditConfig
	err := e.call(org, "admin", events.OpAuditPutConfig, req, &c)
	return c, err
}

// TestForwardingConfigSecretsAndDelivery configures a webhook destination
// through the audit configuration and checks that the org's chain is
// delivered, signed with the secret, which is never shown back nor put in
// any event; that the status and the test operation work; that replacing
// the secret reaches the forwarder; and that removing the destination
// stops it and deletes its consumer.
func TestForwardingConfigSecretsAndDelivery(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1")
	org := "org-fwd"
	rx := &siem{secret: "first-secret-123", got: map[uint64]events.AuditEntry{}}
	srv := httptest.NewServer(rx)
	t.Cleanup(srv.Close)
	days := 0
	dest := events.AuditDestinationRequest{AuditDestinationConfig: events.AuditDestinationConfig{ID: "siem", Kind: "webhook", URL: srv.URL, FromStart: true},
		Secret: "first-secret-123"}

	// Invalid destinations are refused with field errors, before anything
	// is stored.
	for _, bad := range [][]events.AuditDestinationRequest{
		{{AuditDestinationConfig: events.AuditDestinationConfig{ID: "x", Kind: "webhook", URL: srv.URL}}},
		{{AuditDestinationConfig: events.AuditDestinationConfig{ID: "x", Kind: "ftp"}}},
		{{AuditDestinationConfig: events.AuditDestinationConfig{ID: "bad id", Kind: "syslog", Address: "h:1"}}},
		{dest, dest},
	} {
		if _, err := e.putConfig(org, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: "archive", Forwarding: &bad}); err == nil ||
			err.Code != events.CodeInvalid || !strings.HasPrefix(err.Fields[0].Field, "forwarding[") {
			t.Errorf("accepted %+v: %v", bad, err)
		}
	}

	dests := []events.AuditDestinationRequest{dest}
	c, err := e.putConfig(org, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: "archive", Forwarding: &dests})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(c)
	if len(c.Forwarding) != 1 || !c.Forwarding[0].SecretSet || c.Forwarding[0].URL != srv.URL || bytes.Contains(raw, []byte("first-secret")) {
		t.Fatalf("config after put: %s", raw)
	}
	for i := range 5 {
		e.publish(event(t, org, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: org}, i))
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		n, err := rx.received(org)
		if err == nil && n < 7 { // the two configuration events and the five
			err = fmt.Errorf("%d entries delivered", n)
		}
		return err
	})
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var got events.AuditConfig
		if err := e.call(org, "admin", events.OpAuditGetConfig, nil, &got); err != nil {
			return err
		}
		if st := got.Forwarding[0].Status; st == nil || !st.Running || st.Delivered < 7 || st.LastIndex < 7 || st.LastSuccess == "" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// The test operation, on the configured destination and on others.
	var res events.AuditForwardingTestReply
	if err := e.call(org, "admin", events.OpAuditForwardingTest, events.AuditForwardingTestRequest{ID: "siem"}, &res); err != nil || !res.OK {
		t.Fatalf("test of the configured destination: %+v %v", res, err)
	}
	closed := closedPort(t)
	if err := e.call(org, "admin", events.OpAuditForwardingTest, events.AuditForwardingTestRequest{Destination: &events.AuditDestinationRequest{
		AuditDestinationConfig: events.AuditDestinationConfig{Kind: "webhook", URL: "http://" + closed}, Secret: "x"}}, &res); err != nil || res.OK || res.Error == "" {
		t.Fatalf("test of an unreachable destination: %+v %v", res, err)
	}
	if err := e.call(org, "admin", events.OpAuditForwardingTest, events.AuditForwardingTestRequest{ID: "nosuch"}, nil); err == nil || err.Code != events.CodeNotFound {
		t.Fatalf("test of an unknown destination: %v", err)
	}
	if err := e.call(org, "operator", events.OpAuditForwardingTest, events.AuditForwardingTestRequest{ID: "siem"}, nil); err == nil || err.Code != events.CodeForbidden {
		t.Fatalf("an operator tested: %v", err)
	}

	// Sending the same configuration again (without the secret) changes
	// nothing; a new secret reaches the forwarder.
	same := []events.AuditDestinationRequest{{AuditDestinationConfig: dest.AuditDestinationConfig}}
	if c, err = e.putConfig(org, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: "archive", Forwarding: &same}); err != nil || !c.Forwarding[0].SecretSet {
		t.Fatalf("put again: %+v %v", c, err)
	}
	rx.expect("second-secret-456")
	rotated := []events.AuditDestinationRequest{{AuditDestinationConfig: dest.AuditDestinationConfig, Secret: "second-secret-456"}}
	if _, err := e.putConfig(org, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: "archive", Forwarding: &rotated}); err != nil {
		t.Fatal(err)
	}
	e.publish(event(t, org, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: org}, 99))
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		n, err := rx.received(org)
		if err == nil && n < 9 { // + the secret's replacement and the new event
			err = fmt.Errorf("%d entries delivered after the new secret", n)
		}
		return err
	})

	// No secret is in any event on the stream.
	for _, m := range e.auditMessages() {
		if bytes.Contains(m, []byte("first-secret")) || bytes.Contains(m, []byte("second-secret")) {
			t.Fatalf("a secret is on the AUDIT stream: %s", m)
		}
	}

	// Removing the destination stops it and deletes its consumer.
	none := []events.AuditDestinationRequest{}
	if c, err = e.putConfig(org, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: "archive", Forwarding: &none}); err != nil || len(c.Forwarding) != 0 {
		t.Fatalf("remove: %+v %v", c, err)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, err := e.js.Consumer(context.Background(), events.StreamAudit, forward.ConsumerName(org, "siem"))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil
		}
		return fmt.Errorf("consumer still there: %v", err)
	})
}

// auditMessages returns the data of every message on stream AUDIT.
func (e *env) auditMessages() [][]byte {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, events.StreamAudit)
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]byte
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		out = append(out, m.Data)
	}
	return out
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
