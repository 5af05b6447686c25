package authn_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
)

// An API key of orgA made by alice (an admin there) with the operator role.
var apiKey = authn.APIKeyPrefix + strings.Repeat("Kq3_z-", 6)

const keyID = "key-id-1"

func addKey(f *fixture, role events.Role) {
	f.id.AddAPIKey(apiKey, events.ResolvedPrincipal{Kind: events.ActorAPIKey, ID: keyID, UserID: alice, OrgID: orgA, Role: role})
}

// TestAPIKey: a key acts in its own org with its role; another org is a
// 404; a revoked key stops within the cache TTL.
func TestAPIKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	addKey(f, events.RoleOperator)

	want := whoami{OrgID: orgA, Kind: string(events.ActorAPIKey), ID: keyID, Role: string(events.RoleOperator)}
	if who := principal(t, f.get(bearer(apiKey))); who != want {
		t.Fatalf("api key: %+v", who)
	}
	if who := principal(t, f.get(bearer(apiKey), "X-Org-ID", orgA)); who != want {
		t.Fatalf("api key with its own org: %+v", who)
	}
	// Another org answers 404, even one the key's creator belongs to.
	for _, org := range []string{orgB, orgC, "org-nonexistent"} {
		p := problemOf(t, f.get(bearer(apiKey), "X-Org-ID", org), http.StatusNotFound)
		if p.Detail != "organisation not found" {
			t.Fatalf("%s: %+v", org, p)
		}
	}
	// The key may do what an operator may, and not more; it is no user.
	if w := f.do(http.MethodPost, "/agents", "Authorization", bearer(apiKey)); w.Code != http.StatusForbidden {
		t.Fatalf("operator key managing agents: %d", w.Code)
	}
	problemOf(t, f.do(http.MethodGet, "/me", "Authorization", bearer(apiKey)), http.StatusForbidden)

	// Verified once, then cached: revocation takes effect when the cache
	// entry expires, not before.
	if n := f.id.APIKeyCalls.Load(); n != 1 {
		t.Fatalf("apikey_verify called %d times, want 1", n)
	}
	f.id.RevokeAPIKey(apiKey)
	principal(t, f.get(bearer(apiKey)))
	f.clock.Advance(authn.DefaultAPIKeyCacheTTL)
	invalidToken(t, f.get(bearer(apiKey)))

	// Malformed keys never reach the auth service.
	before := f.id.APIKeyCalls.Load()
	for _, k := range []string{authn.APIKeyPrefix, authn.APIKeyPrefix + "short", authn.APIKeyPrefix + strings.Repeat("a", 300)} {
		invalidToken(t, f.get(bearer(k)))
	}
	if n := f.id.APIKeyCalls.Load(); n != before {
		t.Fatalf("malformed keys caused %d calls", n-before)
	}
}

// TestAPIKeyCreator: a key never acts above its creator's current role,
// and dies with its creator's membership.
func TestAPIKeyCreator(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	addKey(f, events.RoleAdmin)
	if who := principal(t, f.get(bearer(apiKey))); who.Role != string(events.RoleAdmin) {
		t.Fatalf("admin key: %+v", who)
	}
	f.id.SetMember(orgA, alice, events.RoleViewer)
	f.clock.Advance(authn.DefaultMembershipTTL)
	if who := principal(t, f.get(bearer(apiKey))); who.Role != string(events.RoleViewer) {
		t.Fatalf("admin key of a viewer: %+v", who)
	}
	f.id.RemoveMember(orgA, alice)
	f.clock.Advance(authn.DefaultMembershipTTL)
	invalidToken(t, f.get(bearer(apiKey)))
}

// TestOrgResolution: X-Org-ID selects an org the caller belongs to; any
// other org is the same 404 as one that does not exist; a malformed
// X-Org-ID is a 400; without one the default org applies, or none.
func TestOrgResolution(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	now := f.clock.Now()
	aliceTok, carolTok := f.iss.Token(t, alice, now), f.iss.Token(t, carol, now)

	notMember := problemOf(t, f.get(bearer(aliceTok), "X-Org-ID", orgB), http.StatusNotFound)
	missing := problemOf(t, f.get(bearer(aliceTok), "X-Org-ID", "org-nonexistent"), http.StatusNotFound)
	if notMember.Detail != missing.Detail || notMember.Type != missing.Type || notMember.Detail != "organisation not found" || notMember.Code != events.CodeNotFound {
		t.Fatalf("another org %+v, a missing org %+v: must be the same 404", notMember, missing)
	}
	for _, bad := range []string{"org.a", "org-*", "org a", "platform", strings.Repeat("o", 129)} {
		p := problemOf(t, f.get(bearer(aliceTok), "X-Org-ID", bad), http.StatusBadRequest)
		if len(p.Errors) != 1 || p.Errors[0].Field != "X-Org-ID" {
			t.Fatalf("%q: %+v", bad, p)
		}
	}
	problemOf(t, f.get(bearer(aliceTok), "X-Org-ID", orgA, "X-Org-ID", orgC), http.StatusBadRequest)
	// An empty X-Org-ID is no X-Org-ID.
	if who := principal(t, f.get(bearer(aliceTok), "X-Org-ID", " ")); who.OrgID != orgA {
		t.Fatalf("empty X-Org-ID: %+v", who)
	}

	// Carol belongs to no org: she is authenticated, acts in none, and
	// routes that need an org answer 403.
	if who := principal(t, f.get(bearer(carolTok))); who.ID != carol || who.OrgID != "" || who.Role != "" {
		t.Fatalf("no org: %+v", who)
	}
	problemOf(t, f.do(http.MethodGet, "/agents", "Authorization", bearer(carolTok)), http.StatusForbidden)
	principal(t, f.do(http.MethodGet, "/me", "Authorization", bearer(carolTok)))
	// Once she joins one it is used at once: "no org" is not cached.
	f.id.SetMember(orgB, carol, events.RoleOperator)
	if who := principal(t, f.get(bearer(carolTok))); who.OrgID != orgB {
		t.Fatalf("after joining: %+v", who)
	}
}

// TestRoles: the membership role decides what Require lets through.
func TestRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tok := f.iss.Token(t, alice, f.clock.Now())
	auth := bearer(tok)
	principal(t, f.do(http.MethodGet, "/agents", "Authorization", auth, "X-Org-ID", orgC))
	p := problemOf(t, f.do(http.MethodPost, "/agents", "Authorization", auth, "X-Org-ID", orgC), http.StatusForbidden)
	if p.Code != events.CodeForbidden {
		t.Fatalf("viewer mutating: %+v", p)
	}
	principal(t, f.do(http.MethodPost, "/agents", "Authorization", auth, "X-Org-ID", orgA))

	// Anonymous: the route runs for public paths, Require answers 401.
	if who := principal(t, f.do(http.MethodGet, "/public")); !who.Anonymous {
		t.Fatalf("anonymous: %+v", who)
	}
	w := f.do(http.MethodGet, "/agents")
	problemOf(t, w, http.StatusUnauthorized)
	if got := w.Header().Get("WWW-Authenticate"); got != "Bearer" {
		t.Fatalf("WWW-Authenticate %q", got)
	}

	// A role change or a removal takes effect within the membership TTL.
	f.id.RemoveMember(orgA, alice)
	principal(t, f.do(http.MethodPost, "/agents", "Authorization", auth, "X-Org-ID", orgA))
	f.clock.Advance(authn.DefaultMembershipTTL)
	problemOf(t, f.do(http.MethodPost, "/agents", "Authorization", auth, "X-Org-ID", orgA), http.StatusNotFound)
}

// TestServicesDown: when the auth or tenancy service cannot answer, the
// caller gets 503, never 401.
func TestServicesDown(t *testing.T) {
	t.Parallel()

	t.Run("auth down before the keys are loaded", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		addKey(f, events.RoleViewer)
		f.id.StopAuth()
		tok := f.iss.Token(t, alice, f.clock.Now())
		for _, auth := range []string{bearer(tok), bearer(apiKey)} {
			if p := problemOf(t, f.get(auth), http.StatusServiceUnavailable); p.Code != events.CodeUnavailable {
				t.Fatalf("%+v", p)
			}
		}
	})

	t.Run("auth down after the keys are loaded", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		principal(t, f.get(bearer(f.iss.Token(t, alice, f.clock.Now()))))
		f.id.StopAuth()
		// The last keys keep verifying for JWKSMaxStale, though the
		// periodic refresh fails…
		f.clock.Advance(authn.DefaultJWKSRefresh)
		principal(t, f.get(bearer(f.iss.Token(t, alice, f.clock.Now()))))
		// …and after it the gateway refuses to trust them any longer.
		f.clock.Advance(authn.DefaultJWKSMaxStale)
		problemOf(t, f.get(bearer(f.iss.Token(t, alice, f.clock.Now()))), http.StatusServiceUnavailable)
	})

	t.Run("tenancy down", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		addKey(f, events.RoleViewer)
		f.id.StopTenancy()
		tok := bearer(f.iss.Token(t, alice, f.clock.Now()))
		problemOf(t, f.get(tok), http.StatusServiceUnavailable)
		problemOf(t, f.get(tok, "X-Org-ID", orgA), http.StatusServiceUnavailable)
		problemOf(t, f.get(bearer(apiKey)), http.StatusServiceUnavailable)
		// Anonymous requests need neither service, and public routes run
		// even for a token that cannot be resolved now.
		principal(t, f.do(http.MethodGet, "/public"))
		if who := principal(t, f.do(http.MethodGet, "/public", "Authorization", tok)); !who.Anonymous {
			t.Fatalf("public route: %+v", who)
		}
	})
}

// TestLimitAuth: beyond the limit a client IP gets 429 with Retry-After;
// other IPs, and routes without LimitAuth, are not affected.
func TestLimitAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *authn.Config) { c.AuthRateLimit = 3 })
	login := func(ip string) int {
		return f.do(http.MethodPost, "/login", "Test-Client-Ip", ip).Code
	}
	for i := range 3 {
		if code := login("198.51.100.1"); code != http.StatusOK {
			t.Fatalf("login %d: %d", i, code)
		}
	}
	w := f.do(http.MethodPost, "/login", "Test-Client-Ip", "198.51.100.1")
	p := problemOf(t, w, http.StatusTooManyRequests)
	if p.Code != events.CodeRateLimited || w.Header().Get("Retry-After") != "60" {
		t.Fatalf("429: %+v, Retry-After %q", p, w.Header().Get("Retry-After"))
	}
	if code := login("198.51.100.2"); code != http.StatusOK {
		t.Fatalf("another IP: %d", code)
	}
	// An IPv6 client is one client across its /64.
	for i := range 3 {
		login("2001:db8:1:2::" + string(rune('a'+i)))
	}
	if code := login("2001:db8:1:2::ffff"); code != http.StatusTooManyRequests {
		t.Fatalf("same /64: %d", code)
	}
	if w := f.do(http.MethodGet, "/public"); w.Code != http.StatusOK {
		t.Fatalf("unlimited route: %d", w.Code)
	}

	off := newFixture(t, func(c *authn.Config) { c.AuthRateLimit = -1 })
	for range 10 {
		if code := off.do(http.MethodPost, "/login").Code; code != http.StatusOK {
			t.Fatalf("limit off: %d", code)
		}
	}
}
