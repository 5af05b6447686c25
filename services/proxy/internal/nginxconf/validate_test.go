package nginxconf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	in := events.ProxyHostSpec{
		Domains:  []string{" App.Example.COM ", "*.Bücher.de", "LOCALHOST", "a\u202eb.com"},
		Upstream: events.Upstream{URL: " HTTP://Backend.LAN:8080/Path/X "},
		SecurityHeaders: events.SecurityHeaders{
			FrameOptions: " sameorigin ", CSP: "  default-src 'self'  ",
		},
		RateLimits: []events.RateLimit{
			{ID: "", Rate: 1},
			{ID: " RL1 ", Rate: 2, Per: " Minute ", Path: " /api "},
			{Rate: 3},
		},
	}
	orig := append([]string(nil), in.Domains...)
	got := Normalize(in)
	want := events.ProxyHostSpec{
		Domains:  []string{"app.example.com", "*.xn--bcher-kva.de", "localhost", "a\u202eb.com"},
		Upstream: events.Upstream{URL: "http://backend.lan:8080/Path/X"},
		SecurityHeaders: events.SecurityHeaders{
			FrameOptions: "SAMEORIGIN", CSP: "default-src 'self'",
		},
		RateLimits: []events.RateLimit{
			{ID: "rl2", Rate: 1, Per: "second", Path: "/"},
			{ID: "rl1", Rate: 2, Per: "minute", Path: "/api"},
			{ID: "rl3", Rate: 3, Per: "second", Path: "/"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Normalize\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(in.Domains, orig) || in.RateLimits[0].ID != "" {
		t.Error("Normalize modified its input")
	}
	if again := Normalize(got); !reflect.DeepEqual(again, got) {
		t.Errorf("Normalize is not idempotent: %+v", again)
	}
	if n := Normalize(events.ProxyHostSpec{}); n.RateLimits != nil || len(n.Domains) != 0 {
		t.Errorf("empty spec normalized to %+v", n)
	}
}

// TestNormalizeIDNURL: an IDN upstream host becomes punycode, its port kept.
func TestNormalizeIDNURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://Bücher.de:81/x": "http://xn--bcher-kva.de:81/x",
		"https://bücher.de":     "https://xn--bcher-kva.de",
		"http://bücher.de:":     "http://xn--bcher-kva.de:",
		"javascript:x":          "javascript:x",
	} {
		if got := normalizeURL(in); got != want {
			t.Errorf("normalizeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	cases := map[string]func(s *events.ProxyHostSpec){
		"uppercase domain":      domain("APP.EXAMPLE.COM"),
		"localhost":             domain("localhost"),
		"wildcard localhost":    domain("*.localhost"),
		"wildcard":              domain("*.example.com"),
		"idn":                   domain("bücher.de"),
		"idn punycode":          domain("xn--bcher-kva.de"),
		"idn greek":             domain("ελλάδα.gr"),
		"idn cyrillic":          domain("пример.рф"),
		"idn japanese mixed":    domain("日本語かなカナabc.jp"),
		"idn korean":            domain("한국어.kr"),
		"digit labels":          domain("1.2.3.example"),
		"numeric label start":   domain("3com.com"),
		"r-ldh label":           domain("r3---sn-abc.googlevideo.com"),
		"max label":             domain(strings.Repeat("a", 63) + ".com"),
		"max name":              domain(strings.Repeat("a.", 125) + "com"),
		"url ipv6":              url("http://[2001:db8::1]:8080"),
		"url ipv4 mapped":       url("http://[::ffff:127.0.0.1]"),
		"url single label host": url("http://backend:3000"),
		"url https path":        url("https://api.internal.example/v1/%7Euser/(x)!*+,=:@~-._&"),
		"url trailing slash":    url("http://127.0.0.1/"),
		"url max port":          url("http://127.0.0.1:65535"),
		"container":             container("my_app.1-x", 3000),
		"container upper":       container("MyApp", 1),
		"csp quotes":            csp("default-src 'self'; script-src 'nonce-abc' 'strict-dynamic' https: ; report-uri /csp#x"),
		"frame lower":           frame("deny"),
		"hsts max":              func(s *events.ProxyHostSpec) { s.SecurityHeaders.HSTSMaxAge = MaxHSTSMaxAge },
		"rl max":                rl(func(r *events.RateLimit) { r.Rate, r.Burst, r.Per = MaxRate, MaxBurst, "minute" }),
		"rl root path":          rlPath(""),
		"rl path chars":         rlPath("/a-b_c.d~e!f&g(h)i*j+k,l=m:n@o/"),
		"rl acme lookalike":     rlPath("/.well-known/other"),
		"rl same path twice": func(s *events.ProxyHostSpec) {
			s.RateLimits = append(s.RateLimits, events.RateLimit{Rate: 100, Per: "minute", Path: "/api"})
		},
		"max rate limits": func(s *events.ProxyHostSpec) {
			s.RateLimits = make([]events.RateLimit, events.ProxyMaxRateLimits)
			for i := range s.RateLimits {
				s.RateLimits[i] = events.RateLimit{Rate: i + 1, Path: "/p" + strings.Repeat("x", i)}
			}
		},
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := baseSpec()
			set(&s)
			n := Normalize(s)
			if err := Validate(n); err != nil {
				t.Fatalf("refused: %v %+v", err, err.(*events.Error).Fields)
			}
			if _, err := RenderHost(LayoutFor(nil), Host{ID: "h", Spec: n, CertReady: true}); err != nil {
				t.Fatalf("RenderHost: %v", err)
			}
		})
	}
}

// TestValidateRequiresNormalized: Validate does not normalize by itself.
func TestValidateRequiresNormalized(t *testing.T) {
	t.Parallel()
	s := baseSpec()
	s.Domains = []string{"App.example.com", "bücher.de"}
	s.RateLimits[0].Per = ""
	got := fieldsOf(t, Validate(s))
	want := []string{"domains[0]", "domains[1]", "rate_limits[0].per"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields %v, want %v", got, want)
	}
}

// TestValidateReportsEveryField: one error per bad field, in spec order.
func TestValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	s := events.ProxyHostSpec{
		Domains:         []string{"ok.com", "bad;.com", "ok.com"},
		Upstream:        events.Upstream{Container: "x;", Port: 0},
		SecurityHeaders: events.SecurityHeaders{CSP: `"`, FrameOptions: "X", HSTSMaxAge: -1},
		RateLimits:      []events.RateLimit{{ID: "a", Rate: 1}, {ID: "b", Rate: 0, Per: "day", Burst: -1, Path: "x"}},
	}
	got := fieldsOf(t, Validate(Normalize(s)))
	want := []string{
		"domains[1]", "domains[2]", "upstream.container", "upstream.port",
		"security_headers.hsts_max_age", "security_headers.frame_options", "security_headers.csp",
		"rate_limits[1].rate", "rate_limits[1].per", "rate_limits[1].burst", "rate_limits[1].path",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields\n got %v\nwant %v", got, want)
	}
}

func TestRenderHostRefuses(t *testing.T) {
	t.Parallel()
	good := Normalize(baseSpec())
	bad := good
	bad.Domains = []string{"a.com;"}
	for name, tc := range map[string]struct {
		l Layout
		h Host
	}{
		"invalid spec":    {LayoutFor(nil), Host{ID: "h", Spec: bad}},
		"id with slash":   {LayoutFor(nil), Host{ID: "a/b", Spec: good}},
		"id with dots":    {LayoutFor(nil), Host{ID: "..", Spec: good}},
		"id with _":       {LayoutFor(nil), Host{ID: "a_b", Spec: good}},
		"id empty":        {LayoutFor(nil), Host{ID: "", Spec: good}},
		"layout root":     {Layout{Root: "/a b", Kind: "local", HTTPPort: 80, HTTPSPort: 443, CheckPort: 1}, Host{ID: "h", Spec: good}},
		"layout port":     {Layout{Root: "/a", Kind: "local", HTTPPort: 0, HTTPSPort: 443, CheckPort: 1}, Host{ID: "h", Spec: good}},
		"layout root '/'": {Layout{Root: "/", Kind: "local", HTTPPort: 80, HTTPSPort: 443, CheckPort: 1}, Host{ID: "h", Spec: good}},
	} {
		if _, err := RenderHost(tc.l, tc.h); events.ErrorCode(err) != events.CodeInvalid {
			t.Errorf("%s: err %v, want invalid", name, err)
		}
	}
}
