package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

func testInsertIdempotent(t *testing.T, s store.Store) {
	lines := numbered("o1", "a1", "c1", "line", 50)
	insert(t, s, lines...)
	// Again whole, then in other groupings, overlapping new lines.
	insert(t, s, lines...)
	insert(t, s, lines[10:30]...)
	more := numbered("o1", "a1", "c1", "line", 60)
	insert(t, s, append(more[45:], more[:5]...)...)
	// A duplicate inside one batch.
	insert(t, s, more[59], more[59])
	got := all(t, s, store.Filter{OrgID: "o1"})
	if len(got) != 60 {
		t.Fatalf("got %d lines, want 60", len(got))
	}
	seen := map[store.Cursor]bool{}
	for _, l := range got {
		if seen[l.Key()] {
			t.Fatalf("line %q stored twice", l.Raw)
		}
		seen[l.Key()] = true
	}
	// Same time and stream, different seq: distinct lines.
	insert(t, s, line("o1", "a1", "c2", 0, "stdout", 1, "info", "first"), line("o1", "a1", "c2", 0, "stdout", 2, "info", "second"),
		line("o1", "a1", "c2", 0, "stderr", 1, "info", "third"))
	if got := all(t, s, store.Filter{OrgID: "o1", Container: "c2"}); len(got) != 3 {
		t.Fatalf("lines sharing a timestamp: got %d, want 3", len(got))
	}
}

func testConcurrentDuplicates(t *testing.T, s store.Store) {
	lines := numbered("o1", "a1", "c1", "dup", 200)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- s.InsertLines(ctxT(t), lines) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := all(t, s, store.Filter{OrgID: "o1"})
	if len(got) != 200 {
		t.Fatalf("got %d lines after racing inserts, want 200", len(got))
	}
	// Paging reads each line exactly once too.
	var paged []store.Line
	f := store.Filter{OrgID: "o1", From: base.Add(-time.Hour), To: base.Add(time.Hour), Limit: 7}
	for {
		page, err := s.QueryLines(ctxT(t), f)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < f.Limit {
			break
		}
		k := page[len(page)-1].Key()
		f.After = &k
	}
	if len(paged) != 200 {
		t.Fatalf("paged %d lines, want 200", len(paged))
	}
}

func testOrder(t *testing.T, s store.Store) {
	insert(t, s,
		line("o1", "a1", "c1", time.Second, "stdout", 1, "info", "t1 a1 c1 out 1"),
		line("o1", "a1", "c1", time.Second, "stdout", 2, "info", "t1 a1 c1 out 2"),
		line("o1", "a1", "c1", time.Second, "stderr", 1, "info", "t1 a1 c1 err 1"),
		line("o1", "a1", "c2", time.Second, "stdout", 1, "info", "t1 a1 c2 out 1"),
		line("o1", "a2", "c1", time.Second, "stdout", 1, "info", "t1 a2 c1 out 1"),
		line("o1", "a1", "c1", time.Second+time.Nanosecond, "stdout", 1, "info", "t1+1ns"),
		line("o1", "a1", "c1", 0, "stdout", 1, "info", "t0"),
	)
	n := line("o1", "a1", "c1", time.Second, "stdout", 1, "info", "")
	n.Source = "nginx"
	n.Raw = "t1 a1 nginx c1 out 1"
	insert(t, s, n)
	wantRaws(t, "newest first, ties by agent, source, container, stream, seq descending", all(t, s, store.Filter{OrgID: "o1"}),
		"t1+1ns", "t1 a2 c1 out 1", "t1 a1 nginx c1 out 1", "t1 a1 c2 out 1", "t1 a1 c1 out 2", "t1 a1 c1 out 1", "t1 a1 c1 err 1", "t0")
}

func testFilters(t *testing.T, s store.Store) {
	l := func(agent, container, name, source, level, raw string, i int) store.Line {
		x := line("o1", agent, container, time.Duration(i)*time.Second, "stdout", 1, level, raw)
		x.ContainerName, x.Source = name, source
		return x
	}
	insert(t, s,
		l("a1", "abcdef123456", "web", "container", "info", "GET / 200", 1),
		l("a1", "abcdef123456", "web", "container", "error", "Database ERROR: timeout", 2),
		l("a1", "0987654321ff", "db", "container", "warn", "slow query took 120ms", 3),
		l("a2", "abcdef999999", "web", "container", "debug", "debug noise 50%_done", 4),
		l("a2", "nginx1", "proxy", "nginx", "warn", `GET /missing 404`, 5),
		l("a2", "nginx1", "proxy", "nginx", "error", `upstream timed out`, 6),
	)
	for _, c := range []struct {
		name string
		f    store.Filter
		want []string
	}{
		{"agent", store.Filter{AgentID: "a2"}, []string{"upstream timed out", "GET /missing 404", "debug noise 50%_done"}},
		{"container id", store.Filter{Container: "abcdef123456"}, []string{"Database ERROR: timeout", "GET / 200"}},
		{"container id prefix", store.Filter{Container: "abcdef"}, []string{"debug noise 50%_done", "Database ERROR: timeout", "GET / 200"}},
		{"container name", store.Filter{Container: "db"}, []string{"slow query took 120ms"}},
		{"source", store.Filter{Source: "nginx"}, []string{"upstream timed out", "GET /missing 404"}},
		{"one level", store.Filter{Levels: []string{"error"}}, []string{"upstream timed out", "Database ERROR: timeout"}},
		{"levels", store.Filter{Levels: []string{"warn", "debug"}}, []string{"GET /missing 404", "debug noise 50%_done", "slow query took 120ms"}},
		{"substring, any case", store.Filter{Contains: "error"}, []string{"Database ERROR: timeout"}},
		{"substring with LIKE metacharacters", store.Filter{Contains: "50%_"}, []string{"debug noise 50%_done"}},
		{"substring no LIKE meaning", store.Filter{Contains: "%"}, []string{"debug noise 50%_done"}},
		{"literal, case-sensitive", store.Filter{Literals: []string{"error"}}, nil},
		{"literals all required", store.Filter{Literals: []string{"timed", "out"}}, []string{"upstream timed out"}},
		{"literal misses other case", store.Filter{Literals: []string{"database"}}, nil},
		{"combined", store.Filter{AgentID: "a1", Levels: []string{"error", "warn"}, Contains: "query"}, []string{"slow query took 120ms"}},
		{"nothing", store.Filter{AgentID: "a3"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.f.OrgID = "o1"
			wantRaws(t, c.name, all(t, s, c.f), c.want...)
		})
	}
}

func testTimeBounds(t *testing.T, s store.Store) {
	lines := numbered("o1", "a1", "c1", "ms", 10) // base+0ms … base+9ms
	insert(t, s, lines...)
	got := all(t, s, store.Filter{OrgID: "o1", From: base.Add(2 * time.Millisecond), To: base.Add(5 * time.Millisecond)})
	wantRaws(t, "from inclusive, to exclusive", got, "ms 4", "ms 3", "ms 2")
	got = all(t, s, store.Filter{OrgID: "o1", From: base.Add(2*time.Millisecond + 1), To: base.Add(5*time.Millisecond + 1)})
	wantRaws(t, "nanosecond bounds", got, "ms 5", "ms 4", "ms 3")
	got = all(t, s, store.Filter{OrgID: "o1", From: base.Add(-time.Hour), To: base, Limit: 10})
	wantRaws(t, "before the first line", got)
	got = all(t, s, store.Filter{OrgID: "o1", Limit: 4})
	wantRaws(t, "limit", got, "ms 9", "ms 8", "ms 7", "ms 6")
}

func testPagination(t *testing.T, s store.Store) {
	var lines []store.Line
	for i := range 25 {
		// Groups of lines sharing a timestamp, across two agents.
		l := line("o1", fmt.Sprintf("a%d", i%2), "c1", time.Duration(i/4)*time.Second, "stdout", uint32(i/2+1), "info", fmt.Sprintf("p%d", i))
		lines = append(lines, l)
	}
	insert(t, s, lines...)
	want := raws(all(t, s, store.Filter{OrgID: "o1"}))
	if len(want) != 25 {
		t.Fatalf("got %d lines, want 25", len(want))
	}
	for _, size := range []int{1, 3, 7, 25, 30} {
		var got []string
		f := store.Filter{OrgID: "o1", From: base.Add(-time.Hour), To: base.Add(time.Hour), Limit: size}
		for range 100 {
			page, err := s.QueryLines(ctxT(t), f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, raws(page)...)
			if len(page) < size {
				break
			}
			k := page[len(page)-1].Key()
			f.After = &k
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pages of %d:\n got %q\nwant %q", size, got, want)
		}
	}
}

func testTenants(t *testing.T, s store.Store) {
	insert(t, s, numbered("orgA", "a1", "c1", "A secret", 5)...)
	insert(t, s, numbered("orgB", "a1", "c1", "B line", 3)...)
	for _, org := range []string{"orgA", "orgB"} {
		for _, l := range all(t, s, store.Filter{OrgID: org}) {
			if l.OrgID != org {
				t.Fatalf("org %s sees a line of %s: %q", org, l.OrgID, l.Raw)
			}
		}
	}
	if got := all(t, s, store.Filter{OrgID: "orgB", Contains: "secret"}); len(got) != 0 {
		t.Fatalf("org B found org A's lines: %q", raws(got))
	}
	if got := all(t, s, store.Filter{OrgID: "orgC"}); len(got) != 0 {
		t.Fatalf("an org without lines sees %d", len(got))
	}
	// A cursor of another org's line reveals nothing either.
	a := all(t, s, store.Filter{OrgID: "orgA"})
	k := a[0].Key()
	got := all(t, s, store.Filter{OrgID: "orgB", After: &k})
	for _, l := range got {
		if l.OrgID != "orgB" {
			t.Fatal("cursor crossed orgs")
		}
	}
}

func testRoundTrip(t *testing.T, s store.Store) {
	want := store.Line{OrgID: "o1", AgentID: "a1", Source: "nginx", Container: "c1", ContainerName: "proxy", Stack: "edge",
		Time: base.Add(123456789 * time.Nanosecond), Stream: "stderr", Seq: 42, Level: "error",
		Message: "open() failed", Raw: "2026/11/20 12:00:00 [error] 1#1: open() failed — ünïcødé ✓ \"quotes\" 'single' \\back",
		Attrs: map[string]string{"status": "404", "path": "/a b?c=d"}}
	plain := line("o1", "a1", "c9", 0, "stdout", 1, "info", "plain")
	insert(t, s, want, plain)
	got := all(t, s, store.Filter{OrgID: "o1", Container: "c1"})
	if len(got) != 1 {
		t.Fatalf("got %d lines", len(got))
	}
	g := got[0]
	if !g.Time.Equal(want.Time) || g.OrgID != want.OrgID || g.AgentID != want.AgentID || g.Source != want.Source ||
		g.Container != want.Container || g.ContainerName != want.ContainerName || g.Stack != want.Stack || g.Stream != want.Stream ||
		g.Seq != want.Seq || g.Level != want.Level || g.Message != want.Message || g.Raw != want.Raw ||
		fmt.Sprint(g.Attrs) != fmt.Sprint(want.Attrs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", g, want)
	}
	if g.ID() != want.ID() {
		t.Fatal("the line id changed across a round trip")
	}
	if p := all(t, s, store.Filter{OrgID: "o1", Container: "c9"}); len(p) != 1 || len(p[0].Attrs) != 0 || p[0].Message != "" {
		t.Fatalf("plain line: %+v", p)
	}
}
