package nginxconf

import (
	"slices"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// baseSpec is a valid spec the corpus cases break one field of.
func baseSpec() events.ProxyHostSpec {
	return events.ProxyHostSpec{
		Domains:    []string{"app.example.com"},
		Upstream:   events.Upstream{URL: "http://127.0.0.1:8080"},
		Enabled:    true,
		RateLimits: []events.RateLimit{{ID: "rl1", Rate: 10, Per: "second", Path: "/api"}},
	}
}

type hostileCase struct {
	name  string
	field string // the one field error expected
	set   func(s *events.ProxyHostSpec)
}

func domain(d string) func(*events.ProxyHostSpec) {
	return func(s *events.ProxyHostSpec) { s.Domains = []string{d} }
}
func url(u string) func(*events.ProxyHostSpec) {
	return func(s *events.ProxyHostSpec) { s.Upstream = events.Upstream{URL: u} }
}
func container(c string, port int) func(*events.ProxyHostSpec) {
	return func(s *events.ProxyHostSpec) { s.Upstream = events.Upstream{Container: c, Port: port} }
}
func csp(v string) func(*events.ProxyHostSpec) {
	return func(s *events.ProxyHostSpec) { s.SecurityHeaders.CSP = v }
}
func frame(v string) func(*events.ProxyHostSpec) {
	return func(s *events.ProxyHostSpec) { s.SecurityHeaders.FrameOptions = v }
}
func rl(f func(r *events.RateLimit)) func(*events.ProxyHostSpec) {
	return func(s *events.ProxyHostSpec) { f(&s.RateLimits[0]) }
}
func rlPath(p string) func(*events.ProxyHostSpec) {
	return rl(func(r *events.RateLimit) { r.Path = p })
}

// hostileCorpus lists inputs that try to inject nginx syntax or to pass
// a look-alike name; every one must be refused with a field error on
// exactly the field named. It also seeds FuzzValidateRender.
func hostileCorpus() []hostileCase {
	d, u, c := "domains[0]", "upstream.url", "upstream.container"
	return []hostileCase{
		{"domain newline", d, domain("a.com\nserver_name evil.com")},
		{"domain CR", d, domain("a.com\r\nx")},
		{"domain open brace", d, domain("a.com{")},
		{"domain braces", d, domain("a{b}.com")},
		{"domain semicolon", d, domain("a.com;")},
		{"domain directive", d, domain("a.com; include /etc/passwd")},
		{"domain dollar", d, domain("$host.com")},
		{"domain double quote", d, domain(`"a.com"`)},
		{"domain single quote", d, domain("'a.com'")},
		{"domain backslash", d, domain(`a\.com`)},
		{"domain NUL", d, domain("a\x00.com")},
		{"domain space", d, domain("a b.com")},
		{"domain tab", d, domain("a\tb.com")},
		{"domain hash", d, domain("a.com#")},
		{"domain tilde regex", d, domain("~^(.*)$")},
		{"domain underscore", d, domain("a_b.com")},
		{"domain overlong", d, domain(strings.Repeat("a.", 126) + "com")},
		{"domain overlong label", d, domain(strings.Repeat("a", 64) + ".com")},
		{"domain empty", d, domain("")},
		{"domain blank", d, domain("   ")},
		{"domain leading hyphen", d, domain("-a.com")},
		{"domain trailing hyphen", d, domain("a-.com")},
		{"domain trailing dot", d, domain("example.com.")},
		{"domain leading dot", d, domain(".example.com")},
		{"domain double dot", d, domain("a..com")},
		{"domain single label", d, domain("intranet")},
		{"domain ipv4", d, domain("10.0.0.1")},
		{"domain wildcard twice", d, domain("*.*.x.com")},
		{"domain wildcard in label", d, domain("a*.b.com")},
		{"domain wildcard only", d, domain("*")},
		{"domain wildcard tld", d, domain("*.com")},
		{"domain wildcard suffix", d, domain("example.*")},
		{"domain homoglyph", d, domain("pаypal.com")}, // Cyrillic а
		{"domain homoglyph punycode", d, domain("xn--pypal-4ve.com")},
		{"domain greek omicron", d, domain("gοogle.com")}, // Greek ο
		{"domain zero-width joiner", d, domain("a\u200db.com")},
		{"domain zero-width space", d, domain("a\u200bb.com")},
		{"domain RTL override", d, domain("moc.\u202eevil.com")},
		{"domain fullwidth dot", d, domain("evil\uff0ecom")},
		{"domain ideographic dot", d, domain("evil\u3002com")},
		{"domain line separator", d, domain("a\u2028b.com")},
		{"domain invalid punycode", d, domain("xn--zz.com")},
		{"domain punycode non-canonical", d, domain("xn--a.com")},
		{"domain emoji", d, domain("💩.la")},
		{"domain kelvin sign", d, domain("\u212Aey.com")},
		{"domain dotted capital I", d, domain("\u0130stanbul.com")},
		{"domain long s", d, domain("\u017Fecure.com")},
		{"domain decomposed", d, domain("cafe\u0301.com")},
		{"domain reserved hyphens idn", d, domain("xn--.com")},
		{"domain duplicate", "domains[1]", func(s *events.ProxyHostSpec) { s.Domains = []string{"a.com", "A.COM "} }},
		{"domain duplicate idn", "domains[1]", func(s *events.ProxyHostSpec) { s.Domains = []string{"bücher.de", "xn--bcher-kva.de"} }},
		{"no domains", "domains", func(s *events.ProxyHostSpec) { s.Domains = nil }},
		{"too many domains", "domains", func(s *events.ProxyHostSpec) {
			s.Domains = make([]string, events.ProxyMaxDomains+1)
			for i := range s.Domains {
				s.Domains[i] = "d" + strings.Repeat("x", i) + ".com"
			}
		}},

		{"url javascript", u, url("javascript:alert(1)")},
		{"url ftp", u, url("ftp://127.0.0.1")},
		{"url file", u, url("file:///etc/passwd")},
		{"url unix socket", u, url("http://unix:/var/run/docker.sock")},
		{"url no scheme", u, url("127.0.0.1:8080")},
		{"url userinfo", u, url("http://user:pass@127.0.0.1")},
		{"url query", u, url("http://127.0.0.1/?a=b")},
		{"url fragment", u, url("http://127.0.0.1/#x")},
		{"url newline", u, url("http://127.0.0.1/\nreturn 200")},
		{"url semicolon", u, url("http://127.0.0.1/;return 200")},
		{"url brace", u, url("http://127.0.0.1/{")},
		{"url close brace", u, url("http://127.0.0.1/}")},
		{"url dollar", u, url("http://127.0.0.1/$host")},
		{"url dollar host", u, url("http://$host")},
		{"url double quote", u, url(`http://127.0.0.1/"`)},
		{"url single quote", u, url("http://127.0.0.1/'")},
		{"url backslash", u, url(`http://127.0.0.1/\`)},
		{"url space", u, url("http://127.0.0.1/a b")},
		{"url NUL", u, url("http://127.0.0.1/\x00")},
		{"url non-ascii path", u, url("http://127.0.0.1/ü")},
		{"url bad percent", u, url("http://127.0.0.1/%zz")},
		{"url ipv6 unterminated", u, url("http://[::1")},
		{"url ipv6 garbage", u, url("http://[::g]:80")},
		{"url ipv6 v4 in brackets", u, url("http://[1.2.3.4]")},
		{"url ipv6 unbracketed", u, url("http://::1:80")},
		{"url ipv6 zone", u, url("http://[fe80::1%25eth0]")},
		{"url ipv6 trailing", u, url("http://[::1]x")},
		{"url port zero", u, url("http://127.0.0.1:0")},
		{"url port big", u, url("http://127.0.0.1:65536")},
		{"url port empty", u, url("http://127.0.0.1:")},
		{"url port letters", u, url("http://127.0.0.1:http")},
		{"url port sign", u, url("http://127.0.0.1:+80")},
		{"url empty host", u, url("http:///x")},
		{"url bad host", u, url("http://-bad-.com")},
		{"url numeric host", u, url("http://1.2.3")},
		{"url kelvin host", u, url("http://\u212A.example.com")},
		{"url overlong", u, url("http://127.0.0.1/" + strings.Repeat("a", MaxURLLen))},
		{"url with port field", "upstream.port", func(s *events.ProxyHostSpec) { s.Upstream.Port = 80 }},
		{"url and container", "upstream", func(s *events.ProxyHostSpec) { s.Upstream.Container = "app" }},
		{"no upstream", "upstream", func(s *events.ProxyHostSpec) { s.Upstream = events.Upstream{} }},

		{"container semicolon", c, container("app;rm", 80)},
		{"container newline", c, container("app\nx", 80)},
		{"container brace", c, container("app{", 80)},
		{"container dollar", c, container("ap$p", 80)},
		{"container leading dash", c, container("-app", 80)},
		{"container slash", c, container("/app", 80)},
		{"container colon", c, container("app:80", 80)},
		{"container space", c, container("my app", 80)},
		{"container unicode", c, container("über", 80)},
		{"container overlong", c, container(strings.Repeat("a", 129), 80)},
		{"container port zero", "upstream.port", container("app", 0)},
		{"container port big", "upstream.port", container("app", 70000)},
		{"container port negative", "upstream.port", container("app", -1)},

		{"csp double quote", "security_headers.csp", csp(`default-src 'self'" always; return 200 "x`)},
		{"csp dollar", "security_headers.csp", csp("default-src $host")},
		{"csp braces", "security_headers.csp", csp("default-src ${x}")},
		{"csp close brace", "security_headers.csp", csp("default-src }")},
		{"csp backslash", "security_headers.csp", csp(`default-src \"`)},
		{"csp newline", "security_headers.csp", csp("default-src 'self'\nadd_header X y")},
		{"csp CR", "security_headers.csp", csp("default-src\r'self'")},
		{"csp tab", "security_headers.csp", csp("default-src\t'self'")},
		{"csp NUL", "security_headers.csp", csp("a\x00")},
		{"csp non-ascii", "security_headers.csp", csp("default-src 'self' ü")},
		{"csp overlong", "security_headers.csp", csp(strings.Repeat("a", events.ProxyMaxHeaderValue+1))},
		{"frame allow-from", "security_headers.frame_options", frame("ALLOW-FROM https://x.com")},
		{"frame semicolon", "security_headers.frame_options", frame("DENY; add_header X y")},
		{"frame quote", "security_headers.frame_options", frame(`DENY"`)},
		{"frame long s", "security_headers.frame_options", frame("\u017FAMEORIGIN")},
		{"frame newline", "security_headers.frame_options", frame("DE\nNY")},
		{"hsts negative", "security_headers.hsts_max_age", func(s *events.ProxyHostSpec) { s.SecurityHeaders.HSTSMaxAge = -1 }},
		{"hsts too long", "security_headers.hsts_max_age", func(s *events.ProxyHostSpec) { s.SecurityHeaders.HSTSMaxAge = MaxHSTSMaxAge + 1 }},

		{"rl path space", "rate_limits[0].path", rlPath("/a b")},
		{"rl path double quote", "rate_limits[0].path", rlPath(`/a"b`)},
		{"rl path single quote", "rate_limits[0].path", rlPath("/a'b")},
		{"rl path semicolon", "rate_limits[0].path", rlPath("/a;b")},
		{"rl path brace", "rate_limits[0].path", rlPath("/a{")},
		{"rl path dollar", "rate_limits[0].path", rlPath("/$uri")},
		{"rl path backslash", "rate_limits[0].path", rlPath(`/a\b`)},
		{"rl path hash", "rate_limits[0].path", rlPath("/a#b")},
		{"rl path query", "rate_limits[0].path", rlPath("/a?b")},
		{"rl path newline", "rate_limits[0].path", rlPath("/a\n}")},
		{"rl path percent", "rate_limits[0].path", rlPath("/a%20b")},
		{"rl path relative", "rate_limits[0].path", rlPath("api")},
		{"rl path regex", "rate_limits[0].path", rlPath("~ .*")},
		{"rl path acme", "rate_limits[0].path", rlPath("/.well-known/acme-challenge/")},
		{"rl path overlong", "rate_limits[0].path", rlPath("/" + strings.Repeat("a", MaxPathLen))},
		{"rl rate zero", "rate_limits[0].rate", rl(func(r *events.RateLimit) { r.Rate = 0 })},
		{"rl rate big", "rate_limits[0].rate", rl(func(r *events.RateLimit) { r.Rate = MaxRate + 1 })},
		{"rl per hour", "rate_limits[0].per", rl(func(r *events.RateLimit) { r.Per = "hour" })},
		{"rl per injection", "rate_limits[0].per", rl(func(r *events.RateLimit) { r.Per = "second;" })},
		{"rl burst negative", "rate_limits[0].burst", rl(func(r *events.RateLimit) { r.Burst = -1 })},
		{"rl burst big", "rate_limits[0].burst", rl(func(r *events.RateLimit) { r.Burst = MaxBurst + 1 })},
		{"rl id underscore", "rate_limits[0].id", rl(func(r *events.RateLimit) { r.ID = "a_b" })},
		{"rl id semicolon", "rate_limits[0].id", rl(func(r *events.RateLimit) { r.ID = "a;b" })},
		{"rl id overlong", "rate_limits[0].id", rl(func(r *events.RateLimit) { r.ID = strings.Repeat("a", 33) })},
		{"rl id duplicate", "rate_limits[1].id", func(s *events.ProxyHostSpec) {
			s.RateLimits = append(s.RateLimits, events.RateLimit{ID: "RL1", Rate: 1})
		}},
		{"too many rate limits", "rate_limits", func(s *events.ProxyHostSpec) {
			s.RateLimits = make([]events.RateLimit, events.ProxyMaxRateLimits+1)
			for i := range s.RateLimits {
				s.RateLimits[i].Rate = 1
			}
		}},
	}
}

func TestHostileInputsRefused(t *testing.T) {
	t.Parallel()
	if err := Validate(Normalize(baseSpec())); err != nil {
		t.Fatalf("base spec refused: %v", err)
	}
	for _, tc := range hostileCorpus() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := baseSpec()
			tc.set(&s)
			err := Validate(Normalize(s))
			got := fieldsOf(t, err)
			if !slices.Equal(got, []string{tc.field}) {
				t.Fatalf("fields %v, want [%s] (err %v)", got, tc.field, err)
			}
			if e := err.(*events.Error); e.Fields[0].Message == "" {
				t.Error("field error without a message")
			}
		})
	}
}
