package simagent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// The hand-written batch encoder must produce exactly what encoding/json
// makes of an events.AgentLogBatch: the ingest service decodes it as the
// real agent's batches.
func TestBatchIsEncodingJSONOfAgentLogBatch(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 123456789, time.UTC)
	s := NewLogStream("o1", "a1", "c0ffee", "web-1", "shop")
	batches := [][]Line{
		{{Time: t0, Stream: events.StreamStdout, Text: "plain line"},
			{Time: t0, Stream: events.StreamStderr, Text: `quote " backslash \ <tag> & amp`},
			{Time: t0.Add(time.Millisecond), Stream: events.StreamStdout, Text: "ctrl \x01\x1f tab\t nl\n cr\r"}},
		{{Time: t0.Add(2 * time.Millisecond), Stream: events.StreamStdout, Text: "bad utf8 \xff\xfe and \u2028 \u2029 é 日本"},
			{Time: t0.Add(2 * time.Millisecond), Stream: events.StreamStdout, Text: `{"level":"warn","msg":"json"}`}},
	}
	from := events.LogPosition{}
	for i, lines := range batches {
		data, id := s.Batch(lines)
		want := events.AgentLogBatch{V: events.TelemetryVersion, Container: "c0ffee", Name: "web-1", Stack: "shop", From: from,
			To: s.Position()}
		for _, l := range lines {
			want.Lines = append(want.Lines, events.LogLine{Time: l.Time, Stream: l.Stream, Text: l.Text})
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != string(wantJSON) {
			t.Fatalf("batch %d:\n got %s\nwant %s", i, data, wantJSON)
		}
		if wantID := BatchID(s.Subject, "c0ffee", from, s.Position()); id != wantID {
			t.Fatalf("batch %d: id %s, want %s", i, id, wantID)
		}
		from = s.Position()
	}
	// Positions count each stream's lines at the last timestamp.
	if p := s.Position(); !p.Time.Equal(t0.Add(2*time.Millisecond)) || p.Stdout != 2 || p.Stderr != 0 {
		t.Fatalf("position after the batches: %+v", p)
	}
}

func TestBatchPositionsChainAcrossSharedTimestamps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewLogStream("o", "a", "c", "n", "")
	s.Batch([]Line{{Time: t0, Stream: "stdout", Text: "1"}, {Time: t0, Stream: "stderr", Text: "2"}})
	s.Batch([]Line{{Time: t0, Stream: "stdout", Text: "3"}})
	if p := s.Position(); !p.Time.Equal(t0) || p.Stdout != 2 || p.Stderr != 1 {
		t.Fatalf("a batch continuing its predecessor's timestamp must continue its counts: %+v", p)
	}
	var b events.AgentLogBatch
	data, _ := s.Batch([]Line{{Time: t0.Add(time.Second), Stream: "stdout", Text: "4"}})
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	if b.From.Stdout != 2 || b.From.Stderr != 1 || b.To.Stdout != 1 || b.To.Stderr != 0 || b.Stack != "" {
		t.Fatalf("batch: %+v", b)
	}
}

func TestIDsMatchTheRealAgentsScheme(t *testing.T) {
	// The digests agent/internal/collect computes for these inputs
	// (BatchID: sha256 of "subject\ncontainer\nfrom ns/stdout/stderr\nto
	// ns/stdout/stderr"; metrics: sha256 of "subject\ntime ns"), first 16
	// bytes in hex. That package is internal to the agent module, so the
	// values are fixed here.
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	from, to := events.LogPosition{Time: at, Stdout: 1}, events.LogPosition{Time: at.Add(time.Second), Stderr: 2}
	if got, want := BatchID("agent.o.a.logs", "c", from, to), "logs-31d0f3f88b66102b79338409353bbe22"; got != want {
		t.Errorf("BatchID = %s, want %s", got, want)
	}
	if got, want := MetricsID("agent.o.a.metrics", at), "metrics-620aacc86987efb16390184b60ca797d"; got != want {
		t.Errorf("MetricsID = %s, want %s", got, want)
	}
}

// FuzzAppendJSONString: for any text, the hand-written escaping equals
// encoding/json's.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "<>&", "\x00\x1f\x7f", "\xff", "\u2028\u2029", "é日本", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}
