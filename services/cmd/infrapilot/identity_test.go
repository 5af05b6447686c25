package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/pquerna/otp/totp"
)

const api = "/api/v1"

// identityDev starts a real `infrapilot dev` with a known first admin.
func identityDev(t testing.TB) (*apiClient, *devRun) {
	t.Helper()
	httpPort := freePort(t)
	run := startDevArgs(t, dataDir(t), httpPort, freePort(t), freePort(t),
		"--admin-email", "root@example.com", "--admin-password", "root-password-123", "--auth-rate-limit", "1000")
	return newAPIClient(t, httpPort), run
}

type account struct {
	email, password string
	userID, orgID   string
	access, refresh string
}

func register(c *apiClient, email, org string) account {
	c.t.Helper()
	a := account{email: email, password: "correct horse battery"}
	r := c.must(http.StatusCreated, "POST", api+"/auth/register", "", "", map[string]any{
		"email": email, "password": a.password, "name": "User " + email, "org_name": org})
	user, _ := r.Body["user"].(map[string]any)
	o, _ := r.Body["org"].(map[string]any)
	a.userID, _ = user["id"].(string)
	a.orgID, _ = o["id"].(string)
	a.access, a.refresh = r.str("access_token"), r.str("refresh_token")
	if a.userID == "" || a.orgID == "" || a.access == "" || a.refresh == "" {
		c.t.Fatalf("register reply lacks ids or tokens: %s", r.Raw)
	}
	return a
}

func login(c *apiClient, email, password string) response {
	c.t.Helper()
	return c.call("POST", api+"/auth/login", "", "", map[string]any{"email": email, "password": password})
}

func TestIdentityEndToEnd(t *testing.T) {
	c, _ := identityDev(t)

	t.Run("bootstrap admin can log in", func(t *testing.T) {
		r := login(c, "root@example.com", "root-password-123")
		if r.Status != 200 || r.str("access_token") == "" {
			t.Fatalf("admin login: %d %s", r.Status, r.Raw)
		}
	})

	a := register(c, "alice@example.com", "Alice Org")

	t.Run("register, login, me, refresh, reuse revokes the family", func(t *testing.T) {
		r := login(c, a.email, a.password)
		if r.Status != 200 {
			t.Fatalf("login %d %s", r.Status, r.Raw)
		}
		access, refresh := r.str("access_token"), r.str("refresh_token")
		me := c.must(200, "GET", api+"/auth/me", access, "", nil)
		if !strings.Contains(string(me.Raw), a.email) {
			t.Fatalf("me: %s", me.Raw)
		}
		r2 := c.must(200, "POST", api+"/auth/refresh", "", "", map[string]any{"refresh_token": refresh})
		newRefresh := r2.str("refresh_token")
		if newRefresh == "" || newRefresh == refresh || r2.str("access_token") == "" {
			t.Fatalf("refresh did not rotate: %s", r2.Raw)
		}
		// Reusing the spent token is theft: 401, and the whole family dies.
		c.must(401, "POST", api+"/auth/refresh", "", "", map[string]any{"refresh_token": refresh})
		c.must(401, "POST", api+"/auth/refresh", "", "", map[string]any{"refresh_token": newRefresh})
		// The sign-up's own session was another family and still works.
		c.must(200, "POST", api+"/auth/refresh", "", "", map[string]any{"refresh_token": a.refresh})
	})

	t.Run("MFA with TOTP and single-use backup codes", func(t *testing.T) {
		m := register(c, "mfa@example.com", "MFA Org")
		setup := c.must(200, "POST", api+"/auth/mfa/setup", m.access, "", nil)
		secret := setup.str("secret")
		if secret == "" || !strings.HasPrefix(setup.str("otpauth_url"), "otpauth://") {
			t.Fatalf("setup: %s", setup.Raw)
		}
		code, err := totp.GenerateCode(secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		conf := c.must(200, "POST", api+"/auth/mfa/confirm", m.access, "", map[string]any{"code": code})
		codes, _ := conf.Body["backup_codes"].([]any)
		if len(codes) < 8 {
			t.Fatalf("backup codes: %s", conf.Raw)
		}
		// Password alone is no longer enough.
		r := login(c, m.email, m.password)
		if r.Status != 200 || r.Body["mfa_required"] != true || r.str("mfa_token") == "" || r.str("access_token") != "" {
			t.Fatalf("login with MFA on: %d %s", r.Status, r.Raw)
		}
		// A wrong code fails; a TOTP computed now (next step, so it is
		// not a replay of the confirmation code) succeeds.
		c.must(401, "POST", api+"/auth/mfa/verify", "", "", map[string]any{"mfa_token": r.str("mfa_token"), "code": "000000"})
		r = login(c, m.email, m.password)
		next, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
		v := c.call("POST", api+"/auth/mfa/verify", "", "", map[string]any{"mfa_token": r.str("mfa_token"), "code": next})
		if v.Status != 200 {
			now, _ := totp.GenerateCode(secret, time.Now())
			v = c.must(200, "POST", api+"/auth/mfa/verify", "", "", map[string]any{"mfa_token": r.str("mfa_token"), "code": now})
		}
		if v.str("access_token") == "" {
			t.Fatalf("verify gave no token: %s", v.Raw)
		}
		// A backup code works once.
		backup := codes[0].(string)
		r = login(c, m.email, m.password)
		c.must(200, "POST", api+"/auth/mfa/verify", "", "", map[string]any{"mfa_token": r.str("mfa_token"), "code": backup})
		r = login(c, m.email, m.password)
		c.must(401, "POST", api+"/auth/mfa/verify", "", "", map[string]any{"mfa_token": r.str("mfa_token"), "code": backup})
	})

	t.Run("API key works and can be revoked", func(t *testing.T) {
		k := c.must(201, "POST", api+"/auth/api-keys", a.access, a.orgID, map[string]any{"name": "ci", "role": "viewer"})
		key, id := k.str("key"), k.str("id")
		if !strings.HasPrefix(key, "ipk_") || id == "" {
			t.Fatalf("api key: %s", k.Raw)
		}
		c.must(200, "GET", api+"/orgs/"+a.orgID, key, "", nil)
		list := c.must(200, "GET", api+"/auth/api-keys", a.access, a.orgID, nil)
		if strings.Contains(string(list.Raw), key) {
			t.Fatal("the key's secret is listed")
		}
		// A viewer key cannot mutate.
		c.must(403, "POST", api+"/orgs/"+a.orgID+"/enrollment-tokens", key, "", map[string]any{"name": "x", "max_uses": 1})
		c.must(204, "DELETE", api+"/auth/api-keys/"+id, a.access, a.orgID, nil)
		natstest.CheckFor(t, 15*time.Second, 200*time.Millisecond, func() error {
			if r := c.call("GET", api+"/orgs/"+a.orgID, key, "", nil); r.Status != 401 {
				return fmt.Errorf("revoked key still answers %d", r.Status)
			}
			return nil
		})
	})

	t.Run("a viewer cannot mutate", func(t *testing.T) {
		v := c.must(201, "POST", api+"/users", a.access, a.orgID, map[string]any{
			"email": "viewer@example.com", "password": "viewer-password-1", "name": "Vi", "role": "viewer"})
		_ = v
		r := login(c, "viewer@example.com", "viewer-password-1")
		if r.Status != 200 {
			t.Fatalf("viewer login %d %s", r.Status, r.Raw)
		}
		tok := r.str("access_token")
		c.must(200, "GET", api+"/orgs/"+a.orgID+"/members", tok, a.orgID, nil)
		for _, m := range []struct{ method, path string }{
			{"POST", "/orgs/" + a.orgID + "/enrollment-tokens"},
			{"POST", "/orgs/" + a.orgID + "/invitations"},
			{"PATCH", "/orgs/" + a.orgID},
			{"DELETE", "/orgs/" + a.orgID},
			{"POST", "/auth/api-keys"},
		} {
			if got := c.call(m.method, api+m.path, tok, a.orgID, map[string]any{"name": "x", "email": "z@example.com", "role": "viewer"}); got.Status != 403 {
				t.Errorf("viewer %s %s: %d %s", m.method, m.path, got.Status, got.Raw)
			}
		}
	})

	t.Run("repeated wrong passwords lock out with Retry-After", func(t *testing.T) {
		register(c, "bob@example.com", "Bob Org")
		var last response
		for i := 0; i < 12; i++ {
			last = login(c, "bob@example.com", "wrong password!!")
			if last.Status == 429 {
				break
			}
			if last.Status != 401 {
				t.Fatalf("wrong password: %d %s", last.Status, last.Raw)
			}
		}
		if last.Status != 429 || last.Header.Get("Retry-After") == "" {
			t.Fatalf("no lockout after repeated failures: %d %v %s", last.Status, last.Header, last.Raw)
		}
		// Even the right password waits out the lockout.
		if r := login(c, "bob@example.com", "correct horse battery"); r.Status != 429 {
			t.Fatalf("right password during lockout: %d", r.Status)
		}
	})

	t.Run("forged tokens are refused", func(t *testing.T) {
		parts := strings.Split(a.access, ".")
		if len(parts) != 3 {
			t.Fatalf("access token is not a JWT: %q", a.access)
		}
		b64 := base64.RawURLEncoding.EncodeToString
		forged := map[string]string{
			"alg none":        b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
			"tampered claims": parts[0] + "." + b64([]byte(`{"sub":"someone-else","iss":"infrapilot","aud":"infrapilot-api","exp":4102444800}`)) + "." + parts[2],
			"no signature":    parts[0] + "." + parts[1] + ".",
			"garbage":         "not-a-token",
		}
		for name, tok := range forged {
			if r := c.call("GET", api+"/auth/me", tok, "", nil); r.Status != 401 {
				t.Errorf("%s: %d %s", name, r.Status, r.Raw)
			}
		}
	})

	t.Run("bad input gets field errors and writes nothing", func(t *testing.T) {
		cases := []struct {
			name string
			body any
		}{
			{"malformed JSON", `{"email": "x@example.com", "password": `},
			{"unknown field", map[string]any{"email": "u1@example.com", "password": "long enough pw", "name": "n", "org_name": "o", "admin": true}},
			{"invalid e-mail", map[string]any{"email": "not-an-email", "password": "long enough pw", "name": "n", "org_name": "o"}},
			{"over-long name", map[string]any{"email": "u2@example.com", "password": "long enough pw", "name": strings.Repeat("n", 5000), "org_name": "o"}},
		}
		for _, tc := range cases {
			r := c.call("POST", api+"/auth/register", "", "", tc.body)
			if r.Status != 400 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
			}
		}
		for _, e := range []string{"u1@example.com", "u2@example.com"} {
			if r := login(c, e, "long enough pw"); r.Status == 200 {
				t.Errorf("a rejected registration created %s", e)
			}
		}
	})
}
