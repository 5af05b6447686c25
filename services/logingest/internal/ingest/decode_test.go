package ingest_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/logingest/internal/ingest"
)

func TestDecodeLogsSequence(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	b := events.AgentLogBatch{V: 1, Container: "c1", From: events.LogPosition{Time: t0, Stdout: 2, Stderr: 1}, Lines: []events.LogLine{
		{Time: t0, Stream: "stdout", Text: "a"}, {Time: t0, Stream: "stderr", Text: "b"},
		{Time: t0.Add(time.Second), Stream: "stdout", Text: "c\n"}, {Time: t0.Add(time.Second), Stream: "stdout", Text: "d\x00\xff"},
	}}
	data, _ := json.Marshal(b)
	lines, err := ingest.DecodeLogs(events.AgentLogs("o1", "a1"), data, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%s/%s/%d/%s", l.OrgID+l.AgentID, l.Stream, l.Seq, l.Raw))
	}
	want := "[o1a1/stdout/3/a o1a1/stderr/2/b o1a1/stdout/1/c o1a1/stdout/2/d\uFFFD\uFFFD]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, c := range []struct{ subject, body string }{
		{"agent.o1.a1.metrics", string(data)},
		{"agent.o1.*.logs", string(data)},
		{"agent.o1.a1.logs", `{"v":2,"container":"c1"}`},
		{"agent.o1.a1.logs", `{"v":1,"container":""}`},
		{"agent.o1.a1.logs", `{"v":1,"source":"kernel","container":"c"}`},
		{"agent.o1.a1.logs", `{"v":1,"container":"c","lines":[{"stream":"a.b","text":"x"}]}`},
		{"agent.o1.a1.logs", `not json`},
	} {
		if _, err := ingest.DecodeLogs(c.subject, []byte(c.body), 0); err == nil {
			t.Errorf("%s %s: decoded", c.subject, c.body)
		}
	}
}

// FuzzDecodeLogs feeds arbitrary batches (an agent is untrusted input):
// no panic, and every line comes out valid UTF-8 within the size bound,
// with a valid level and a distinct key.
func FuzzDecodeLogs(f *testing.F) {
	f.Add([]byte(`{"v":1,"container":"c1","from":{"time":"2026-11-29T10:00:00Z","stdout":1},"lines":[{"time":"2026-11-29T10:00:00Z","stream":"stdout","text":"ERROR x"}]}`))
	f.Add([]byte(`{"v":1,"source":"nginx","container":"p","lines":[{"time":"2026-11-29T10:00:00Z","stream":"stderr","text":"2026/11/29 10:00:00 [error] 1#1: x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ingest.DecodeLogs("agent.o1.a1.logs", data, 128)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, l := range lines {
			if !utf8.ValidString(l.Raw) || len(l.Raw) > 128 || !utf8.ValidString(l.Container) {
				t.Fatalf("line %+v", l)
			}
			switch l.Level {
			case "error", "warn", "info", "debug":
			default:
				t.Fatalf("level %q", l.Level)
			}
			k := fmt.Sprint(l.Key())
			if seen[k] {
				t.Fatalf("two lines with key %s", k)
			}
			seen[k] = true
		}
	})
}
