package routes_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/openapi"
	"github.com/infrapilot/infrapilot/gateway/internal/routes"
)

// proxyRouteList is every route MountProxy registers.
var proxyRouteList = []string{
	"GET /health/tls",
	"GET /agents/{id}/proxies", "POST /agents/{id}/proxies",
	"GET /agents/{id}/proxies/{pid}", "PUT /agents/{id}/proxies/{pid}", "DELETE /agents/{id}/proxies/{pid}",
	"POST /agents/{id}/proxies/{pid}/ssl", "GET /agents/{id}/proxies/{pid}/config", "POST /agents/{id}/proxies/{pid}/test",
	"GET /agents/{id}/proxies/{pid}/security-headers", "PUT /agents/{id}/proxies/{pid}/security-headers",
	"GET /agents/{id}/proxies/{pid}/rate-limits", "POST /agents/{id}/proxies/{pid}/rate-limits",
	"PUT /agents/{id}/proxies/{pid}/rate-limits/{rid}", "DELETE /agents/{id}/proxies/{pid}/rate-limits/{rid}",
	"GET /agents/{id}/proxy-settings", "PUT /agents/{id}/proxy-settings",
	"POST /agents/{id}/networks/{network}/attach-proxy", "POST /agents/{id}/networks/{network}/detach-proxy",
}

func mountedProxyRoutes(t *testing.T) []string {
	t.Helper()
	r := chi.NewRouter()
	routes.MountProxy(r, routes.Deps{})
	var got []string
	if err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		got = append(got, method+" "+route)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestProxyRoutesAreAllMounted(t *testing.T) {
	got, want := mountedProxyRoutes(t), append([]string(nil), proxyRouteList...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestProxyRoutesAreDocumented: the served OpenAPI document has every
// proxy route, with its method.
func TestProxyRoutesAreDocumented(t *testing.T) {
	rec := httptest.NewRecorder()
	openapi.Handler(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, route := range mountedProxyRoutes(t) {
		method, path, _ := strings.Cut(route, " ")
		if _, ok := doc.Paths["/api/v1"+path][strings.ToLower(method)]; !ok {
			t.Errorf("%s /api/v1%s is not in openapi.json", method, path)
		}
	}
}

// TestProxyRoutes: each route's role, the operation and body the proxy
// service gets (the agent and host from the path, the org in the
// headers), and how its replies and errors are answered.
func TestProxyRoutes(t *testing.T) {
	w := proxyServer(t)
	const (
		h1     = "/agents/a1/proxies/h1"
		offSSL = `"ssl":{"enabled":false,"force":false,"http2":false,"hsts":false}`
	)
	for _, c := range []struct {
		who          caller
		method, path string
		body         string
		status       int
		want         string // in the reply
		op, sent     string // the operation and body the service got; "" when nothing may reach it
	}{
		{viewerA, "GET", "/agents/a1/proxies", "", 200, `"items":[{"id":"h1"`, events.OpProxyHostsList, `{"agent_id":"a1"}`},
		{viewerA, "GET", "/agents/a1/proxies?limit=2&cursor=c1", "", 200, `"next_cursor":"next"`, events.OpProxyHostsList, `{"agent_id":"a1","limit":2,"cursor":"c1"}`},
		{viewerA, "GET", "/agents/a1/proxies?cursor=end", "", 200, `{"items":[]}`, events.OpProxyHostsList, `{"agent_id":"a1","cursor":"end"}`},
		{viewerA, "GET", "/agents/a1/proxies?limit=0", "", 400, `"field":"limit"`, "", ""},
		{operatorA, "POST", "/agents/a1/proxies",
			`{"domains":["app.example.com"],"upstream":"http://10.0.0.5:3000","websocket":true,"ssl":{"enabled":true,"force":true,"http2":true,"hsts":false},"enabled":false}`,
			201, `"id":"h-new"`, events.OpProxyHostCreate,
			`{"agent_id":"a1","domains":["app.example.com"],"upstream":{"url":"http://10.0.0.5:3000"},"websocket":true,"ssl":{"enabled":true,"force":true,"http2":true,"hsts":false},"enabled":false}`},
		{operatorA, "POST", "/agents/a1/proxies",
			`{"domains":["a.example.com"],"upstream":{"container":"web","port":3000},"security_headers":{"hsts_max_age":600,"csp":"default-src 'self'"},"rate_limits":[{"id":"","rate":5,"per":"minute","burst":2}]}`,
			201, `"upstream":{"container":"web","port":3000}`, events.OpProxyHostCreate,
			`{"agent_id":"a1","domains":["a.example.com"],"upstream":{"container":"web","port":3000},"websocket":false,` + offSSL +
				`,"security_headers":{"hsts_max_age":600,"csp":"default-src 'self'"},"rate_limits":[{"id":"","rate":5,"per":"minute","burst":2}]}`},
		{operatorA, "POST", "/agents/a1/proxies", `{"agent_id":"b1","domains":["a.example.com"]}`, 400, `"field":"agent_id"`, "", ""},
		{operatorA, "POST", "/agents/a1/proxies", `{"host_id":"h1","domains":["a.example.com"]}`, 400, `"field":"host_id"`, "", ""},
		{operatorA, "POST", "/agents/a1/proxies", `{"domains":["a.example.com"],"ssl":{"enabled":true,"redirect":true}}`, 400, `unknown field`, "", ""},
		{operatorA, "POST", "/agents/a1/proxies", ``, 400, `request body is empty`, "", ""},
		{operatorA, "POST", "/agents/a1/proxies", `{"domains":["taken.example.com"]}`, 409, `served by host h9`, events.OpProxyHostCreate,
			`{"agent_id":"a1","domains":["taken.example.com"],"upstream":{},"websocket":false,` + offSSL + `}`},
		{operatorA, "POST", "/agents/a1/proxies", `{"domains":["a;b"]}`, 400, `"field":"domains[0]"`, events.OpProxyHostCreate,
			`{"agent_id":"a1","domains":["a;b"],"upstream":{},"websocket":false,` + offSSL + `}`},
		{viewerA, "GET", h1, "", 200, `"id":"h1"`, events.OpProxyHostGet, `{"agent_id":"a1","host_id":"h1"}`},
		{viewerA, "GET", "/agents/a1/proxies/missing", "", 404, `proxy host missing not found`, events.OpProxyHostGet, `{"agent_id":"a1","host_id":"missing"}`},
		{viewerA, "GET", "/agents/a1/proxies/H1", "", 404, `not found`, "", ""},
		{viewerA, "GET", "/agents/a1/proxies/h1.x", "", 404, `not found`, "", ""},
		{operatorA, "PUT", h1, `{"domains":["app.example.com"],"upstream":{"url":"https://10.0.0.5"}}`, 200, `"status":"pending"`, events.OpProxyHostUpdate,
			`{"agent_id":"a1","host_id":"h1","domains":["app.example.com"],"upstream":{"url":"https://10.0.0.5"},"websocket":false,` + offSSL + `}`},
		{operatorA, "PUT", "/agents/a1/proxies/missing", `{"domains":["app.example.com"]}`, 404, `not found`, events.OpProxyHostUpdate,
			`{"agent_id":"a1","host_id":"missing","domains":["app.example.com"],"upstream":{},"websocket":false,` + offSSL + `}`},
		{operatorA, "DELETE", h1, "", 204, "", events.OpProxyHostDelete, `{"agent_id":"a1","host_id":"h1"}`},
		{operatorA, "POST", h1 + "/ssl", "", 202, `"cert":{"status":"requested"}`, events.OpProxyHostSSL, `{"agent_id":"a1","host_id":"h1"}`},
		{viewerA, "GET", h1 + "/config", "", 200, `"file":"h1.conf"`, events.OpProxyHostConfig, `{"agent_id":"a1","host_id":"h1"}`},
		{operatorA, "POST", h1 + "/test", "", 200, `"ok":true`, events.OpProxyHostTest, `{"agent_id":"a1","host_id":"h1"}`},
		{operatorA, "POST", "/agents/a1/proxies/slow/test", "", 503, `agent a1 did not answer`, events.OpProxyHostTest, `{"agent_id":"a1","host_id":"slow"}`},
		{viewerA, "GET", h1 + "/security-headers", "", 200, `{"frame_options":"DENY","nosniff":true}`, events.OpProxyHostGet, `{"agent_id":"a1","host_id":"h1"}`},
		{viewerA, "GET", "/agents/a1/proxies/bare/security-headers", "", 200, `{}`, events.OpProxyHostGet, `{"agent_id":"a1","host_id":"bare"}`},
		{viewerA, "GET", "/agents/a1/proxies/missing/security-headers", "", 404, `not found`, events.OpProxyHostGet, `{"agent_id":"a1","host_id":"missing"}`},
		{operatorA, "PUT", h1 + "/security-headers", `{"hsts_max_age":31536000,"frame_options":"SAMEORIGIN"}`, 200, `"frame_options":"SAMEORIGIN"`,
			events.OpProxySecurityHeadersSet, `{"agent_id":"a1","host_id":"h1","headers":{"hsts_max_age":31536000,"frame_options":"SAMEORIGIN"}}`},
		{operatorA, "PUT", h1 + "/security-headers", `{"x_powered_by":"no"}`, 400, `"field":"x_powered_by"`, "", ""},
		{viewerA, "GET", h1 + "/rate-limits", "", 200, `{"items":[{"id":"r1","rate":10,"per":"second"}]}`, events.OpProxyHostGet, `{"agent_id":"a1","host_id":"h1"}`},
		{viewerA, "GET", "/agents/a1/proxies/bare/rate-limits", "", 200, `{"items":[]}`, events.OpProxyHostGet, `{"agent_id":"a1","host_id":"bare"}`},
		{operatorA, "POST", h1 + "/rate-limits", `{"rate":10,"per":"second","burst":20,"nodelay":true,"path":"/api"}`, 201, `"id":"r-new"`,
			events.OpProxyRateLimitCreate, `{"agent_id":"a1","host_id":"h1","rate_limit":{"id":"","rate":10,"per":"second","burst":20,"nodelay":true,"path":"/api"}}`},
		{operatorA, "POST", h1 + "/rate-limits", `{"id":"r7","rate":10,"per":"second"}`, 400, `"field":"id"`, "", ""},
		{operatorA, "PUT", h1 + "/rate-limits/r1", `{"rate":1,"per":"minute"}`, 200, `"id":"r1"`,
			events.OpProxyRateLimitUpdate, `{"agent_id":"a1","host_id":"h1","rate_limit":{"id":"r1","rate":1,"per":"minute"}}`},
		{operatorA, "PUT", h1 + "/rate-limits/R1", `{"rate":1,"per":"minute"}`, 404, `rate limit \"R1\" not found`, "", ""},
		{operatorA, "DELETE", h1 + "/rate-limits/r1", "", 204, "", events.OpProxyRateLimitDelete, `{"agent_id":"a1","host_id":"h1","rate_limit_id":"r1"}`},
		{operatorA, "DELETE", "/agents/a1/proxies/H1/rate-limits/r1", "", 404, `proxy host \"H1\" not found`, "", ""},
		{viewerA, "GET", "/agents/a1/proxy-settings", "", 200, `"mode":"managed"`, events.OpProxySettingsGet, `{"agent_id":"a1"}`},
		{operatorA, "PUT", "/agents/a1/proxy-settings", `{"mode":"external","acme_email":"ops@example.com"}`, 200, `"agent_id":"a1"`,
			events.OpProxySettingsSet, `{"agent_id":"a1","mode":"external","acme_email":"ops@example.com"}`},
		{operatorA, "PUT", "/agents/a1/proxy-settings", `{"mode":"external","agent_id":"b1"}`, 400, `"field":"agent_id"`, "", ""},
		{operatorA, "POST", "/agents/a1/networks/app_net.1/attach-proxy", "", 200, `"networks":["app_net.1"]`,
			events.OpProxyNetworkAttach, `{"agent_id":"a1","network":"app_net.1"}`},
		{operatorA, "POST", "/agents/a1/networks/host/attach-proxy", "", 400, `"field":"network"`, events.OpProxyNetworkAttach, `{"agent_id":"a1","network":"host"}`},
		{operatorA, "POST", "/agents/a1/networks/missing/detach-proxy", "", 404, `network missing not found`, events.OpProxyNetworkDetach, `{"agent_id":"a1","network":"missing"}`},
		{operatorA, "POST", "/agents/a1/networks/app_net/detach-proxy", "", 200, `"networks":[]`, events.OpProxyNetworkDetach, `{"agent_id":"a1","network":"app_net"}`},
		{viewerA, "GET", "/health/tls", "", 200, `"score":100`, events.OpProxyTLSHealth, `{}`},
		{caller{}, "GET", "/health/tls", "", 401, "", "", ""},
		{caller{}, "GET", "/agents/a1/proxies", "", 401, "", "", ""},
	} {
		before := len(w.received())
		resp, b := w.call(t, c.who, c.method, c.path, c.body)
		if resp.StatusCode != c.status || !strings.Contains(b, c.want) {
			t.Errorf("%s %s as %s: %d %s", c.method, c.path, c.who.role, resp.StatusCode, b)
			continue
		}
		if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: an error as %q", c.method, c.path, resp.Header.Get("Content-Type"))
		}
		got := w.received()[before:]
		switch {
		case c.op == "" && len(got) != 0:
			t.Errorf("%s %s as %s: the service got %+v", c.method, c.path, c.who.role, got)
		case c.op != "" && (len(got) != 1 || got[0].op != c.op || got[0].body != c.sent):
			t.Errorf("%s %s as %s: the service got %+v\nwant %s %s", c.method, c.path, c.who.role, got, c.op, c.sent)
		case c.op != "" && (got[0].org != "orgA" || got[0].actor != c.who.user || got[0].role != c.who.role):
			t.Errorf("%s %s: headers org %q actor %q role %q", c.method, c.path, got[0].org, got[0].actor, got[0].role)
		}
	}
}

// proxyWrites are the routes that need proxy:write, with a body they
// accept.
var proxyWrites = []struct{ method, path, body string }{
	{"POST", "/proxies", `{"domains":["a.example.com"],"upstream":"http://10.0.0.5"}`},
	{"PUT", "/proxies/h1", `{"domains":["a.example.com"],"upstream":{"container":"web","port":80}}`},
	{"DELETE", "/proxies/h1", ""},
	{"POST", "/proxies/h1/ssl", ""},
	{"POST", "/proxies/h1/test", ""},
	{"PUT", "/proxies/h1/security-headers", `{"nosniff":true}`},
	{"POST", "/proxies/h1/rate-limits", `{"rate":1,"per":"second"}`},
	{"PUT", "/proxies/h1/rate-limits/r1", `{"rate":1,"per":"second"}`},
	{"DELETE", "/proxies/h1/rate-limits/r1", ""},
	{"PUT", "/proxy-settings", `{"mode":"managed"}`},
	{"POST", "/networks/app_net/attach-proxy", ""},
	{"POST", "/networks/app_net/detach-proxy", ""},
}

// proxyReads are the routes proxy:read is enough for.
var proxyReads = []string{"/proxies", "/proxies/h1", "/proxies/h1/config", "/proxies/h1/security-headers",
	"/proxies/h1/rate-limits", "/proxy-settings"}

// TestProxyRoles: a viewer reads but cannot change anything (403, and the
// service hears nothing of it); an operator and an admin can.
func TestProxyRoles(t *testing.T) {
	w := proxyServer(t)
	for _, c := range proxyWrites {
		resp, b := w.call(t, viewerA, c.method, "/agents/a1"+c.path, c.body)
		if resp.StatusCode != 403 || !strings.Contains(b, "proxy:write") {
			t.Errorf("viewer %s %s: %d %s", c.method, c.path, resp.StatusCode, b)
		}
	}
	if got := w.received(); len(got) != 0 {
		t.Fatalf("the service got a viewer's writes: %+v", got)
	}
	for _, who := range []caller{operatorA, adminA} {
		for _, c := range proxyWrites {
			if resp, b := w.call(t, who, c.method, "/agents/a1"+c.path, c.body); resp.StatusCode >= 300 {
				t.Errorf("%s %s %s: %d %s", who.role, c.method, c.path, resp.StatusCode, b)
			}
		}
	}
	for _, path := range proxyReads {
		if resp, b := w.call(t, viewerA, "GET", "/agents/a1"+path, ""); resp.StatusCode != 200 {
			t.Errorf("viewer GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	if n := len(w.received()); n != 2*len(proxyWrites)+len(proxyReads) {
		t.Fatalf("the service got %d requests", n)
	}
}

// TestProxyAgentOfAnotherOrgIs404: an agent of another org, an unknown
// one and a malformed id answer 404 on every proxy route, whatever the
// role, and the proxy service hears of none of it.
func TestProxyAgentOfAnotherOrgIs404(t *testing.T) {
	w := proxyServer(t)
	for _, id := range []string{"b1", "nope", "A1", "a1.b1"} {
		for _, who := range []caller{viewerA, operatorA} {
			for _, c := range proxyWrites {
				if resp, b := w.call(t, who, c.method, "/agents/"+id+c.path, c.body); resp.StatusCode != 404 {
					t.Errorf("%s %s /agents/%s%s: %d %s", who.role, c.method, id, c.path, resp.StatusCode, b)
				}
			}
			for _, path := range proxyReads {
				if resp, b := w.call(t, who, "GET", "/agents/"+id+path, ""); resp.StatusCode != 404 {
					t.Errorf("%s GET /agents/%s%s: %d %s", who.role, id, path, resp.StatusCode, b)
				}
			}
		}
	}
	if got := w.received(); len(got) != 0 {
		t.Fatalf("the proxy service was asked about another org's agent: %+v", got)
	}
	// The registry was asked, in the caller's org.
	if s := w.agents.lastTenancy(t); s.op != events.OpTenancyGetAgent || s.org != "orgA" {
		t.Fatalf("registry: %+v", s)
	}
}

// TestProxyUpstreamForms: both forms of an upstream reach the service as
// events.Upstream; anything else is a field error on upstream, before the
// service is asked.
func TestProxyUpstreamForms(t *testing.T) {
	w := proxyServer(t)
	for _, c := range []struct {
		upstream string
		status   int
		want     string // the upstream the service got, or the field in error
	}{
		{`"http://10.0.0.5:3000/app"`, 201, `{"url":"http://10.0.0.5:3000/app"}`},
		{` {"container":"web","port":8080} `, 201, `{"container":"web","port":8080}`},
		{`{"url":"https://backend.internal"}`, 201, `{"url":"https://backend.internal"}`},
		{`null`, 201, `{}`},
		{`42`, 400, `"field":"upstream"`},
		{`["http://x"]`, 400, `"field":"upstream"`},
		{`true`, 400, `"field":"upstream"`},
		{`{"container":"web","port":"8080"}`, 400, `"field":"upstream.port"`},
		{`{"container":"web","port":99999999999999999999}`, 400, `"field":"upstream.port"`},
		{`{"container":7,"port":80}`, 400, `"field":"upstream.container"`},
		{`{"container":"web","port":80,"host":"evil"}`, 400, `"field":"upstream.host"`},
	} {
		before := len(w.received())
		resp, b := w.call(t, operatorA, "POST", "/agents/a1/proxies", `{"domains":["a.example.com"],"upstream":`+c.upstream+`}`)
		if resp.StatusCode != c.status {
			t.Errorf("upstream %s: %d %s", c.upstream, resp.StatusCode, b)
			continue
		}
		got := w.received()[before:]
		if c.status != 201 {
			if !strings.Contains(b, c.want) || len(got) != 0 {
				t.Errorf("upstream %s: %s; service got %+v", c.upstream, b, got)
			}
			continue
		}
		var sent struct {
			Upstream json.RawMessage `json:"upstream"`
		}
		if len(got) != 1 || json.Unmarshal([]byte(got[0].body), &sent) != nil || string(sent.Upstream) != c.want {
			t.Errorf("upstream %s: the service got %+v, want upstream %s", c.upstream, got, c.want)
		}
	}
	// PUT decodes the same way.
	resp, b := w.call(t, operatorA, "PUT", "/agents/a1/proxies/h1", `{"domains":["a.example.com"],"upstream":{"container":"api","port":9000}}`)
	if resp.StatusCode != 200 || !strings.Contains(b, `"upstream":{"container":"api","port":9000}`) {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
}

// TestProxyConfigText: the rendered configuration is JSON unless the
// client prefers text/plain; then it is the text alone.
func TestProxyConfigText(t *testing.T) {
	w := proxyServer(t)
	for _, c := range []struct {
		accept []string
		text   bool
	}{
		{nil, false},
		{[]string{"application/json"}, false},
		{[]string{"*/*"}, false},
		{[]string{"text/plain"}, true},
		{[]string{"TEXT/PLAIN; charset=utf-8"}, true},
		{[]string{"text/*"}, true},
		{[]string{"text/plain, application/json"}, false},
		{[]string{"text/plain;q=0.5, application/json"}, false},
		{[]string{"application/json;q=0.1, text/plain;q=0.9"}, true},
		{[]string{"application/json;q=0.1", "text/plain"}, true},
		{[]string{"text/plain;q=0"}, false},
		{[]string{"text/html,application/xhtml+xml,*/*;q=0.8"}, false},
		{[]string{"text/plain;q=oops, application/json;q=0.5"}, false},
	} {
		var hdr []string
		for _, a := range c.accept {
			hdr = append(hdr, "Accept", a)
		}
		resp, b := w.call(t, viewerA, "GET", "/agents/a1/proxies/h1/config", "", hdr...)
		if resp.StatusCode != 200 || resp.Header.Get("Vary") != "Accept" {
			t.Errorf("Accept %q: %d %v %s", c.accept, resp.StatusCode, resp.Header, b)
			continue
		}
		ct := resp.Header.Get("Content-Type")
		if c.text {
			if ct != "text/plain; charset=utf-8" || b != testConfig {
				t.Errorf("Accept %q: %s %q", c.accept, ct, b)
			}
			continue
		}
		var got events.ProxyHostConfig
		if ct != "application/json" || json.Unmarshal([]byte(b), &got) != nil || got.Config != testConfig || got.HostID != "h1" {
			t.Errorf("Accept %q: %s %s", c.accept, ct, b)
		}
	}
	// An error stays a problem document.
	resp, b := w.call(t, viewerA, "GET", "/agents/a1/proxies/missing/config", "", "Accept", "text/plain")
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("missing host as text: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

// TestProxyNetworkParam: a {network} that cannot name a Docker network is
// a 400 field error, and the service is not asked.
func TestProxyNetworkParam(t *testing.T) {
	w := proxyServer(t)
	for _, n := range []string{"-net", ".net", "_net", strings.Repeat("n", 129), "a%20b", "a:b", "n%2Fx", "net%0A", "r%C3%A9seau", "a$b", "a;b"} {
		for _, verb := range []string{"attach-proxy", "detach-proxy"} {
			resp, b := w.call(t, operatorA, "POST", "/agents/a1/networks/"+n+"/"+verb, "")
			if resp.StatusCode != 400 || !strings.Contains(b, `"field":"network"`) {
				t.Errorf("network %q %s: %d %s", n, verb, resp.StatusCode, b)
			}
		}
	}
	if got := w.received(); len(got) != 0 {
		t.Fatalf("the service got %+v", got)
	}
	long := strings.Repeat("n", 128)
	for _, n := range []string{"bridge", "0f3a9c", "My-Net_2.prod", long} {
		if resp, b := w.call(t, operatorA, "POST", "/agents/a1/networks/"+n+"/attach-proxy", ""); resp.StatusCode != 200 ||
			!strings.Contains(b, `"networks":["`+n+`"]`) {
			t.Errorf("network %q: %d %s", n, resp.StatusCode, b)
		}
	}
}

// TestProxyTestWaitsLonger: testing a host gives the service (and so the
// agent's nginx -t) a longer bound than an ordinary call.
func TestProxyTestWaitsLonger(t *testing.T) {
	w := proxyServer(t)
	w.call(t, operatorA, "POST", "/agents/a1/proxies/h1/test", "")
	w.call(t, viewerA, "GET", "/agents/a1/proxies/h1", "")
	got := w.received()
	if len(got) != 2 || got[0].op != events.OpProxyHostTest || got[0].deadline < 25*time.Second || got[1].deadline > 15*time.Second {
		t.Fatalf("deadlines: %+v", got)
	}
}

// TestProxyServiceDown: without a proxy service the routes answer 503.
func TestProxyServiceDown(t *testing.T) {
	w := proxyServer(t)
	if err := w.svc.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/agents/a1/proxies", "/health/tls"} {
		resp, b := w.call(t, viewerA, "GET", path, "")
		if resp.StatusCode != 503 || !strings.Contains(b, "service proxy is not running") {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
}
