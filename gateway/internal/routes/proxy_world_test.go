package routes_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/infrapilot/infrapilot/gateway/internal/routes"
	"github.com/nats-io/nats.go/micro"
)

// The proxy routes are tested against STAND-INS on a real embedded NATS
// server: the tenancy service's agent registry (agentWorld.startTenancy:
// orgA has a1 and a2, orgB has b1) and the proxy service
// (svc.proxy.*), which records what it is asked and answers with scripted
// replies and errors. The real proxy service is tested in services/proxy
// and end to end in services/cmd/infrapilot.

// proxyOps are all the proxy service's operations.
var proxyOps = []string{
	events.OpProxyHostsList, events.OpProxyHostCreate, events.OpProxyHostGet, events.OpProxyHostUpdate, events.OpProxyHostDelete,
	events.OpProxyHostConfig, events.OpProxyHostTest, events.OpProxyHostSSL, events.OpProxySecurityHeadersSet,
	events.OpProxyRateLimitCreate, events.OpProxyRateLimitUpdate, events.OpProxyRateLimitDelete,
	events.OpProxySettingsGet, events.OpProxySettingsSet, events.OpProxyNetworkAttach, events.OpProxyNetworkDetach,
	events.OpProxyTLSHealth,
}

// proxyReq is one request the stand-in proxy service received.
type proxyReq struct {
	op, org, actor, role string
	body                 string // exactly as sent
	deadline             time.Duration
}

type proxyWorld struct {
	srv    *httptest.Server
	r      chi.Router
	agents *agentWorld // the registry stand-in
	svc    micro.Service

	mu   sync.Mutex
	reqs []proxyReq
}

// testConfig is what the stand-in renders for every host.
const testConfig = "server {\n    listen 80;\n    server_name app.example.com;\n}\n"

func proxyServer(t *testing.T) *proxyWorld {
	t.Helper()
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	w := &proxyWorld{agents: &agentWorld{nc: nc, seqs: map[string]uint64{}}}
	w.agents.startTenancy(t)
	ops := map[string]micro.HandlerFunc{}
	for _, op := range proxyOps {
		ops[op] = func(r micro.Request) { w.answer(op, r) }
	}
	w.svc = natstest.Service(t, nc, "proxy", ops)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Both areas, as the gateway mounts them: the proxy's routes share
	// /agents/{id}/ with the agent routes.
	r := chi.NewRouter()
	r.Use(testPrincipal)
	d := routes.Deps{NC: natstest.Connect(t, s), Log: slog.New(slog.DiscardHandler)}
	routes.MountAgents(r, d)
	routes.MountProxy(r, d)
	w.srv, w.r = httptest.NewServer(r), r
	t.Cleanup(w.srv.Close)
	return w
}

// testPrincipal sets the principal from X-Test-* headers, the way the
// auth middleware would.
func testPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if id := req.Header.Get("X-Test-User"); id != "" {
			req = req.WithContext(reqctx.WithPrincipal(req.Context(), reqctx.Principal{
				ID: id, Kind: events.ActorUser, OrgID: req.Header.Get("X-Test-Org"), Role: req.Header.Get("X-Test-Role")}))
		}
		next.ServeHTTP(rw, req)
	})
}

// answer is the stand-in's script. Host "missing" does not exist, "bare"
// has neither security headers nor rate limits, testing "slow" makes the
// agent not answer; domain "taken.example.com" is another host's, a
// domain with ';' is refused; network "host" cannot be attached,
// "missing" does not exist.
func (w *proxyWorld) answer(op string, r micro.Request) {
	h := r.Headers()
	rec := proxyReq{op: op, org: h.Get(events.HeaderOrgID), actor: h.Get(events.HeaderActorID), role: h.Get(events.HeaderRole), body: string(r.Data())}
	if dl, err := time.Parse(time.RFC3339Nano, h.Get(events.HeaderDeadline)); err == nil {
		rec.deadline = time.Until(dl)
	}
	w.mu.Lock()
	w.reqs = append(w.reqs, rec)
	w.mu.Unlock()

	var in struct {
		events.ProxyHostWrite
		RateLimitID string                 `json:"rate_limit_id"`
		Headers     events.SecurityHeaders `json:"headers"`
		RateLimit   events.RateLimit       `json:"rate_limit"`
		Network     string                 `json:"network"`
		Cursor      string                 `json:"cursor"`
	}
	_ = json.Unmarshal(r.Data(), &in)
	host := events.ProxyHost{ID: in.HostID, OrgID: rec.org, AgentID: in.AgentID, Status: events.ProxyStatusApplied, Networks: []string{},
		ProxyHostSpec: events.ProxyHostSpec{Domains: []string{"app.example.com"}, Upstream: events.Upstream{URL: "http://10.0.0.5:3000"},
			SecurityHeaders: events.SecurityHeaders{FrameOptions: "DENY", NoSniff: true},
			RateLimits:      []events.RateLimit{{ID: "r1", Rate: 10, Per: "second"}}},
		Cert: events.CertState{Status: events.CertStatusNone}}
	switch {
	case in.HostID == "missing":
		microError(r, events.CodeNotFound, "proxy host missing not found")
		return
	case slices.Contains(in.Domains, "taken.example.com"):
		microError(r, events.CodeConflict, "taken.example.com is served by host h9")
		return
	case slices.ContainsFunc(in.Domains, func(d string) bool { return strings.Contains(d, ";") }):
		microFail(r, events.Invalid("invalid proxy host").WithFields(events.FieldError{Field: "domains[0]", Message: "not a host name"}))
		return
	}
	settings := events.ProxySettings{AgentID: in.AgentID, Mode: events.ProxyModeManaged, Networks: []string{}}
	switch op {
	case events.OpProxyHostsList:
		if in.Cursor == "end" {
			_ = r.RespondJSON(events.List[events.ProxyHost]{}) // items: null
			return
		}
		host.ID = "h1"
		_ = r.RespondJSON(events.List[events.ProxyHost]{Items: []events.ProxyHost{host}, NextCursor: "next"})
	case events.OpProxyHostCreate, events.OpProxyHostUpdate:
		if host.ID == "" {
			host.ID = "h-new"
		}
		host.Domains, host.Upstream, host.Status = in.Domains, in.Upstream, events.ProxyStatusPending
		_ = r.RespondJSON(host)
	case events.OpProxyHostGet:
		if in.HostID == "bare" {
			host.SecurityHeaders, host.RateLimits = events.SecurityHeaders{}, nil
			raw, _ := json.Marshal(host)
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			delete(m, "security_headers")
			_ = r.RespondJSON(m)
			return
		}
		_ = r.RespondJSON(host)
	case events.OpProxyHostSSL:
		host.Cert.Status = events.CertStatusRequested
		_ = r.RespondJSON(host)
	case events.OpProxyHostConfig:
		_ = r.RespondJSON(events.ProxyHostConfig{HostID: in.HostID, File: in.HostID + ".conf", Config: testConfig})
	case events.OpProxyHostTest:
		if in.HostID == "slow" {
			microError(r, events.CodeUnavailable, "agent %s did not answer", in.AgentID)
			return
		}
		_ = r.RespondJSON(events.NginxTestResult{OK: true, Output: "nginx: configuration file test is successful"})
	case events.OpProxySecurityHeadersSet:
		_ = r.RespondJSON(in.Headers)
	case events.OpProxyRateLimitCreate, events.OpProxyRateLimitUpdate:
		if in.RateLimit.ID == "" {
			in.RateLimit.ID = "r-new"
		}
		_ = r.RespondJSON(in.RateLimit)
	case events.OpProxyHostDelete, events.OpProxyRateLimitDelete:
		_ = r.RespondJSON(events.Empty{})
	case events.OpProxySettingsGet, events.OpProxySettingsSet:
		_ = r.RespondJSON(settings)
	case events.OpProxyNetworkAttach, events.OpProxyNetworkDetach:
		switch in.Network {
		case "host":
			microFail(r, events.Invalid("cannot attach to the host network").WithFields(
				events.FieldError{Field: "network", Message: "host networks cannot be attached"}))
			return
		case "missing":
			microError(r, events.CodeNotFound, "network missing not found")
			return
		}
		if op == events.OpProxyNetworkAttach {
			settings.Networks = []string{in.Network}
		}
		_ = r.RespondJSON(settings)
	case events.OpProxyTLSHealth:
		_ = r.RespondJSON(events.TLSHealthReport{Hosts: []events.TLSHostHealth{}, Score: 100})
	}
}

// microFail answers r with e, field errors included.
func microFail(r micro.Request, e *events.Error) {
	body, _ := json.Marshal(e)
	_ = r.Error(string(e.Code), e.Message, body)
}

// received returns the requests the proxy service got, in order.
func (w *proxyWorld) received() []proxyReq {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.reqs)
}

// call sends a request as c with the extra headers in hdr.
func (w *proxyWorld) call(t *testing.T, c caller, method, path, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"X-Test-User": c.user, "X-Test-Org": c.org, "X-Test-Role": c.role} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
