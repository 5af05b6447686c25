package nginxconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// goldenHosts is a representative set of hosts; every upstream resolves
// without DNS (IP literals, localhost — a container named "localhost")
// so that `nginx -t` passes on the machine running the tests.
func goldenHosts() []Host {
	return []Host{
		{ID: "url-upstream", Spec: events.ProxyHostSpec{
			Domains: []string{"app.example.com", "www.app.example.com"}, Enabled: true,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8080"},
		}},
		{ID: "url-path", Spec: events.ProxyHostSpec{
			Domains: []string{"api.example.com"}, Enabled: true,
			Upstream:   events.Upstream{URL: "https://[::1]:8443/base/v1/"},
			RateLimits: []events.RateLimit{{Rate: 5, Per: "second", Burst: 10, Path: "/login"}},
		}},
		{ID: "container", Spec: events.ProxyHostSpec{
			Domains: []string{"grafana.example.org"}, Enabled: true,
			Upstream: events.Upstream{Container: "localhost", Port: 3000},
		}},
		{ID: "websocket", Spec: events.ProxyHostSpec{
			Domains: []string{"ws.example.com"}, Enabled: true, Websocket: true,
			Upstream: events.Upstream{URL: "http://localhost:9000"},
		}},
		{ID: "tls-force", CertReady: true, Spec: events.ProxyHostSpec{
			Domains: []string{"secure.example.com"}, Enabled: true, Websocket: true,
			Upstream:        events.Upstream{URL: "http://127.0.0.1:8081"},
			SSL:             events.SSLSpec{Enabled: true, Force: true, HTTP2: true, HSTS: true},
			SecurityHeaders: events.SecurityHeaders{HSTSMaxAge: 63072000, HSTSSubdomains: true, FrameOptions: "DENY", NoSniff: true},
		}},
		{ID: "tls-noforce", CertReady: true, Spec: events.ProxyHostSpec{
			Domains: []string{"both.example.com"}, Enabled: true,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8082"},
			SSL:      events.SSLSpec{Enabled: true, HSTS: true},
		}},
		{ID: "tls-pending", CertReady: false, Spec: events.ProxyHostSpec{
			Domains: []string{"waiting.example.com"}, Enabled: true,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8083"},
			SSL:      events.SSLSpec{Enabled: true, Force: true, HTTP2: true, HSTS: true},
		}},
		{ID: "rate-limits", Spec: events.ProxyHostSpec{
			Domains: []string{"limited.example.com"}, Enabled: true,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8084/app"},
			RateLimits: []events.RateLimit{
				{ID: "all", Rate: 100, Per: "second", Burst: 50, NoDelay: true},
				{Rate: 30, Per: "minute", Path: "/api/"},
				{Rate: 10, Per: "minute", Burst: 5, Path: "/api/login"},
				{ID: "api-burst", Rate: 2, Per: "second", Path: "/api/"},
			},
		}},
		{ID: "headers", Spec: events.ProxyHostSpec{
			Domains: []string{"headers.example.com"}, Enabled: true,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8085"},
			SecurityHeaders: events.SecurityHeaders{
				FrameOptions: "sameorigin", NoSniff: true, XSSProtection: true,
				CSP: "default-src 'self'; img-src 'self' data: https://cdn.example.com; frame-ancestors 'none'",
			},
		}},
		{ID: "idn", Spec: events.ProxyHostSpec{
			Domains: []string{"Bücher.Example", "www.bücher.example", "日本語.jp"}, Enabled: true,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8086"},
		}},
		{ID: "wildcard", Spec: events.ProxyHostSpec{
			Domains: []string{"*.apps.example.com", "apps.example.com", "localhost"}, Enabled: true,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8087"},
		}},
		{ID: "disabled", Spec: events.ProxyHostSpec{
			Domains: []string{"off.example.com"}, Enabled: false,
			Upstream: events.Upstream{URL: "http://127.0.0.1:8088"},
		}},
	}
}

// normalized returns hosts with their specs normalized, as the service
// stores them.
func normalized(hosts []Host) []Host {
	out := make([]Host, len(hosts))
	for i, h := range hosts {
		h.Spec = Normalize(h.Spec)
		out[i] = h
	}
	return out
}

func TestRenderHostGolden(t *testing.T) {
	t.Parallel()
	l := LayoutFor(nil)
	for _, h := range normalized(goldenHosts()) {
		t.Run(h.ID, func(t *testing.T) {
			t.Parallel()
			f, err := RenderHost(l, h)
			if err != nil {
				t.Fatal(err)
			}
			if f.Path != HostFile(h.ID) || f.HostID != h.ID {
				t.Errorf("file %q host %q", f.Path, f.HostID)
			}
			tls := h.CertReady && h.Spec.SSL.Enabled
			if tls != (len(f.Requires) == 2) {
				t.Errorf("Requires = %v with TLS %v", f.Requires, tls)
			}
			golden(t, h.ID+".conf", f.Content)
		})
	}
}

func TestRenderMainGolden(t *testing.T) {
	t.Parallel()
	golden(t, "main-local.conf", RenderMain(LayoutFor(nil), 42).Content)
	c := LayoutFor(&events.NginxAgentInfo{Kind: events.NginxKindContainer, Root: "/srv/infrapilot", HTTPPort: 8080, HTTPSPort: 8443})
	golden(t, "main-container.conf", RenderMain(c, 7).Content)
}

// TestGoldenConfigsPassNginx renders every golden host into one complete
// generation under a temporary root and runs the real `nginx -t` on it.
func TestGoldenConfigsPassNginx(t *testing.T) {
	t.Parallel()
	r := newTestRoot(t)
	hosts := normalized(goldenHosts())
	for i := range hosts {
		hosts[i].Spec.Enabled = true // the disabled host must be valid nginx too
		if hosts[i].CertReady {
			r.writeCert(t, hosts[i].ID, hosts[i].Spec.Domains)
		}
	}
	d, err := Desired(r.layout(), 3, events.ProxyModeManaged, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) != len(hosts)+1 {
		t.Fatalf("%d files for %d hosts", len(d.Files), len(hosts))
	}
	if out, err := r.nginxT(t, d.Files); err != nil || strings.Contains(out, "[warn]") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// TestContainerLayoutPassesNginx checks the container variant of the main
// file (check server on all addresses, other ports).
func TestContainerLayoutPassesNginx(t *testing.T) {
	t.Parallel()
	r := newTestRoot(t)
	l := r.layout()
	l.Kind, l.HTTPPort, l.HTTPSPort, l.CheckPort = events.NginxKindContainer, 8080, 8443, 9090
	h := normalized(goldenHosts())[4] // tls-force
	r.writeCert(t, h.ID, h.Spec.Domains)
	d, err := Desired(l, 1, "", []Host{h})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Files[0].Content, "return 301 https://$host:8443$request_uri;") {
		t.Errorf("redirect does not name the HTTPS port:\n%s", d.Files[0].Content)
	}
	if out, err := r.nginxT(t, d.Files); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// TestUnresolvableUpstreamFailsNginx shows the failure the agent reports:
// the validator accepts a well-formed host name, and nginx -t refuses the
// configuration because the name does not resolve.
func TestUnresolvableUpstreamFailsNginx(t *testing.T) {
	t.Parallel()
	r := newTestRoot(t)
	h := Host{ID: "broken", Spec: Normalize(events.ProxyHostSpec{
		Domains: []string{"broken.example.com"}, Enabled: true,
		Upstream: events.Upstream{URL: "http://does-not-exist.invalid:8080"},
	})}
	d, err := Desired(r.layout(), 1, events.ProxyModeManaged, []Host{h})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.nginxT(t, d.Files)
	if err == nil {
		t.Fatalf("nginx -t passed:\n%s", out)
	}
	if !strings.Contains(out, "host not found in upstream") || !strings.Contains(out, "hosts/broken.conf") {
		t.Fatalf("nginx -t output does not name the upstream and file:\n%s", out)
	}
}

func TestDesired(t *testing.T) {
	t.Parallel()
	l := LayoutFor(nil)
	hosts := normalized(goldenHosts())
	d, err := Desired(l, 9, events.ProxyModeManaged, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if d.V != 1 || d.Revision != 9 || d.Mode != events.ProxyModeManaged || d.CheckPort != DefaultCheckPort {
		t.Errorf("desired header %+v", d)
	}
	var paths []string
	for _, f := range d.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); strings.Contains(got, "disabled") || !strings.HasSuffix(got, "nginx.conf") ||
		len(paths) != len(hosts) {
		t.Errorf("files %v: want every enabled host and nginx.conf, sorted", paths)
	}
	for i := 1; i < len(paths); i++ {
		if paths[i-1] >= paths[i] {
			t.Errorf("files not sorted: %v", paths)
		}
	}

	ext, err := Desired(l, 10, events.ProxyModeExternal, hosts)
	if err != nil || len(ext.Files) != 0 || ext.Mode != events.ProxyModeExternal || ext.Revision != 10 {
		t.Errorf("external: %+v %v", ext, err)
	}

	bad := []struct {
		name  string
		l     Layout
		mode  string
		hosts []Host
	}{
		{"mode", l, "manual", nil},
		{"root", Layout{Root: "/x;y", Kind: "local", HTTPPort: 80, HTTPSPort: 443, CheckPort: 1}, "", nil},
		{"relative root", Layout{Root: "x", Kind: "local", HTTPPort: 80, HTTPSPort: 443, CheckPort: 1}, "", nil},
		{"unclean root", Layout{Root: "/x/../y", Kind: "local", HTTPPort: 80, HTTPSPort: 443, CheckPort: 1}, "", nil},
		{"kind", Layout{Root: "/x", Kind: "k8s", HTTPPort: 80, HTTPSPort: 443, CheckPort: 1}, "", nil},
		{"ports", Layout{Root: "/x", Kind: "local", HTTPPort: 80, HTTPSPort: 80, CheckPort: 1}, "", nil},
		{"duplicate host", l, "", []Host{hosts[0], hosts[0]}},
		{"host id", l, "", []Host{{ID: "../etc", Spec: hosts[0].Spec}}},
		{"invalid spec", l, "", []Host{{ID: "x", Spec: events.ProxyHostSpec{Enabled: true}}}},
	}
	for _, tc := range bad {
		_, err := Desired(tc.l, 1, tc.mode, tc.hosts)
		if events.ErrorCode(err) != events.CodeInvalid {
			t.Errorf("%s: err %v, want invalid", tc.name, err)
		}
	}
	_, err = Desired(l, 1, "", []Host{{ID: "x", Spec: events.ProxyHostSpec{Enabled: true}}})
	var e *events.Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Message, "host x: ") || len(e.Fields) == 0 {
		t.Errorf("invalid host error %#v does not name the host and fields", err)
	}
}

// TestRenderMainSafeLayout: RenderMain cannot fail, so a bad layout is
// rendered with defaults rather than with its hostile values.
func TestRenderMainSafeLayout(t *testing.T) {
	t.Parallel()
	f := RenderMain(Layout{Root: "/x;\n}", Kind: "evil", HTTPPort: -1}, 1)
	if strings.Contains(f.Content, "/x;") || !strings.Contains(f.Content, DefaultRoot+"/run/nginx.pid;") ||
		!strings.Contains(f.Content, "listen 127.0.0.1:8089;") {
		t.Errorf("unsafe layout rendered:\n%s", f.Content)
	}
}
