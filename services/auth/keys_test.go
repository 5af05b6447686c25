package auth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

func TestSigningKeyRotationKeepsOldTokensValid(t *testing.T) {
	e := start(t)
	reg := e.register("rot@example.com")
	var ks events.JWKS
	e.must(events.OpAuthJWKS, caller{}, nil, &ks)
	if len(ks.Keys) != 1 || ks.Keys[0].Kty != "OKP" || ks.Keys[0].Crv != "Ed25519" || ks.Keys[0].Alg != "EdDSA" || ks.Keys[0].Use != "sig" {
		t.Fatalf("jwks %+v", ks)
	}
	oldKid := ks.Keys[0].Kid
	tok, _ := e.verifyAccess(reg.AccessToken)
	if tok.Header["kid"] != oldKid {
		t.Fatalf("token kid %v, jwks %s", tok.Header["kid"], oldKid)
	}

	var rot events.SigningKeyRotateResponse
	e.must(events.OpAuthSigningKeyRotate, caller{}, nil, &rot)
	if rot.Kid == "" || rot.Kid == oldKid {
		t.Fatalf("rotate %+v", rot)
	}
	e.must(events.OpAuthJWKS, caller{}, nil, &ks)
	if len(ks.Keys) != 2 || ks.Keys[0].Kid != rot.Kid || ks.Keys[1].Kid != oldKid {
		t.Fatalf("after rotation jwks %+v", ks)
	}
	// Old tokens still verify; new ones are signed with the new key.
	e.verifyAccess(reg.AccessToken)
	lr, err := e.login("rot@example.com", "192.0.2.90")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ = e.verifyAccess(lr.AccessToken)
	if tok.Header["kid"] != rot.Kid {
		t.Fatalf("new token signed with %v, want %s", tok.Header["kid"], rot.Kid)
	}
	rotated := e.eventsOf("auth.signing_key.rotated")
	if len(rotated) != 2 {
		t.Fatalf("%d rotation events", len(rotated))
	}
	var p events.SigningKeyRotated
	mustDecode(t, rotated[1], &p)
	if p.Kid != rot.Kid || p.PreviousKid != oldKid {
		t.Fatalf("rotation event %+v", p)
	}

	// Once every token of the old key has expired, it leaves the JWKS.
	e.clock.Advance(15*time.Minute + 2*time.Minute)
	checkFor(t, func() error {
		e.must(events.OpAuthJWKS, caller{}, nil, &ks)
		if len(ks.Keys) != 1 || ks.Keys[0].Kid != rot.Kid {
			return fmt.Errorf("jwks %+v", ks)
		}
		return nil
	})
	// The private keys are sealed at rest: the stored bytes are not a
	// 32-byte seed.
	var n int
	if err := e.db.QueryRow(t.Context(), `SELECT count(*) FROM signing_keys WHERE length(private_key_enc) <= 32`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("unsealed keys: %d %v", n, err)
	}
	e.assertNoSecrets()
}

func errf(format string, args ...any) error { return fmt.Errorf(format, args...) }
