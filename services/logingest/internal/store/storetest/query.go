package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/logingest/internal/query"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

func service(s store.Store, cfg query.Config) *query.Service {
	cfg.Now = func() time.Time { return base.Add(time.Hour) }
	return query.New(s, cfg)
}

func items(p events.LogsPage) []string {
	out := make([]string, len(p.Items))
	for i, e := range p.Items {
		out[i] = e.Line
	}
	return out
}

func testRegex(t *testing.T, s store.Store) {
	insert(t, s,
		line("o1", "a1", "c1", 1*time.Second, "stdout", 1, "info", "request took 120ms"),
		line("o1", "a1", "c1", 2*time.Second, "stdout", 1, "info", "Request took 5ms"),
		line("o1", "a1", "c1", 3*time.Second, "stdout", 1, "info", "request failed"),
		line("o1", "a1", "c1", 4*time.Second, "stdout", 1, "info", "ERROR code=E42"),
		line("o1", "a1", "c1", 5*time.Second, "stdout", 1, "info", "error code=e7"),
	)
	q := service(s, query.Config{})
	for _, c := range []struct {
		re   string
		want []string
	}{
		{`took \d+ms`, []string{"Request took 5ms", "request took 120ms"}},
		{`^request took \d{3}ms$`, []string{"request took 120ms"}},
		{`(?i)^request`, []string{"request failed", "Request took 5ms", "request took 120ms"}},
		{`(?i)error code=e\d+`, []string{"error code=e7", "ERROR code=E42"}},
		{`failed|5ms`, []string{"request failed", "Request took 5ms"}},
		{`nomatch`, nil},
	} {
		page, err := q.Logs(ctxT(t), "o1", events.LogsQueryRequest{Regex: c.re, From: base.Format(time.RFC3339)})
		if err != nil {
			t.Fatalf("%s: %v", c.re, err)
		}
		if fmt.Sprint(items(page)) != fmt.Sprint(c.want) || page.NextCursor != "" {
			t.Errorf("regex %s: got %q (next %q), want %q", c.re, items(page), page.NextCursor, c.want)
		}
	}
	if _, err := q.Logs(ctxT(t), "o1", events.LogsQueryRequest{Regex: `a(b`}); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("invalid regex: %v", err)
	}
}

func testRegexBudget(t *testing.T, s store.Store) {
	lines := numbered("o1", "a1", "c1", "noise", 95)
	for i := range lines {
		if i%30 == 0 {
			lines[i].Raw = fmt.Sprintf("needle %d", i)
		}
	}
	insert(t, s, lines...)
	q := service(s, query.Config{RegexScanBudget: 20, ScanPage: 8})
	var got []string
	// No literal the store could pre-filter on: the service scans.
	req := events.LogsQueryRequest{Regex: `^(needle|NEEDLE) \d+$`, From: base.Format(time.RFC3339), Limit: 2}
	pages := 0
	for ; pages < 20; pages++ {
		page, err := q.Logs(ctxT(t), "o1", req)
		if err != nil {
			t.Fatal(err)
		}
		if page.Scanned > 20 {
			t.Fatalf("scanned %d, budget 20", page.Scanned)
		}
		got = append(got, items(page)...)
		if page.NextCursor == "" {
			break
		}
		req.Cursor = page.NextCursor
	}
	if want := []string{"needle 90", "needle 60", "needle 30", "needle 0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("regex across budget-bounded pages: got %q, want %q", got, want)
	}
	if pages < 4 {
		t.Fatalf("only %d pages: the budget did not bound a request", pages+1)
	}
}

func testQueryBounds(t *testing.T, s store.Store) {
	insert(t, s, numbered("o1", "a1", "c1", strings.Repeat("x", 1000), 50)...)
	q := service(s, query.Config{MaxReplyBytes: 10_000})
	for _, c := range []struct {
		name  string
		req   events.LogsQueryRequest
		field string
	}{
		{"range too wide", events.LogsQueryRequest{From: base.Add(-40 * 24 * time.Hour).Format(time.RFC3339)}, "from"},
		{"from after to", events.LogsQueryRequest{From: base.Format(time.RFC3339), To: base.Add(-time.Second).Format(time.RFC3339)}, "from"},
		{"limit too big", events.LogsQueryRequest{Limit: 1001}, "limit"},
		{"bad level", events.LogsQueryRequest{Level: "error,loud"}, "level"},
		{"bad source", events.LogsQueryRequest{Source: "kernel"}, "source"},
		{"bad time", events.LogsQueryRequest{To: "yesterday"}, "to"},
		{"bad cursor", events.LogsQueryRequest{Cursor: "!!"}, "cursor"},
		{"bad agent", events.LogsQueryRequest{AgentID: "a.>"}, "agent_id"},
		{"long q", events.LogsQueryRequest{Q: strings.Repeat("q", 2000)}, "q"},
	} {
		_, err := q.Logs(ctxT(t), "o1", c.req)
		e := events.AsError(err)
		if e.Code != events.CodeInvalid || len(e.Fields) == 0 || e.Fields[0].Field != c.field {
			t.Errorf("%s: %v %+v", c.name, err, e.Fields)
		}
	}
	// Replies stop before MaxReplyBytes, with a cursor, and paging goes on.
	req := events.LogsQueryRequest{From: base.Format(time.RFC3339), Limit: 1000}
	total, pages := 0, 0
	for ; pages < 100; pages++ {
		page, err := q.Logs(ctxT(t), "o1", req)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) == 0 || len(page.Items) > 9 {
			t.Fatalf("page of %d items of 1000+ bytes under a 10000-byte bound", len(page.Items))
		}
		total += len(page.Items)
		if page.NextCursor == "" {
			break
		}
		req.Cursor = page.NextCursor
	}
	if total != 50 {
		t.Fatalf("paged %d lines, want 50", total)
	}
	// The default range is the last 24 hours before now (base+1h).
	insert(t, s, line("o1", "a1", "old", -30*time.Hour, "stdout", 1, "info", "old"))
	page, err := q.Logs(ctxT(t), "o1", events.LogsQueryRequest{Container: "old"})
	if err != nil || len(page.Items) != 0 {
		t.Fatalf("default range reached a line 31h old: %v %v", items(page), err)
	}
}
