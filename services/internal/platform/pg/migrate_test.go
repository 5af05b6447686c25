package pg_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/infrapilot/infrapilot/services/internal/platform/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

func fsOf(files map[string]string) fs.FS {
	m := fstest.MapFS{}
	for name, body := range files {
		m[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return m
}

// Each migration depends on the one before it, so applying them out of
// order fails.
var ordered = map[string]string{
	"0001_create_hosts.sql": `CREATE TABLE hosts (id bigint PRIMARY KEY);`,
	"0002_add_name.sql":     "ALTER TABLE hosts ADD COLUMN name text;\nCREATE INDEX hosts_name ON hosts (name);",
	"0003_seed.sql":         `INSERT INTO hosts (id, name) VALUES (1, 'first'), (2, 'second');`,
	"0010_add_note.sql":     `ALTER TABLE hosts ADD COLUMN note text;`,
}

func withGapsFilled(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for _, name := range []string{"0004_a.sql", "0005_b.sql", "0006_c.sql", "0007_d.sql", "0008_e.sql", "0009_f.sql"} {
		out[name] = "SELECT 1;"
	}
	return out
}

type row struct {
	version  int64
	name     string
	checksum string
	at       time.Time
}

func history(t *testing.T, pool *pgxpool.Pool, schema string) []row {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT version, name, checksum, applied_at FROM `+schema+`.schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.version, &r.name, &r.checksum, &r.at); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrateAppliesInOrderAndIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := pgtest.New(t, "svc_m")
	files := withGapsFilled(ordered)

	n, err := pg.Migrate(ctx, pool, "svc_m", fsOf(files))
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Fatalf("applied %d, want 10", n)
	}
	h := history(t, pool, "svc_m")
	if len(h) != 10 {
		t.Fatalf("history has %d rows", len(h))
	}
	for i, r := range h {
		if r.version != int64(i+1) || len(r.checksum) != 64 || r.at.IsZero() {
			t.Fatalf("row %d = %+v", i, r)
		}
	}
	if h[1].name != "0002_add_name.sql" || h[9].name != "0010_add_note.sql" {
		t.Fatalf("names: %q, %q", h[1].name, h[9].name)
	}
	var count int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM hosts WHERE name IS NOT NULL AND note IS NULL`).Scan(&count); err != nil || count != 2 {
		t.Fatalf("hosts: %d, %v", count, err)
	}

	n, err = pg.Migrate(ctx, pool, "svc_m", fsOf(files))
	if err != nil || n != 0 {
		t.Fatalf("second Migrate = %d, %v; want 0, nil", n, err)
	}

	// A later release adds a migration: only it is applied.
	files["0011_more.sql"] = `ALTER TABLE hosts ADD COLUMN more int;`
	n, err = pg.Migrate(ctx, pool, "svc_m", fsOf(files))
	if err != nil || n != 1 {
		t.Fatalf("Migrate with one new file = %d, %v; want 1, nil", n, err)
	}
}

func TestMigrateRejectsChangedChecksum(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := pgtest.New(t, "svc_sum")
	files := map[string]string{
		"0001_create.sql": `CREATE TABLE t (id int);`,
		"0002_index.sql":  `CREATE INDEX t_id ON t (id);`,
	}
	if _, err := pg.Migrate(ctx, pool, "svc_sum", fsOf(files)); err != nil {
		t.Fatal(err)
	}
	files["0002_index.sql"] = `CREATE UNIQUE INDEX t_id ON t (id);`
	files["0003_next.sql"] = `CREATE TABLE must_not_exist (id int);`
	n, err := pg.Migrate(ctx, pool, "svc_sum", fsOf(files))
	if err == nil {
		t.Fatal("Migrate accepted an edited migration")
	}
	if n != 0 || !strings.Contains(err.Error(), "0002_index.sql") || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("Migrate = %d, %v; want an error naming 0002_index.sql", n, err)
	}
	t.Log(err)
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('svc_sum.must_not_exist') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("0003 ran after the checksum error (exists=%v, err=%v)", exists, err)
	}
}

func TestMigrateRejectsBadFiles(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t, "svc_bad")
	ok := "SELECT 1;"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"short version", map[string]string{"001_init.sql": ok}, `"001_init.sql"`},
		{"dash", map[string]string{"0001-init.sql": ok}, `"0001-init.sql"`},
		{"uppercase", map[string]string{"0001_Init.sql": ok}, `"0001_Init.sql"`},
		{"no description", map[string]string{"0001_.sql": ok}, `"0001_.sql"`},
		{"extension", map[string]string{"0001_init.SQL": ok}, `"0001_init.SQL"`},
		{"stray file", map[string]string{"0001_init.sql": ok, "README.md": "x"}, `"README.md"`},
		{"directory", map[string]string{"migrations/0001_init.sql": ok}, `directory "migrations"`},
		{"gap", map[string]string{"0001_a.sql": ok, "0003_c.sql": ok}, "version 2 is missing"},
		{"starts at 2", map[string]string{"0002_b.sql": ok}, "version 1 is missing"},
		{"zero", map[string]string{"0000_a.sql": ok, "0001_b.sql": ok}, `"0000_a.sql": versions start at 0001`},
		{"duplicate", map[string]string{"0001_a.sql": ok, "00001_b.sql": ok}, "same version"},
		{"empty", map[string]string{"0001_a.sql": " \n"}, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := pg.Migrate(ctxT(t), pool, "svc_bad", fsOf(tc.files))
			if err == nil || n != 0 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Migrate = %d, %v; want an error containing %s", n, err, tc.want)
			}
		})
	}
	var exists bool
	if err := pool.QueryRow(ctxT(t), `SELECT to_regclass('svc_bad.schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("bad files touched the database (exists=%v, err=%v)", exists, err)
	}
}

// A failing migration leaves neither its changes nor its record; the ones
// before it stay applied.
func TestMigrateFailureRollsBack(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := pgtest.New(t, "svc_fail")
	files := map[string]string{
		"0001_ok.sql":     `CREATE TABLE ok (id int);`,
		"0002_broken.sql": "CREATE TABLE half (id int);\n\nSELECT no_such_column FROM ok;",
		"0003_after.sql":  `CREATE TABLE after (id int);`,
	}
	n, err := pg.Migrate(ctx, pool, "svc_fail", fsOf(files))
	if err == nil || n != 1 {
		t.Fatalf("Migrate = %d, %v; want 1 and an error", n, err)
	}
	if !strings.Contains(err.Error(), "0002_broken.sql (line 3)") {
		t.Fatalf("error does not name the file and line: %v", err)
	}
	t.Log(err)
	for table, want := range map[string]bool{"ok": true, "half": false, "after": false} {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass('svc_fail.'||$1) IS NOT NULL`, table).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists != want {
			t.Fatalf("table %s exists=%v, want %v", table, exists, want)
		}
	}
	if h := history(t, pool, "svc_fail"); len(h) != 1 {
		t.Fatalf("history = %+v, want only 0001", h)
	}

	files["0002_broken.sql"] = `CREATE TABLE half (id int);` // fixed before it was ever applied
	if n, err := pg.Migrate(ctx, pool, "svc_fail", fsOf(files)); err != nil || n != 2 {
		t.Fatalf("Migrate after the fix = %d, %v; want 2", n, err)
	}
}

// Migrate pins search_path itself: a pool opened on another schema still
// migrates the schema it is given.
func TestMigrateUsesGivenSchema(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := pgtest.New(t, "svc_home")
	if _, err := pg.Migrate(ctx, pool, "svc_other", fsOf(map[string]string{"0001_t.sql": `CREATE TABLE t (id int);`})); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT table_schema FROM information_schema.tables WHERE table_name = 't'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != "svc_other" {
		t.Fatalf("table created in %q", schema)
	}
}

// A database migrated by a newer release (versions this binary does not
// know) is accepted, as during a rolling upgrade.
func TestMigrateAcceptsNewerDatabase(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := pgtest.New(t, "svc_newer")
	v1 := map[string]string{"0001_a.sql": `CREATE TABLE a (id int);`}
	v2 := map[string]string{"0001_a.sql": v1["0001_a.sql"], "0002_b.sql": `CREATE TABLE b (id int);`}
	if n, err := pg.Migrate(ctx, pool, "svc_newer", fsOf(v2)); err != nil || n != 2 {
		t.Fatalf("new release: %d, %v", n, err)
	}
	if n, err := pg.Migrate(ctx, pool, "svc_newer", fsOf(v1)); err != nil || n != 0 {
		t.Fatalf("old release on the newer database: %d, %v; want 0, nil", n, err)
	}
}

// Four replicas start at once: exactly one applies every migration, the
// others wait for the lock and find nothing to do.
func TestMigrateConcurrentReplicas(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	u := pgtest.URL(t)
	const schema = "svc_conc"
	files := map[string]string{
		"0001_log.sql": `CREATE TABLE runs (version int NOT NULL); INSERT INTO runs VALUES (1);`,
		// Holds the lock long enough that every replica is waiting on it.
		"0002_slow.sql":  `SELECT pg_sleep(0.3); INSERT INTO runs VALUES (2);`,
		"0003_more.sql":  `INSERT INTO runs VALUES (3);`,
		"0004_table.sql": `CREATE TABLE only_once (id int); INSERT INTO runs VALUES (4);`,
	}
	pools := make([]*pgxpool.Pool, 4)
	for i := range pools {
		p, err := pg.Open(ctx, u, schema, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	start := make(chan struct{})
	results := make([]int, len(pools))
	errs := make([]error, len(pools))
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() {
			<-start
			results[i], errs[i] = pg.Migrate(ctx, p, schema, fsOf(files))
		})
	}
	close(start)
	wg.Wait()

	total, winners := 0, 0
	for i := range pools {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		total += results[i]
		if results[i] > 0 {
			winners++
		}
	}
	if total != 4 || winners != 1 {
		t.Fatalf("applied per replica = %v; want one replica applying all 4", results)
	}
	var runs, distinct int
	if err := pools[0].QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM runs`).Scan(&runs, &distinct); err != nil {
		t.Fatal(err)
	}
	if runs != 4 || distinct != 4 {
		t.Fatalf("runs = %d (distinct %d); every migration must run exactly once", runs, distinct)
	}
	if h := history(t, pools[0], schema); len(h) != 4 {
		t.Fatalf("history has %d rows", len(h))
	}
}

// Waiting for the lock ends with ctx, and a cancelled wait leaves no lock
// behind.
func TestMigrateLockWaitHonoursContext(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := pgtest.New(t, "svc_wait")
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, pg.LockKey("svc_wait")); err != nil {
		t.Fatal(err)
	}
	files := fsOf(map[string]string{"0001_t.sql": `CREATE TABLE t (id int);`})

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	n, err := pg.Migrate(short, pool, "svc_wait", files)
	if err == nil || n != 0 || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Migrate while locked = %d, %v; want a deadline error", n, err)
	}
	t.Log(err)

	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, pg.LockKey("svc_wait")); err != nil {
		t.Fatal(err)
	}
	holder.Release()
	if n, err := pg.Migrate(ctx, pool, "svc_wait", files); err != nil || n != 1 {
		t.Fatalf("Migrate after unlock = %d, %v", n, err)
	}
	// The lock is free again for the next process.
	probe, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Release()
	var free bool
	if err := probe.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, pg.LockKey("svc_wait")).Scan(&free); err != nil || !free {
		t.Fatalf("lock still held after Migrate (free=%v, err=%v)", free, err)
	}
	if _, err := probe.Exec(ctx, `SELECT pg_advisory_unlock($1)`, pg.LockKey("svc_wait")); err != nil {
		t.Fatal(err)
	}
}
