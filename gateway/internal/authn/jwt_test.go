package authn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/authn/authntest"
)

// sign signs claims with any method and key, with kid (none for "").
func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// with returns valid claims for alice at now, changed by edit.
func with(now time.Time, edit func(jwt.MapClaims)) jwt.MapClaims {
	c := authntest.Claims(alice, now)
	edit(c)
	return c
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestForgedTokens: every token that is not a valid EdDSA access token of
// the auth service answers the same 401, and never reaches the route.
func TestForgedTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *authn.Config) { c.AuthRateLimit = -1 })
	now := f.clock.Now()
	valid := f.iss.Token(t, alice, now)
	parts := strings.Split(valid, ".")
	other := strings.Split(f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["sub"] = bob })), ".")
	pub := []byte(f.iss.Public())
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor := authntest.NewIssuer(t, kid1) // a different key under the known kid
	stranger := authntest.NewIssuer(t, "kid-nobody-published")
	claims := authntest.Claims(alice, now)
	edHeader := b64(fmt.Sprintf(`{"alg":"EdDSA","typ":"JWT","kid":%q}`, kid1))

	cases := map[string]string{
		"alg none":                              sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid1, claims),
		"alg none, EdDSA header":                edHeader + "." + parts[1] + ".",
		"HS256 keyed with the public key bytes": sign(t, jwt.SigningMethodHS256, pub, kid1, claims),
		"HS256 keyed with the JWK x":            sign(t, jwt.SigningMethodHS256, []byte(f.iss.JWK().X), kid1, claims),
		"HS512 keyed with the public key bytes": sign(t, jwt.SigningMethodHS512, pub, kid1, claims),
		"RS256":                                 sign(t, jwt.SigningMethodRS256, rsaKey, kid1, claims),
		"ES256":                                 sign(t, jwt.SigningMethodES256, ecKey, kid1, claims),
		"expired":                               f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"expired just beyond the leeway":        f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["exp"] = now.Add(-authn.DefaultLeeway - time.Second).Unix() })),
		"future nbf":                            f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })),
		"future iat":                            f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })),
		"missing exp":                           f.iss.Sign(t, with(now, func(c jwt.MapClaims) { delete(c, "exp") })),
		"wrong audience":                        f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["aud"] = "another-api" })),
		"missing audience":                      f.iss.Sign(t, with(now, func(c jwt.MapClaims) { delete(c, "aud") })),
		"wrong issuer":                          f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["iss"] = "evil" })),
		"missing issuer":                        f.iss.Sign(t, with(now, func(c jwt.MapClaims) { delete(c, "iss") })),
		"subject not an id":                     f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["sub"] = "user.*" })),
		"subject missing":                       f.iss.Sign(t, with(now, func(c jwt.MapClaims) { delete(c, "sub") })),
		"subject platform":                      f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["sub"] = events.PlatformOrg })),
		"unknown kid":                           stranger.Token(t, alice, now),
		"no kid":                                sign(t, jwt.SigningMethodEdDSA, f.iss.Key, "", claims),
		"kid not a string":                      b64(`{"alg":"EdDSA","kid":1}`) + "." + parts[1] + "." + parts[2],
		"tampered payload":                      parts[0] + "." + other[1] + "." + parts[2],
		"tampered header":                       b64(fmt.Sprintf(`{"alg":"EdDSA","kid":%q,"x":1}`, kid1)) + "." + parts[1] + "." + parts[2],
		"signature of another token":            parts[0] + "." + parts[1] + "." + other[2],
		"truncated signature":                   parts[0] + "." + parts[1] + "." + parts[2][:20],
		"padded signature":                      valid + "==",
		"known kid, another Ed25519 key":        impostor.Token(t, alice, now),
		"garbage":                               "garbage",
		"two segments":                          parts[0] + "." + parts[1],
		"empty segments":                        "..",
		"over-long":                             valid + strings.Repeat("A", authn.MaxTokenLength),
		"api key shape, too short":              authn.APIKeyPrefix + "abc",
		"api key shape, bad characters":         authn.APIKeyPrefix + strings.Repeat("x", 20) + ".y",
		"api key nobody issued":                 authn.APIKeyPrefix + strings.Repeat("k", 32),
	}
	headers := map[string]string{
		"empty bearer":           "Bearer",
		"bearer and a space":     "Bearer ",
		"bearer and spaces":      "Bearer    ",
		"basic scheme":           "Basic YWxpY2U6cGFzc3dvcmQ=",
		"token without a scheme": valid,
		"space inside token":     "Bearer " + parts[0] + " " + parts[1],
		"quoted token":           `Bearer "` + valid + `"`,
		"empty header":           "",
	}
	for name, tok := range cases {
		headers[name] = bearer(tok)
	}
	for name, h := range headers {
		t.Run(name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/whoami", nil)
			r.Header["Authorization"] = []string{h}
			invalidToken(t, serve(f, r))
		})
	}
	// Public routes run anonymously whatever the credentials: a client
	// refreshing or logging out with an expired access token still can.
	for name, h := range headers {
		for _, path := range []string{"/public", "/login"} {
			r, _ := http.NewRequest(http.MethodGet, path, nil)
			if path == "/login" {
				r.Method = http.MethodPost
			}
			r.Header["Authorization"] = []string{h}
			if who := principal(t, serve(f, r)); !who.Anonymous {
				t.Fatalf("%s on %s: %+v", name, path, who)
			}
		}
	}
	t.Run("two Authorization headers", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, "/whoami", nil)
		r.Header["Authorization"] = []string{bearer(valid), bearer(valid)}
		invalidToken(t, serve(f, r))
	})
	// The table cost one JWKS fetch: the unknown kids were inside the
	// minimum interval of the first fetch.
	if n := f.id.JWKSCalls.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
	// And the valid token it was forged from does pass.
	if who := principal(t, f.get(bearer(valid))); who.ID != alice {
		t.Fatalf("valid token: %+v", who)
	}
}

// TestValidToken: a valid token reaches the route as its user, acting in
// the default org or the X-Org-ID org with the role held there.
func TestValidToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	now := f.clock.Now()
	tok := f.iss.Token(t, alice, now)

	who := principal(t, f.get(bearer(tok)))
	if who != (whoami{OrgID: orgA, Kind: string(events.ActorUser), ID: alice, Role: string(events.RoleAdmin)}) {
		t.Fatalf("default org: %+v", who)
	}
	who = principal(t, f.get(bearer(tok), "X-Org-ID", orgC))
	if who.OrgID != orgC || who.Role != string(events.RoleViewer) {
		t.Fatalf("X-Org-ID: %+v", who)
	}
	// The scheme is case-insensitive (RFC 7235).
	if who := principal(t, f.get("bearer "+tok)); who.ID != alice {
		t.Fatalf("lower-case scheme: %+v", who)
	}
	// Within the leeway, an expired token or an early nbf still pass.
	late := f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["exp"] = now.Add(-authn.DefaultLeeway / 2).Unix() }))
	early := f.iss.Sign(t, with(now, func(c jwt.MapClaims) { c["nbf"] = now.Add(authn.DefaultLeeway / 2).Unix() }))
	for _, tok := range []string{late, early} {
		if who := principal(t, f.get(bearer(tok))); who.ID != alice {
			t.Fatalf("within leeway: %+v", who)
		}
	}
	// A token stops working when it expires.
	f.clock.Advance(15*time.Minute + authn.DefaultLeeway + time.Second)
	invalidToken(t, f.get(bearer(tok)))
}

// TestJWKSRotation: a token signed with a key the auth service has just
// published is accepted after one refresh; a withdrawn key stops verifying
// after the periodic refresh.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	old := f.iss
	principal(t, f.get(bearer(old.Token(t, alice, f.clock.Now()))))
	if n := f.id.JWKSCalls.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}

	next := authntest.NewIssuer(t, kid2)
	f.id.SetJWKS(old.JWK(), next.JWK())
	f.clock.Advance(authn.DefaultJWKSMinInterval)
	if who := principal(t, f.get(bearer(next.Token(t, alice, f.clock.Now())))); who.ID != alice {
		t.Fatalf("new kid: %+v", who)
	}
	if n := f.id.JWKSCalls.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refresh)", n)
	}
	// Both keys now verify without another fetch.
	principal(t, f.get(bearer(old.Token(t, alice, f.clock.Now()))))
	principal(t, f.get(bearer(next.Token(t, alice, f.clock.Now()))))
	if n := f.id.JWKSCalls.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want still 2", n)
	}

	// The old key is withdrawn: it verifies until the next periodic
	// refresh, and not after it.
	f.id.SetJWKS(next.JWK())
	principal(t, f.get(bearer(old.Token(t, alice, f.clock.Now()))))
	f.clock.Advance(authn.DefaultJWKSRefresh)
	invalidToken(t, f.get(bearer(old.Token(t, alice, f.clock.Now()))))
	principal(t, f.get(bearer(next.Token(t, alice, f.clock.Now()))))
	if n := f.id.JWKSCalls.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3", n)
	}
}

// TestUnknownKidFlood: tokens with forged kids, sent one after another and
// concurrently, make at most one JWKS request per minimum interval.
func TestUnknownKidFlood(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	principal(t, f.get(bearer(f.iss.Token(t, alice, f.clock.Now()))))
	const rounds, perRound = 4, 200
	attacker := authntest.NewIssuer(t, "")
	for round := range rounds {
		f.clock.Advance(authn.DefaultJWKSMinInterval) // each round may refresh once
		for i := range perRound / 4 {
			attacker.Kid = fmt.Sprintf("forged-seq-%d-%d", round, i)
			invalidToken(t, f.get(bearer(attacker.Token(t, alice, f.clock.Now()))))
		}
		var wg sync.WaitGroup
		for i := range perRound {
			attacker.Kid = fmt.Sprintf("forged-%d-%d", round, i)
			tok := attacker.Token(t, alice, f.clock.Now())
			wg.Go(func() {
				r, _ := http.NewRequest(http.MethodGet, "/whoami", nil)
				r.Header.Set("Authorization", bearer(tok))
				if w := serve(f, r); w.Code != http.StatusUnauthorized {
					t.Errorf("forged kid: status %d", w.Code)
				}
			})
		}
		wg.Wait()
	}
	sent := rounds * (perRound + perRound/4)
	if n := f.id.JWKSCalls.Load(); n > 1+rounds {
		t.Fatalf("%d forged tokens caused %d JWKS requests, want at most %d", sent, n, 1+rounds)
	}
	t.Logf("%d forged kids, %d JWKS requests", sent, f.id.JWKSCalls.Load())
}

func serve(f *fixture, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}
