package routes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
)

// fakeAuth is a STAND-IN for the auth service's operations (the real one
// is services/auth, tested there over NATS): it records each request and
// answers with the reply or error the test set for the operation.
type fakeAuth struct {
	mu      sync.Mutex
	got     map[string][]*nats.Msg
	replies map[string]any
	errs    map[string]*events.Error
}

func newFakeAuth(t *testing.T, nc *nats.Conn) *fakeAuth {
	f := &fakeAuth{got: map[string][]*nats.Msg{}, replies: map[string]any{}, errs: map[string]*events.Error{}}
	sub, err := nc.Subscribe("svc.auth.*", func(m *nats.Msg) {
		op := strings.TrimPrefix(m.Subject, "svc.auth.")
		f.mu.Lock()
		f.got[op] = append(f.got[op], m)
		reply, e := f.replies[op], f.errs[op]
		f.mu.Unlock()
		if e != nil {
			body, _ := json.Marshal(e)
			out := nats.NewMsg(m.Reply)
			out.Header.Set(events.HeaderServiceErrorCode, string(e.Code))
			out.Header.Set(events.HeaderServiceError, e.Message)
			out.Data = body
			_ = m.RespondMsg(out)
			return
		}
		if reply == nil {
			reply = events.Empty{}
		}
		b, _ := json.Marshal(reply)
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return f
}

func (f *fakeAuth) calls(op string) []*nats.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[op]
}

// authServer mounts the auth routes behind a test middleware that sets the
// principal from X-Test-* headers (the real authn middleware is tested in
// its own package) and the client IP.
func authServer(t *testing.T) (*httptest.Server, *fakeAuth) {
	srv := natstest.Run(t)
	nc := natstest.Connect(t, srv)
	f := newFakeAuth(t, nc)
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			ctx := reqctx.WithRequestInfo(req.Context(), reqctx.RequestInfo{RequestID: "r1", ClientIP: "203.0.113.9"})
			if id := req.Header.Get("X-Test-User"); id != "" {
				ctx = reqctx.WithPrincipal(ctx, reqctx.Principal{ID: id, Kind: events.ActorKind(req.Header.Get("X-Test-Kind")),
					OrgID: req.Header.Get("X-Test-Org"), Role: req.Header.Get("X-Test-Role")})
			}
			next.ServeHTTP(w, req.WithContext(ctx))
		})
	})
	MountAuth(r, Deps{NC: nc})
	hs := httptest.NewServer(r)
	t.Cleanup(hs.Close)
	return hs, f
}

func do(t *testing.T, hs *httptest.Server, method, path, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, hs.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func asUser(id string) map[string]string {
	return map[string]string{"X-Test-User": id, "X-Test-Kind": "user"}
}

func asMember(id, kind, org, role string) map[string]string {
	return map[string]string{"X-Test-User": id, "X-Test-Kind": kind, "X-Test-Org": org, "X-Test-Role": role}
}

func TestAuthPublicRoutes(t *testing.T) {
	hs, f := authServer(t)
	f.replies[events.OpAuthRegister] = events.RegisterResponse{User: events.UserSummary{ID: "u1"}, AccessToken: "a"}
	resp, body := do(t, hs, "POST", "/auth/register", `{"email":"a@example.com","password":"p","name":"n","org_name":"o"}`, nil)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"id":"u1"`) {
		t.Fatalf("register %d %s", resp.StatusCode, body)
	}
	m := f.calls(events.OpAuthRegister)[0]
	var req events.RegisterRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || req.OrgName != "o" {
		t.Fatalf("forwarded %s", m.Data)
	}
	if m.Header.Get(events.HeaderActorIP) != "203.0.113.9" || m.Header.Get(events.HeaderActorID) != "" {
		t.Fatalf("headers %v", m.Header)
	}

	// Malformed or unknown fields never reach the service.
	for _, bad := range []string{`{"email":`, `{"email":"a","extra":1}`, ``} {
		resp, body = do(t, hs, "POST", "/auth/login", bad, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
			t.Fatalf("login %q: %d %s", bad, resp.StatusCode, body)
		}
	}
	if n := len(f.calls(events.OpAuthLogin)); n != 0 {
		t.Fatalf("%d bad requests forwarded", n)
	}

	// The service's rate limit becomes 429 with Retry-After.
	f.errs[events.OpAuthLogin] = &events.Error{Code: events.CodeRateLimited, Message: "slow down", RetryAfter: 42}
	resp, _ = do(t, hs, "POST", "/auth/login", `{"email":"a@example.com","password":"x"}`, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "42" {
		t.Fatalf("rate limited: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	f.errs[events.OpAuthLogin] = &events.Error{Code: events.CodeUnauthorized, Message: "invalid e-mail address or password"}
	if resp, _ = do(t, hs, "POST", "/auth/login", `{"email":"a@example.com","password":"x"}`, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad login: %d", resp.StatusCode)
	}

	for path, want := range map[string]int{"/auth/mfa/verify": 200, "/auth/refresh": 200, "/auth/logout": 204} {
		body := `{"refresh_token":"r"}`
		if path == "/auth/mfa/verify" {
			body = `{"mfa_token":"m","code":"123456"}`
		}
		if resp, b := do(t, hs, "POST", path, body, nil); resp.StatusCode != want {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}

func TestAuthUserRoutes(t *testing.T) {
	hs, f := authServer(t)
	f.replies[events.OpAuthMe] = events.UserSummary{ID: "u1", Email: "a@example.com"}
	if resp, _ := do(t, hs, "GET", "/auth/me", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous me: %d", resp.StatusCode)
	}
	if resp, _ := do(t, hs, "GET", "/auth/me", "", asMember("k1", "api_key", "o1", "admin")); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("API key me: %d", resp.StatusCode)
	}
	resp, body := do(t, hs, "GET", "/auth/me", "", asUser("u1"))
	if resp.StatusCode != 200 || !strings.Contains(body, "a@example.com") {
		t.Fatalf("me %d %s", resp.StatusCode, body)
	}
	if got := f.calls(events.OpAuthMe)[0].Header.Get(events.HeaderActorID); got != "u1" {
		t.Fatalf("actor header %q", got)
	}
	for path, want := range map[string]int{"/auth/mfa/setup": 200, "/auth/mfa/confirm": 200, "/auth/mfa/disable": 204, "/auth/mfa/backup-codes": 200} {
		body := `{"code":"123456"}`
		if path == "/auth/mfa/setup" {
			body = ""
		}
		if resp, b := do(t, hs, "POST", path, body, asUser("u1")); resp.StatusCode != want {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		if resp, _ := do(t, hs, "POST", path, body, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous %s: %d", path, resp.StatusCode)
		}
	}
}

func TestAuthAPIKeyRoutes(t *testing.T) {
	hs, f := authServer(t)
	f.replies[events.OpAuthAPIKeyCreate] = events.NewAPIKey{APIKey: events.APIKey{ID: "k1"}, Key: "ipk_x"}
	f.replies[events.OpAuthAPIKeyList] = events.List[events.APIKey]{Items: []events.APIKey{{ID: "k1"}}}
	admin := asMember("u1", "user", "o1", "admin")

	if resp, _ := do(t, hs, "GET", "/auth/api-keys", "", asMember("u1", "user", "o1", "viewer")); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer list: %d", resp.StatusCode)
	}
	if resp, _ := do(t, hs, "GET", "/auth/api-keys", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous list: %d", resp.StatusCode)
	}
	if resp, body := do(t, hs, "GET", "/auth/api-keys", "", admin); resp.StatusCode != 200 || !strings.Contains(body, `"items":[{"id":"k1"`) {
		t.Fatalf("list %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, hs, "POST", "/auth/api-keys", `{"name":"ci","role":"viewer","expires_in":60}`, admin)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"key":"ipk_x"`) {
		t.Fatalf("create %d %s", resp.StatusCode, body)
	}
	m := f.calls(events.OpAuthAPIKeyCreate)[0]
	if m.Header.Get(events.HeaderOrgID) != "o1" || m.Header.Get(events.HeaderRole) != "admin" {
		t.Fatalf("org and role not forwarded: %v", m.Header)
	}
	// An org id in the body is refused: the org comes from the request.
	if resp, _ := do(t, hs, "POST", "/auth/api-keys", `{"name":"ci","role":"viewer","org_id":"o2"}`, admin); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("org in body: %d", resp.StatusCode)
	}
	if resp, _ := do(t, hs, "DELETE", "/auth/api-keys/k1", "", admin); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	var rr events.APIKeyRevokeRequest
	if err := json.Unmarshal(f.calls(events.OpAuthAPIKeyRevoke)[0].Data, &rr); err != nil || rr.ID != "k1" {
		t.Fatalf("revoke forwarded %+v %v", rr, err)
	}
	f.errs[events.OpAuthAPIKeyRevoke] = events.NotFound("API key not found")
	if resp, _ := do(t, hs, "DELETE", "/auth/api-keys/k2", "", admin); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoke of another org's key: %d", resp.StatusCode)
	}
	if resp, _ := do(t, hs, "DELETE", "/auth/api-keys/a.b", "", admin); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoke with a bad id: %d", resp.StatusCode)
	}
}
