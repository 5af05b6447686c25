package auth_test

import (
	"fmt"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth"
)

// BenchmarkLogin measures a full password login over NATS: throttle check,
// user lookup, argon2id verification, session start (refresh-token row and
// auth.session.started), auth.login.succeeded, and an EdDSA access token.
// "owasp" uses the production default (argon2id m=19 MiB, t=2, p=1);
// "cheap" (m=64 KiB, t=1) shows what the rest of the path costs.
func BenchmarkLogin(b *testing.B) {
	for _, bc := range []struct {
		name   string
		params auth.Argon2Params
	}{
		{"owasp", auth.DefaultConfig().Argon2},
		{"cheap", cheapArgon2},
	} {
		b.Run(fmt.Sprintf("%s_m%dKiB_t%d_p%d", bc.name, bc.params.MemoryKiB, bc.params.Time, bc.params.Threads), func(b *testing.B) {
			e := start(b, withConfig(func(c *authConfig) { c.Argon2 = bc.params }))
			e.register("bench@example.com")
			req := events.LoginRequest{Email: "bench@example.com", Password: password}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				var out events.LoginResponse
				if err := e.call(events.OpAuthLogin, anon("192.0.2.200"), req, &out); err != nil || out.AccessToken == "" {
					b.Fatalf("login: %v", err)
				}
			}
		})
	}
}

// BenchmarkAPIKeyVerify measures apikey_verify, the call the gateway makes
// on every request authenticated with an API key.
func BenchmarkAPIKeyVerify(b *testing.B) {
	e := start(b)
	reg := e.register("kbench@example.com")
	var k events.NewAPIKey
	e.must(events.OpAuthAPIKeyCreate, member(reg.User.ID, reg.Org.ID, events.RoleOwner),
		events.APIKeyCreateRequest{Name: "bench", Role: events.RoleViewer}, &k)
	req := events.VerifyAPIKeyRequest{Key: k.Key}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var p events.ResolvedPrincipal
		if err := e.call(events.OpAuthVerifyAPIKey, caller{}, req, &p); err != nil {
			b.Fatal(err)
		}
	}
}
