package nginxconf

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/infrapilot/infrapilot/events"
)

// Limits of the validator beyond those of events.
const (
	// MaxURLLen bounds an upstream URL (nginx refuses tokens over 4 KiB).
	MaxURLLen = 2048
	// MaxPathLen bounds a rate-limit path.
	MaxPathLen = 256
	// MaxRate and MaxBurst bound a rate limit's rate and burst.
	MaxRate  = 100000
	MaxBurst = 100000
	// MaxHSTSMaxAge is two years, the longest max-age preload lists use.
	MaxHSTSMaxAge = 63072000
	// DefaultHSTSMaxAge (one year) applies when HSTSMaxAge is 0.
	DefaultHSTSMaxAge = 31536000
)

// acmePrefix is the location every port-80 server reserves for HTTP-01.
const acmePrefix = "/.well-known/acme-challenge"

var (
	containerRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	rateIDRe    = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
)

// Normalize returns spec with domains trimmed, lower-cased and IDNs in
// punycode (a "*." wildcard label kept), the upstream URL's scheme and
// host lower-cased, the container name, CSP and frame options trimmed
// (frame options upper-cased), rate-limit defaults filled (Per "second",
// Path "/") and rate limits without an id given the first free one of
// "rl1", "rl2"… It removes nothing: duplicates are left for Validate to
// report. The input's slices are not modified.
func Normalize(spec events.ProxyHostSpec) events.ProxyHostSpec {
	out := spec
	out.Domains = make([]string, len(spec.Domains))
	for i, d := range spec.Domains {
		out.Domains[i] = normalizeDomain(d)
	}
	out.Upstream.URL = normalizeURL(spec.Upstream.URL)
	out.Upstream.Container = strings.TrimSpace(spec.Upstream.Container)
	sh := &out.SecurityHeaders
	sh.CSP = strings.TrimSpace(sh.CSP)
	sh.FrameOptions = asciiUpper(strings.TrimSpace(sh.FrameOptions))
	if spec.RateLimits != nil {
		out.RateLimits = make([]events.RateLimit, len(spec.RateLimits))
	}
	used := map[string]bool{}
	for i, rl := range spec.RateLimits {
		rl.ID = asciiLower(strings.TrimSpace(rl.ID))
		rl.Per = asciiLower(strings.TrimSpace(rl.Per))
		rl.Path = strings.TrimSpace(rl.Path)
		if rl.Per == "" {
			rl.Per = "second"
		}
		if rl.Path == "" {
			rl.Path = "/"
		}
		used[rl.ID] = true
		out.RateLimits[i] = rl
	}
	next := 1
	for i := range out.RateLimits {
		if out.RateLimits[i].ID != "" {
			continue
		}
		for used["rl"+strconv.Itoa(next)] {
			next++
		}
		out.RateLimits[i].ID = "rl" + strconv.Itoa(next)
		used[out.RateLimits[i].ID] = true
	}
	return out
}

// normalizeURL trims u and lower-cases its scheme and authority (host
// names are case-insensitive; the path is not), converting an IDN host to
// punycode.
func normalizeURL(u string) string {
	u = strings.TrimSpace(u)
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	rest := u[i+3:]
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	auth := lowerName(rest[:end])
	if !isASCII(auth) && !strings.ContainsAny(auth, "@[") {
		host, port, hasPort := strings.Cut(auth, ":")
		if a, err := idnaProfile.ToASCII(host); err == nil {
			auth = a
			if hasPort {
				auth += ":" + port
			}
		}
	}
	return asciiLower(u[:i]) + "://" + auth + rest[end:]
}

// Validate checks a normalized spec (see Normalize). It returns an
// *events.Error with code invalid and one events.FieldError per bad field
// ("domains[0]", "upstream.url", "upstream.container", "upstream.port",
// "security_headers.csp", "rate_limits[1].rate"…), or nil. Every value it
// accepts is safe to place in nginx syntax: the rules are allowlists, so
// nothing that could end a token, a string or a directive (whitespace,
// ';', '{', '}', quotes, '\\', '$', control or non-ASCII characters)
// reaches the renderer except where documented (';' and '\” in a CSP,
// which is rendered inside a double-quoted string).
func Validate(spec events.ProxyHostSpec) error {
	var fs []events.FieldError
	add := func(field, format string, args ...any) {
		fs = append(fs, events.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	validateDomains(spec.Domains, add)
	validateUpstream(spec.Upstream, add)
	validateHeaders(spec.SecurityHeaders, add)
	validateRateLimits(spec.RateLimits, add)
	if len(fs) == 0 {
		return nil
	}
	noun := "fields"
	if len(fs) == 1 {
		noun = "field"
	}
	return events.Invalid("invalid proxy host: %d %s refused", len(fs), noun).WithFields(fs...)
}

type addFunc func(field, format string, args ...any)

func validateDomains(ds []string, add addFunc) {
	switch {
	case len(ds) == 0:
		add("domains", "at least one domain is required")
		return
	case len(ds) > events.ProxyMaxDomains:
		add("domains", "at most %d domains", events.ProxyMaxDomains)
		return
	}
	first := map[string]int{}
	for i, d := range ds {
		field := fmt.Sprintf("domains[%d]", i)
		if msg := checkDomain(d); msg != "" {
			add(field, "%s", msg)
			continue
		}
		if j, dup := first[d]; dup {
			add(field, "duplicate of domains[%d]", j)
			continue
		}
		first[d] = i
	}
}

func validateUpstream(u events.Upstream, add addFunc) {
	switch {
	case u.URL == "" && u.Container == "":
		add("upstream", "a URL or a container and port is required")
	case u.URL != "" && u.Container != "":
		add("upstream", "give a URL or a container, not both")
	case u.URL != "":
		if _, msg := parseUpstreamURL(u.URL); msg != "" {
			add("upstream.url", "%s", msg)
		}
		if u.Port != 0 {
			add("upstream.port", "only with a container (put the port in the URL)")
		}
	default:
		if !containerRe.MatchString(u.Container) {
			add("upstream.container", "must be a container name ([a-zA-Z0-9][a-zA-Z0-9_.-], at most 128 characters)")
		}
		if u.Port < 1 || u.Port > 65535 {
			add("upstream.port", "must be 1-65535")
		}
	}
}

// upstreamURL is a parsed upstream URL. Host keeps the brackets of an IPv6
// literal; Port and Path may be empty.
type upstreamURL struct {
	Scheme, Host, Port, Path string
}

// base is scheme://host[:port], the URL without its path.
func (u upstreamURL) base() string {
	b := u.Scheme + "://" + u.Host
	if u.Port != "" {
		b += ":" + u.Port
	}
	return b
}

// parseUpstreamURL parses and checks a normalized upstream URL. It is
// deliberately stricter than net/url: http or https only, no user
// information, query or fragment, and only characters that are inert in
// an unquoted nginx token.
func parseUpstreamURL(s string) (upstreamURL, string) {
	var u upstreamURL
	if len(s) > MaxURLLen {
		return u, fmt.Sprintf("must be at most %d characters", MaxURLLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return u, "must not contain spaces, control or non-ASCII characters"
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return u, "must be an absolute http:// or https:// URL"
	}
	if scheme != "http" && scheme != "https" {
		return u, fmt.Sprintf("scheme %q is not allowed: http or https only", scheme)
	}
	switch {
	case strings.Contains(rest, "?"):
		return u, "must not have a query"
	case strings.Contains(rest, "#"):
		return u, "must not have a fragment"
	}
	auth, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		auth, path = rest[:i], rest[i:]
	}
	if strings.Contains(auth, "@") {
		return u, "must not contain user information"
	}
	host, port := auth, ""
	hasPort := false
	if strings.HasPrefix(auth, "[") {
		if end := strings.IndexByte(auth, ']'); end >= 0 {
			host = auth[:end+1]
			after := auth[end+1:]
			if after != "" {
				if after[0] != ':' {
					return u, "has garbage after the IPv6 address"
				}
				port, hasPort = after[1:], true
			}
		}
	} else if strings.Count(auth, ":") > 1 {
		return u, "must put an IPv6 address in brackets"
	} else if i := strings.IndexByte(auth, ':'); i >= 0 {
		host, port, hasPort = auth[:i], auth[i+1:], true
	}
	if host == "" {
		return u, "must have a host"
	}
	if msg := checkUpstreamHost(host); msg != "" {
		return u, msg
	}
	if hasPort {
		if n, err := strconv.Atoi(port); err != nil || !allDigits(port) || len(port) > 5 || n < 1 || n > 65535 {
			return u, "port must be 1-65535"
		}
	}
	if msg := checkPath(path, true); msg != "" {
		return u, "path " + msg
	}
	return upstreamURL{Scheme: scheme, Host: host, Port: port, Path: path}, ""
}

// checkPath checks a URL path ("" allowed): it starts with '/' and holds
// only RFC 3986 path characters that are inert in an unquoted nginx token
// (letters, digits, "-._~!&()*+,=:@/"; '%' followed by two hex digits when
// percent is true). Quotes, ';', '$', '{', '}', '\\', '#', '?', spaces and
// control characters are refused.
func checkPath(p string, percent bool) string {
	if p == "" {
		return ""
	}
	if p[0] != '/' {
		return "must start with '/'"
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!&()*+,=:@/", c) >= 0:
		case c == '%' && percent:
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "has a '%' not followed by two hex digits"
			}
		default:
			return fmt.Sprintf("must not contain %q", c)
		}
	}
	return ""
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func validateHeaders(h events.SecurityHeaders, add addFunc) {
	if h.HSTSMaxAge < 0 || h.HSTSMaxAge > MaxHSTSMaxAge {
		add("security_headers.hsts_max_age", "must be 0-%d seconds (0: one year)", MaxHSTSMaxAge)
	}
	switch h.FrameOptions {
	case "", "DENY", "SAMEORIGIN":
	default:
		add("security_headers.frame_options", `must be "DENY", "SAMEORIGIN" or empty`)
	}
	if msg := checkCSP(h.CSP); msg != "" {
		add("security_headers.csp", "%s", msg)
	}
}

// checkCSP allows printable ASCII except what could end or alter the
// double-quoted nginx string it is rendered in: '"' and '\\' (string
// syntax), '$' (variable interpolation) and '{', '}' (${var} syntax).
// ';' and '\” are part of CSP syntax and harmless inside the string.
func checkCSP(v string) string {
	if len(v) > events.ProxyMaxHeaderValue {
		return fmt.Sprintf("must be at most %d characters", events.ProxyMaxHeaderValue)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c < ' ' || c >= 0x7f:
			return "must be printable ASCII (no line breaks, control or non-ASCII characters)"
		case strings.IndexByte("\"\\${}", c) >= 0:
			return fmt.Sprintf("must not contain %q", c)
		}
	}
	return ""
}

func validateRateLimits(rls []events.RateLimit, add addFunc) {
	if len(rls) > events.ProxyMaxRateLimits {
		add("rate_limits", "at most %d rate limits", events.ProxyMaxRateLimits)
		return
	}
	ids := map[string]int{}
	for i, rl := range rls {
		f := fmt.Sprintf("rate_limits[%d].", i)
		if !rateIDRe.MatchString(rl.ID) {
			add(f+"id", "must be 1-32 characters of a-z, 0-9 and '-'")
		} else if j, dup := ids[rl.ID]; dup {
			add(f+"id", "duplicate of rate_limits[%d].id", j)
		} else {
			ids[rl.ID] = i
		}
		if rl.Rate < 1 || rl.Rate > MaxRate {
			add(f+"rate", "must be 1-%d", MaxRate)
		}
		if rl.Per != "second" && rl.Per != "minute" {
			add(f+"per", `must be "second" or "minute"`)
		}
		if rl.Burst < 0 || rl.Burst > MaxBurst {
			add(f+"burst", "must be 0-%d", MaxBurst)
		}
		switch {
		case rl.Path == "":
			add(f+"path", "must not be empty (normalize first)")
		case len(rl.Path) > MaxPathLen:
			add(f+"path", "must be at most %d characters", MaxPathLen)
		case checkPath(rl.Path, false) != "":
			add(f+"path", "%s", checkPath(rl.Path, false))
		case strings.HasPrefix(rl.Path, acmePrefix):
			add(f+"path", "%s is reserved for ACME challenges", acmePrefix)
		}
	}
}
