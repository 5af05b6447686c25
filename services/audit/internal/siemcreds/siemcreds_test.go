package siemcreds

import (
	"testing"
	"time"
)

func TestParseTTL(t *testing.T) {
	t.Parallel()
	const def = 90 * 24 * time.Hour
	for _, c := range []struct {
		in   string
		want time.Duration // 0: refused
	}{
		{"", def},
		{"720h", 720 * time.Hour},
		{"30d", 30 * 24 * time.Hour},
		{"400d", 400 * 24 * time.Hour},
		{"1m", time.Minute},
		{"9600h", 9600 * time.Hour},
		{"401d", 0},
		{"9601h", 0},
		{"59s", 0},
		{"0d", 0},
		{"-1d", 0},
		{"-5h", 0},
		{"1.5d", 0},
		{"d", 0},
		{"soon", 0},
		{"720", 0},
	} {
		got, err := parseTTL(c.in, def)
		if c.want == 0 {
			if err == nil {
				t.Errorf("parseTTL(%q) = %s, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseTTL(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}
