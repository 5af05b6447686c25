// Package pgtest gives tests of other packages a real, private PostgreSQL
// database.
//
// It needs a running server whose superuser URL is in
// INFRAPILOT_TEST_PG_URL (`go tool task test` and CI start one with
// deploy/test/postgres.sh and set it). Each test
// gets a fresh database, created on first use and dropped when the test
// ends; New opens a schema in it the way a service does in production (one
// database, a schema per service), so several New calls in one test share
// the database with one schema each. Without the variable the test fails:
// a database test that skips would pass without testing anything.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the environment variable holding the superuser URL of the
// test server.
const EnvURL = "INFRAPILOT_TEST_PG_URL"

// opTimeout bounds creating and dropping a test database.
const opTimeout = 30 * time.Second

// dbs maps a running test to the URL of its database.
var dbs sync.Map // testing.TB -> string

// New opens a pool on schema (created if missing) in the test's fresh
// database; the pool is closed when the test ends, before the database is
// dropped.
func New(t testing.TB, schema string) *pgxpool.Pool {
	t.Helper()
	u := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := pg.Open(ctx, u, schema, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// URL returns the URL of the test's fresh database, creating the database
// on the first call in a test (New calls it too, so both see the same
// database). The database is dropped, with FORCE, when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	if u, ok := dbs.Load(t); ok {
		return u.(string)
	}
	admin := os.Getenv(EnvURL)
	if admin == "" {
		t.Fatalf("pgtest: %s is not set and this test needs a real PostgreSQL. Run the tests with `go tool task test`; "+
			"or start the test server with `go tool task deps` and `export %s=$(deploy/test/postgres.sh start)` (the script prints the URL); "+
			"or set %s to a superuser URL of any running server, e.g. postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable", EnvURL, EnvURL, EnvURL)
	}
	name := databaseName(t.Name())
	u, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	if err := adminExec(admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	dbs.Store(t, u)
	t.Cleanup(func() {
		dbs.Delete(t)
		// FORCE ends sessions a test left open (a leaked pool, a
		// subprocess), so a failing test still cleans up.
		if err := adminExec(admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return u
}

// databaseName derives a database name from a test name: "t_", the test
// name lowercased with every other character turned into "_", cut so the
// whole stays within Postgres's 63-byte limit, and a random suffix so
// reruns, -count=N and parallel packages never collide.
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	base := b.String()
	if len(base) > 44 {
		base = base[:44]
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails
	return "t_" + base + "_" + hex.EncodeToString(suffix[:])
}

// withDatabase returns the admin connection string pointed at database db.
func withDatabase(admin, db string) (string, error) {
	if _, err := pgx.ParseConfig(admin); err != nil {
		return "", fmt.Errorf("invalid URL: %w", err)
	}
	if strings.HasPrefix(admin, "postgres://") || strings.HasPrefix(admin, "postgresql://") {
		u, err := url.Parse(admin)
		if err != nil {
			return "", err
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	// key=value form: a later key overrides an earlier one.
	return admin + " dbname=" + db, nil
}

// adminExec runs one statement on a short-lived superuser connection.
func adminExec(admin, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}
