package authn_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/authn/authntest"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
)

// Ids of the test world: alice is an admin of orgA (her default org) and a
// viewer of orgC; bob is an owner of orgB; carol belongs to no org.
const (
	orgA, orgB, orgC = "org-a", "org-b", "org-c"
	alice, bob       = "user-alice", "user-bob"
	carol            = "user-carol"
	kid1, kid2       = "key-1", "key-2"
)

// clock is a settable clock for the Authenticator and the tokens it checks.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is an Authenticator in front of test routes, against the
// identity stand-ins on a real embedded NATS server.
type fixture struct {
	t     testing.TB
	nc    *nats.Conn
	id    *authntest.Identity
	iss   *authntest.Issuer
	clock *clock
	a     *authn.Authenticator
	h     http.Handler
}

// newFixture builds the world above; mod may change the Authenticator's
// config before it is built.
func newFixture(t testing.TB, mod func(*authn.Config)) *fixture {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	id := authntest.StartIdentity(t, nc)
	iss := authntest.NewIssuer(t, kid1)
	id.SetJWKS(iss.JWK())
	id.SetMember(orgA, alice, events.RoleAdmin)
	id.SetMember(orgC, alice, events.RoleViewer)
	id.SetMember(orgB, bob, events.RoleOwner)
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	cfg := authn.Config{NC: nc, Now: clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	a, err := authn.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, nc: nc, id: id, iss: iss, clock: clk, a: a, h: testRouter(a)}
}

// whoami is the answer of the test routes: the principal they saw.
type whoami struct {
	Anonymous bool   `json:"anonymous"`
	OrgID     string `json:"org_id"`
	Kind      string `json:"kind"`
	ID        string `json:"id"`
	Role      string `json:"role"`
}

func testRouter(a *authn.Authenticator) http.Handler {
	r := chi.NewRouter()
	// What the gateway's own middleware does before authentication.
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			info := reqctx.RequestInfo{RequestID: "req-1", ClientIP: req.Header.Get("Test-Client-Ip")}
			if info.ClientIP == "" {
				info.ClientIP = "192.0.2.10"
			}
			ctx, _ := httpapi.WithOutcome(reqctx.WithRequestInfo(req.Context(), info)) // 5xx causes go to it, not to the log
			next.ServeHTTP(w, req.WithContext(ctx))
		})
	})
	r.Use(a.Middleware)
	echo := func(w http.ResponseWriter, req *http.Request) {
		p, ok := reqctx.PrincipalFrom(req.Context())
		httpapi.JSON(w, req, http.StatusOK, whoami{Anonymous: !ok, OrgID: p.OrgID, Kind: string(p.Kind), ID: p.ID, Role: p.Role})
	}
	r.Get("/public", echo)
	r.With(anyCaller).Get("/whoami", echo)
	r.With(authn.Require(events.PermAgentsRead)).Get("/agents", echo)
	r.With(authn.Require(events.PermAgentsManage)).Post("/agents", echo)
	r.With(authn.RequireUser).Get("/me", echo)
	r.With(authn.LimitAuth).Post("/login", echo)
	return r
}

// anyCaller lets any authenticated caller (a user or an API key, in an org
// or not) through, and answers like RequireUser otherwise: with why its
// credentials were refused.
func anyCaller(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := reqctx.PrincipalFrom(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		authn.RequireUser(next).ServeHTTP(w, r)
	})
}

// do sends a request with the given headers ("" values are left out).
func (f *fixture) do(method, path string, headers ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			r.Header.Add(headers[i], headers[i+1])
		}
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// get is do(GET /whoami) with an Authorization header (none for "").
func (f *fixture) get(auth string, headers ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(http.MethodGet, "/whoami", append([]string{"Authorization", auth}, headers...)...)
}

// principal asserts a 200 answer and returns the principal the route saw.
func principal(t *testing.T, w *httptest.ResponseRecorder) whoami {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", w.Code, w.Body)
	}
	var who whoami
	if err := json.Unmarshal(w.Body.Bytes(), &who); err != nil {
		t.Fatal(err)
	}
	return who
}

// problemOf asserts a problem answer with status and returns it.
func problemOf(t *testing.T, w *httptest.ResponseRecorder, status int) httpapi.Problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != httpapi.ProblemContentType {
		t.Fatalf("content type %q: %s", ct, w.Body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// invalidToken asserts the one answer every rejected credential gets.
func invalidToken(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	p := problemOf(t, w, http.StatusUnauthorized)
	if p.Code != events.CodeUnauthorized || p.Detail != "invalid or expired token" {
		t.Fatalf("problem %+v", p)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Fatalf("WWW-Authenticate %q", got)
	}
}

func bearer(token string) string { return "Bearer " + token }
