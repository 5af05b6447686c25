package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/gateway"
)

var paramRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// gatewayRoutes lists the routes of a gateway configured like the one
// `infrapilot dev` runs (the same areas are mounted in every gateway).
func gatewayRoutes(t *testing.T, run *devRun) []gateway.Route {
	t.Helper()
	nc := run.connect(t)
	defer nc.Close()
	gw, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0"}, gateway.Deps{NC: nc, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := gw.Routes()
	if err != nil {
		t.Fatal(err)
	}
	var out []gateway.Route
	for _, r := range routes {
		if strings.HasPrefix(r.Pattern, api+"/") {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pattern+out[i].Method < out[j].Pattern+out[j].Method })
	return out
}

// tenantFixture is one org with one resource of every kind the API has.
type tenantFixture struct {
	account
	name      string
	memberID  string
	inviteID  string
	inviteTok string
	enrollID  string
	enrollTok string
	apiKeyID  string
	apiKey    string
	exportID  string
	reportID  string
	agentID   string
	siemID    string
	proxyID   string
	secrets   []string // strings of this org that must never appear in another org's replies
}

func newTenant(c *apiClient, email, orgName string) tenantFixture {
	c.t.Helper()
	f := tenantFixture{account: register(c, email, orgName), name: orgName}
	m := c.must(201, "POST", api+"/users", f.access, f.orgID, map[string]any{
		"email": "member-" + email, "password": "member-password-1", "name": "Member of " + orgName, "role": "operator"})
	f.memberID = userIDOf(c, m)
	inv := c.must(201, "POST", api+"/orgs/"+f.orgID+"/invitations", f.access, f.orgID, map[string]any{"email": "invitee-" + email, "role": "viewer"})
	f.inviteID, f.inviteTok = inv.str("id"), inv.str("token")
	en := c.must(201, "POST", api+"/orgs/"+f.orgID+"/enrollment-tokens", f.access, f.orgID, map[string]any{"name": "fleet of " + orgName, "max_uses": 5})
	f.enrollID, f.enrollTok = en.str("id"), en.str("token")
	k := c.must(201, "POST", api+"/auth/api-keys", f.access, f.orgID, map[string]any{"name": "key of " + orgName, "role": "admin"})
	f.apiKeyID, f.apiKey = k.str("id"), k.str("key")
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	ex := c.must(201, "POST", api+"/audit/exports", f.access, f.orgID, map[string]any{"format": "jsonl", "from": from, "to": to})
	rep := c.must(201, "POST", api+"/audit/reports", f.access, f.orgID, map[string]any{"kind": "activity", "from": from, "to": to})
	f.exportID, f.reportID = ex.str("id"), rep.str("id")
	siem := c.must(201, "POST", api+"/audit/siem-credentials", f.access, f.orgID, map[string]any{"name": "siem of " + orgName})
	f.siemID = siem.str("id")
	ag := c.must(200, "POST", api+"/agents/enroll", "", "", map[string]any{"token": f.enrollTok,
		"fingerprint": "machine-of-" + f.orgID, "hostname": "host-of-" + f.orgID, "os": "linux", "arch": "amd64", "version": "test"})
	f.agentID = ag.str("agent_id")
	domain := "proxy-of-" + f.orgID[:8] + ".example.com"
	px := c.must(201, "POST", api+"/agents/"+f.agentID+"/proxies", f.access, f.orgID, map[string]any{
		"domains": []string{domain}, "upstream": "http://127.0.0.1:9", "rate_limits": []map[string]any{{"id": "rl1", "rate": 10}}})
	f.proxyID = px.str("id")
	for _, v := range []string{f.inviteID, f.enrollID, f.apiKeyID, f.exportID, f.reportID, f.agentID, f.siemID, f.proxyID} {
		if v == "" {
			c.t.Fatalf("fixture of %s lacks an id: %+v", orgName, f)
		}
	}
	f.secrets = []string{orgName, "member-" + email, "invitee-" + email, "fleet of " + orgName, "key of " + orgName,
		f.inviteTok, f.enrollTok, f.apiKey, email, "host-of-" + f.orgID, "machine-of-" + f.orgID, ag.str("credentials"),
		"siem of " + orgName, siem.str("credentials"), f.siemID, domain, f.proxyID}
	return f
}

func userIDOf(c *apiClient, r response) string {
	c.t.Helper()
	for _, k := range []string{"user_id", "id"} {
		if v := r.str(k); v != "" {
			return v
		}
	}
	if u, ok := r.Body["user"].(map[string]any); ok {
		if v, _ := u["id"].(string); v != "" {
			return v
		}
	}
	c.t.Fatalf("no user id in %s", r.Raw)
	return ""
}

// idFor resolves a path parameter of route to org B's resource of that
// kind. A parameter the sweep does not know fails the test: a new route
// must tell the sweep which of B's resources its ids name.
func idFor(t *testing.T, pattern, param string, b tenantFixture) string {
	switch {
	case param == "org":
		return b.orgID
	case param == "user":
		return b.memberID
	case param == "token" && strings.Contains(pattern, "/invitations/"):
		return b.inviteTok
	case param == "id" && strings.Contains(pattern, "/invitations/"):
		return b.inviteID
	case param == "id" && strings.Contains(pattern, "/enrollment-tokens/"):
		return b.enrollID
	case param == "id" && strings.Contains(pattern, "/api-keys/"):
		return b.apiKeyID
	case param == "id" && strings.HasPrefix(pattern, api+"/users/"):
		return b.memberID
	case param == "id" && strings.Contains(pattern, "/audit/exports/"):
		return b.exportID
	case param == "id" && strings.Contains(pattern, "/audit/reports/"):
		return b.reportID
	case param == "id" && strings.Contains(pattern, "/audit/siem-credentials/"):
		return b.siemID
	case param == "id" && strings.HasPrefix(pattern, api+"/agents/"):
		return b.agentID
	case param == "cid" && strings.HasPrefix(pattern, api+"/agents/{id}/containers/"):
		return "web" // B's agent is not running: the registry must answer first
	case param == "network" && strings.HasPrefix(pattern, api+"/agents/{id}/networks/"):
		return "bridge"
	case param == "pid" && strings.HasPrefix(pattern, api+"/agents/{id}/proxies/"):
		return b.proxyID
	case param == "rid" && strings.HasPrefix(pattern, api+"/agents/{id}/proxies/"):
		return "rl1"
	}
	t.Fatalf("the isolation sweep does not know which resource {%s} of %s names: add it to idFor", param, pattern)
	return ""
}

// bodyFor is a well-formed body for a mutating route, so that a refusal
// cannot come from validation instead of isolation.
func bodyFor(method string) any {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return map[string]any{"role": "viewer"}
	}
	return nil
}

func leaked(r response, b tenantFixture) string {
	body := string(r.Raw)
	if inst, ok := r.Body["instance"].(string); ok {
		body = strings.ReplaceAll(body, inst, "") // the problem's instance echoes the request path
	}
	for _, s := range b.secrets {
		if s != "" && strings.Contains(body, s) {
			return s
		}
	}
	return ""
}

// TestTenantIsolationSweep walks every registered API route. Each route
// that names a resource is called with org B's ids and org A's credentials
// (a user token and an API key): the answer is 404 every time and never
// contains B's data. Every authenticated route called with X-Org-ID of org B
// by A's user answers 404 as well.
func TestTenantIsolationSweep(t *testing.T) {
	c, run := identityDev(t)
	a := newTenant(c, "alice@a.example.com", "Org Alpha")
	b := newTenant(c, "bob@b.example.com", "Org Bravo")
	routes := gatewayRoutes(t, run)
	if len(routes) < 20 {
		t.Fatalf("only %d API routes found: %v", len(routes), routes)
	}
	checked := 0
	for _, rt := range routes {
		params := paramRE.FindAllStringSubmatch(rt.Pattern, -1)
		if len(params) == 0 {
			continue
		}
		path := rt.Pattern
		for _, p := range params {
			path = strings.Replace(path, p[0], idFor(t, rt.Pattern, p[1], b), 1)
		}
		for _, cred := range []struct{ name, token, org string }{
			{"A's user", a.access, a.orgID},
			{"A's API key", a.apiKey, ""},
		} {
			r := c.call(rt.Method, path, cred.token, cred.org, bodyFor(rt.Method))
			want := http.StatusNotFound
			if strings.Contains(rt.Pattern, "{token}") && r.Status == http.StatusForbidden && cred.name == "A's user" {
				// Accepting an invitation addressed to someone else is
				// refused before any lookup of the org: the token is the
				// secret, and the reply names no data of B.
				want = http.StatusForbidden
			}
			if strings.Contains(rt.Pattern, "{token}") && cred.name == "A's API key" {
				want = http.StatusForbidden // API keys never accept invitations
			}
			if r.Status != want {
				t.Errorf("%s %s with %s: %d, want %d: %s", rt.Method, rt.Pattern, cred.name, r.Status, want, r.Raw)
			}
			if s := leaked(r, b); s != "" {
				t.Errorf("%s %s with %s leaked %q of org B: %s", rt.Method, rt.Pattern, cred.name, s, r.Raw)
			}
			checked++
		}
	}
	// X-Org-ID of an org the caller is not in: 404 on every route that
	// acts in an org, whatever it is.
	for _, rt := range routes {
		path := rt.Pattern
		for _, p := range paramRE.FindAllStringSubmatch(rt.Pattern, -1) {
			path = strings.Replace(path, p[0], idFor(t, rt.Pattern, p[1], a), 1)
		}
		if anon := c.call(rt.Method, path, "", "", bodyFor(rt.Method)); anon.Status != http.StatusUnauthorized {
			continue // a public route: it acts in no org
		}
		r := c.call(rt.Method, path, a.access, b.orgID, bodyFor(rt.Method))
		if r.Status != http.StatusNotFound {
			t.Errorf("%s %s with X-Org-ID of org B: %d, want 404: %s", rt.Method, rt.Pattern, r.Status, r.Raw)
		}
		if s := leaked(r, b); s != "" {
			t.Errorf("%s %s with X-Org-ID of org B leaked %q: %s", rt.Method, rt.Pattern, s, r.Raw)
		}
		checked++
	}
	t.Logf("isolation sweep: %d calls over %d routes", checked, len(routes))
	// B's resources are untouched by all of the above.
	c.must(200, "GET", api+"/orgs/"+b.orgID, b.access, b.orgID, nil)
	inv := c.must(200, "GET", api+"/orgs/"+b.orgID+"/invitations", b.access, b.orgID, nil)
	if !strings.Contains(string(inv.Raw), b.inviteID) {
		t.Errorf("B's invitation disappeared: %s", inv.Raw)
	}
	toks := c.must(200, "GET", api+"/orgs/"+b.orgID+"/enrollment-tokens", b.access, b.orgID, nil)
	if !strings.Contains(string(toks.Raw), b.enrollID) || strings.Contains(string(toks.Raw), `"revoked":true`) {
		t.Errorf("B's enrollment token was changed: %s", toks.Raw)
	}
	c.must(200, "GET", api+"/orgs/"+b.orgID, b.apiKey, "", nil)
	_ = fmt.Sprint
}
