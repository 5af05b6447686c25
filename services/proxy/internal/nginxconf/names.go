package nginxconf

import (
	"fmt"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events"
	"golang.org/x/net/idna"
)

// idnaProfile converts and checks international names. The registration
// profile maps nothing (no width folding, so a fullwidth dot U+FF0E is
// refused rather than turned into a label separator), applies the STD3
// ASCII rules, the hyphen and joiner (ZWJ/ZWNJ) context rules, the bidi
// rule and the DNS length limits.
var idnaProfile = idna.Registration

// normalizeDomain trims and lower-cases d and converts an IDN to punycode,
// keeping a leading "*." wildcard label. A name the IDNA profile refuses is
// returned lower-cased as it is, for checkDomain to report.
func normalizeDomain(d string) string {
	d = lowerName(strings.TrimSpace(d))
	if isASCII(d) {
		return d
	}
	prefix, rest := "", d
	if strings.HasPrefix(d, "*.") {
		prefix, rest = "*.", d[2:]
	}
	a, err := idnaProfile.ToASCII(rest)
	if err != nil {
		return d
	}
	return prefix + a
}

// checkDomain checks a normalized server name: an RFC 1123 host name of at
// least two labels (or "localhost"), optionally behind a "*." wildcard
// label, whose top label is not numeric (an IP address is not a server
// name here), and whose xn-- labels are valid IDNs. It returns the reason
// the name is refused, or "".
func checkDomain(d string) string {
	if d == "" {
		return "must not be empty"
	}
	if len(d) > events.ProxyMaxDomainLen {
		return fmt.Sprintf("must be at most %d characters", events.ProxyMaxDomainLen)
	}
	if !isASCII(d) {
		if _, err := idnaProfile.ToASCII(strings.TrimPrefix(d, "*.")); err != nil {
			return "is not a valid international domain name: " + err.Error()
		}
		return "must be normalized to punycode"
	}
	name := d
	if strings.HasPrefix(d, "*.") {
		name = d[2:]
	}
	if strings.Contains(name, "*") {
		return `a wildcard is only allowed as a whole first label ("*.example.com")`
	}
	if msg := checkHostName(name); msg != "" {
		return msg
	}
	if name != "localhost" && !strings.Contains(name, ".") {
		return `must have at least two labels ("example.com"), or be "localhost"`
	}
	return ""
}

// checkHostName checks an ASCII host name (no wildcard): labels of 1–63
// letters, digits and hyphens, not starting or ending with a hyphen,
// 253 characters at most, a top label that is not all digits, and xn--
// labels that decode to valid IDN labels of one script. It returns the
// reason the name is refused, or "".
func checkHostName(name string) string {
	if name == "" {
		return "must not be empty"
	}
	if len(name) > events.ProxyMaxDomainLen {
		return fmt.Sprintf("must be at most %d characters", events.ProxyMaxDomainLen)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if msg := checkLabel(l); msg != "" {
			return msg
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "must not end in a numeric label (IP addresses are not host names)"
	}
	return ""
}

// checkLabel checks one lower-case DNS label.
func checkLabel(l string) string {
	switch {
	case l == "":
		return "must not contain empty labels (no leading, trailing or double dots)"
	case len(l) > 63:
		return fmt.Sprintf("label %.20q… is longer than 63 characters", l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Sprintf("label %q must not start or end with '-'", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Sprintf("label %q may contain only a-z, 0-9 and '-' (character %q)", l, c)
		}
	}
	if strings.HasPrefix(l, "xn--") {
		return checkIDNLabel(l)
	}
	return ""
}

// checkIDNLabel checks that an xn-- label is punycode the IDNA profile
// produces again from its Unicode form (so no alternative encodings), and
// that the Unicode form holds only letters, marks and digits of one script
// (or of the CJK combinations UTS #39 allows) — refusing mixed-script
// homoglyph names such as a Latin "paypal" with a Cyrillic 'а', and emoji.
func checkIDNLabel(l string) string {
	u, err := idnaProfile.ToUnicode(l)
	if err != nil {
		return fmt.Sprintf("label %q is not valid punycode: %v", l, err)
	}
	back, err := idnaProfile.ToASCII(u)
	if err != nil || back != l {
		return fmt.Sprintf("label %q does not round-trip through IDNA", l)
	}
	return checkScripts(u)
}

// cjkSets are the script combinations UTS #39's "highly restrictive" level
// allows in one label besides a single script.
var cjkSets = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// checkScripts refuses labels whose letters mix scripts, and runes that are
// neither letters, marks nor digits.
func checkScripts(u string) string {
	seen := map[string]bool{}
	for _, r := range u {
		if r < utf8.RuneSelf {
			continue // ASCII letters count as Latin below; digits and '-' are common
		}
		if !unicode.In(r, unicode.L, unicode.M, unicode.Nd) {
			return fmt.Sprintf("label %q contains %U, which is not a letter or digit", u, r)
		}
		if s := scriptOf(r); s != "" {
			seen[s] = true
		}
	}
	for _, r := range u {
		if r < utf8.RuneSelf && unicode.IsLetter(r) {
			seen["Latin"] = true
		}
	}
	if len(seen) <= 1 {
		return ""
	}
	for _, set := range cjkSets {
		if subset(seen, set) {
			return ""
		}
	}
	names := make([]string, 0, len(seen))
	for _, s := range []string{"Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Han", "Hiragana", "Katakana", "Hangul", "Bopomofo"} {
		if seen[s] {
			names = append(names, s)
		}
	}
	if len(names) < 2 {
		names = append(names, "another script")
	}
	return fmt.Sprintf("label %q mixes scripts (%s): refused as a possible homoglyph", u, strings.Join(names, ", "))
}

// scriptOf names r's Unicode script, "" for Common and Inherited.
func scriptOf(r rune) string {
	for name, table := range unicode.Scripts {
		if name == "Common" || name == "Inherited" {
			continue
		}
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

func subset(seen map[string]bool, set []string) bool {
	for s := range seen {
		ok := false
		for _, x := range set {
			ok = ok || s == x
		}
		if !ok {
			return false
		}
	}
	return true
}

// checkUpstreamHost checks the host of an upstream URL: an IPv4 address, a
// bracketed IPv6 address (no zone) or a host name (one label is enough:
// "backend", "localhost").
func checkUpstreamHost(h string) string {
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") {
			return "has an unterminated IPv6 literal"
		}
		inner := h[1 : len(h)-1]
		if net.ParseIP(inner) == nil || !strings.Contains(inner, ":") {
			return "has an invalid IPv6 literal"
		}
		return ""
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.To4() == nil {
			return "must put an IPv6 address in brackets"
		}
		return ""
	}
	if msg := checkHostName(h); msg != "" {
		return "host " + msg
	}
	return ""
}

// lowerName lower-cases a name for IDNA. A non-ASCII rune whose lower
// case is ASCII (KELVIN SIGN → 'k', LATIN CAPITAL I WITH DOT → 'i') is
// kept, so that the IDNA profile refuses it instead of the name silently
// becoming a different ASCII name.
func lowerName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf {
			return asciiLowerRune(r)
		}
		if l := unicode.ToLower(r); l >= utf8.RuneSelf {
			return l
		}
		return r
	}, s)
}

// asciiLower lower-cases ASCII letters only (strings.ToLower maps some
// non-ASCII runes to ASCII letters).
func asciiLower(s string) string { return strings.Map(asciiLowerRune, s) }

// asciiUpper upper-cases ASCII letters only.
func asciiUpper(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

func asciiLowerRune(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r - 'A' + 'a'
	}
	return r
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
