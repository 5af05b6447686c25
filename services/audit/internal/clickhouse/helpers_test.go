package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// testURL is the ClickHouse the tests run against. It is required: CI
// starts one with deploy/test/clickhouse.sh, and a missing server must fail
// the suite, not skip it silently.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("INFRAPILOT_TEST_CLICKHOUSE_URL")
	if u == "" {
		t.Fatal("INFRAPILOT_TEST_CLICKHOUSE_URL is not set: export INFRAPILOT_TEST_CLICKHOUSE_URL=$(deploy/test/clickhouse.sh start)")
	}
	return u
}

// testStore opens a store on a fresh database, dropped when the test ends.
func testStore(t testing.TB) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	base := testURL(t)
	admin, err := Open(ctx, Config{URL: base})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "audit_test_" + hex.EncodeToString(b)
	if err := admin.conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		_ = admin.Close()
	})
	url := withDatabase(t, base, db)
	s, err := Open(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Schema(ctx); err != nil {
		t.Fatal(err)
	}
	return s, url
}

// withDatabase replaces the database (path) of a clickhouse:// URL.
func withDatabase(t testing.TB, url, db string) string {
	t.Helper()
	rest, query, _ := strings.Cut(url, "?")
	i := strings.Index(rest, "://")
	slash := strings.Index(rest[i+3:], "/")
	if slash >= 0 {
		rest = rest[:i+3+slash]
	}
	out := rest + "/" + db
	if query != "" {
		out += "?" + query
	}
	return out
}

// chain builds n linked entries of org, one a minute from start, with
// actions cycling through actions.
func chain(t testing.TB, org string, n int, start time.Time, actions ...string) []events.AuditEntry {
	t.Helper()
	if len(actions) == 0 {
		actions = []string{"tenancy.member.added"}
	}
	prev := events.GenesisHash
	out := make([]events.AuditEntry, n)
	for i := range out {
		e := events.AuditEntry{
			OrgID: org, Index: uint64(i + 1), PrevHash: prev, EventID: fmt.Sprintf("%s-evt-%d", org, i+1),
			Time:     start.Add(time.Duration(i)*time.Minute + 123456789).UTC().Format(time.RFC3339Nano),
			Actor:    events.Actor{Kind: events.ActorUser, ID: fmt.Sprintf("usr_%d", i%3), IP: "203.0.113.7", UserAgent: "ua \"x\"\n"},
			Action:   actions[i%len(actions)],
			Resource: events.AuditResource{Type: "org", ID: org}, Outcome: events.OutcomeSuccess,
			Details: json.RawMessage(fmt.Sprintf(`{"user_id":"usr_%d","note":"é \u0000 ' \\"}`, i)),
		}
		if i%4 == 3 {
			e.Outcome = events.OutcomeDenied
		}
		h, err := e.ComputeHash()
		if err != nil {
			t.Fatal(err)
		}
		e.Hash, prev = h, h
		out[i] = e
	}
	return out
}

func collect(t testing.TB, s *Store, org string, from, to time.Time) []events.AuditEntry {
	t.Helper()
	var out []events.AuditEntry
	for e, err := range s.Entries(context.Background(), org, from, to) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// rawCount counts the table's rows, duplicates included.
func rawCount(t testing.TB, s *Store) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(), "SELECT count() FROM "+s.table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
