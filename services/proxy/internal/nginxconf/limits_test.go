package nginxconf

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// longName returns a distinct 253-character name of 63-character labels.
func longName(i int) string {
	tail := fmt.Sprintf("%s.com", strings.Repeat("z", 59))
	first := fmt.Sprintf("%06d%s", i, strings.Repeat("a", 57))
	return first + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 61) + "." + tail
}

// maxHost is a host at every limit of the validator.
func maxHost(id string, n int) Host {
	s := events.ProxyHostSpec{
		Enabled:   true,
		Websocket: true,
		Upstream:  events.Upstream{URL: "https://[::1]:65535/" + strings.Repeat("p", MaxURLLen-len("https://[::1]:65535/"))},
		SSL:       events.SSLSpec{Enabled: true, Force: false, HTTP2: true, HSTS: true},
		SecurityHeaders: events.SecurityHeaders{
			HSTSMaxAge: MaxHSTSMaxAge, HSTSSubdomains: true, FrameOptions: "DENY", NoSniff: true, XSSProtection: true,
			CSP: strings.Repeat("default-src 'self'; ", events.ProxyMaxHeaderValue/20) + "x",
		},
	}
	for i := 0; i < events.ProxyMaxDomains; i++ {
		if i%2 == 0 {
			s.Domains = append(s.Domains, longName(n*1000+i))
		} else {
			s.Domains = append(s.Domains, "*."+longName(n*1000 + i)[2:])
		}
	}
	for i := 0; i < events.ProxyMaxRateLimits; i++ {
		s.RateLimits = append(s.RateLimits, events.RateLimit{ID: strings.Repeat("r", 30) + fmt.Sprintf("%02d", i),
			Rate: MaxRate, Burst: MaxBurst, NoDelay: true, Path: "/" + strings.Repeat(string(rune('a'+i)), MaxPathLen-1)})
	}
	return Host{ID: id, Spec: Normalize(s), CertReady: true}
}

// TestLimitsPassNginx: a host at every limit (100 names of 253
// characters, 20 rate limits, longest URL, path and CSP) passes nginx -t.
func TestLimitsPassNginx(t *testing.T) {
	t.Parallel()
	r := newTestRoot(t)
	h := maxHost("0190a5b2-0000-7000-8000-000000000001", 0)
	if len(h.Spec.SecurityHeaders.CSP) > events.ProxyMaxHeaderValue || len(h.Spec.Upstream.URL) != MaxURLLen {
		t.Fatalf("csp %d url %d", len(h.Spec.SecurityHeaders.CSP), len(h.Spec.Upstream.URL))
	}
	r.writeCert(t, h.ID, []string{"example.com"})
	d, err := Desired(r.layout(), 1, "", []Host{h})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := r.nginxT(t, d.Files); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// TestManyHostsPassNginx: an agent at the host limit, every host with the
// most domains and a rate limit, passes nginx -t (server_names hash sizes
// and one limit_req zone per host).
func TestManyHostsPassNginx(t *testing.T) {
	t.Parallel()
	r := newTestRoot(t)
	var hosts []Host
	for i := 0; i < events.ProxyMaxHostsAgent; i++ {
		s := events.ProxyHostSpec{Enabled: true, Upstream: events.Upstream{URL: "http://127.0.0.1:8080"},
			RateLimits: []events.RateLimit{{Rate: 5}}}
		for j := 0; j < events.ProxyMaxDomains; j++ {
			s.Domains = append(s.Domains, fmt.Sprintf("h%d-d%d.example.com", i, j))
		}
		hosts = append(hosts, Host{ID: fmt.Sprintf("h%d", i), Spec: Normalize(s)})
	}
	d, err := Desired(r.layout(), 1, "", hosts)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := r.nginxT(t, d.Files); err != nil || strings.Contains(out, "[warn]") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
