package natsauth_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// answer subscribes a command responder on an agent's leaf client.
func answer(t *testing.T, c *conn, org, agent string) {
	t.Helper()
	if _, err := c.Subscribe(events.AgentCommands(org, agent), func(m *nats.Msg) { _ = m.Respond([]byte(agent)) }); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// refused asserts that the hub refuses a leaf connection with creds.
func refused(t *testing.T, h *hub, creds []byte) {
	t.Helper()
	dialRawLeaf(t, h.leafPort, creds).waitLine(t, "Authorization Violation")
}

// (4) Revoking an agent closes its live leaf connection and its
// credentials never work again, across a hub restart; other agents and the
// services are not disturbed.
func TestRevokeDisconnectsAgentAndRefusesItsCreds(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	svc, js := h.services()
	rv := h.revoker()
	ctx := ctxT(t)

	creds1, pub1, err := h.keys.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l1 := h.startLeaf(creds1)
	l1.waitConnected(t)
	answer(t, l1.client(t, "o1", "a1"), "o1", "a1")
	_, a2, _ := h.agentOnLeaf("o1", "a2")
	answer(t, a2, "o1", "a2")
	checkRequest(t, svc, events.AgentCommand("o1", "a1", "ping"), "a1")

	if err := rv.Revoke(ctx, pub1); err != nil {
		t.Fatal(err)
	}
	natsCheck(t, func() error {
		if n := h.srv.NumLeafNodes(); n != 1 {
			return fmt.Errorf("hub has %d leaf connections, want a2's only", n)
		}
		return nil
	})
	refused(t, h, creds1)
	if _, err := svc.Request(events.AgentCommand("o1", "a1", "ping"), nil, 300*time.Millisecond); err == nil {
		t.Fatal("revoked agent still answers commands")
	}
	// Nobody else is disturbed: the other agent, the services (APP's JWT
	// was pushed too), JetStream.
	checkRequest(t, svc, events.AgentCommand("o1", "a2", "ping"), "a2")
	if _, err := js.Publish(ctx, events.AuditChain("o1"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// Revoking again is a no-op; re-enrolling gives working credentials.
	if err := rv.Revoke(ctx, pub1); err != nil {
		t.Fatal(err)
	}
	fresh, _, err := h.keys.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l1b := h.startLeaf(fresh)
	l1b.waitConnected(t)

	// The revocation is stored by the resolver: after a restart the old
	// credentials are still refused and everyone else reconnects.
	h.restart()
	refused(t, h, creds1)
	l1b.waitConnected(t)
	natsCheck(t, func() error {
		if n := h.srv.NumLeafNodes(); n != 2 {
			return fmt.Errorf("%d leaf connections after restart, want 2", n)
		}
		return nil
	})
	checkRequest(t, svc, events.AgentCommand("o1", "a2", "ping"), "a2")
}

// Two control-plane processes revoking at the same moment must not lose
// either revocation (each reads, merges, pushes and reads back).
func TestConcurrentRevocationsFromTwoProcesses(t *testing.T) {
	t.Parallel()
	k1 := newKeys(t)
	path := filepath.Join(t.TempDir(), "nats-keys.json")
	if err := k1.Save(path); err != nil {
		t.Fatal(err)
	}
	k2, err := natsauth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, k1)
	_, js := h.services()
	ctx := ctxT(t)
	r1, err := k1.NewRevoker(ctx, js, h.system().Conn, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, js2 := h.services()
	r2, err := k2.NewRevoker(ctx, js2, h.system().Conn, 1)
	if err != nil {
		t.Fatal(err)
	}
	var creds [][]byte
	var pubs []string
	for i := range 6 {
		c, p, err := k1.AgentCreds("o1", fmt.Sprintf("a%d", i), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		creds, pubs = append(creds, c), append(pubs, p)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(pubs))
	for i, p := range pubs {
		r := r1
		if i%2 == 1 {
			r = r2
		}
		wg.Go(func() { errs <- r.Revoke(ctx, p) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range creds {
		refused(t, h, c)
	}
	// Sync pushes the definitions again and keeps the revocations.
	if err := r2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	refused(t, h, creds[0])
}

// The server applies only account JWTs signed by the operator's signing
// key. A system user can still make a resolver *store* a forged one (it is
// checked only when applied); Revoke must then keep the revocations the
// server enforces, and its push repairs the store. Other users cannot
// reach the claims endpoints at all.
func TestOnlyTheOperatorCanChangeAccounts(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	h := newHub(t, k)
	sys := h.system()
	svc, _ := h.services()
	rv := h.revoker()
	ctx := ctxT(t)
	creds1, pub1, err := k.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := rv.Revoke(ctx, pub1); err != nil {
		t.Fatal(err)
	}

	forger, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	ac := jwt.NewAccountClaims(k.AccountPublicKey(natsauth.AccountAgents))
	ac.Name = "AGENTS"
	ac.DefaultPermissions.Pub.Allow.Add(">") // an agent that may do anything, never revoked
	forged, err := ac.Encode(forger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(forged), 300*time.Millisecond); err == nil {
		t.Fatal("a service user reached the claims update endpoint")
	}
	m, err := sys.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(forged), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server's answer to a forged account JWT: %s", m.Data)

	// Not applied: the live AGENTS account still confines agents and
	// still refuses the revoked credentials.
	refused(t, h, creds1)
	_, agent, _ := h.agentOnLeaf("o1", "a2")
	rec := record(t, svc, "svc.>")
	metrics := record(t, svc, events.AgentMetrics("o1", "a2"))
	if err := agent.Publish("svc.tenancy.x", nil); err != nil {
		t.Fatal(err)
	}
	if err := agent.Publish(events.AgentMetrics("o1", "a2"), nil); err != nil {
		t.Fatal(err)
	}
	metrics.waitFor(t, events.AgentMetrics("o1", "a2"))
	if got := rec.subjects(); len(got) != 0 {
		t.Fatalf("agent reached %v", got)
	}

	// The next revocation keeps a1's, although the store now holds the
	// forged JWT, and its push replaces the forged JWT: after a restart
	// both stay refused and the account loads.
	creds3, pub3, err := k.AgentCreds("o1", "a3", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := rv.Revoke(ctx, pub3); err != nil {
		t.Fatal(err)
	}
	h.restart()
	refused(t, h, creds1)
	refused(t, h, creds3)
	_, _, _ = h.agentOnLeaf("o1", "a4")
}

// Agent credentials expire; the server closes the leaf connection when
// they do and refuses them afterwards.
func TestExpiredAgentCredsAreDisconnected(t *testing.T) {
	t.Parallel()
	h := newHub(t, newKeys(t))
	creds, _, err := h.keys.AgentCreds("o1", "a1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l := h.startLeaf(creds)
	l.waitConnected(t)
	natsCheck(t, func() error {
		if n := h.srv.NumLeafNodes(); n != 0 {
			return fmt.Errorf("expired agent still connected")
		}
		return nil
	})
	// Depending on timing the server names the expiry or just refuses.
	checkLines(t, dialRawLeaf(t, h.leafPort, creds), func(lines []string) error {
		for _, l := range lines {
			if strings.Contains(l, "User Authentication Expired") || strings.Contains(l, "Authorization Violation") {
				return nil
			}
		}
		return fmt.Errorf("expired creds not refused: %q", lines)
	})
}
