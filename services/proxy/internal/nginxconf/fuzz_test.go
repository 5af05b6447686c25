package nginxconf

import (
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// Flags of FuzzValidateRender's flags argument.
const (
	fWebsocket = 1 << iota
	fSSL
	fForce
	fHTTP2
	fHSTS
	fCertReady
	fNoDelay
	fPerMinute
	fSecondLimit
	fNoSniff
	fXSS
	fSubdomains
)

// fuzzInput is the fuzzed part of a host spec.
type fuzzInput struct {
	domain1, domain2, url, container string
	port                             int
	csp, frame                       string
	hsts                             int
	rlPath, rlID                     string
	rate, burst                      int
	flags                            uint16
}

func (in fuzzInput) spec() events.ProxyHostSpec {
	s := events.ProxyHostSpec{
		Domains:   []string{in.domain1},
		Upstream:  events.Upstream{URL: in.url, Container: in.container, Port: in.port},
		Websocket: in.flags&fWebsocket != 0,
		Enabled:   true,
		SSL: events.SSLSpec{Enabled: in.flags&fSSL != 0, Force: in.flags&fForce != 0,
			HTTP2: in.flags&fHTTP2 != 0, HSTS: in.flags&fHSTS != 0},
		SecurityHeaders: events.SecurityHeaders{HSTSMaxAge: in.hsts, HSTSSubdomains: in.flags&fSubdomains != 0,
			FrameOptions: in.frame, NoSniff: in.flags&fNoSniff != 0, XSSProtection: in.flags&fXSS != 0, CSP: in.csp},
	}
	if in.domain2 != "" {
		s.Domains = append(s.Domains, in.domain2)
	}
	if in.rate != 0 || in.rlPath != "" || in.rlID != "" {
		per := "second"
		if in.flags&fPerMinute != 0 {
			per = "minute"
		}
		s.RateLimits = append(s.RateLimits, events.RateLimit{ID: in.rlID, Rate: in.rate, Per: per,
			Burst: in.burst, NoDelay: in.flags&fNoDelay != 0, Path: in.rlPath})
	}
	if in.flags&fSecondLimit != 0 {
		s.RateLimits = append(s.RateLimits, events.RateLimit{Rate: 1, Per: "minute"})
	}
	return s
}

// fuzzInputOf extracts the fuzzed fields of a spec (a corpus case).
func fuzzInputOf(s events.ProxyHostSpec, certReady bool) fuzzInput {
	in := fuzzInput{url: s.Upstream.URL, container: s.Upstream.Container, port: s.Upstream.Port,
		csp: s.SecurityHeaders.CSP, frame: s.SecurityHeaders.FrameOptions, hsts: s.SecurityHeaders.HSTSMaxAge}
	if len(s.Domains) > 0 {
		in.domain1 = s.Domains[0]
	}
	if len(s.Domains) > 1 {
		in.domain2 = s.Domains[1]
	}
	if len(s.RateLimits) > 0 {
		r := s.RateLimits[0]
		in.rlPath, in.rlID, in.rate, in.burst = r.Path, r.ID, r.Rate, r.Burst
		if r.Per == "minute" {
			in.flags |= fPerMinute
		}
		if r.NoDelay {
			in.flags |= fNoDelay
		}
	}
	for bit, on := range map[uint16]bool{
		fWebsocket: s.Websocket, fSSL: s.SSL.Enabled, fForce: s.SSL.Force, fHTTP2: s.SSL.HTTP2, fHSTS: s.SSL.HSTS,
		fCertReady: certReady, fNoSniff: s.SecurityHeaders.NoSniff, fXSS: s.SecurityHeaders.XSSProtection,
		fSubdomains: s.SecurityHeaders.HSTSSubdomains, fSecondLimit: len(s.RateLimits) > 1,
	} {
		if on {
			in.flags |= bit
		}
	}
	return in
}

// resolvable returns spec with an upstream nginx can resolve without DNS:
// host names other than localhost (and container names) become
// "localhost", keeping scheme, port and path. Host names are fuzzed on
// their own in FuzzDomain.
func resolvable(t *testing.T, s events.ProxyHostSpec) events.ProxyHostSpec {
	if s.Upstream.URL == "" {
		s.Upstream.Container = "localhost"
		return s
	}
	u, msg := parseUpstreamURL(s.Upstream.URL)
	if msg != "" {
		t.Fatalf("accepted URL %q does not parse: %s", s.Upstream.URL, msg)
	}
	if net.ParseIP(strings.Trim(u.Host, "[]")) == nil {
		u.Host = "localhost"
	}
	s.Upstream.URL = u.base() + u.Path
	return s
}

// FuzzValidateRender: whatever Normalize+Validate accept renders (1) a
// host file whose directive structure no input changed (checkHostSyntax)
// and (2) a configuration the real `nginx -t` accepts.
func FuzzValidateRender(f *testing.F) {
	for _, tc := range hostileCorpus() {
		s := baseSpec()
		tc.set(&s)
		add(f, fuzzInputOf(s, false))
	}
	for _, h := range goldenHosts() {
		add(f, fuzzInputOf(h.Spec, h.CertReady))
	}
	r := newTestRoot(f)
	const id = "fuzz"
	r.writeCert(f, id, []string{"example.com"})
	l := r.layout()
	main := RenderMain(l, 1)
	f.Fuzz(func(t *testing.T, d1, d2, url, cont string, port int, csp, frame string, hsts int,
		rlPath, rlID string, rate, burst int, flags uint16) {
		in := fuzzInput{d1, d2, url, cont, port, csp, frame, hsts, rlPath, rlID, rate, burst, flags}
		n := Normalize(in.spec())
		err := Validate(n)
		if err != nil {
			if len(fieldsOf(t, err)) == 0 {
				t.Fatalf("refusal without field errors: %v", err)
			}
			return
		}
		h := Host{ID: id, Spec: n, CertReady: flags&fCertReady != 0}
		file, err := RenderHost(l, h)
		if err != nil {
			t.Fatalf("accepted spec does not render: %v\n%+v", err, n)
		}
		checkHostSyntax(t, file.Content, n.Domains, n.SecurityHeaders.CSP)
		h.Spec = resolvable(t, n)
		if file, err = RenderHost(l, h); err != nil {
			t.Fatalf("resolvable variant does not render: %v", err)
		}
		if out, err := r.nginxT(t, []events.NginxFile{main, file}); err != nil || strings.Contains(out, "[warn]") {
			t.Fatalf("nginx -t refused or warned about an accepted spec: %v\n%s\n%s", err, out, file.Content)
		}
	})
}

func add(f *testing.F, in fuzzInput) {
	f.Add(in.domain1, in.domain2, in.url, in.container, in.port, in.csp, in.frame, in.hsts,
		in.rlPath, in.rlID, in.rate, in.burst, in.flags)
}

var acceptedName = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// FuzzDomain: an accepted server name or upstream host is plain lower-case
// LDH (or an IP literal for the upstream), at most 253 characters, and
// normalizing it again changes nothing.
func FuzzDomain(f *testing.F) {
	for _, tc := range hostileCorpus() {
		s := baseSpec()
		tc.set(&s)
		for _, d := range s.Domains {
			f.Add(d)
		}
	}
	for _, h := range goldenHosts() {
		for _, d := range h.Spec.Domains {
			f.Add(d)
		}
	}
	for _, s := range []string{"[::1]", "127.0.0.1", "backend", "xn--bcher-kva.de", "ÄÖÜ.de", "*.日本.jp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := normalizeDomain(s)
		if checkDomain(n) == "" {
			if len(n) > events.ProxyMaxDomainLen || !acceptedName.MatchString(n) {
				t.Fatalf("accepted %q → %q", s, n)
			}
			if again := normalizeDomain(n); again != n || checkDomain(again) != "" {
				t.Fatalf("%q normalizes to %q, then to %q", s, n, again)
			}
		}
		if checkUpstreamHost(s) == "" && !acceptedName.MatchString(s) {
			ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
			if ip == nil || strings.ContainsAny(s, " ;{}$\"'\\%") {
				t.Fatalf("upstream host %q accepted", s)
			}
		}
	})
}
