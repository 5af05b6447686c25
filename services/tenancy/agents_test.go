package tenancy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/tenancy"
	"github.com/nats-io/nats.go/jetstream"
)

// issuer issues real agent credentials (natsauth keys) and records
// revocations instead of pushing them to a hub: this harness's NATS
// server is not in operator mode. Revocation against a real hub is
// tested in natsauth and end to end in cmd/infrapilot (TestAgentEndToEnd).
type issuer struct {
	keys    *natsauth.Keys
	mu      sync.Mutex
	revoked []string
}

func newIssuer(t *testing.T) *issuer {
	k, err := natsauth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{keys: k}
}

func (i *issuer) Issue(org, agent string) ([]byte, string, error) {
	return i.keys.AgentCreds(org, agent, time.Hour)
}

func (i *issuer) Revoke(_ context.Context, key string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.revoked = append(i.revoked, key)
	return nil
}

func (i *issuer) URL() string { return "nats-leaf://hub.example:7422" }

func (i *issuer) revokedKeys() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.revoked...)
}

func enrollReq(token, fp string) events.EnrollAgentRequest {
	return events.EnrollAgentRequest{Token: token, Fingerprint: fp, Hostname: "host-" + fp, OS: "linux", Arch: "amd64", Version: "1.2.3"}
}

func TestAgentEnrollmentRegistryAndDeletion(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	h := start(t, tenancy.Config{AgentCredentials: iss})
	owner := h.signUp("fleet@example.com", "Fleet")
	var tok events.NewEnrollmentToken
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: "t", Labels: map[string]string{"env": "prod"}}, &tok)

	var first events.AgentEnrollment
	h.must(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m1"), &first)
	if first.OrgID != owner.org || first.AgentID == "" || first.NATSURL != iss.URL() || first.Reenrolled {
		t.Fatalf("enrollment: %+v", first)
	}
	key1, err := natsauth.UserPublicKey([]byte(first.Credentials))
	if err != nil {
		t.Fatalf("credentials are not a creds file: %v", err)
	}

	var a events.Agent
	h.must(owner, events.OpTenancyGetAgent, events.IDRequest{ID: first.AgentID}, &a)
	if a.Hostname != "host-m1" || a.Fingerprint != "m1" || a.Status != events.AgentOffline || a.Labels["env"] != "prod" || a.LastSeen != nil {
		t.Fatalf("agent: %+v", a)
	}
	var st events.EnrollStatus
	h.must(owner, events.OpTenancyEnrollStatus, events.EnrollStatusRequest{Fingerprint: "m1"}, &st)
	if !st.Enrolled || st.AgentID != first.AgentID {
		t.Fatalf("status: %+v", st)
	}
	h.must(owner, events.OpTenancyEnrollStatus, events.EnrollStatusRequest{Fingerprint: "m9"}, &st)
	if st.Enrolled {
		t.Fatalf("unknown machine enrolled: %+v", st)
	}

	// Re-enrolling keeps the id, issues new credentials, revokes the old.
	var again events.AgentEnrollment
	h.must(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m1"), &again)
	key2, _ := natsauth.UserPublicKey([]byte(again.Credentials))
	if again.AgentID != first.AgentID || !again.Reenrolled || key2 == key1 {
		t.Fatalf("re-enrollment: %+v", again)
	}
	if r := iss.revokedKeys(); len(r) != 1 || r[0] != key1 {
		t.Fatalf("revoked after re-enrollment: %v", r)
	}

	// Another org sees nothing of it.
	other := h.signUp("other@example.com", "Other")
	h.fails(other, events.OpTenancyGetAgent, events.IDRequest{ID: first.AgentID}, events.CodeNotFound, "")
	h.fails(other, events.OpTenancyDeleteAgent, events.IDRequest{ID: first.AgentID}, events.CodeNotFound, "")
	var list events.List[events.Agent]
	h.must(other, events.OpTenancyListAgents, events.ListRequest{}, &list)
	if len(list.Items) != 0 {
		t.Fatalf("other org lists %+v", list.Items)
	}

	// Viewers read; only admins delete.
	viewer := who{org: owner.org, user: "v", role: events.RoleViewer}
	h.must(viewer, events.OpTenancyListAgents, events.ListRequest{}, &list)
	if len(list.Items) != 1 {
		t.Fatalf("list: %+v", list)
	}
	h.fails(viewer, events.OpTenancyDeleteAgent, events.IDRequest{ID: first.AgentID}, events.CodeForbidden, "")

	// Free plan: 2 agents. Deleting one frees its slot and revokes it.
	h.must(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m2"), &events.AgentEnrollment{})
	h.fails(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m3"), events.CodeConflict, "allows 2 agents")
	h.must(owner, events.OpTenancyDeleteAgent, events.IDRequest{ID: first.AgentID}, nil)
	if r := iss.revokedKeys(); len(r) != 2 || r[1] != key2 {
		t.Fatalf("revoked after deletion: %v", r)
	}
	h.fails(owner, events.OpTenancyGetAgent, events.IDRequest{ID: first.AgentID}, events.CodeNotFound, "")
	h.fails(owner, events.OpTenancyDeleteAgent, events.IDRequest{ID: first.AgentID}, events.CodeNotFound, "")
	var third events.AgentEnrollment
	h.must(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m3"), &third)
	// The deleted machine comes back as a new agent, within the limit.
	h.fails(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m1"), events.CodeConflict, "allows 2 agents")
	var usage events.Usage
	h.must(owner, events.OpTenancyUsage, nil, &usage)
	if usage.Agents != 2 {
		t.Fatalf("usage: %+v", usage)
	}

	// Bad facts are field errors; a bad token says nothing more.
	e := h.fails(who{}, events.OpTenancyEnrollAgent, events.EnrollAgentRequest{Token: tok.Token, Fingerprint: "m4", Hostname: "a\nb", OS: "", Arch: "x"}, events.CodeInvalid, "")
	hasField(t, e, "hostname")
	hasField(t, e, "os")
	h.fails(who{}, events.OpTenancyEnrollAgent, enrollReq("ipe_forged", "m4"), events.CodeUnauthorized, "invalid enrollment token")
}

func TestEnrollWithoutCredentialIssuerIsUnavailable(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{})
	owner := h.signUp("x@example.com", "X")
	var tok events.NewEnrollmentToken
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: "t"}, &tok)
	h.fails(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m1"), events.CodeUnavailable, "operator mode")
}

func TestAgentPresenceFromHeartbeats(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{AgentCredentials: newIssuer(t), PresenceTimeout: 1500 * time.Millisecond})
	owner := h.signUp("p@example.com", "P")
	other := h.signUp("q@example.com", "Q")
	var tok events.NewEnrollmentToken
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: "t"}, &tok)
	var en events.AgentEnrollment
	h.must(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "m1"), &en)

	beat := func(org string) {
		b, _ := json.Marshal(events.AgentHeartbeatMessage{V: 1, Time: time.Now(), OutboxPending: 7,
			AgentInfo: events.AgentInfo{AgentID: en.AgentID, Version: "1.2.4", Hostname: "renamed", Engine: "podman 4.3.1", StartedAt: time.Now()}})
		if err := h.nc.Publish(events.AgentHeartbeat(org, en.AgentID), b); err != nil {
			t.Fatal(err)
		}
		m, _ := json.Marshal(events.AgentMetricsMessage{V: 1, Time: time.Now(), Host: events.HostMetrics{CPUs: 2, MemTotal: 1 << 30}})
		if err := h.nc.Publish(events.AgentMetrics(org, en.AgentID), m); err != nil {
			t.Fatal(err)
		}
	}
	get := func() events.Agent {
		var a events.Agent
		h.must(owner, events.OpTenancyGetAgent, events.IDRequest{ID: en.AgentID}, &a)
		return a
	}

	// Heartbeats naming the agent under another org change nothing. An
	// absence cannot be polled for: beat across several presence flushes.
	for range 3 {
		beat(other.org)
		time.Sleep(400 * time.Millisecond)
	}
	if a := get(); a.Status != events.AgentOffline || a.LastSeen != nil {
		t.Fatalf("a forged org's heartbeat moved the agent: %+v", a)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			beat(owner.org)
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if a := get(); a.Status != events.AgentOnline || a.Metrics == nil {
			return errorf("not online with metrics: %+v", a)
		}
		return nil
	})
	a := get()
	if a.Engine != "podman 4.3.1" || a.OutboxPending != 7 || a.LastSeen == nil || !strings.Contains(string(a.Metrics), `"cpus":2`) {
		t.Fatalf("online agent: %+v %s", a, a.Metrics)
	}
	close(stop)
	<-done
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if a := get(); a.Status != events.AgentOffline {
			return errorf("still %s", a.Status)
		}
		return nil
	})
	// Both transitions are events on the agent's aggregate.
	evs := h.events(owner.org, events.TenancyAggAgent, en.AgentID)
	want := []string{"tenancy.agent.enrolled", "tenancy.agent.online", "tenancy.agent.offline"}
	if strings.Join(evs, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", evs, want)
	}
}

var errorf = fmt.Errorf

// events lists the types of one aggregate's events, in order, from the
// TENANCY stream.
func (h *harness) events(org, aggType, id string) []string {
	h.t.Helper()
	js, err := jetstream.New(h.nc)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.DomainStream("tenancy"), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.DomainEvent("tenancy", org, aggType, id)}})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			h.t.Fatal(err)
		}
		n := 0
		for m := range msgs.Messages() {
			n++
			env, err := events.Unmarshal(m.Data())
			if err != nil {
				h.t.Fatal(err)
			}
			out = append(out, env.Type)
		}
		if n == 0 {
			return out
		}
	}
}
