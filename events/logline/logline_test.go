package logline_test

import (
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events/logline"
)

func TestDetectLevel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		line, want string
	}{
		{"2024-01-02T10:00:00Z ERROR connection refused", "error"},
		{"[warn] disk almost full", "warn"},
		{"time=2024 level=debug msg=hi", "debug"},
		{`{"broken json "level":"warn"`, "warn"},
		{"INFO retrying after error", "info"},
		{"no error occurred", ""},
		{"Error: ENOENT: no such file", "error"},
		{"warning: deprecated flag", "warn"},
		{"E0102 15:04:05.000000   1 main.go:10] boom", "error"},
		{"W0102 15:04:05.000000   1 main.go:10] hmm", "warn"},
		{"panic: runtime error: index out of range", "error"},
		{"Traceback (most recent call last):", "error"},
		{"<notice> started", "info"},
		{"FATAL: could not start", "error"},
		{"plain line", ""},
		{"INFO_COUNT=3", ""},
		{strings.Repeat("x", 300) + " ERROR late", ""},
		{"lvl=eror", "error"},
		{"2024 WARNING low memory", "warn"},
	} {
		got, ok := logline.DetectLevel(c.line)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("DetectLevel(%q) = %q, %v; want %q", c.line, got, ok, c.want)
		}
	}
}

func TestContainer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		line, level, msg string
	}{
		{`{"level":"error","msg":"db down","ts":1}`, "error", "db down"},
		{`{"severity":"WARNING","message":"slow"}`, "warn", "slow"},
		{`{"log":"ERROR boom\n","stream":"stderr","time":"2024-01-02T10:00:00Z"}`, "error", "ERROR boom"},
		{`{"level":30,"msg":"pino"}`, "info", "pino"},
		{`{"log":{"level":"debug"},"message":"ecs"}`, "debug", "ecs"},
		{`{"a":1}`, "info", ""},
		{`{not json}`, "info", ""},
		{"WARN plain", "warn", ""},
		{"", "info", ""},
	} {
		p := logline.Container(c.line)
		if p.Level != c.level || p.Message != c.msg {
			t.Errorf("Container(%q) = %+v; want level %q message %q", c.line, p, c.level, c.msg)
		}
	}
}

func TestNginxAccess(t *testing.T) {
	t.Parallel()
	p, ok := logline.NginxAccess(`10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.1" 503 2326 "http://x/start" "Mozilla/5.0 (X11)" "-"`)
	if !ok || p.Level != "error" || p.Message != "GET /a?b=1 HTTP/1.1" {
		t.Fatalf("combined: %+v %v", p, ok)
	}
	want := map[string]string{"remote_addr": "10.0.0.1", "remote_user": "frank", "method": "GET", "path": "/a?b=1",
		"protocol": "HTTP/1.1", "status": "503", "bytes": "2326", "referer": "http://x/start", "user_agent": "Mozilla/5.0 (X11)"}
	for k, v := range want {
		if p.Attrs[k] != v {
			t.Errorf("attr %s = %q, want %q", k, p.Attrs[k], v)
		}
	}
	if p, ok := logline.NginxAccess(`::1 - - [10/Oct/2000:13:55:36 +0000] "POST /x HTTP/2.0" 404 0`); !ok || p.Level != "warn" {
		t.Errorf("common: %+v %v", p, ok)
	}
	for _, bad := range []string{"", "hello world", `1.2.3.4 - - [bad] "GET /" 200 1`, `1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "GET /" 999 1`} {
		if _, ok := logline.NginxAccess(bad); ok {
			t.Errorf("NginxAccess(%q) parsed", bad)
		}
	}
}

func TestNginxError(t *testing.T) {
	t.Parallel()
	p, ok := logline.NginxError(`2024/01/02 15:04:05 [error] 31#32: *7 open() "/usr/share/nginx/html/x" failed (2: No such file or directory), client: 10.0.0.1, server: _, request: "GET /x HTTP/1.1", host: "example.com"`)
	if !ok || p.Level != "error" || p.Message != `open() "/usr/share/nginx/html/x" failed (2: No such file or directory)` {
		t.Fatalf("error line: %+v %v", p, ok)
	}
	want := map[string]string{"pid": "31", "tid": "32", "connection": "7", "client": "10.0.0.1", "server": "_",
		"request": "GET /x HTTP/1.1", "host": "example.com", "nginx_level": "error", "time": "2024/01/02 15:04:05"}
	for k, v := range want {
		if p.Attrs[k] != v {
			t.Errorf("attr %s = %q, want %q", k, p.Attrs[k], v)
		}
	}
	if p, ok := logline.NginxError(`2024/01/02 15:04:05 [notice] 1#1: start worker processes`); !ok || p.Level != "info" || p.Message != "start worker processes" {
		t.Errorf("notice: %+v %v", p, ok)
	}
	if _, ok := logline.NginxError(`2024/01/02 15:04:05 [loud] 1#1: x`); ok {
		t.Error("unknown level parsed")
	}
	// Nginx picks the parser by stream and falls back to the other.
	if p := logline.Nginx("stdout", `2024/01/02 15:04:05 [warn] 1#1: conflicting server name`); p.Level != "warn" || p.Attrs["nginx_level"] != "warn" {
		t.Errorf("fallback: %+v", p)
	}
	if p := logline.Nginx("stderr", "something else ERROR"); p.Level != "error" || p.Attrs != nil {
		t.Errorf("plain fallback: %+v", p)
	}
}
