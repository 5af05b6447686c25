package proxy_test

import (
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy"
)

// TestValidationRefusesAtTheOperation checks that what the validator
// refuses (nginxconf, fuzzed there against a real nginx) is refused by
// every writing operation with the field named as the caller sent it,
// and that nothing is stored or rendered.
func TestValidationRefusesAtTheOperation(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	with := func(fn func(*events.ProxyHostWrite)) events.ProxyHostWrite {
		req := hostWrite(ag.id, "app.example.com")
		fn(&req)
		return req
	}
	for _, tc := range []struct {
		name  string
		req   events.ProxyHostWrite
		field string
	}{
		{"no domains", with(func(r *events.ProxyHostWrite) { r.Domains = nil }), "domains"},
		{"semicolon in domain", with(func(r *events.ProxyHostWrite) { r.Domains = []string{"app.example.com;"} }), "domains[0]"},
		{"directive injected through a newline", with(func(r *events.ProxyHostWrite) {
			r.Domains = []string{"ok.example.com", "a.example.com\n    return 200 pwned"}
		}), "domains[1]"},
		{"brace in domain", with(func(r *events.ProxyHostWrite) { r.Domains = []string{"a}.example.com"} }), "domains[0]"},
		{"overlong name", with(func(r *events.ProxyHostWrite) { r.Domains = []string{strings.Repeat("a", 64) + ".example.com"} }), "domains[0]"},
		{"semicolon in upstream", with(func(r *events.ProxyHostWrite) { r.Upstream.URL = "http://10.0.0.5:3000;include /etc/passwd" }), "upstream.url"},
		{"variable in upstream", with(func(r *events.ProxyHostWrite) { r.Upstream.URL = "http://$host/" }), "upstream.url"},
		{"bad scheme", with(func(r *events.ProxyHostWrite) { r.Upstream.URL = "ftp://10.0.0.5" }), "upstream.url"},
		{"quote in CSP", with(func(r *events.ProxyHostWrite) {
			r.SecurityHeaders = &events.SecurityHeaders{CSP: `default-src 'self'"; add_header X-Pwned 1; #`}
		}), "security_headers.csp"},
		{"dollar in CSP", with(func(r *events.ProxyHostWrite) { r.SecurityHeaders = &events.SecurityHeaders{CSP: "default-src $host"} }), "security_headers.csp"},
		{"bad rate", with(func(r *events.ProxyHostWrite) { r.RateLimits = []events.RateLimit{{Rate: 0}} }), "rate_limits[0].rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := h.fails(w, events.OpProxyHostCreate, tc.req, events.CodeInvalid, "")
			hasField(t, e, tc.field)
		})
	}
	var list events.List[events.ProxyHost]
	h.must(w, events.OpProxyHostsList, events.ProxyAgentRequest{AgentID: ag.id}, &list)
	if len(list.Items) != 0 || h.desired(w.org, ag.id) != nil {
		t.Fatalf("refused writes left hosts %+v or a desired state", list.Items)
	}

	// The same rules on update and on the partial writes, whose field
	// errors name their own fields.
	var host events.ProxyHost
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "app.example.com"), &host)
	up := hostWrite(ag.id, "app.example.com")
	up.HostID, up.Upstream = host.ID, events.Upstream{Container: "web;rm", Port: 0}
	e := h.fails(w, events.OpProxyHostUpdate, up, events.CodeInvalid, "")
	hasField(t, e, "upstream.container")
	hasField(t, e, "upstream.port")
	e = h.fails(w, events.OpProxySecurityHeadersSet, events.ProxySecurityHeadersWrite{AgentID: ag.id, HostID: host.ID,
		Headers: events.SecurityHeaders{FrameOptions: "ALLOW-FROM https://evil.example", CSP: "a\nb"}}, events.CodeInvalid, "")
	hasField(t, e, "headers.frame_options")
	hasField(t, e, "headers.csp")
	e = h.fails(w, events.OpProxyRateLimitCreate, events.ProxyRateLimitWrite{AgentID: ag.id, HostID: host.ID,
		RateLimit: events.RateLimit{Rate: 10, Per: "hour", Path: "/api;"}}, events.CodeInvalid, "")
	hasField(t, e, "rate_limit.per")
	hasField(t, e, "rate_limit.path")
	h.fails(w, events.OpProxyHostCreate, events.ProxyHostWrite{AgentID: ag.id, HostID: host.ID, Domains: []string{"x.example.com"},
		Upstream: events.Upstream{URL: "http://10.0.0.1"}}, events.CodeInvalid, "")
	if got := h.host(w, ag.id, host.ID); got.Upstream.URL != "http://10.0.0.5:3000" || len(got.RateLimits) != 0 {
		t.Fatalf("a refused write changed the host: %+v", got)
	}

	// Accepted partial writes: headers, and rate limits with ids.
	var sh events.SecurityHeaders
	h.must(w, events.OpProxySecurityHeadersSet, events.ProxySecurityHeadersWrite{AgentID: ag.id, HostID: host.ID,
		Headers: events.SecurityHeaders{FrameOptions: "sameorigin", NoSniff: true, CSP: "default-src 'self'"}}, &sh)
	if sh.FrameOptions != "SAMEORIGIN" || !sh.NoSniff {
		t.Fatalf("headers: %+v", sh)
	}
	var rl events.RateLimit
	h.must(w, events.OpProxyRateLimitCreate, events.ProxyRateLimitWrite{AgentID: ag.id, HostID: host.ID,
		RateLimit: events.RateLimit{Rate: 10, Burst: 20}}, &rl)
	if rl.ID == "" || rl.Per != "second" || rl.Path != "/" {
		t.Fatalf("rate limit: %+v", rl)
	}
	rl.Rate = 5
	var rl2 events.RateLimit
	h.must(w, events.OpProxyRateLimitUpdate, events.ProxyRateLimitWrite{AgentID: ag.id, HostID: host.ID, RateLimit: rl}, &rl2)
	if rl2.Rate != 5 || rl2.ID != rl.ID {
		t.Fatalf("updated rate limit: %+v", rl2)
	}
	f, _ := fileOf(h.desired(w.org, ag.id), host.ID)
	if !strings.Contains(f.Content, "limit_req") || !strings.Contains(f.Content, "SAMEORIGIN") {
		t.Fatalf("rendered without the rate limit or headers:\n%s", f.Content)
	}
	// An update without headers and rate limits keeps them.
	up = hostWrite(ag.id, "app.example.com")
	up.HostID = host.ID
	var kept events.ProxyHost
	h.must(w, events.OpProxyHostUpdate, up, &kept)
	if len(kept.RateLimits) != 1 || kept.SecurityHeaders.FrameOptions != "SAMEORIGIN" {
		t.Fatalf("update dropped headers or rate limits: %+v", kept)
	}
	h.must(w, events.OpProxyRateLimitDelete, events.ProxyRateLimitRef{AgentID: ag.id, HostID: host.ID, RateLimitID: rl.ID}, nil)
	h.fails(w, events.OpProxyRateLimitDelete, events.ProxyRateLimitRef{AgentID: ag.id, HostID: host.ID, RateLimitID: rl.ID}, events.CodeNotFound, "")
	if got := h.host(w, ag.id, host.ID); len(got.RateLimits) != 0 {
		t.Fatalf("rate limit not deleted: %+v", got.RateLimits)
	}
}

// TestOtherOrgGetsNotFound checks that an agent or host of another org is
// not_found for every operation (never forbidden), and that roles are
// enforced within the org.
func TestOtherOrgGetsNotFound(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w1, ag1 := h.org()
	w2, ag2 := h.org()
	var host events.ProxyHost
	h.must(w1, events.OpProxyHostCreate, hostWrite(ag1.id, "app.example.com"), &host)
	h.must(w2, events.OpProxyHostCreate, hostWrite(ag2.id, "app.example.com"), nil)

	for _, agent := range []string{ag1.id, ag2.id} {
		ref := events.ProxyHostRef{AgentID: agent, HostID: host.ID}
		up := hostWrite(agent, "x.example.com")
		up.HostID = host.ID
		for op, req := range map[string]any{
			events.OpProxyHostGet:            ref,
			events.OpProxyHostUpdate:         up,
			events.OpProxyHostDelete:         ref,
			events.OpProxyHostConfig:         ref,
			events.OpProxyHostTest:           ref,
			events.OpProxyHostSSL:            ref,
			events.OpProxySecurityHeadersSet: events.ProxySecurityHeadersWrite{AgentID: agent, HostID: host.ID},
			events.OpProxyRateLimitCreate:    events.ProxyRateLimitWrite{AgentID: agent, HostID: host.ID, RateLimit: events.RateLimit{Rate: 1}},
			events.OpProxyRateLimitUpdate:    events.ProxyRateLimitWrite{AgentID: agent, HostID: host.ID, RateLimit: events.RateLimit{ID: "rl1", Rate: 1}},
			events.OpProxyRateLimitDelete:    events.ProxyRateLimitRef{AgentID: agent, HostID: host.ID, RateLimitID: "rl1"},
		} {
			h.fails(w2, op, req, events.CodeNotFound, "")
		}
	}
	for op, req := range map[string]any{
		events.OpProxyHostsList:     events.ProxyAgentRequest{AgentID: ag1.id},
		events.OpProxyHostCreate:    hostWrite(ag1.id, "new.example.com"),
		events.OpProxySettingsGet:   events.ProxyAgentRequest{AgentID: ag1.id},
		events.OpProxySettingsSet:   events.ProxySettingsWrite{AgentID: ag1.id},
		events.OpProxyNetworkAttach: events.ProxyNetworkRequest{AgentID: ag1.id, Network: "bridge"},
		events.OpProxyNetworkDetach: events.ProxyNetworkRequest{AgentID: ag1.id, Network: "bridge"},
	} {
		h.fails(w2, op, req, events.CodeNotFound, "")
	}
	var report events.TLSHealthReport
	h.must(w2, events.OpProxyTLSHealth, nil, &report)
	for _, x := range report.Hosts {
		if x.HostID == host.ID {
			t.Fatalf("another org's host in the TLS report: %+v", x)
		}
	}
	if got := h.host(w1, ag1.id, host.ID); got.Domains[0] != "app.example.com" {
		t.Fatalf("host changed: %+v", got)
	}

	viewer := who{org: w1.org, role: events.RoleViewer}
	h.must(viewer, events.OpProxyHostGet, events.ProxyHostRef{AgentID: ag1.id, HostID: host.ID}, nil)
	h.fails(viewer, events.OpProxyHostDelete, events.ProxyHostRef{AgentID: ag1.id, HostID: host.ID}, events.CodeForbidden, "")
	h.fails(who{}, events.OpProxyHostGet, events.ProxyHostRef{AgentID: ag1.id, HostID: host.ID}, events.CodeNotFound, "")
}
