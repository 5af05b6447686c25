package gateway

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP feeds arbitrary X-Forwarded-For values from a trusted
// proxy: the answer is always an address, and either the proxy's own or
// one the header named.
func FuzzClientIP(f *testing.F) {
	for _, seed := range []string{"", "198.51.100.7", "1.1.1.1, 10.0.0.1", "garbage", ",,,", "::ffff:1.2.3.4", "[::1]:80", "fe80::1%eth0"} {
		f.Add(seed)
	}
	prefixes, err := parsePrefixes([]string{"192.0.2.1", "10.0.0.0/8"})
	if err != nil {
		f.Fatal(err)
	}
	g := &Gateway{trustedProxies: prefixes}
	f.Fuzz(func(t *testing.T, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.1:5555"
		r.Header.Set("X-Forwarded-For", xff)
		got := g.clientIP(r)
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("client IP %q is not an address", got)
		}
		if got == "192.0.2.1" {
			return
		}
		for hop := range strings.SplitSeq(xff, ",") {
			if h, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && h.Unmap() == a {
				return
			}
		}
		t.Fatalf("client IP %s is neither the proxy nor in %q", got, xff)
	})
}

// FuzzRequestID: an accepted incoming id is short and has nothing a log
// line or a NATS header would need to escape.
func FuzzRequestID(f *testing.F) {
	for _, seed := range []string{"", "abc", "a b", "\x00", strings.Repeat("x", 200)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !validRequestID(id) {
			return
		}
		if len(id) > 128 || strings.ContainsAny(id, " \t\r\n\"\\") {
			t.Fatalf("accepted %q", id)
		}
	})
}
