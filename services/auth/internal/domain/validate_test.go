package domain

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events"
)

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"Alice@Example.COM", "alice@example.com", true},
		{"  bob.smith+tag@sub.example.org ", "bob.smith+tag@sub.example.org", true},
		{"", "", false},
		{"no-at-sign", "", false},
		{"two@@example.com", "", false},
		{"a@b@example.com", "", false},
		{"Alice <alice@example.com>", "", false},
		{"alice@localhost", "", false},
		{"alice@example..com", "", false},
		{"alice@.example.com", "", false},
		{"alice smith@example.com", "", false},
		{"alice@example.com\n", "alice@example.com", true},
		{"ali\x00ce@example.com", "", false},
		{"\"quoted\"@example.com", "", false},
		{strings.Repeat("a", 65) + "@example.com", "", false},
		{strings.Repeat("a", 60) + "@" + strings.Repeat("b", 190) + ".com", "", false},
	}
	for _, c := range cases {
		got, fe := NormalizeEmail("email", c.in)
		if (fe == nil) != c.ok || got != c.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q ok=%v", c.in, got, fe, c.want, c.ok)
		}
		if fe != nil && fe.Field != "email" {
			t.Errorf("field %q", fe.Field)
		}
	}
}

func TestCleanNameAndPassword(t *testing.T) {
	t.Parallel()
	if n, fe := CleanName("name", "  Ada Lovelace ", MaxNameLen); fe != nil || n != "Ada Lovelace" {
		t.Fatalf("%q %v", n, fe)
	}
	for _, bad := range []string{"", "   ", "a\x07b", strings.Repeat("é", MaxNameLen+1), "bad\xffutf8", "evil\u202egnp.exe"} {
		if _, fe := CleanName("name", bad, MaxNameLen); fe == nil {
			t.Errorf("CleanName accepted %q", bad)
		}
	}
	if _, fe := CleanName("name", strings.Repeat("é", MaxNameLen), MaxNameLen); fe != nil {
		t.Errorf("a name of exactly the limit in characters is refused: %v", fe)
	}
	for p, ok := range map[string]bool{"short": false, "exactly10!": true, strings.Repeat("x", 256): true,
		strings.Repeat("x", 257): false, strings.Repeat("ü", 10): true} {
		if fe := CheckPassword("password", p); (fe == nil) != ok {
			t.Errorf("CheckPassword(%d chars) = %v, want ok=%v", utf8.RuneCountInString(p), fe, ok)
		}
	}
}

// FuzzNormalizeEmail checks the invariants every accepted address keeps:
// lower-case, trimmed, bounded, one '@', a dotted domain, no characters
// that could smuggle a header or a display name, normalising is idempotent,
// and its key is a safe subject token.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"a@example.com", "A@B.CO", " x+y@sub.example.org ", "a@b", "<a@b.c>", "a\r\nb@c.d", "\"a\"@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, fe := NormalizeEmail("email", s)
		if fe != nil {
			if got != "" || fe.Field != "email" || fe.Message == "" {
				t.Fatalf("bad rejection %q %+v", got, fe)
			}
			return
		}
		if len(got) > MaxEmailLen || got != strings.ToLower(got) || got != strings.TrimSpace(got) || strings.Count(got, "@") != 1 {
			t.Fatalf("accepted %q as %q", s, got)
		}
		if strings.ContainsAny(got, " \t\r\n<>()\",;\\") || !utf8.ValidString(got) {
			t.Fatalf("accepted unsafe characters: %q", got)
		}
		if _, dom, _ := strings.Cut(got, "@"); !strings.Contains(dom, ".") {
			t.Fatalf("accepted a domain without a dot: %q", got)
		}
		if again, fe := NormalizeEmail("email", got); fe != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q (%v)", got, again, fe)
		}
		if k := EmailKey(got); !events.ValidToken(k) || len(k) != 64 {
			t.Fatalf("key %q is not a subject token", k)
		}
	})
}

// FuzzCleanName checks that accepted names are trimmed, bounded, valid
// UTF-8 without control characters, and that cleaning is idempotent.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"Ada", "  spaced  ", "tab\there", "émoji 🚀", "\x00", strings.Repeat("n", 201)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, fe := CleanName("name", s, MaxNameLen)
		if fe != nil {
			return
		}
		if got == "" || got != strings.TrimSpace(got) || !utf8.ValidString(got) || utf8.RuneCountInString(got) > MaxNameLen {
			t.Fatalf("accepted %q as %q", s, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) {
				t.Fatalf("accepted a control character in %q", got)
			}
		}
		if again, fe := CleanName("name", got, MaxNameLen); fe != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q", got, again)
		}
	})
}
