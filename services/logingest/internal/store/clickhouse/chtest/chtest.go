// Package chtest gives tests a ClickHouse log store on a private database
// of the server named by INFRAPILOT_TEST_CLICKHOUSE_URL (start one with
// `export INFRAPILOT_TEST_CLICKHOUSE_URL=$(deploy/test/clickhouse.sh start)`).
// Without the variable the test fails: a test that skips would pass
// without testing anything.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/infrapilot/infrapilot/services/logingest/internal/store/clickhouse"
)

// EnvURL names the variable holding the test server's native URL.
const EnvURL = "INFRAPILOT_TEST_CLICKHOUSE_URL"

// URL creates a fresh database on the test server, dropped when the test
// ends, and returns the URL of it.
func URL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvURL)
	if admin == "" {
		t.Fatalf("chtest: %s is not set and this test needs a real ClickHouse: "+
			"export %s=$(deploy/test/clickhouse.sh start)", EnvURL, EnvURL)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	db := "t_logingest_" + hex.EncodeToString(b[:])
	exec(t, admin, "CREATE DATABASE "+db)
	t.Cleanup(func() { exec(t, admin, "DROP DATABASE IF EXISTS "+db) })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("chtest: %s: %v", EnvURL, err)
	}
	u.Path = "/" + db
	return u.String()
}

// New returns a store on a fresh database.
func New(t *testing.T) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := clickhouse.Open(ctx, URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func exec(t testing.TB, dsn, q string) {
	t.Helper()
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	conn, err := ch.Open(opts)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, q); err != nil {
		t.Fatalf("chtest: %s: %v", q, err)
	}
}
