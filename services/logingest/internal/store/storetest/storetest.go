// Package storetest is the contract suite of the log store port: every
// adapter runs it (the way watermill's universal Pub/Sub tests run against
// every Pub/Sub), so that both stores answer every query the same way.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
)

// Factory returns a fresh, empty store for one test.
type Factory func(t *testing.T) store.Store

// Run runs the whole suite against the stores new returns.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"InsertIsIdempotent", testInsertIdempotent},
		{"ConcurrentDuplicateInserts", testConcurrentDuplicates},
		{"OrderNewestFirst", testOrder},
		{"Filters", testFilters},
		{"TimeBounds", testTimeBounds},
		{"CursorPagination", testPagination},
		{"TenantSeparation", testTenants},
		{"RoundTrip", testRoundTrip},
		{"Regex", testRegex},
		{"RegexScanBudget", testRegexBudget},
		{"QueryBounds", testQueryBounds},
		{"Retention", testRetention},
		{"DropBefore", testDropBefore},
		{"Rollups", testRollups},
		{"RollupDuplicates", testRollupDuplicates},
		{"MetricsRetention", testMetricsRetention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// base is a fixed instant well inside every retention window of the tests
// that do not set their own clock.
var base = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// line builds a line of org/agent/container at base+offset.
func line(org, agent, container string, offset time.Duration, stream string, seq uint32, level, raw string) store.Line {
	return store.Line{OrgID: org, AgentID: agent, Source: "container", Container: container, ContainerName: "name-" + container,
		Time: base.Add(offset), Stream: stream, Seq: seq, Level: level, Raw: raw}
}

func insert(t *testing.T, s store.Store, lines ...store.Line) {
	t.Helper()
	if err := s.InsertLines(ctxT(t), lines); err != nil {
		t.Fatal(err)
	}
}

// all lists every line of org in the suite's wide window, newest first.
func all(t *testing.T, s store.Store, f store.Filter) []store.Line {
	t.Helper()
	if f.From.IsZero() {
		f.From, f.To = base.Add(-48*time.Hour), base.Add(48*time.Hour)
	}
	if f.Limit == 0 {
		f.Limit = 10000
	}
	got, err := s.QueryLines(ctxT(t), f)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func raws(lines []store.Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Raw
	}
	return out
}

func wantRaws(t *testing.T, what string, got []store.Line, want ...string) {
	t.Helper()
	if g := raws(got); !slices.Equal(g, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, g, want)
	}
}

// numbered makes n lines of one container, one per millisecond, raw
// "<prefix> <i>", oldest first.
func numbered(org, agent, container, prefix string, n int) []store.Line {
	out := make([]store.Line, n)
	for i := range out {
		out[i] = line(org, agent, container, time.Duration(i)*time.Millisecond, "stdout", 1, "info", fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}
