package auth_test

import (
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/pquerna/otp/totp"
)

func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMFAWithTOTPAndSingleUseBackupCodes(t *testing.T) {
	e := start(t)
	reg := e.register("mfa@example.com")
	me := user(reg.User.ID)

	var setup events.MFASetupResponse
	e.must(events.OpAuthMFASetup, me, nil, &setup)
	e.secret(setup.Secret)
	if setup.Secret == "" || setup.OTPAuthURL == "" {
		t.Fatalf("setup %+v", setup)
	}
	wantCode(t, e.call(events.OpAuthMFAConfirm, me, events.MFACodeRequest{Code: "000000"}, nil), events.CodeInvalid)
	now := e.clock.Now()
	var confirm events.BackupCodesResponse
	e.must(events.OpAuthMFAConfirm, me, events.MFACodeRequest{Code: totpCode(t, setup.Secret, now)}, &confirm)
	if len(confirm.BackupCodes) != 10 {
		t.Fatalf("%d backup codes", len(confirm.BackupCodes))
	}
	e.secret(confirm.BackupCodes...)
	var u events.UserSummary
	e.must(events.OpAuthMe, me, nil, &u)
	if !u.MFAEnabled {
		t.Fatal("MFA not enabled after confirm")
	}
	wantCode(t, e.call(events.OpAuthMFASetup, me, nil, nil), events.CodeConflict)

	// Login now stops at the second factor.
	lr, err := e.login("mfa@example.com", "192.0.2.80")
	if err != nil || !lr.MFARequired || lr.MFAToken == "" || lr.AccessToken != "" {
		t.Fatalf("login %+v %v", lr, err)
	}
	// The code of the step used to confirm is spent: a replay is refused.
	wantCode(t, e.call(events.OpAuthMFAVerify, anon("192.0.2.80"),
		events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: totpCode(t, setup.Secret, now)}, nil), events.CodeUnauthorized)
	// The next step's code works (one step of skew is allowed).
	var tok events.TokenResponse
	next := totpCode(t, setup.Secret, now.Add(30*time.Second))
	e.must(events.OpAuthMFAVerify, anon("192.0.2.80"), events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: next}, &tok)
	e.secret(tok.AccessToken, tok.RefreshToken)
	_, claims := e.verifyAccess(tok.AccessToken)
	if claims["sub"] != reg.User.ID {
		t.Fatalf("claims %v", claims)
	}
	// The MFA token is single use.
	wantCode(t, e.call(events.OpAuthMFAVerify, anon("192.0.2.80"),
		events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: next}, nil), events.CodeUnauthorized)

	// A backup code works once, in any case and with spaces.
	lr, _ = e.login("mfa@example.com", "192.0.2.80")
	code := confirm.BackupCodes[0]
	e.must(events.OpAuthMFAVerify, anon("192.0.2.80"), events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: " " + lower(code) + " "}, &tok)
	e.secret(tok.AccessToken, tok.RefreshToken)
	lr, _ = e.login("mfa@example.com", "192.0.2.80")
	wantCode(t, e.call(events.OpAuthMFAVerify, anon("192.0.2.80"),
		events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: code}, nil), events.CodeUnauthorized)
	// Wrong codes exhaust the MFA token.
	for range 3 {
		wantCode(t, e.call(events.OpAuthMFAVerify, anon("192.0.2.80"),
			events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: "123456"}, nil), events.CodeUnauthorized)
	}
	e.clock.Advance(6 * time.Minute)
	wantCode(t, e.call(events.OpAuthMFAVerify, anon("192.0.2.80"),
		events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: totpCode(t, setup.Secret, e.clock.Now())}, nil), events.CodeUnauthorized)

	// Regenerate: the old codes stop working.
	var regen events.BackupCodesResponse
	e.must(events.OpAuthMFABackupCodes, me, events.MFACodeRequest{Code: totpCode(t, setup.Secret, e.clock.Now())}, &regen)
	e.secret(regen.BackupCodes...)
	wantCode(t, e.call(events.OpAuthMFADisable, me, events.MFACodeRequest{Code: confirm.BackupCodes[1]}, nil), events.CodeInvalid)
	// Disable with a new backup code (the device is lost).
	e.must(events.OpAuthMFADisable, me, events.MFACodeRequest{Code: regen.BackupCodes[0]}, nil)
	e.must(events.OpAuthMe, me, nil, &u)
	if u.MFAEnabled {
		t.Fatal("MFA still enabled")
	}
	lr, err = e.login("mfa@example.com", "192.0.2.80")
	if err != nil || lr.MFARequired || lr.AccessToken == "" {
		t.Fatalf("login after disable %+v %v", lr, err)
	}

	for typ, want := range map[string]int{
		"auth.mfa.enabled": 1, "auth.mfa.disabled": 1, "auth.mfa.backup_code_used": 2,
		"auth.mfa.backup_codes_regenerated": 1,
	} {
		if got := len(e.eventsOf(typ)); got != want {
			t.Errorf("%s: %d events, want %d", typ, got, want)
		}
	}
	reasons := map[string]int{}
	for _, env := range e.eventsOf("auth.mfa.failed") {
		var p events.MFAFailed
		mustDecode(t, env, &p)
		reasons[p.Stage+"/"+p.Reason]++
	}
	if reasons["login/replay"] != 1 || reasons["login/bad_code"] < 4 || reasons["confirm/bad_code"] != 1 || reasons["disable/bad_code"] != 1 {
		t.Errorf("mfa failures %v", reasons)
	}
	e.assertNoSecrets()
}

func TestMFAFailuresAreThrottled(t *testing.T) {
	e := start(t)
	reg := e.register("mfa2@example.com")
	me := user(reg.User.ID)
	var setup events.MFASetupResponse
	e.must(events.OpAuthMFASetup, me, nil, &setup)
	e.must(events.OpAuthMFAConfirm, me, events.MFACodeRequest{Code: totpCode(t, setup.Secret, e.clock.Now())}, nil)
	for range 5 {
		lr, _ := e.login("mfa2@example.com", "192.0.2.81")
		wantCode(t, e.call(events.OpAuthMFAVerify, anon("192.0.2.81"),
			events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: "999999"}, nil), events.CodeUnauthorized)
	}
	lr, _ := e.login("mfa2@example.com", "192.0.2.81")
	err := e.call(events.OpAuthMFAVerify, anon("192.0.2.81"),
		events.MFAVerifyRequest{MFAToken: lr.MFAToken, Code: totpCode(t, setup.Secret, e.clock.Now().Add(30*time.Second))}, nil)
	wantCode(t, err, events.CodeRateLimited)
	if err.RetryAfter < 1 {
		t.Fatalf("retry_after %d", err.RetryAfter)
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
