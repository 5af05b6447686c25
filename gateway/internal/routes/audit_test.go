package routes_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/infrapilot/infrapilot/gateway/internal/routes"
	"github.com/nats-io/nats.go/micro"
)

// auditSeen is one request the stand-in audit service received.
type auditSeen struct {
	op, org, role string
	body          map[string]any
}

// auditStub stands in for the audit service: it records requests and
// answers {"op": op}. These route tests check only how the gateway builds
// requests (paths, query parsing, permissions, headers); the real audit
// service behind the real gateway is exercised by
// services/cmd/infrapilot/audit_e2e_test.go.
type auditStub struct {
	mu   sync.Mutex
	reqs []auditSeen
}

func (s *auditStub) last(t *testing.T) auditSeen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("the audit service was not called")
	}
	return s.reqs[len(s.reqs)-1]
}

func (s *auditStub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func auditServer(t *testing.T) (*httptest.Server, *auditStub) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	stub := &auditStub{}
	ops := map[string]micro.HandlerFunc{}
	for _, op := range []string{events.OpAuditList, events.OpAuditVerify, events.OpAuditCheckpoints, events.OpAuditPublicKey,
		events.OpAuditGetConfig, events.OpAuditPutConfig, events.OpAuditSIEMCredentialsCreate, events.OpAuditSIEMCredentialsList,
		events.OpAuditSIEMCredentialsRevoke} {
		ops[op] = func(r micro.Request) {
			var body map[string]any
			_ = json.Unmarshal(r.Data(), &body)
			h := r.Headers()
			stub.mu.Lock()
			stub.reqs = append(stub.reqs, auditSeen{op: op, org: h.Get(events.HeaderOrgID), role: h.Get(events.HeaderRole), body: body})
			stub.mu.Unlock()
			_ = r.RespondJSON(map[string]any{"op": op})
		}
	}
	natstest.Service(t, nc, "audit", ops)
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if id := req.Header.Get("X-Test-User"); id != "" {
				req = req.WithContext(reqctx.WithPrincipal(req.Context(), reqctx.Principal{
					ID: id, Kind: events.ActorUser, OrgID: req.Header.Get("X-Test-Org"), Role: req.Header.Get("X-Test-Role")}))
			}
			next.ServeHTTP(w, req)
		})
	})
	routes.MountAudit(r, routes.Deps{NC: nc, Log: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, stub
}

func auditDo(t *testing.T, srv *httptest.Server, role, method, path, body string) (int, string) {
	t.Helper()
	code, _, b := auditDoHeader(t, srv, role, method, path, body)
	return code, b
}

// auditDoHeader is auditDo that also returns the response headers.
func auditDoHeader(t *testing.T, srv *httptest.Server, role, method, path, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+"/"+strings.TrimPrefix(path, "/"), rd)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("X-Test-User", "u1")
		req.Header.Set("X-Test-Org", "org1")
		req.Header.Set("X-Test-Role", role)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestAuditRoutes(t *testing.T) {
	srv, stub := auditServer(t)

	code, body := auditDo(t, srv, "admin", "GET", "/audit?action=auth.*&resource_type=org&actor=u9&from=2026-11-29T10:00:00%2B01:00&limit=20&cursor=abc&org_id=evil", "")
	if code != 200 || !strings.Contains(body, `"op":"list"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	got := stub.last(t)
	if got.org != "org1" || got.role != "admin" || got.body["action"] != "auth.*" || got.body["resource_type"] != "org" ||
		got.body["actor"] != "u9" || got.body["from"] != "2026-11-29T09:00:00Z" || got.body["limit"] != float64(20) || got.body["cursor"] != "abc" {
		t.Fatalf("list request: %+v", got)
	}

	auditDo(t, srv, "admin", "GET", "/audit/verify?from=5&to=2026-11-30T00:00:00Z", "")
	if got := stub.last(t); got.op != "verify" || got.body["from_index"] != float64(5) || got.body["to"] != "2026-11-30T00:00:00Z" {
		t.Fatalf("verify request: %+v", got)
	}
	auditDo(t, srv, "admin", "GET", "/audit/checkpoints?limit=3", "")
	if got := stub.last(t); got.op != "checkpoints" || got.body["limit"] != float64(3) {
		t.Fatalf("checkpoints request: %+v", got)
	}
	for path, op := range map[string]string{"/audit/public-key": "public_key", "/audit/config": "config_get"} {
		if code, body := auditDo(t, srv, "admin", "GET", path, ""); code != 200 || !strings.Contains(body, op) {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	code, _ = auditDo(t, srv, "owner", "PUT", "/audit/config", `{"retention_days":90,"retention_policy":"archive","compliance_mode":true}`)
	if got := stub.last(t); code != 200 || got.op != "config_put" || got.body["retention_days"] != float64(90) || got.body["compliance_mode"] != true {
		t.Fatalf("config put: %d %+v", code, got)
	}

	calls := stub.count()
	for _, c := range []struct {
		role, method, path, body string
		want                     int
		field                    string
	}{
		{"", "GET", "/audit", "", 401, ""},
		{"viewer", "GET", "/audit", "", 403, ""},
		{"operator", "GET", "/audit/verify", "", 403, ""},
		{"viewer", "PUT", "/audit/config", `{}`, 403, ""},
		{"admin", "GET", "/audit?from=yesterday", "", 400, "from"},
		{"admin", "GET", "/audit?to=2026-13-01T00:00:00Z", "", 400, "to"},
		{"admin", "GET", "/audit?limit=0", "", 400, "limit"},
		{"admin", "GET", "/audit?limit=501", "", 400, "limit"},
		{"admin", "GET", "/audit/verify?from=-1", "", 400, "from"},
		{"admin", "GET", "/audit/verify?to=soon", "", 400, "to"},
		{"admin", "GET", "/audit/checkpoints?limit=x", "", 400, "limit"},
		{"admin", "PUT", "/audit/config", `{"retention_days":30,"org_id":"other"}`, 400, "org_id"},
		{"admin", "PUT", "/audit/config", `{"retention_days":`, 400, ""},
	} {
		code, body := auditDo(t, srv, c.role, c.method, c.path, c.body)
		if code != c.want || !strings.Contains(body, c.field) {
			t.Errorf("%s %s as %q: %d %s", c.method, c.path, c.role, code, body)
		}
	}
	if stub.count() != calls {
		t.Fatalf("refused requests reached the service: %d calls, want %d", stub.count(), calls)
	}
}

// TestAuditSIEMCredentialRoutes: creating SIEM credentials answers 201
// with Cache-Control: no-store (the reply is the only copy of the
// secret), listing pages, revoking answers 204 with the id from the path;
// all of it needs audit:manage, and malformed requests never reach the
// service.
func TestAuditSIEMCredentialRoutes(t *testing.T) {
	srv, stub := auditServer(t)

	code, h, body := auditDoHeader(t, srv, "admin", "POST", "/audit/siem-credentials", `{"name":"splunk","ttl":"720h"}`)
	if code != http.StatusCreated || h.Get("Cache-Control") != "no-store" || !strings.Contains(body, events.OpAuditSIEMCredentialsCreate) {
		t.Fatalf("create: %d %v %s", code, h, body)
	}
	if got := stub.last(t); got.op != events.OpAuditSIEMCredentialsCreate || got.org != "org1" || got.role != "admin" ||
		got.body["name"] != "splunk" || got.body["ttl"] != "720h" {
		t.Fatalf("create request: %+v", got)
	}
	code, body = auditDo(t, srv, "owner", "GET", "/audit/siem-credentials?limit=5&cursor=c1", "")
	if got := stub.last(t); code != 200 || !strings.Contains(body, events.OpAuditSIEMCredentialsList) ||
		got.op != events.OpAuditSIEMCredentialsList || got.body["limit"] != float64(5) || got.body["cursor"] != "c1" {
		t.Fatalf("list: %d %s %+v", code, body, got)
	}
	code, body = auditDo(t, srv, "admin", "DELETE", "/audit/siem-credentials/abc123", "")
	if got := stub.last(t); code != http.StatusNoContent || body != "" || got.op != events.OpAuditSIEMCredentialsRevoke ||
		got.body["id"] != "abc123" || got.org != "org1" {
		t.Fatalf("revoke: %d %q %+v", code, body, got)
	}

	calls := stub.count()
	for _, c := range []struct {
		role, method, path, body string
		want                     int
		field                    string
	}{
		{"", "POST", "/audit/siem-credentials", `{"name":"s"}`, 401, ""},
		{"viewer", "POST", "/audit/siem-credentials", `{"name":"s"}`, 403, ""},
		{"operator", "POST", "/audit/siem-credentials", `{"name":"s"}`, 403, ""},
		{"viewer", "GET", "/audit/siem-credentials", "", 403, ""},
		{"operator", "GET", "/audit/siem-credentials", "", 403, ""},
		{"operator", "DELETE", "/audit/siem-credentials/abc123", "", 403, ""},
		{"viewer", "DELETE", "/audit/siem-credentials/abc123", "", 403, ""},
		{"admin", "POST", "/audit/siem-credentials", `{"name":"s","org_id":"other"}`, 400, "org_id"},
		{"admin", "POST", "/audit/siem-credentials", `{"name":`, 400, ""},
		{"admin", "GET", "/audit/siem-credentials?limit=0", "", 400, "limit"},
	} {
		code, body := auditDo(t, srv, c.role, c.method, c.path, c.body)
		if code != c.want || !strings.Contains(body, c.field) {
			t.Errorf("%s %s as %q: %d %s", c.method, c.path, c.role, code, body)
		}
	}
	if stub.count() != calls {
		t.Fatalf("refused requests reached the service: %d calls, want %d", stub.count(), calls)
	}
}
