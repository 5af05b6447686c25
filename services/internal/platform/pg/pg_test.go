package pg_test

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestValidateSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"billing", true},
		{"_private", true},
		{"svc_2", true},
		{"", false},
		{"Billing", false},
		{"2svc", false},
		{"svc-a", false},
		{`svc"; DROP SCHEMA public; --`, false},
		{"pg_catalog", false},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("a", 63), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pg.ValidateSchema(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateSchema(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

func TestOpenSetsSearchPathAndCreatesSchema(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool, err := pg.Open(ctx, pgtest.URL(t), "svc_open", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	var searchPath, current, app string
	if err := pool.QueryRow(ctx, `SELECT current_setting('search_path'), current_schema(), current_setting('application_name')`).
		Scan(&searchPath, &current, &app); err != nil {
		t.Fatal(err)
	}
	if searchPath != `"svc_open"` || current != "svc_open" {
		t.Fatalf("search_path = %q, current_schema = %q; want svc_open", searchPath, current)
	}
	if app != "infrapilot/svc_open" {
		t.Fatalf("application_name = %q", app)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE things (id int)`); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT table_schema FROM information_schema.tables WHERE table_name = 'things'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != "svc_open" {
		t.Fatalf("unqualified table landed in %q", schema)
	}
	if err := pg.Ping(ctx, pool); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got := pool.Config().MaxConns; got != 8 {
		t.Fatalf("MaxConns = %d, want the default 8", got)
	}
}

func TestOpenURLOverridesPoolDefaults(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "3")
	u.RawQuery = q.Encode()
	pool, err := pg.Open(ctx, u.String(), "svc_conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if got := pool.Config().MaxConns; got != 3 {
		t.Fatalf("MaxConns = %d, want 3 from the URL", got)
	}
}

// Replicas starting together all create the schema; none may fail.
func TestOpenConcurrentSchemaCreation(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	u := pgtest.URL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			pool, err := pg.Open(ctx, u, "svc_race", nil)
			if err == nil {
				pool.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRejectsBadSchema(t *testing.T) {
	t.Parallel()
	_, err := pg.Open(ctxT(t), "postgres://u@127.0.0.1:1/db", "Bad-Name", nil)
	if err == nil || !strings.Contains(err.Error(), "invalid schema name") {
		t.Fatalf("err = %v", err)
	}
}

// A failed connection names host, port, database and user, never the
// password.
func TestOpenErrorHidesPassword(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"refused", "postgres://alice:s3cr3tpw@" + addr + "/orders?sslmode=disable&connect_timeout=2",
			[]string{addr + "/orders as alice"}},
		{"bad port", "postgres://alice:s3cr3tpw@127.0.0.1:notaport/orders", []string{"invalid database URL"}},
		{"bad option", "postgres://alice:s3cr3tpw@127.0.0.1:5432/orders?sslmode=bogus", []string{"invalid database URL"}},
		{"key value", "host=127.0.0.1 user=alice password=s3cr3tpw sslmode=bogus", []string{"invalid database URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pg.Open(ctxT(t), tc.url, "svc", nil)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "s3cr3tpw") {
				t.Fatalf("error leaks the password: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestPingFailsOnClosedPool(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := pgtest.New(t, "svc_ping")
	if err := pg.Ping(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	if err := pg.Ping(ctx, pool); err == nil {
		t.Fatal("Ping on a closed pool succeeded")
	}
}

// Two services in one database: same table name, separate data and
// separate migration history.
func TestSchemasIsolate(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	a := pgtest.New(t, "svc_a")
	b := pgtest.New(t, "svc_b")
	fsys := fsOf(map[string]string{"0001_items.sql": `CREATE TABLE items (id int PRIMARY KEY, owner text);`})
	if n, err := pg.Migrate(ctx, a, "svc_a", fsys); err != nil || n != 1 {
		t.Fatalf("migrate svc_a: %d, %v", n, err)
	}
	if n, err := pg.Migrate(ctx, b, "svc_b", fsys); err != nil || n != 1 {
		t.Fatalf("migrate svc_b: %d, %v (each schema has its own history)", n, err)
	}
	if _, err := a.Exec(ctx, `INSERT INTO items VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("svc_b sees %d rows of svc_a's items", n)
	}
	if err := a.QueryRow(ctx, `SELECT count(*) FROM svc_a.items`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("svc_a.items: %d, %v", n, err)
	}
}
