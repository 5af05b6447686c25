package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/simagent"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// The logs scenario's parts that need no hub: the generator's batching
// and markers, the line templates, and reading the ingest counter. The
// scenario itself runs against `infrapilot dev` (docs/benchmarks.md).

func TestLogGeneratorBatchesLikeTheAgent(t *testing.T) {
	a := simagent.New(simagent.Identity{OrgID: "o1", AgentID: "0123456789abcdef"}, 2)
	start := time.Now()
	var marks []logMarker
	sh := &logsShared{cfg: logsConfig{containers: 2, lineBytes: 100, batchLines: 50, batchBytes: 256 << 10, flush: time.Second,
		maxBacklog: 64 << 20, inflight: 1}, run: "lttest", start: start, end: start.Add(300 * time.Millisecond),
		markEvery: int64(100 * time.Millisecond), offered: harness.NewRecorder("offered", start),
		accepted: harness.NewRecorder("accepted", start), batches: harness.NewRecorder("batches", start)}
	sh.nextMark.Store(start.UnixNano())
	la := newLogAgent(sh, a)
	la.generate(context.Background(), 1000) // 300 lines over 300 ms, then flush and close

	lines := 0
	pos := map[string]events.LogPosition{}
	for _, b := range la.queue {
		var batch events.AgentLogBatch
		if err := json.Unmarshal(b.data, &batch); err != nil {
			t.Fatal(err)
		}
		if len(batch.Lines) == 0 || len(batch.Lines) > 50 || len(batch.Lines) != b.lines {
			t.Fatalf("batch of %d lines (b.lines %d)", len(batch.Lines), b.lines)
		}
		if prev := pos[batch.Container]; !prev.Time.Equal(batch.From.Time) || prev.Stdout != batch.From.Stdout || prev.Stderr != batch.From.Stderr {
			t.Fatalf("batch of %s starts at %+v, the previous ended at %+v", batch.Container, batch.From, prev)
		}
		pos[batch.Container] = batch.To
		if b.subject != events.AgentLogs("o1", "0123456789abcdef") || !strings.HasPrefix(b.id, "logs-") {
			t.Fatalf("batch subject %q id %q", b.subject, b.id)
		}
		for _, l := range batch.Lines {
			if strings.HasPrefix(l.Text, "{") && !json.Valid([]byte(l.Text)) {
				t.Fatalf("a JSON template line is not JSON: %s", l.Text)
			}
		}
		lines += len(batch.Lines)
		marks = append(marks, b.markers...)
	}
	if lines != 300 || sh.offered.Snapshot().Items != 300 {
		t.Fatalf("%d lines in batches, %d offered; want 300", lines, sh.offered.Snapshot().Items)
	}
	if len(pos) != 2 {
		t.Fatalf("lines of %d containers, want 2", len(pos))
	}
	// One marker per 100 ms of line time, each unique and in its line.
	if len(marks) < 2 || len(marks) > 4 {
		t.Fatalf("%d markers over 300 ms at one per 100 ms", len(marks))
	}
	seen := map[string]bool{}
	for _, m := range marks {
		if seen[m.text] || !strings.HasPrefix(m.text, "ltq-lttest-") || m.agent != "0123456789abcdef" {
			t.Fatalf("marker %+v", m)
		}
		seen[m.text] = true
	}
	joined := ""
	for _, b := range la.queue {
		joined += string(b.data)
	}
	for m := range seen {
		if strings.Count(joined, m) != 1 {
			t.Fatalf("marker %s is in %d lines", m, strings.Count(joined, m))
		}
	}
}

func TestLogLinesHaveTheirSizeAndAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for n := range int64(200) {
		l := string(appendLogLine(nil, n, "agent123", 100, ""))
		if len(l) < 90 || len(l) > 110 {
			t.Fatalf("line %d has %d bytes: %q", n, len(l), l)
		}
		if seen[l] {
			t.Fatalf("line %d repeats: %q", n, l)
		}
		seen[l] = true
	}
	if l := string(appendLogLine(nil, 4, "a", 100, "ltq-x-00000001")); !strings.Contains(l, "ltq-x-00000001") || !json.Valid([]byte(l)) {
		t.Fatalf("marked JSON line %q", l)
	}
	if pad8(42) != "00000042" {
		t.Fatalf("pad8: %s", pad8(42))
	}
}

func TestStoredCounterReadsTheIngestCounter(t *testing.T) {
	value := "12345"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "# HELP x\ninfrapilot_logingest_rows_stored_total{consumer=\"logingest_metrics\"} 7\n%s %s\nother 1\n", storedMetric, value)
	}))
	defer srv.Close()
	c := newStoredCounter(&target.Target{APIURL: srv.URL + "/api/v1", HTTP: srv.Client()})
	if c.url != srv.URL+"/metrics" {
		t.Fatalf("url %s", c.url)
	}
	ctx := context.Background()
	if v, err := c.read(ctx); err != nil || v != 12345 {
		t.Fatalf("read: %d, %v", v, err)
	}
	rec := harness.NewRecorder("stored", time.Now())
	w, err := newStoredWatch(ctx, c, rec)
	if err != nil {
		t.Fatal(err)
	}
	value = "1.2346e+06" // Prometheus prints large counters in exponent form
	w.poll(ctx)
	if n, at := w.stored(); n != 1234600-12345 || at.IsZero() || rec.Snapshot().Items != n {
		t.Fatalf("stored %d at %v, recorder %d", n, at, rec.Snapshot().Items)
	}
	value = "garbage"
	w.poll(ctx)
	if w.errs.Load() != 1 {
		t.Fatalf("a malformed counter was not counted as an error")
	}
}

func TestStoredCounterBeforeTheFirstFlushIsZero(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "go_goroutines 12") }))
	defer srv.Close()
	c := newStoredCounter(&target.Target{APIURL: srv.URL + "/api/v1"})
	if v, err := c.read(context.Background()); err != nil || v != 0 {
		t.Fatalf("read: %d, %v", v, err)
	}
}
