package authn_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/authn/authntest"
)

func jwks(f *fixture) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.a.JWKSHandler(w, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	return w
}

// TestJWKSHandler: the endpoint publishes exactly the keys the gateway
// verifies with, from the cache, and 503 while none can be had.
func TestJWKSHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	good := f.iss.JWK()
	second := authntest.NewIssuer(t, kid2).JWK()
	second.Alg, second.Use = "", "" // optional members
	x25519 := good
	x25519.Kid, x25519.Crv = "x25519", "X25519"
	rsa := events.JWK{Kty: "RSA", Kid: "rsa", Alg: "RS256"}
	short := good
	short.Kid, short.X = "short", good.X[:20]
	hs := good
	hs.Kid, hs.Alg = "hs", "HS256"
	dup := authntest.NewIssuer(t, kid1).JWK()
	f.id.SetJWKS(good, x25519, rsa, short, hs, dup, second)

	w := jwks(f)
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != authn.JWKSCacheControl {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	var got events.JWKS
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	second.Alg, second.Use = events.JWTAlgorithm, "sig"
	if len(got.Keys) != 2 || got.Keys[0] != good || got.Keys[1] != second {
		t.Fatalf("published %+v", got.Keys)
	}
	// Served from the cache: more requests cost the auth service nothing.
	for range 5 {
		jwks(f)
	}
	if n := f.id.JWKSCalls.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times", n)
	}

	down := newFixture(t, nil)
	down.id.StopAuth()
	if w := jwks(down); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("auth down: %d %s", w.Code, w.Body)
	}
}
