package nginx_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/agent/internal/nginx"
)

func TestParseProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, out string
		want      []nginx.Problem
	}{
		{"ok", "nginx: the configuration file /r/gen/1/nginx.conf syntax is ok\nnginx: configuration file /r/gen/1/nginx.conf test is successful\n", nil},
		{"host", "nginx: [emerg] host not found in upstream \"nope.invalid\" in /r/gen/2/hosts/h.conf:3\nnginx: configuration file /r/gen/2/nginx.conf test failed\n",
			[]nginx.Problem{{Line: `nginx: [emerg] host not found in upstream "nope.invalid" in /r/gen/2/hosts/h.conf:3`, Level: "emerg", File: "/r/gen/2/hosts/h.conf", LineNo: 3}}},
		{"warn ignored", "nginx: [warn] conflicting server name \"a\" on 0.0.0.0:80, ignored\n", nil},
		{"no file", "nginx: [emerg] bind() to 127.0.0.1:80 failed (98: Address already in use)\n",
			[]nginx.Problem{{Line: "nginx: [emerg] bind() to 127.0.0.1:80 failed (98: Address already in use)", Level: "emerg"}}},
		{"error log format", "2026/11/29 10:12:32 [emerg] 14874#14874: unknown directive \"x\" in /root dir/gen/1/nginx.conf:12\r\n",
			[]nginx.Problem{{Line: `2026/11/29 10:12:32 [emerg] 14874#14874: unknown directive "x" in /root dir/gen/1/nginx.conf:12`, Level: "emerg", File: "/root dir/gen/1/nginx.conf", LineNo: 12}}},
		{"pid", "nginx: [error] open() \"/r/run/nginx.pid\" failed (2: No such file or directory)\n",
			[]nginx.Problem{{Line: `nginx: [error] open() "/r/run/nginx.pid" failed (2: No such file or directory)`, Level: "error"}}},
		{"quoted in", "nginx: [emerg] invalid value \"a in /x:1\" in /r/gen/1/hosts/h.conf:7\n",
			[]nginx.Problem{{Line: `nginx: [emerg] invalid value "a in /x:1" in /r/gen/1/hosts/h.conf:7`, Level: "emerg", File: "/r/gen/1/hosts/h.conf", LineNo: 7}}},
		{"bad line number", "nginx: [emerg] x in /r/h.conf:0\nnginx: [crit] y in relative.conf:3\n",
			[]nginx.Problem{{Line: "nginx: [emerg] x in /r/h.conf:0", Level: "emerg"}, {Line: "nginx: [crit] y in relative.conf:3", Level: "crit"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nginx.ParseProblems(tc.out)
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("problem %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestMessage(t *testing.T) {
	t.Parallel()
	if got := nginx.Message("nginx: [emerg] a in /x:1\nnginx: configuration file /x test failed\n"); got != "nginx: [emerg] a in /x:1" {
		t.Fatalf("error lines: %q", got)
	}
	if got := nginx.Message("  something else  \n"); got != "something else" {
		t.Fatalf("no error lines: %q", got)
	}
	long := nginx.Message(strings.Repeat("é", 5000))
	if !utf8.ValidString(long) || len(long) > 4100 {
		t.Fatalf("long message: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
}

func TestValidPath(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{
		"nginx.conf": true, "hosts/0f8fad5b-d9cb-469f-a165-70867728950e.conf": true, "hosts/a_b.conf": true,
		"": false, "/nginx.conf": false, "../x": false, "hosts/../x": false, "hosts//x": false, "hosts/": false,
		"./x": false, ".": false, "Hosts/x": false, "hosts/x y": false, "hosts/x\n": false, "hosts/x;": false,
		"hosts/é": false, strings.Repeat("a", 256): false,
	} {
		if got := nginx.ValidPath(p); got != want {
			t.Errorf("ValidPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// nginx's output quotes the rendered files, which quote user input: the
// parser must hold up to anything.
func FuzzParseProblems(f *testing.F) {
	f.Add("nginx: [emerg] host not found in upstream \"nope.invalid\" in /r/gen/2/hosts/h.conf:3\n")
	f.Add("nginx: [emerg] in /:1")
	f.Add("[error]  in /a:99999999999999999999")
	f.Fuzz(func(t *testing.T, out string) {
		for _, p := range nginx.ParseProblems(out) {
			if !strings.Contains(out, p.Line) || strings.Contains(p.Line, "\n") {
				t.Fatalf("line %q is not one of the output's", p.Line)
			}
			if p.File != "" && (!strings.HasPrefix(p.File, "/") || p.LineNo <= 0 || !strings.Contains(p.Line, p.File)) {
				t.Fatalf("bad location %+v", p)
			}
		}
		if m := nginx.Message(out); len(m) > 4096+len("…") {
			t.Fatalf("message of %d bytes", len(m))
		}
	})
}
