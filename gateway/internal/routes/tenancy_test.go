package routes_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
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

// seen is one request the stand-in tenancy service received.
type seen struct {
	op     string
	org    string
	actor  string
	role   string
	body   map[string]any
	header micro.Headers
}

// stubTenancy is a stand-in for the tenancy service (the gateway must not
// import services): it records each request and answers {}.
type stubTenancy struct {
	mu   sync.Mutex
	reqs []seen
}

func (s *stubTenancy) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("the tenancy service was not called")
	}
	return s.reqs[len(s.reqs)-1]
}

func (s *stubTenancy) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

var tenancyOps = []string{
	events.OpTenancyCreateOrg, events.OpTenancyListOrgs, events.OpTenancyGetOrg, events.OpTenancyUpdateOrg, events.OpTenancyDeleteOrg,
	events.OpTenancyUsage, events.OpTenancyListMembers, events.OpTenancyAddMember, events.OpTenancyUpdateMember, events.OpTenancyRemoveMember,
	events.OpTenancyCreateInvitation, events.OpTenancyListInvitations, events.OpTenancyRevokeInvitation, events.OpTenancyAcceptInvitation,
	events.OpTenancyCreateEnrollmentToken, events.OpTenancyListEnrollmentTokens, events.OpTenancyRevokeEnrollmentToken,
	events.OpTenancyDeleteEnrollmentToken, events.OpTenancyListUsers, events.OpTenancyCreateUser, events.OpTenancyUpdateUser, events.OpTenancyDeleteUser,
}

// server mounts the tenancy routes behind a test middleware that sets the
// principal from X-Test-* headers, the way the auth middleware would.
func server(t *testing.T) (*httptest.Server, *stubTenancy, chi.Router) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	stub := &stubTenancy{}
	ops := map[string]micro.HandlerFunc{}
	for _, op := range tenancyOps {
		ops[op] = func(r micro.Request) {
			var body map[string]any
			_ = json.Unmarshal(r.Data(), &body)
			h := r.Headers()
			stub.mu.Lock()
			stub.reqs = append(stub.reqs, seen{op: op, org: h.Get(events.HeaderOrgID), actor: h.Get(events.HeaderActorID),
				role: h.Get(events.HeaderRole), body: body, header: h})
			stub.mu.Unlock()
			_ = r.RespondJSON(map[string]any{})
		}
	}
	natstest.Service(t, nc, "tenancy", ops)

	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if id := req.Header.Get("X-Test-User"); id != "" {
				kind := events.ActorKind(req.Header.Get("X-Test-Kind"))
				if kind == "" {
					kind = events.ActorUser
				}
				req = req.WithContext(reqctx.WithPrincipal(req.Context(), reqctx.Principal{
					ID: id, Kind: kind, OrgID: req.Header.Get("X-Test-Org"), Role: req.Header.Get("X-Test-Role")}))
			}
			next.ServeHTTP(w, req)
		})
	})
	routes.MountTenancy(r, routes.Deps{NC: nc, Log: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, stub, r
}

type caller struct{ user, org, role, kind string }

func do(t *testing.T, srv *httptest.Server, c caller, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"X-Test-User": c.user, "X-Test-Org": c.org, "X-Test-Role": c.role, "X-Test-Kind": c.kind} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTenancyRoutesAreAllMounted(t *testing.T) {
	_, _, r := server(t)
	want := []string{
		"GET /orgs", "POST /orgs", "GET /orgs/{org}/", "PATCH /orgs/{org}/", "DELETE /orgs/{org}/", "GET /orgs/{org}/usage",
		"GET /orgs/{org}/members", "POST /orgs/{org}/members", "PATCH /orgs/{org}/members/{user}", "DELETE /orgs/{org}/members/{user}",
		"GET /orgs/{org}/invitations", "POST /orgs/{org}/invitations", "DELETE /orgs/{org}/invitations/{id}", "POST /invitations/{token}/accept",
		"GET /orgs/{org}/enrollment-tokens", "POST /orgs/{org}/enrollment-tokens", "POST /orgs/{org}/enrollment-tokens/{id}/revoke",
		"DELETE /orgs/{org}/enrollment-tokens/{id}", "GET /users", "POST /users", "PATCH /users/{id}", "DELETE /users/{id}",
	}
	var got []string
	_ = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		got = append(got, method+" "+route)
		return nil
	})
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTenancyRoutesScopeToTheRequestOrg(t *testing.T) {
	srv, stub, _ := server(t)
	owner := caller{user: "u1", org: "orgA", role: "owner"}
	viewer := caller{user: "u2", org: "orgA", role: "viewer"}

	// Another org in the path: 404 before any role check or service call.
	for _, c := range []struct {
		who          caller
		method, path string
	}{
		{owner, "GET", "/orgs/orgB"}, {viewer, "DELETE", "/orgs/orgB"}, {viewer, "POST", "/orgs/orgB/members"},
		{owner, "DELETE", "/orgs/orgB/enrollment-tokens/t1"}, {owner, "GET", "/orgs/orgB/invitations"},
		{caller{user: "u3", role: "owner"}, "GET", "/orgs/orgA/usage"}, // no org resolved at all
	} {
		if status, body := do(t, srv, c.who, c.method, c.path, `{}`); status != http.StatusNotFound || !strings.Contains(body, "organisation not found") {
			t.Errorf("%s %s: %d %s", c.method, c.path, status, body)
		}
	}
	if stub.count() != 0 {
		t.Fatalf("the service was called for another org: %+v", stub.reqs)
	}

	// Roles, from the one matrix.
	cases := []struct {
		who          caller
		method, path string
		body         string
		status       int
	}{
		{caller{}, "GET", "/orgs/orgA", "", 401},
		{caller{}, "GET", "/orgs", "", 401},
		{viewer, "DELETE", "/orgs/orgA", "", 403},
		{viewer, "PATCH", "/orgs/orgA", `{"name":"x"}`, 403},
		{viewer, "POST", "/orgs/orgA/members", `{"email":"a@b.co","role":"viewer"}`, 403},
		{viewer, "GET", "/orgs/orgA/enrollment-tokens", "", 403},
		{caller{user: "u4", org: "orgA", role: "operator"}, "GET", "/orgs/orgA/enrollment-tokens", "", 200},
		{viewer, "GET", "/orgs/orgA/members", "", 200},
		{viewer, "GET", "/users", "", 403},
		{caller{user: "k1", org: "orgA", role: "owner", kind: "api_key"}, "GET", "/orgs", "", 403},
		{caller{user: "k1", org: "orgA", role: "owner", kind: "api_key"}, "POST", "/invitations/ipi_x/accept", "", 403},
		{owner, "DELETE", "/orgs/orgA", "", 204},
		{owner, "GET", "/orgs/orgA/", "", 200},
	}
	for _, c := range cases {
		if status, body := do(t, srv, c.who, c.method, c.path, c.body); status != c.status {
			t.Errorf("%s %s as %+v: %d %s, want %d", c.method, c.path, c.who, status, body, c.status)
		}
	}
}

func TestTenancyRoutesBuildRequests(t *testing.T) {
	srv, stub, _ := server(t)
	owner := caller{user: "u1", org: "orgA", role: "owner"}

	// POST /orgs: the owner is the caller, never the body.
	status, body := do(t, srv, caller{user: "u9"}, "POST", "/orgs", `{"name":"New","slug":"new-org"}`)
	got := stub.last(t)
	if status != 201 || got.op != events.OpTenancyCreateOrg || got.body["owner_user_id"] != "u9" || got.body["name"] != "New" {
		t.Fatalf("create org: %d %s %+v", status, body, got)
	}
	for _, bad := range []string{`{"name":"x","owner_user_id":"u1"}`, `{"name":"x","plan":"enterprise"}`, `{"name":`, ``} {
		if status, body := do(t, srv, caller{user: "u9"}, "POST", "/orgs", bad); status != 400 {
			t.Errorf("POST /orgs %s: %d %s", bad, status, body)
		}
	}
	if status, body := do(t, srv, caller{user: "u9"}, "POST", "/orgs", `{"name":"x","org_id":"orgB"}`); status != 400 || !strings.Contains(body, `"field":"org_id"`) {
		t.Errorf("org id in a body: %d %s", status, body)
	}

	// The path names the member; the org travels in the headers only.
	status, _ = do(t, srv, owner, "PATCH", "/orgs/orgA/members/u7", `{"role":"admin"}`)
	got = stub.last(t)
	if status != 200 || got.op != events.OpTenancyUpdateMember || got.body["user_id"] != "u7" || got.body["role"] != "admin" ||
		got.org != "orgA" || got.actor != "u1" || got.role != "owner" {
		t.Fatalf("update member: %d %+v", status, got)
	}
	status, _ = do(t, srv, owner, "DELETE", "/users/u8", "")
	if got = stub.last(t); status != 204 || got.op != events.OpTenancyDeleteUser || got.body["user_id"] != "u8" {
		t.Fatalf("delete user: %d %+v", status, got)
	}
	status, _ = do(t, srv, owner, "POST", "/orgs/orgA/enrollment-tokens/t1/revoke", "")
	if got = stub.last(t); status != 200 || got.op != events.OpTenancyRevokeEnrollmentToken || got.body["id"] != "t1" {
		t.Fatalf("revoke token: %d %+v", status, got)
	}
	status, _ = do(t, srv, owner, "POST", "/orgs/orgA/invitations", `{"email":"a@b.co","role":"viewer"}`)
	if got = stub.last(t); status != 201 || got.op != events.OpTenancyCreateInvitation {
		t.Fatalf("invite: %d %+v", status, got)
	}
	// Accepting needs a user but no org; the token comes from the path.
	status, _ = do(t, srv, caller{user: "u5"}, "POST", "/invitations/ipi_abc/accept", "")
	if got = stub.last(t); status != 200 || got.op != events.OpTenancyAcceptInvitation || got.body["token"] != "ipi_abc" || got.org != "" {
		t.Fatalf("accept: %d %+v", status, got)
	}
	// Lists page with ?limit=&cursor=.
	status, _ = do(t, srv, owner, "GET", "/orgs/orgA/members?limit=5&cursor=abc", "")
	if got = stub.last(t); status != 200 || got.body["limit"] != float64(5) || got.body["cursor"] != "abc" {
		t.Fatalf("list: %d %+v", status, got)
	}
	if status, body := do(t, srv, owner, "GET", "/orgs/orgA/members?limit=0", ""); status != 400 || !strings.Contains(body, `"field":"limit"`) {
		t.Fatalf("bad limit: %d %s", status, body)
	}
}
