package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

func TestSlugify(t *testing.T) {
	cases := map[string]string{
		"Acme Corp":             "acme-corp",
		"  --Hello,  World!-- ": "hello-world",
		"Ünïcödé Ltd":           "n-c-d-ltd",
		strings.Repeat("a", 50): strings.Repeat("a", 40),
	}
	for in, want := range cases {
		if got := Slugify(in); got != want || !ValidSlug(got) {
			t.Errorf("Slugify(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"", "x", "!!"} {
		if got := Slugify(in); !ValidSlug(got) {
			t.Errorf("Slugify(%q) = %q, not a slug", in, got)
		}
	}
	if got := WithSuffix(strings.Repeat("b", 40)); !ValidSlug(got) {
		t.Errorf("WithSuffix: %q", got)
	}
}

func TestCleanEmail(t *testing.T) {
	good := map[string]string{"Ada@Example.COM": "ada@example.com", " b@x.io ": "b@x.io"}
	for in, want := range good {
		var p Problems
		if got := CleanEmail(&p, "email", in); got != want || p.Err() != nil {
			t.Errorf("CleanEmail(%q) = %q %v", in, got, p.Err())
		}
	}
	for _, in := range []string{"", "ada", "ada@", "Ada <ada@example.com>", "ada@localhost", "a@b.c\r\nBcc: x@y.z", strings.Repeat("a", 250) + "@x.io"} {
		var p Problems
		CleanEmail(&p, "email", in)
		if p.Err() == nil || p[0].Field != "email" {
			t.Errorf("CleanEmail(%q) accepted", in)
		}
	}
}

func TestSecrets(t *testing.T) {
	tok, hash := NewSecret(EnrollmentPrefix)
	if !strings.HasPrefix(tok, "ipe_") || !PlausibleSecret(EnrollmentPrefix, tok) || PlausibleSecret(InvitationPrefix, tok) {
		t.Fatalf("token %q", tok)
	}
	if !SecretMatches(tok, hash) || SecretMatches(tok+"x", hash) || strings.Contains(hash, tok) {
		t.Fatal("hash check")
	}
	other, _ := NewSecret(EnrollmentPrefix)
	if other == tok {
		t.Fatal("two equal tokens")
	}
}

func TestEnrollmentTokenUse(t *testing.T) {
	now := time.Now()
	exp := now.Add(time.Hour)
	tok := &EnrollmentToken{CreatedAt: now, MaxUses: 1, ExpiresAt: &exp, Used: map[string]time.Time{}}
	ok := func() error { return nil }
	ev, repeat, err := tok.Use(now, "a", ok)
	if err != nil || ev == nil || repeat {
		t.Fatal(ev, repeat, err)
	}
	tok.Used["a"] = now
	if _, repeat, err = tok.Use(now.Add(2*time.Hour), "a", ok); err != nil || !repeat {
		t.Fatal("repeat after expiry of a known machine", err)
	}
	if _, _, err = tok.Use(now, "b", ok); events.ErrorCode(err) != events.CodeConflict {
		t.Fatal("max uses", err)
	}
	tok.MaxUses = 0
	if _, _, err = tok.Use(now.Add(2*time.Hour), "b", ok); events.ErrorCode(err) != events.CodeConflict {
		t.Fatal("expiry", err)
	}
	tok.Revoked = true
	if _, _, err = tok.Use(now, "a", ok); events.ErrorCode(err) != events.CodeUnauthorized {
		t.Fatal("revoked", err)
	}
}
