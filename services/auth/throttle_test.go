package auth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

func TestWrongPasswordsLockTheAccountWithBackoff(t *testing.T) {
	e := start(t)
	e.register("locked@example.com")
	wrong := events.LoginRequest{Email: "locked@example.com", Password: "wrong password!"}
	// Five failures from five different IPs: the account key counts them.
	for i := range 5 {
		wantCode(t, e.call(events.OpAuthLogin, anon(fmt.Sprintf("203.0.113.%d", i+1)), wrong, nil), events.CodeUnauthorized)
	}
	// Now even the right password is refused, with a Retry-After.
	_, err := e.login("locked@example.com", "203.0.113.99")
	wantCode(t, err, events.CodeRateLimited)
	if err.RetryAfter < 1 || err.RetryAfter > 30 {
		t.Fatalf("retry_after %d, want 1..30", err.RetryAfter)
	}
	// After the lockout a further failure locks for twice as long.
	e.clock.Advance(31 * time.Second)
	wantCode(t, e.call(events.OpAuthLogin, anon("203.0.113.7"), wrong, nil), events.CodeUnauthorized)
	_, err = e.login("locked@example.com", "203.0.113.99")
	wantCode(t, err, events.CodeRateLimited)
	if err.RetryAfter <= 30 || err.RetryAfter > 60 {
		t.Fatalf("second lockout retry_after %d, want 31..60", err.RetryAfter)
	}
	// Once it passes, the right password works and resets the count.
	e.clock.Advance(61 * time.Second)
	if _, err := e.login("locked@example.com", "203.0.113.99"); err != nil {
		t.Fatalf("login after lockout: %v", err)
	}
	wantCode(t, e.call(events.OpAuthLogin, anon("203.0.113.7"), wrong, nil), events.CodeUnauthorized)
	if _, err := e.login("locked@example.com", "203.0.113.99"); err != nil {
		t.Fatalf("one failure after a success must not lock: %v", err)
	}

	// Every failure is an event, with reason and IP, never the password.
	failed := e.eventsOf("auth.login.failed")
	reasons := map[string]int{}
	for _, env := range failed {
		var p events.LoginFailed
		mustDecode(t, env, &p)
		reasons[p.Reason]++
		if p.IP == "" || env.Actor.IP != p.IP {
			t.Fatalf("failed login without IP: %+v", p)
		}
	}
	if reasons[events.LoginFailedBadPassword] != 7 || reasons[events.LoginFailedThrottled] != 2 {
		t.Fatalf("failure reasons %v", reasons)
	}
	e.secret(wrong.Password, password)
	e.assertNoSecrets()
}

func TestWrongPasswordsFromOneIPLockThatIP(t *testing.T) {
	e := start(t) // IPFailures = 8 in tests
	e.register("victim@example.com")
	const ip = "198.51.100.66"
	for i := range 8 {
		// Unknown accounts count too (no enumeration, no free guesses).
		req := events.LoginRequest{Email: fmt.Sprintf("guess%d@example.com", i), Password: "whatever12345"}
		wantCode(t, e.call(events.OpAuthLogin, anon(ip), req, nil), events.CodeUnauthorized)
	}
	_, err := e.login("victim@example.com", ip)
	wantCode(t, err, events.CodeRateLimited)
	if err.RetryAfter < 1 {
		t.Fatalf("retry_after %d", err.RetryAfter)
	}
	// Another IP is not affected, nor is the account.
	if _, err := e.login("victim@example.com", "198.51.100.67"); err != nil {
		t.Fatalf("login from another IP: %v", err)
	}
	var unknown int
	for _, env := range e.eventsOf("auth.login.failed") {
		var p events.LoginFailed
		mustDecode(t, env, &p)
		if p.Reason == events.LoginFailedUnknownUser {
			unknown++
		}
	}
	if unknown != 8 {
		t.Fatalf("%d unknown_user failures recorded, want 8", unknown)
	}
	e.assertNoSecrets()
}

func TestThrottleStateIsSharedInPostgres(t *testing.T) {
	e := start(t)
	e.register("shared@example.com")
	wrong := events.LoginRequest{Email: "shared@example.com", Password: "wrong password!"}
	for range 5 {
		wantCode(t, e.call(events.OpAuthLogin, anon("203.0.113.1"), wrong, nil), events.CodeUnauthorized)
	}
	var failures int
	var locked *time.Time
	if err := e.db.QueryRow(t.Context(), `SELECT failures, locked_until FROM login_throttle WHERE key LIKE 'acct:%'`).
		Scan(&failures, &locked); err != nil {
		t.Fatal(err)
	}
	if failures != 5 || locked == nil {
		t.Fatalf("throttle row failures=%d locked=%v", failures, locked)
	}
}
