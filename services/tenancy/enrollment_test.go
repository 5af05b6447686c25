package tenancy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/tenancy"
)

func TestEnrollmentTokens(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{Plans: map[string]tenancy.Plan{"free": {MaxUsers: 3, MaxAgents: 10}}, AgentCredentials: newIssuer(t)})
	owner := h.signUp("ops@example.com", "Fleet")
	use := func(token, fp string) (events.AgentEnrollment, *events.Error) {
		var u events.AgentEnrollment
		e := h.call(who{}, events.OpTenancyEnrollAgent, enrollReq(token, fp), &u)
		return u, e
	}

	var tok events.NewEnrollmentToken
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{
		Name: "web servers", MaxUses: 2, ExpiresIn: "1h", Labels: map[string]string{"env": "prod"}}, &tok)
	if !strings.HasPrefix(tok.Token, "ipe_") || tok.ID == "" || tok.MaxUses != 2 || tok.Uses != 0 || tok.Revoked ||
		tok.ExpiresAt == nil || time.Until(*tok.ExpiresAt) > time.Hour || tok.Labels["env"] != "prod" {
		t.Fatalf("created: %+v", tok)
	}

	// Two machines use it; a machine repeating itself spends nothing.
	u, e := use(tok.Token, "fp-1")
	if e != nil || u.OrgID != owner.org || u.Reenrolled {
		t.Fatalf("use 1: %+v %+v", u, e)
	}
	if u, e = use(tok.Token, "fp-1"); e != nil || !u.Reenrolled {
		t.Fatalf("repeat: %+v %+v", u, e)
	}
	if _, e = use(tok.Token, "fp-2"); e != nil {
		t.Fatal(e)
	}
	if _, e = use(tok.Token, "fp-3"); e == nil || e.Code != events.CodeConflict || !strings.Contains(e.Message, "no uses left") {
		t.Fatalf("third machine: %+v", e)
	}

	// The list shows uses and never a secret.
	var list events.List[events.EnrollmentToken]
	h.must(who{org: owner.org, user: "op", role: events.RoleOperator}, events.OpTenancyListEnrollmentTokens, events.ListRequest{}, &list)
	if len(list.Items) != 1 || list.Items[0].Uses != 2 || list.Items[0].LastUsedAt == nil {
		t.Fatalf("list: %+v", list)
	}
	raw := h.call(owner, events.OpTenancyListEnrollmentTokens, events.ListRequest{}, &struct{}{})
	if raw != nil {
		t.Fatal(raw)
	}
	var usage events.Usage
	h.must(owner, events.OpTenancyUsage, nil, &usage)
	if usage.Agents != 2 {
		t.Fatalf("usage: %+v", usage)
	}

	// Expiry (the service's clock moves on), revoke, delete.
	var short, other events.NewEnrollmentToken
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: "short", ExpiresIn: "10m"}, &short)
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: "forever", ExpiresIn: "never"}, &other)
	if other.ExpiresAt != nil || other.MaxUses != 0 {
		t.Fatalf("never: %+v", other)
	}
	h.clock.Advance(11 * time.Minute)
	if _, e = use(short.Token, "fp-9"); e == nil || e.Code != events.CodeConflict || !strings.Contains(e.Message, "expired") {
		t.Fatalf("expired: %+v", e)
	}
	if _, e = use(other.Token, "fp-4"); e != nil {
		t.Fatal(e)
	}
	var revoked events.EnrollmentToken
	h.must(owner, events.OpTenancyRevokeEnrollmentToken, events.IDRequest{ID: other.ID}, &revoked)
	if !revoked.Revoked || revoked.Uses != 1 {
		t.Fatalf("revoked: %+v", revoked)
	}
	for _, fp := range []string{"fp-5", "fp-4"} { // a revoked token stops even repeats
		if _, e = use(other.Token, fp); e == nil || e.Code != events.CodeUnauthorized {
			t.Fatalf("revoked token used by %s: %+v", fp, e)
		}
	}
	h.must(owner, events.OpTenancyDeleteEnrollmentToken, events.IDRequest{ID: other.ID}, nil)
	h.fails(owner, events.OpTenancyDeleteEnrollmentToken, events.IDRequest{ID: other.ID}, events.CodeNotFound, "")
	h.fails(owner, events.OpTenancyRevokeEnrollmentToken, events.IDRequest{ID: other.ID}, events.CodeNotFound, "")
	h.must(owner, events.OpTenancyListEnrollmentTokens, events.ListRequest{}, &list)
	if len(list.Items) != 2 {
		t.Fatalf("deleted token still listed: %+v", list)
	}

	// Unknown and malformed tokens look the same.
	for _, tok := range []string{"ipe_" + strings.Repeat("A", 43), "nope", ""} {
		if _, e = use(tok, "fp-1"); e == nil || e.Code != events.CodeUnauthorized {
			t.Fatalf("token %q: %+v", tok, e)
		}
	}

	// Permissions and validation.
	h.fails(who{org: owner.org, user: "op", role: events.RoleOperator}, events.OpTenancyCreateEnrollmentToken,
		events.CreateEnrollmentTokenRequest{Name: "x"}, events.CodeForbidden, "enrollment:manage")
	h.fails(who{org: owner.org, user: "v", role: events.RoleViewer}, events.OpTenancyListEnrollmentTokens, events.ListRequest{}, events.CodeForbidden, "")
	e = h.fails(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{
		Name: "", MaxUses: -1, ExpiresIn: "soon", Labels: map[string]string{"bad key!": "v"}}, events.CodeInvalid, "")
	for _, f := range []string{"name", "max_uses", "expires_in", "labels.bad key!"} {
		hasField(t, e, f)
	}
	e = h.fails(who{}, events.OpTenancyEnrollAgent, enrollReq(tok.Token, "has space"), events.CodeInvalid, "")
	hasField(t, e, "fingerprint")
}

func TestEnrollmentAgentLimit(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{AgentCredentials: newIssuer(t)}) // free: 2 agents
	owner := h.signUp("ops@example.com", "Tiny")
	var a, b events.NewEnrollmentToken
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: "a"}, &a)
	h.must(owner, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: "b"}, &b)
	if a.ExpiresAt == nil || time.Until(*a.ExpiresAt) < 23*time.Hour {
		t.Fatalf("default expiry: %+v", a.ExpiresAt)
	}
	use := func(token, fp string) *events.Error {
		return h.call(who{}, events.OpTenancyEnrollAgent, enrollReq(token, fp), nil)
	}
	if e := use(a.Token, "m1"); e != nil {
		t.Fatal(e)
	}
	if e := use(b.Token, "m2"); e != nil {
		t.Fatal(e)
	}
	if e := use(b.Token, "m3"); e == nil || e.Code != events.CodeConflict || !strings.Contains(e.Message, "allows 2 agents") {
		t.Fatalf("third agent: %+v", e)
	}
	// A machine already enrolled in the org may use another token.
	if e := use(b.Token, "m1"); e != nil {
		t.Fatalf("re-enrolment of a known machine: %+v", e)
	}
	// A deleted org's tokens stop working.
	h.must(owner, events.OpTenancyDeleteOrg, nil, nil)
	if e := use(a.Token, "m1"); e == nil || e.Code != events.CodeUnauthorized {
		t.Fatalf("token of a deleted org: %+v", e)
	}
}
