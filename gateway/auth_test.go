package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/authn/authntest"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// The test world: alice is an admin of org-a and a viewer of org-v; bob
// owns org-b and made an API key there.
const (
	tAlice, tBob         = "user-alice", "user-bob"
	tOrgA, tOrgB, tOrgV  = "org-a", "org-b", "org-v"
	tKeyID               = "key-bob-1"
	testUserAgent        = "infrapilot-test/1.0"
	headersService, opIn = "echo", "headers"
)

var tAPIKey = authn.APIKeyPrefix + strings.Repeat("b0bKey", 5)

// identityWorld starts the identity STAND-INS (the real auth and tenancy
// services are built separately) on h's bus and returns the token issuer.
func identityWorld(t testing.TB, nc *nats.Conn) (*authntest.Identity, *authntest.Issuer) {
	t.Helper()
	id := authntest.StartIdentity(t, nc)
	iss := authntest.NewIssuer(t, "kid-1")
	id.SetJWKS(iss.JWK())
	id.SetMember(tOrgA, tAlice, events.RoleAdmin)
	id.SetMember(tOrgV, tAlice, events.RoleViewer)
	id.SetMember(tOrgB, tBob, events.RoleOwner)
	id.AddAPIKey(tAPIKey, events.ResolvedPrincipal{Kind: events.ActorAPIKey, ID: tKeyID, UserID: tBob, OrgID: tOrgB, Role: events.RoleAdmin})
	return id, iss
}

// authRoutes add, to testRoutes, routes the way the route areas write
// them: one that needs a permission and forwards to a service (which
// echoes the NATS headers it got), one that mutates, and a rate-limited
// login.
func authRoutes(nc *nats.Conn, api chi.Router) {
	testRoutes(nc, api)
	api.With(authn.Require(events.PermAgentsRead)).Get("/test/agents", func(w http.ResponseWriter, r *http.Request) {
		out, err := natsreq.Call[struct{}, map[string][]string](r.Context(), nc,
			events.ServiceEndpoint(headersService, opIn), struct{}{})
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		httpapi.JSON(w, r, http.StatusOK, out)
	})
	api.With(authn.Require(events.PermAgentsManage)).Delete("/test/agents", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	api.With(authn.LimitAuth).Post("/test/login", func(w http.ResponseWriter, r *http.Request) {
		_, ok := reqctx.PrincipalFrom(r.Context())
		httpapi.JSON(w, r, http.StatusOK, map[string]bool{"anonymous": !ok})
	})
}

func authHeader(token string, more ...string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + token}, "User-Agent": {testUserAgent}}
	for i := 0; i+1 < len(more); i += 2 {
		h.Set(more[i], more[i+1])
	}
	return h
}

// TestAuthenticatedRequest: a valid token's principal reaches the route
// and travels on to the service in the Ip-* headers, with the caller's IP
// and user agent; the token itself goes nowhere.
func TestAuthenticatedRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, authRoutes)
	_, iss := identityWorld(t, h.nc)
	natstest.Service(t, h.nc, headersService, map[string]micro.HandlerFunc{
		opIn: func(req micro.Request) { _ = req.RespondJSON(req.Headers()) },
	})
	tok := iss.Token(t, tAlice, time.Now())

	for _, c := range []struct{ org, wantOrg, wantRole string }{
		{"", tOrgA, "admin"}, {tOrgA, tOrgA, "admin"}, {tOrgV, tOrgV, "viewer"},
	} {
		resp, body := h.do(http.MethodGet, "/api/v1/test/agents", nil, authHeader(tok, "X-Org-ID", c.org))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("X-Org-ID %q: %d %s", c.org, resp.StatusCode, body)
		}
		var got map[string][]string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			events.HeaderOrgID: c.wantOrg, events.HeaderActorKind: "user", events.HeaderActorID: tAlice,
			events.HeaderRole: c.wantRole, events.HeaderActorIP: "127.0.0.1", events.HeaderActorUA: testUserAgent,
			events.HeaderRequestID: resp.Header.Get(gateway.HeaderRequestID),
		}
		for k, v := range want {
			if len(got[k]) != 1 || got[k][0] != v {
				t.Errorf("X-Org-ID %q: header %s = %q, want %q", c.org, k, got[k], v)
			}
		}
		if strings.Contains(string(body), tok) {
			t.Fatal("the token reached the service")
		}
	}
	if strings.Contains(h.logs.String(), tok) {
		t.Fatal("the token was logged")
	}
}

// TestAuthThroughGateway checks the HTTP answers of the middleware over a
// real connection: forged tokens, another org's id, roles, anonymous
// callers.
func TestAuthThroughGateway(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, authRoutes)
	_, iss := identityWorld(t, h.nc)
	now := time.Now()
	claims := authntest.Claims(tAlice, now)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	none.Header["kid"] = iss.Kid
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hs.Header["kid"] = iss.Kid
	hsTok, err := hs.SignedString([]byte(iss.Public()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{noneTok, hsTok, "garbage"} {
		resp, body := h.do(http.MethodGet, "/api/v1/test/agents", nil, authHeader(tok))
		p := problem(t, resp, body, http.StatusUnauthorized)
		if resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` || p.Detail != "invalid or expired token" {
			t.Fatalf("%s: %v %s", tok, resp.Header, body)
		}
		// A public route runs anonymously, whatever the token.
		if resp, body := h.do(http.MethodPost, "/api/v1/test/login", nil, authHeader(tok)); resp.StatusCode != http.StatusOK ||
			!strings.Contains(string(body), `"anonymous":true`) {
			t.Fatalf("public route with %s: %d %s", tok, resp.StatusCode, body)
		}
	}

	alice := iss.Token(t, tAlice, now)
	// Another org's id, by a user or by an API key: 404.
	for _, hdr := range []http.Header{authHeader(alice, "X-Org-ID", tOrgB), authHeader(tAPIKey, "X-Org-ID", tOrgA)} {
		resp, body := h.do(http.MethodGet, "/api/v1/test/agents", nil, hdr)
		if p := problem(t, resp, body, http.StatusNotFound); p.Detail != "organisation not found" {
			t.Fatalf("%s", body)
		}
	}
	resp, body := h.do(http.MethodGet, "/api/v1/test/agents", nil, authHeader(alice, "X-Org-ID", "org.*"))
	problem(t, resp, body, http.StatusBadRequest)

	// A viewer may read but not mutate; an admin may mutate.
	resp, body = h.do(http.MethodDelete, "/api/v1/test/agents", nil, authHeader(alice, "X-Org-ID", tOrgV))
	problem(t, resp, body, http.StatusForbidden)
	if resp, body := h.do(http.MethodDelete, "/api/v1/test/agents", nil, authHeader(alice)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("admin: %d %s", resp.StatusCode, body)
	}
	// Anonymous: public routes run, protected ones answer 401.
	if resp, body := h.do(http.MethodPost, "/api/v1/test/login", nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"anonymous":true`) {
		t.Fatalf("anonymous login: %d %s", resp.StatusCode, body)
	}
	resp, body = h.get("/api/v1/test/agents")
	problem(t, resp, body, http.StatusUnauthorized)
	if resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
	}
}

// TestAuthServicesDownThroughGateway: without the identity services a
// token answers 503, not 401.
func TestAuthServicesDownThroughGateway(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, authRoutes)
	tok := authntest.NewIssuer(t, "kid-1").Token(t, tAlice, time.Now())
	for _, token := range []string{tok, tAPIKey} {
		resp, body := h.do(http.MethodGet, "/api/v1/test/agents", nil, authHeader(token))
		if p := problem(t, resp, body, http.StatusServiceUnavailable); p.Code != events.CodeUnavailable {
			t.Fatalf("%s", body)
		}
	}
	resp, body := h.get(gateway.JWKSPath)
	problem(t, resp, body, http.StatusServiceUnavailable)
}

// TestJWKSEndpoint: the public keys are served, cacheable, without
// authentication.
func TestJWKSEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, nil)
	_, iss := identityWorld(t, h.nc)
	resp, body := h.do(http.MethodGet, gateway.JWKSPath, nil, http.Header{"Authorization": {"Bearer garbage"}})
	var got events.JWKS
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "public, max-age=60" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", resp.Header)
	}
	if len(got.Keys) != 1 || got.Keys[0] != iss.JWK() {
		t.Fatalf("keys %+v", got.Keys)
	}
}

// TestCORSAuthHeaders: a browser may send Authorization and X-Org-ID, and
// read Retry-After and WWW-Authenticate.
func TestCORSAuthHeaders(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	h := newHarness(t, gateway.Config{CORSOrigins: []string{origin}}, authRoutes)
	resp, body := h.do(http.MethodOptions, "/api/v1/test/agents", nil, http.Header{
		"Origin":                         {origin},
		"Access-Control-Request-Method":  {"GET"},
		"Access-Control-Request-Headers": {"authorization, x-org-id"},
	})
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("preflight: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"authorization", "x-org-id"} {
		if !strings.Contains(allowed, want) {
			t.Fatalf("allowed headers %q lack %s", allowed, want)
		}
	}
	resp, body = h.do(http.MethodGet, "/api/v1/test/agents", nil, http.Header{"Origin": {origin}, "Authorization": {"Bearer garbage"}})
	problem(t, resp, body, http.StatusUnauthorized)
	exposed := resp.Header.Get("Access-Control-Expose-Headers")
	if resp.Header.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(exposed, "WWW-Authenticate") || !strings.Contains(exposed, "Retry-After") {
		t.Fatalf("headers %v", resp.Header)
	}
}

// TestAuthRateLimit: LimitAuth routes answer 429 with Retry-After beyond
// Config.AuthRateLimit requests a minute from one IP.
func TestAuthRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{AuthRateLimit: 2}, authRoutes)
	for range 2 {
		if resp, body := h.do(http.MethodPost, "/api/v1/test/login", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	resp, body := h.do(http.MethodPost, "/api/v1/test/login", nil, nil)
	if p := problem(t, resp, body, http.StatusTooManyRequests); p.Code != events.CodeRateLimited || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("%v %s", resp.Header, body)
	}
	// Other routes are not limited.
	if resp, _ := h.get("/api/v1/whoami"); resp.StatusCode != http.StatusOK {
		t.Fatalf("whoami: %d", resp.StatusCode)
	}
}

// TestServiceRetryAfter: a service's rate_limited answer with retry_after
// becomes 429 with Retry-After.
func TestServiceRetryAfter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gateway.Config{}, testRoutes)
	natstest.Service(t, h.nc, "throttled", map[string]micro.HandlerFunc{
		"login": func(req micro.Request) {
			authntest.Fail(req, &events.Error{Code: events.CodeRateLimited, Message: "too many attempts", RetryAfter: 7})
		},
	})
	resp, body := h.get("/api/v1/call/throttled/login")
	if p := problem(t, resp, body, http.StatusTooManyRequests); p.Detail != "too many attempts" || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("%v %s", resp.Header, body)
	}
}
