package pgtest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^t_[a-z0-9_]+_[0-9a-f]{12}$`)
	for _, name := range []string{
		"TestX",
		"TestMigrate/changed_checksum#01",
		"TestÜnïcode/with spaces and 'quotes\"",
		strings.Repeat("TestVeryLongName", 10),
	} {
		got := databaseName(name)
		if !valid.MatchString(got) || len(got) > 63 {
			t.Fatalf("databaseName(%q) = %q", name, got)
		}
	}
	if databaseName("TestX") == databaseName("TestX") {
		t.Fatal("two databases of one test share a name")
	}
}

func TestNewAndURLShareOneDatabaseDroppedAtEnd(t *testing.T) {
	t.Parallel()
	var dbName string
	var leaked *pgx.Conn
	t.Run("inner", func(t *testing.T) {
		ctx := context.Background()
		a := New(t, "svc_a")
		b := New(t, "svc_b")
		u := URL(t)
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var viaA, viaB, viaURL string
		for _, q := range []struct {
			dst  *string
			scan func(...any) error
		}{
			{&viaA, a.QueryRow(ctx, `SELECT current_database()`).Scan},
			{&viaB, b.QueryRow(ctx, `SELECT current_database()`).Scan},
			{&viaURL, conn.QueryRow(ctx, `SELECT current_database()`).Scan},
		} {
			if err := q.scan(q.dst); err != nil {
				t.Fatal(err)
			}
		}
		if viaA != viaB || viaA != viaURL || !strings.HasPrefix(viaA, "t_testnewandurlshareonedatabase") {
			t.Fatalf("databases: %q, %q, %q", viaA, viaB, viaURL)
		}
		var schema string
		if err := b.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil || schema != "svc_b" {
			t.Fatalf("current_schema = %q, %v", schema, err)
		}
		dbName = viaA
		// A connection left open must not stop the drop (WITH (FORCE)).
		leaked, err = pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
	})
	if leaked != nil {
		leaked.Close(context.Background())
	}

	var exists bool
	if err := adminQueryRow(`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, dbName).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after its test ended", dbName)
	}
}

func TestSubtestsGetTheirOwnDatabase(t *testing.T) {
	t.Parallel()
	parent := URL(t)
	t.Run("child", func(t *testing.T) {
		if URL(t) == parent {
			t.Fatal("a subtest shares its parent's database")
		}
	})
}

// fakeTB records Fatalf instead of ending the real test.
type fakeTB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return "TestFake" }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestMissingURLFailsClearly(t *testing.T) {
	t.Setenv(EnvURL, "")
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(f, "svc")
		t.Error("New returned without a server URL")
	}()
	<-done
	for _, want := range []string{EnvURL, "go tool task deps"} {
		if !strings.Contains(f.fatal, want) {
			t.Fatalf("fatal message %q does not mention %q", f.fatal, want)
		}
	}
}

func adminQueryRow(sql string, args ...any) pgx.Row {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	conn, err := pgx.Connect(ctx, os.Getenv(EnvURL))
	if err != nil {
		cancel()
		return errRow{err}
	}
	return closingRow{conn.QueryRow(ctx, sql, args...), conn, cancel}
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type closingRow struct {
	row    pgx.Row
	conn   *pgx.Conn
	cancel context.CancelFunc
}

func (r closingRow) Scan(dst ...any) error {
	defer r.cancel()
	defer r.conn.Close(context.Background())
	return r.row.Scan(dst...)
}
