package routes_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/infrapilot/infrapilot/gateway/internal/routes"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// logsStub stands in for the log-ingest service: it answers queries from a
// list of n lines (cursor = offset) and records every request.
type logsStub struct {
	mu      sync.Mutex
	n       int
	queries []events.LogsQueryRequest
	orgs    []string
	metrics []events.AgentMetricsRequest
	replies []int // bytes of each query reply
}

func (s *logsStub) record(org string, q events.LogsQueryRequest, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries, s.orgs, s.replies = append(s.queries, q), append(s.orgs, org), append(s.replies, size)
}

func (s *logsStub) last(t *testing.T) (string, events.LogsQueryRequest) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queries) == 0 {
		t.Fatal("the service was not called")
	}
	return s.orgs[len(s.orgs)-1], s.queries[len(s.queries)-1]
}

type logsEnv struct {
	srv  *httptest.Server
	nc   *nats.Conn
	stub *logsStub
}

func logsServer(t *testing.T, lines int) *logsEnv {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	stub := &logsStub{n: lines}
	base := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	natstest.Service(t, nc, "logingest", map[string]micro.HandlerFunc{
		events.OpLogsQuery: func(r micro.Request) {
			var q events.LogsQueryRequest
			_ = json.Unmarshal(r.Data(), &q)
			off, _ := strconv.Atoi(q.Cursor)
			page := events.LogsPage{Items: []events.LogEntry{}}
			for i := off; i < stub.n && len(page.Items) < q.Limit; i++ {
				line := fmt.Sprintf("line %d", i)
				if i == 1 {
					line = "=HYPERLINK(\"http://evil\")"
				}
				page.Items = append(page.Items, events.LogEntry{ID: fmt.Sprint(i), Time: base.Add(-time.Duration(i) * time.Second),
					AgentID: "a1", Source: "container", Container: "c1", Stream: "stdout", Level: "info", Line: line})
			}
			if next := off + len(page.Items); next < stub.n && q.Limit > 0 {
				page.NextCursor = strconv.Itoa(next)
			}
			data, _ := json.Marshal(page)
			stub.record(r.Headers().Get(events.HeaderOrgID), q, len(data))
			_ = r.Respond(data)
		},
		events.OpLogsMetrics: func(r micro.Request) {
			var q events.AgentMetricsRequest
			_ = json.Unmarshal(r.Data(), &q)
			stub.mu.Lock()
			stub.metrics = append(stub.metrics, q)
			stub.mu.Unlock()
			_ = r.RespondJSON(events.AgentMetricsReply{AgentID: q.AgentID, StepSeconds: 60})
		},
		events.OpLogsRetention: func(r micro.Request) {
			_ = r.RespondJSON(events.LogsRetentionStatus{Plan: "free", RetentionDays: 3})
		},
	})
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if id := req.Header.Get("X-Test-User"); id != "" {
				req = req.WithContext(reqctx.WithPrincipal(req.Context(), reqctx.Principal{
					ID: id, Kind: events.ActorUser, OrgID: req.Header.Get("X-Test-Org"), Role: req.Header.Get("X-Test-Role")}))
			}
			next.ServeHTTP(w, req)
		})
	})
	routes.MountLogs(r, routes.Deps{NC: nc, Log: slog.New(slog.DiscardHandler)})
	routes.MountAgentMetrics(r, routes.Deps{NC: nc, Log: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &logsEnv{srv: srv, nc: nc, stub: stub}
}

func (e *logsEnv) get(t *testing.T, role, org, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	if role != "" {
		req.Header.Set("X-Test-User", "u1")
		req.Header.Set("X-Test-Org", org)
		req.Header.Set("X-Test-Role", role)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogsSearchRoute(t *testing.T) {
	e := logsServer(t, 5)
	resp := e.get(t, "viewer", "org1", "/logs?agent_id=a1&container=web&source=nginx&level=error,warn&q=timeout&regex=took%20%5Cd%2Bms&from=2026-11-29T10:00:00%2B01:00&to=2026-11-29T12:00:00Z&limit=20&cursor=3&org_id=evil")
	if b := body(t, resp); resp.StatusCode != 200 || !strings.Contains(b, `"line 3"`) {
		t.Fatalf("search: %d %s", resp.StatusCode, b)
	}
	org, q := e.stub.last(t)
	want := events.LogsQueryRequest{AgentID: "a1", Container: "web", Source: "nginx", Level: "error,warn", Q: "timeout", Regex: `took \d+ms`,
		From: "2026-11-29T09:00:00Z", To: "2026-11-29T12:00:00Z", Limit: 20, Cursor: "3"}
	if org != "org1" || q != want {
		t.Fatalf("request: org %q %+v", org, q)
	}
	for _, c := range []struct {
		role, path string
		status     int
		field      string
	}{
		{"", "/logs", 401, ""},
		{"viewer", "/logs?limit=5000", 400, "limit"},
		{"viewer", "/logs?source=kernel", 400, "source"},
		{"viewer", "/logs?level=loud", 400, "level"},
		{"viewer", "/logs?regex=a(b", 400, "regex"},
		{"viewer", "/logs?from=yesterday", 400, "from"},
		{"viewer", "/logs?agent_id=a.*", 400, "agent_id"},
		{"viewer", "/logs/export?format=xml", 400, "format"},
		{"viewer", "/logs/stream?regex=a(b", 400, "regex"},
	} {
		resp := e.get(t, c.role, "org1", c.path)
		b := body(t, resp)
		if resp.StatusCode != c.status || !strings.Contains(b, c.field) {
			t.Errorf("%s %s: %d %s", c.role, c.path, resp.StatusCode, b)
		}
	}
	if resp := e.get(t, "viewer", "org1", "/logs/retention"); resp.StatusCode != 200 || !strings.Contains(body(t, resp), `"plan":"free"`) {
		t.Fatalf("retention: %d", resp.StatusCode)
	}
	resp = e.get(t, "viewer", "org1", "/agents/a7/metrics?from=2026-11-29T10:00:00Z&container=web&step=300")
	if b := body(t, resp); resp.StatusCode != 200 || !strings.Contains(b, `"agent_id":"a7"`) {
		t.Fatalf("metrics: %d %s", resp.StatusCode, b)
	}
	if m := e.stub.metrics[len(e.stub.metrics)-1]; m.AgentID != "a7" || m.Container != "web" || m.StepSeconds != 300 || m.From != "2026-11-29T10:00:00Z" {
		t.Fatalf("metrics request: %+v", m)
	}
	if resp := e.get(t, "viewer", "org1", "/agents/a7/metrics?step=61"); resp.StatusCode != 400 {
		t.Fatalf("bad step: %d", resp.StatusCode)
	}
}

func TestLogsExportRoute(t *testing.T) {
	e := logsServer(t, 2500)
	t.Run("jsonl", func(t *testing.T) {
		resp := e.get(t, "viewer", "org1", "/logs/export?format=jsonl&level=info")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
		}
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for sc.Scan() {
			var l events.LogEntry
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.ID != strconv.Itoa(n) {
				t.Fatalf("line %d: %s %v", n, sc.Text(), err)
			}
			n++
		}
		if n != 2500 {
			t.Fatalf("exported %d lines, want 2500", n)
		}
		if resp.Trailer.Get("X-Export-Lines") != "2500" || resp.Trailer.Get("X-Export-Truncated") != "false" {
			t.Fatalf("trailers: %v", resp.Trailer)
		}
	})
	t.Run("csv", func(t *testing.T) {
		resp := e.get(t, "viewer", "org1", "/logs/export?format=csv")
		rows, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2501 || rows[0][0] != "time" || rows[1][10] != "line 0" {
			t.Fatalf("csv: %d rows, header %v, first %v", len(rows), rows[0], rows[1])
		}
		if rows[2][10] != `'=HYPERLINK("http://evil")` {
			t.Fatalf("formula cell not defused: %q", rows[2][10])
		}
	})
	// The export pages through the query operation: no reply carries it
	// whole.
	e.stub.mu.Lock()
	defer e.stub.mu.Unlock()
	for i, q := range e.stub.queries {
		if q.Limit != events.LogsMaxLimit || e.stub.replies[i] > 1<<20 {
			t.Fatalf("query %d: limit %d, %d bytes", i, q.Limit, e.stub.replies[i])
		}
	}
}

// tailClient dials the live tail as a user of org.
func tailClient(t *testing.T, e *logsEnv, org, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("X-Test-User", "u1")
	h.Set("X-Test-Org", org)
	h.Set("X-Test-Role", "viewer")
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/logs/stream?"+query, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	if m := read(t, c); m["ready"] != true {
		t.Fatalf("first message: %v", m)
	}
	return c
}

func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func publishBatch(t *testing.T, nc *nats.Conn, org, agent string, b any) {
	t.Helper()
	data, _ := json.Marshal(b)
	if err := nc.Publish(events.AgentLogs(org, agent), data); err != nil {
		t.Fatal(err)
	}
}

func TestLogsLiveTail(t *testing.T) {
	e := logsServer(t, 0)
	c := tailClient(t, e, "org1", "level=error,warn&container=web")
	now := time.Now().UTC()
	batch := func(container string, texts ...string) events.AgentLogBatch {
		b := events.AgentLogBatch{V: 1, Container: container, Name: container}
		for _, s := range texts {
			b.Lines = append(b.Lines, events.LogLine{Time: now, Stream: "stdout", Text: s})
		}
		return b
	}
	publishBatch(t, e.nc, "org2", "a1", batch("web", "ERROR other org's line"))
	publishBatch(t, e.nc, "org1", "a1", batch("db", "ERROR other container"))
	publishBatch(t, e.nc, "org1", "a1", batch("web", "INFO fine", `{"level":"error","msg":"boom"}`, "WARN slow"))
	nginx := events.NginxLogBatch{Source: "nginx", AgentLogBatch: batch("web", `1.2.3.4 - - [29/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 503 1 "-" "x"`)}
	publishBatch(t, e.nc, "org1", "a2", nginx)
	var got []string
	for range 3 {
		m := read(t, c)
		got = append(got, fmt.Sprintf("%s %s %s %s", m["agent_id"], m["source"], m["level"], m["line"]))
	}
	want := []string{`a1 container error {"level":"error","msg":"boom"}`, "a1 container warn WARN slow",
		`a2 nginx error 1.2.3.4 - - [29/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 503 1 "-" "x"`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tail:\n got %q\nwant %q", got, want)
	}
}

// TestLogsLiveTailSlowClient: a client that stops reading loses lines and
// is told how many, the gateway's buffer stays bounded, and every line is
// either delivered or counted as dropped.
func TestLogsLiveTailSlowClient(t *testing.T) {
	e := logsServer(t, 0)
	c := tailClient(t, e, "org1", "")
	line := strings.Repeat("x", 2000)
	const batches, per = 100, 200 // 20000 lines, 40 MB: more than socket buffers hold
	for i := range batches {
		b := events.AgentLogBatch{V: 1, Container: "web"}
		for j := range per {
			b.Lines = append(b.Lines, events.LogLine{Time: time.Now(), Stream: "stdout", Text: fmt.Sprintf("%d-%d %s", i, j, line)})
		}
		publishBatch(t, e.nc, "org1", "a1", b)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Now read everything, slowly at first.
	time.Sleep(500 * time.Millisecond) // the client is slow on purpose: this is the behaviour under test, not a wait for an effect
	var delivered, dropped, notices int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for delivered+dropped < batches*per {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after %d delivered, %d dropped: %v", delivered, dropped, err)
		}
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		if n, ok := m["dropped"].(float64); ok {
			if _, lostBatches := m["dropped_batches"]; lostBatches {
				t.Fatalf("NATS dropped whole batches: %v", m)
			}
			dropped += int(n)
			notices++
			continue
		}
		delivered++
	}
	if dropped == 0 || notices == 0 || delivered < routes.TailBuffer {
		t.Fatalf("delivered %d, dropped %d in %d notices", delivered, dropped, notices)
	}
	t.Logf("delivered %d, dropped %d in %d notices", delivered, dropped, notices)
}
