package logline_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events/logline"
)

// The fuzz targets check that the parsers never panic, always produce a
// valid level, and that what they extract is part of the input. Their
// seed corpora are in testdata/fuzz/<target>; run one with
// `go test ./events/logline -fuzz FuzzContainer -fuzztime 60s`.

func FuzzDetectLevel(f *testing.F) {
	for _, s := range []string{"ERROR x", "level=warn", "[debug] y", "E0102 15:04:05.000000 z", "Error: a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lvl, ok := logline.DetectLevel(s)
		if ok != (lvl != "") || ok && !logline.ValidLevel(lvl) {
			t.Fatalf("DetectLevel(%q) = %q, %v", s, lvl, ok)
		}
	})
}

func FuzzContainer(f *testing.F) {
	for _, s := range []string{`{"level":"error","msg":"x"}`, `{"log":"WARN y\n","stream":"stdout"}`, `{"level":50}`, "plain", "{}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := logline.Container(s)
		if !logline.ValidLevel(p.Level) {
			t.Fatalf("Container(%q): level %q", s, p.Level)
		}
		if p.Attrs != nil {
			t.Fatalf("Container(%q): attrs %v", s, p.Attrs)
		}
		if utf8.ValidString(s) && !utf8.ValidString(p.Message) {
			t.Fatalf("Container(%q): invalid UTF-8 message from valid input", s)
		}
	})
}

func FuzzNginxAccess(f *testing.F) {
	f.Add("10.0.0.1", "frank", "GET /a HTTP/1.1", 200, 12, "http://r", "UA/1.0")
	f.Add("::1", "-", "-", 499, 0, "-", "-")
	f.Fuzz(func(t *testing.T, addr, user, request string, status, bytes int, ref, ua string) {
		line := fmt.Sprintf(`%s - %s [10/Oct/2000:13:55:36 -0700] "%s" %d %d "%s" "%s"`, addr, user, request, status, bytes, ref, ua)
		p, ok := logline.NginxAccess(line)
		if ok && !logline.ValidLevel(p.Level) {
			t.Fatalf("level %q", p.Level)
		}
		if !ok {
			return
		}
		for k, v := range p.Attrs {
			if !strings.Contains(line, v) {
				t.Fatalf("attr %s = %q not in %q", k, v, line)
			}
		}
		// A well-formed line (no spaces or quotes where nginx never puts
		// them) round-trips exactly.
		clean := func(s string) bool { return s != "" && !strings.ContainsAny(s, " \"[]\r\n") }
		if clean(addr) && clean(user) && status >= 100 && status <= 599 && bytes >= 0 && !strings.ContainsAny(request+ref+ua, "\"\r\n") {
			if p.Attrs["remote_addr"] != addr || p.Attrs["remote_user"] != user || p.Attrs["request"] != request ||
				p.Attrs["status"] != fmt.Sprint(status) || p.Attrs["referer"] != ref || p.Attrs["user_agent"] != ua {
				t.Fatalf("round trip of %q: %v", line, p.Attrs)
			}
		}
	})
}

func FuzzNginxError(f *testing.F) {
	f.Add(`2024/01/02 15:04:05 [error] 31#31: *7 open() failed, client: 1.2.3.4, server: _, request: "GET / HTTP/1.1", host: "h"`)
	f.Add(`2024/01/02 15:04:05 [notice] 1#1: start`)
	f.Add(`2024/01/02 15:04:05 [crit] x`)
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := logline.NginxError(s)
		if !ok {
			if q := logline.Nginx("stderr", s); !logline.ValidLevel(q.Level) {
				t.Fatalf("Nginx(%q): level %q", s, q.Level)
			}
			return
		}
		if !logline.ValidLevel(p.Level) || p.Attrs["time"] != s[:19] {
			t.Fatalf("NginxError(%q) = %+v", s, p)
		}
		if !strings.Contains(s, p.Message) {
			t.Fatalf("message %q not in %q", p.Message, s)
		}
	})
}
