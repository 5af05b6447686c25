package authn_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
)

// FuzzParseBearer: an accepted credential is a non-empty b64token of at
// most MaxTokenLength bytes that came after a Bearer scheme, and parsing
// it again gives it back.
func FuzzParseBearer(f *testing.F) {
	for _, seed := range []string{"", "Bearer", "Bearer ", "Bearer abc", "bearer a.b.c", "BEARER  x==", "Bearer a=b",
		"Bearer ===", "Basic YQ==", "Bearer \x00", "Bearer a b", "Bearer ipk_" + strings.Repeat("x", 20), "Bearer\tabc"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := authn.ParseBearer(header)
		if err != nil {
			if tok != "" {
				t.Fatalf("rejected %q but returned %q", header, tok)
			}
			return
		}
		if tok == "" || len(tok) > authn.MaxTokenLength || !strings.EqualFold(header[:6], "Bearer") || !strings.HasSuffix(header, tok) {
			t.Fatalf("accepted %q as %q", header, tok)
		}
		for _, c := range []byte(strings.TrimRight(tok, "=")) {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", rune(c)) {
				t.Fatalf("accepted %q with %q", tok, c)
			}
		}
		if again, err := authn.ParseBearer("Bearer " + tok); err != nil || again != tok {
			t.Fatalf("round trip of %q: %q, %v", tok, again, err)
		}
	})
}

// FuzzAuthenticate drives the whole middleware with arbitrary
// Authorization and X-Org-ID values: the answer is always 200, 400, 401 or
// 404 (never a 5xx), and 200 only for the real credentials.
func FuzzAuthenticate(f *testing.F) {
	fx := newFixture(f, nil)
	addKey(fx, events.RoleViewer)
	valid := fx.iss.Token(f, alice, fx.clock.Now())
	sig := valid[strings.LastIndex(valid, ".")+1:]
	for _, seed := range [][2]string{
		{bearer(valid), ""}, {bearer(valid), orgA}, {bearer(valid), orgB}, {bearer(valid), "a.b"},
		{bearer(apiKey), ""}, {bearer(apiKey), orgB}, {"Bearer " + valid + "=", ""}, {"bearer x", ""},
		{"Basic abc", orgA}, {"", ""}, {"Bearer ipk_", ""}, {bearer(valid[:len(valid)-2]), ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, auth, org string) {
		r := httptest.NewRequest(http.MethodGet, "/whoami", nil)
		r.Header["Authorization"] = []string{auth}
		if org != "" {
			r.Header[http.CanonicalHeaderKey(authn.HeaderOrgID)] = []string{org}
		}
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			var who whoami
			if err := json.Unmarshal(w.Body.Bytes(), &who); err != nil {
				t.Fatal(err)
			}
			jwtOK := who.ID == alice && strings.Contains(auth, sig)
			keyOK := who.ID == keyID && strings.Contains(auth, apiKey)
			if !jwtOK && !keyOK {
				t.Fatalf("%q with X-Org-ID %q accepted as %+v", auth, org, who)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound:
		default:
			t.Fatalf("%q with X-Org-ID %q: %d %s", auth, org, w.Code, w.Body)
		}
	})
}
