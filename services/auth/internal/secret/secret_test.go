package secret

import (
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

var cheap = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordHashRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse battery", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("not a PHC argon2id string: %s", h)
	}
	h2, _ := HashPassword("correct horse battery", cheap)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterY": false, "": false} {
		ok, err := CheckPassword(pw, h)
		if err != nil || ok != want {
			t.Errorf("CheckPassword(%q) = %v, %v", pw, ok, err)
		}
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA", "$argon2id$v=18$m=64,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$x$AAAA$AAAA", "plain"} {
		if _, err := CheckPassword("x", bad); err == nil {
			t.Errorf("accepted malformed hash %q", bad)
		}
	}
	if DefaultArgon2().Validate() != nil || (Argon2Params{Time: 1, MemoryKiB: 1, Threads: 1, SaltLen: 16, KeyLen: 32}).Validate() == nil {
		t.Fatal("parameter validation")
	}
}

func TestSealerBindsAssociatedData(t *testing.T) {
	t.Parallel()
	s, err := NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Seal([]byte("JBSWY3DPEHPK3PXP"), []byte("totp:u1"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.Open(c, []byte("totp:u1")); err != nil || string(p) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open %q %v", p, err)
	}
	if _, err := s.Open(c, []byte("totp:u2")); err == nil {
		t.Fatal("a ciphertext opened under another row's associated data")
	}
	if _, err := NewSealer(make([]byte, 16)); err == nil {
		t.Fatal("accepted a short key")
	}
}

func TestTokensAndBackupCodes(t *testing.T) {
	t.Parallel()
	a, _ := NewToken("ipk_", 32)
	b, _ := NewToken("ipk_", 32)
	if a == b || len(a) != 4+43 || !strings.HasPrefix(a, "ipk_") {
		t.Fatalf("tokens %q %q", a, b)
	}
	if !Equal(Digest(a), Digest(a)) || Equal(Digest(a), Digest(b)) {
		t.Fatal("digest equality")
	}
	c, _ := NewBackupCode()
	if len(c) != 19 || strings.Count(c, "-") != 3 {
		t.Fatalf("backup code %q", c)
	}
	if NormalizeBackupCode(" "+strings.ToLower(c)+" ") != strings.ReplaceAll(c, "-", "") {
		t.Fatal("normalisation")
	}
}

func TestMatchTOTPReportsTheStep(t *testing.T) {
	t.Parallel()
	b32, url, err := NewTOTP("InfraPilot", "a@example.com")
	if err != nil || !strings.HasPrefix(url, "otpauth://totp/") {
		t.Fatalf("%s %v", url, err)
	}
	now := time.Unix(1_700_000_015, 0)
	for d, ok := range map[time.Duration]bool{-30 * time.Second: true, 0: true, 30 * time.Second: true, 90 * time.Second: false} {
		code, _ := totp.GenerateCode(b32, now.Add(d))
		step, got := MatchTOTP(b32, code, now)
		if got != ok {
			t.Errorf("offset %s: ok=%v", d, got)
		}
		if ok && step != now.Add(d).Unix()/30 {
			t.Errorf("offset %s: step %d", d, step)
		}
	}
	if _, ok := MatchTOTP(b32, "12345", now); ok {
		t.Fatal("accepted a 5-digit code")
	}
}
