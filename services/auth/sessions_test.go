package auth_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/infrapilot/infrapilot/events"
)

// verifyAccess checks an access token the way the gateway does: EdDSA only,
// the key named by kid from the JWKS, issuer and audience.
func (e *env) verifyAccess(tok string) (*jwt.Token, jwt.MapClaims) {
	e.t.Helper()
	var ks events.JWKS
	e.must(events.OpAuthJWKS, caller{}, nil, &ks)
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range ks.Keys {
			if k.Kid == kid && k.Kty == "OKP" && k.Crv == "Ed25519" && k.Alg == events.JWTAlgorithm {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				if err != nil {
					return nil, err
				}
				return ed25519.PublicKey(x), nil
			}
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}, jwt.WithValidMethods([]string{events.JWTAlgorithm}), jwt.WithIssuer(events.JWTIssuer),
		jwt.WithAudience(events.JWTAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(e.clock.Now))
	if err != nil {
		e.t.Fatalf("access token does not verify: %v", err)
	}
	return parsed, claims
}

func TestRegisterLoginRefreshReuseLogout(t *testing.T) {
	e := start(t)
	reg := e.register("Alice@Example.COM")
	if reg.User.Email != "alice@example.com" || reg.User.ID == "" || reg.Org.ID == "" || reg.Org.Role != events.RoleOwner {
		t.Fatalf("register answered %+v", reg)
	}
	if reg.ExpiresIn != 900 || reg.TokenType != "Bearer" {
		t.Fatalf("expires_in %d, token_type %q", reg.ExpiresIn, reg.TokenType)
	}
	tok, claims := e.verifyAccess(reg.AccessToken)
	if claims["sub"] != reg.User.ID || claims["sid"] == "" || claims["jti"] == "" || claims["email"] != "alice@example.com" {
		t.Fatalf("claims %v", claims)
	}
	if exp, _ := claims.GetExpirationTime(); exp.Sub(e.clock.Now()) > 15*time.Minute {
		t.Fatalf("access token lives until %v", exp)
	}
	if _, ok := tok.Header["kid"].(string); !ok {
		t.Fatal("no kid header")
	}

	var me events.UserSummary
	e.must(events.OpAuthMe, user(reg.User.ID), nil, &me)
	if me.ID != reg.User.ID || me.Email != "alice@example.com" || me.MFAEnabled {
		t.Fatalf("me %+v", me)
	}
	wantCode(t, e.call(events.OpAuthMe, anon("192.0.2.1"), nil, nil), events.CodeUnauthorized)

	// Login, then rotate the refresh token twice.
	lr, err := e.login("alice@example.com", "192.0.2.20")
	if err != nil || lr.AccessToken == "" || lr.RefreshToken == "" || lr.MFARequired {
		t.Fatalf("login %+v %v", lr, err)
	}
	first := lr.RefreshToken
	var r1, r2 events.TokenResponse
	e.must(events.OpAuthRefresh, anon("192.0.2.20"), events.RefreshRequest{RefreshToken: first}, &r1)
	e.must(events.OpAuthRefresh, anon("192.0.2.20"), events.RefreshRequest{RefreshToken: r1.RefreshToken}, &r2)
	e.secret(r1.AccessToken, r1.RefreshToken, r2.AccessToken, r2.RefreshToken)
	if r1.RefreshToken == first || r2.RefreshToken == r1.RefreshToken {
		t.Fatal("refresh did not rotate the token")
	}
	_, c2 := e.verifyAccess(r2.AccessToken)
	_, c0 := e.verifyAccess(lr.AccessToken)
	if c2["sid"] != c0["sid"] {
		t.Fatal("a refresh changed the session id")
	}

	// Reuse of a spent token revokes the family: the current one dies too.
	wantCode(t, e.call(events.OpAuthRefresh, anon("198.51.100.7"), events.RefreshRequest{RefreshToken: first}, nil), events.CodeUnauthorized)
	wantCode(t, e.call(events.OpAuthRefresh, anon("192.0.2.20"), events.RefreshRequest{RefreshToken: r2.RefreshToken}, nil), events.CodeUnauthorized)
	revoked := e.eventsOf("auth.session.revoked")
	if len(revoked) != 1 || revoked[0].Aggregate.ID != c0["sid"] {
		t.Fatalf("want one revocation of session %v, got %d", c0["sid"], len(revoked))
	}
	var p events.SessionRevoked
	mustDecode(t, revoked[0], &p)
	if p.Reason != events.SessionRevokedReuse || p.IP != "198.51.100.7" {
		t.Fatalf("revocation %+v", p)
	}
	// The read model follows.
	checkFor(t, func() error {
		var reason *string
		if err := e.db.QueryRow(t.Context(), `SELECT revoked_reason FROM sessions WHERE id = $1`, c0["sid"]).Scan(&reason); err != nil {
			return err
		}
		if reason == nil || *reason != "reuse" {
			return fmt.Errorf("session not revoked in the read model")
		}
		return nil
	})

	// Logout revokes a fresh family.
	lr2, err := e.login("ALICE@example.com", "192.0.2.20")
	if err != nil {
		t.Fatal(err)
	}
	e.must(events.OpAuthLogout, anon("192.0.2.20"), events.LogoutRequest{RefreshToken: lr2.RefreshToken}, nil)
	wantCode(t, e.call(events.OpAuthRefresh, anon("192.0.2.20"), events.RefreshRequest{RefreshToken: lr2.RefreshToken}, nil), events.CodeUnauthorized)
	wantCode(t, e.call(events.OpAuthRefresh, anon("192.0.2.20"), events.RefreshRequest{RefreshToken: "nonsense"}, nil), events.CodeUnauthorized)
	wantCode(t, e.call(events.OpAuthRefresh, anon("192.0.2.20"), events.RefreshRequest{}, nil), events.CodeInvalid)

	// A refresh token past its lifetime is refused.
	lr3, _ := e.login("alice@example.com", "192.0.2.20")
	e.clock.Advance(31 * 24 * time.Hour)
	wantCode(t, e.call(events.OpAuthRefresh, anon("192.0.2.20"), events.RefreshRequest{RefreshToken: lr3.RefreshToken}, nil), events.CodeUnauthorized)

	if n := len(e.eventsOf("auth.login.succeeded")); n != 3 {
		t.Fatalf("want 3 auth.login.succeeded, got %d", n)
	}
	checkFor(t, func() error {
		var me events.UserSummary
		if err := e.call(events.OpAuthMe, user(reg.User.ID), nil, &me); err != nil {
			return err
		}
		if me.LastLoginAt == "" {
			return fmt.Errorf("no last login time yet")
		}
		return nil
	})
	e.assertNoSecrets()
}

func TestConcurrentRefreshOneWinsOtherIsReuse(t *testing.T) {
	e := start(t)
	e.register("race@example.com")
	lr, err := e.login("race@example.com", "192.0.2.30")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	errs := make([]*events.Error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out events.TokenResponse
			errs[i] = e.call(events.OpAuthRefresh, anon("192.0.2.30"), events.RefreshRequest{RefreshToken: lr.RefreshToken}, &out)
			e.secret(out.AccessToken, out.RefreshToken)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if err.Code != events.CodeUnauthorized {
			t.Fatalf("loser got %v", err)
		}
	}
	if won > 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded", won)
	}
	// The losers were treated as reuse: the family is revoked.
	if len(e.eventsOf("auth.session.revoked")) != 1 {
		t.Fatal("the family was not revoked exactly once")
	}
	e.assertNoSecrets()
}

func TestRegisterSameEmailConcurrentlyHasOneWinner(t *testing.T) {
	e := start(t)
	const n = 6
	errs := make([]*events.Error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out events.RegisterResponse
			// Case differs: the address is normalised before it is claimed.
			email := []string{"dup@example.com", "DUP@example.com", " Dup@Example.com "}[i%3]
			errs[i] = e.call(events.OpAuthRegister, anon("192.0.2.40"),
				events.RegisterRequest{Email: email, Password: password, Name: "Dup", OrgName: "Dup Org"}, &out)
			e.secret(out.AccessToken, out.RefreshToken)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		if err.Code != events.CodeConflict || len(err.Fields) != 1 || err.Fields[0].Field != "email" {
			t.Fatalf("loser got %+v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d registrations of one address succeeded, want 1", won)
	}
	if n := len(e.eventsOf("auth.user.registered")); n != 1 {
		t.Fatalf("%d users registered", n)
	}
	if e.orgs.Load() != 1 {
		t.Fatalf("%d orgs created", e.orgs.Load())
	}
	// user_create of the same address conflicts too.
	wantCode(t, e.call(events.OpAuthCreateUser, user("admin"), events.CreateUserRequest{Email: "dup@EXAMPLE.com", Password: password, Name: "x"}, nil),
		events.CodeConflict)
	e.secret(password)
	e.assertNoSecrets()
}

func TestRegisterWhenTenancyIsDownLeavesTheUserAndThenConflicts(t *testing.T) {
	e := start(t, withoutTenancy(), withConfig(func(c *authConfig) { c.TenancyTimeout = 2 * time.Second }))
	req := events.RegisterRequest{Email: "lonely@example.com", Password: password, Name: "Lonely", OrgName: "Nowhere"}
	wantCode(t, e.call(events.OpAuthRegister, anon("192.0.2.50"), req, nil), events.CodeUnavailable)
	var found events.UserSummary
	e.must(events.OpAuthFindUser, user("admin"), events.FindUserRequest{Email: "lonely@example.com"}, &found)
	if found.Email != "lonely@example.com" {
		t.Fatalf("user_find %+v", found)
	}
	wantCode(t, e.call(events.OpAuthRegister, anon("192.0.2.50"), req, nil), events.CodeConflict)
	// The user can still sign in (and create an org later).
	if _, err := e.login("lonely@example.com", "192.0.2.50"); err != nil {
		t.Fatal(err)
	}
	e.secret(password)
	e.assertNoSecrets()
}

func TestSignupCanBeSwitchedOff(t *testing.T) {
	e := start(t, withConfig(func(c *authConfig) { c.AllowSignup = false }))
	wantCode(t, e.call(events.OpAuthRegister, anon("192.0.2.60"),
		events.RegisterRequest{Email: "a@example.com", Password: password, Name: "A", OrgName: "A"}, nil), events.CodeForbidden)
	var u events.UserSummary
	e.must(events.OpAuthCreateUser, user("admin"), events.CreateUserRequest{Email: "a@example.com", Password: password, Name: "A"}, &u)
	var got events.List[events.UserSummary]
	e.must(events.OpAuthGetUsers, user("admin"), events.GetUsersRequest{IDs: []string{u.ID, "nope"}}, &got)
	if len(got.Items) != 1 || got.Items[0].ID != u.ID {
		t.Fatalf("users_get %+v", got)
	}
	wantCode(t, e.call(events.OpAuthFindUser, user("admin"), events.FindUserRequest{Email: "b@example.com"}, nil), events.CodeNotFound)
}

func TestRegisterValidatesInput(t *testing.T) {
	e := start(t)
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	cases := map[string]struct {
		req   events.RegisterRequest
		field string
	}{
		"bad email":      {events.RegisterRequest{Email: "not-an-email", Password: password, Name: "n", OrgName: "o"}, "email"},
		"long email":     {events.RegisterRequest{Email: string(long) + "@example.com", Password: password, Name: "n", OrgName: "o"}, "email"},
		"short password": {events.RegisterRequest{Email: "x@example.com", Password: "short", Name: "n", OrgName: "o"}, "password"},
		"no name":        {events.RegisterRequest{Email: "x@example.com", Password: password, Name: " ", OrgName: "o"}, "name"},
		"long org":       {events.RegisterRequest{Email: "x@example.com", Password: password, Name: "n", OrgName: string(long)}, "org_name"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := e.call(events.OpAuthRegister, anon("192.0.2.70"), c.req, nil)
			wantCode(t, err, events.CodeInvalid)
			if len(err.Fields) != 1 || err.Fields[0].Field != c.field {
				t.Fatalf("fields %+v", err.Fields)
			}
		})
	}
	for _, env := range e.storedEvents() {
		if env.Type != "auth.signing_key.rotated" { // the first key, made at start
			t.Fatalf("invalid input wrote %s", env.Type)
		}
	}
}

func mustDecode(t testing.TB, env events.Envelope, into events.Payload) {
	t.Helper()
	p, err := events.Catalogue.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := jsonMarshal(p)
	if err := jsonUnmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}
