package pg

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationNameRE is the only accepted file name shape: a zero-padded
// version of at least four digits, an underscore, a lowercase description.
var migrationNameRE = regexp.MustCompile(`^([0-9]{4,})_([a-z0-9][a-z0-9_]*)\.sql$`)

// migration is one parsed migration file.
type migration struct {
	version  int64
	file     string
	sql      string
	checksum string // hex SHA-256 of the file's bytes
}

// record is one row of <schema>.schema_migrations.
type record struct {
	version  int64
	name     string
	checksum string
}

// Migrate applies the pending migrations in fsys to schema and returns how
// many it applied.
//
// fsys holds only migration files at its root, named NNNN_description.sql
// (versions 1, 2, 3… without gaps; up only). Pass fs.Sub(embedFS,
// "migrations") rather than the embed.FS itself: anything else at the root,
// including a directory, is an error, so a wrong FS cannot silently mean
// "no migrations".
//
// Each migration runs in its own transaction with search_path = schema and
// is recorded in <schema>.schema_migrations (version, name, checksum,
// applied_at) in that same transaction, so a failed migration leaves
// neither its changes nor its record. Statements that cannot run inside a
// transaction (CREATE INDEX CONCURRENTLY, ALTER TYPE … ADD VALUE before
// PG 12) are therefore not supported.
//
// Replicas starting together are serialised by a session advisory lock
// keyed on the schema: one applies, the others wait for the lock and then
// find nothing left to do. Waiting ends with ctx.
//
// An applied migration whose file has changed is an error naming the file;
// history is never rewritten — add a new migration instead. A database
// ahead of fsys (versions applied that this binary does not know, as
// during a rolling upgrade where a newer replica migrated first) is
// accepted: migrations are written expand-then-contract so older code
// keeps working on the newer schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, fsys fs.FS) (applied int, err error) {
	if err := ValidateSchema(schema); err != nil {
		return 0, err
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		return 0, fmt.Errorf("pg: migrate %s: %w", schema, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("pg: migrate %s: %w", schema, err)
	}
	key := lockKey(schema)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		// The lock may have been granted just as ctx ended; ending the
		// session is the one way to be sure it is not left held.
		discard(conn)
		return 0, fmt.Errorf("pg: migrate %s: wait for the migration lock: %w", schema, err)
	}
	defer unlock(conn, key)

	applied, err = apply(ctx, conn.Conn(), schema, ms)
	if err != nil {
		return applied, fmt.Errorf("pg: migrate %s: %w", schema, err)
	}
	return applied, nil
}

// apply runs the pending migrations; the caller holds the lock.
func apply(ctx context.Context, conn *pgx.Conn, schema string, ms []migration) (int, error) {
	if err := ensureSchema(ctx, conn, schema); err != nil {
		return 0, err
	}
	table := quoteIdent(schema) + ".schema_migrations"
	_, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version    bigint      PRIMARY KEY,
		name       text        NOT NULL,
		checksum   text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", table, err)
	}
	recs, err := appliedRecords(ctx, conn, table)
	if err != nil {
		return 0, err
	}
	if err := verifyHistory(recs, ms); err != nil {
		return 0, err
	}
	n := 0
	for _, m := range ms[min(len(recs), len(ms)):] {
		if err := applyOne(ctx, conn, schema, table, m); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func appliedRecords(ctx context.Context, conn *pgx.Conn, table string) ([]record, error) {
	rows, err := conn.Query(ctx, `SELECT version, name, checksum FROM `+table+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (record, error) {
		var r record
		err := row.Scan(&r.version, &r.name, &r.checksum)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return recs, nil
}

// verifyHistory checks the recorded migrations against the files: the
// records must be 1..K without holes, and every recorded migration that
// has a file must still have the checksum it was applied with.
func verifyHistory(recs []record, ms []migration) error {
	for i, r := range recs {
		if want := int64(i + 1); r.version != want {
			return fmt.Errorf("schema_migrations records version %d but not version %d; the history was edited by hand", r.version, want)
		}
		if i >= len(ms) {
			continue // the database is ahead of this binary
		}
		if m := ms[i]; m.checksum != r.checksum {
			was := ""
			if r.name != m.file {
				was = " (applied as " + r.name + ")"
			}
			return fmt.Errorf("migration %s%s was changed after it was applied (checksum %.12s in the database, %.12s in the file): add a new migration instead of editing an applied one",
				m.file, was, r.checksum, m.checksum)
		}
	}
	return nil
}

// applyOne runs one migration and records it in the same transaction.
func applyOne(ctx context.Context, conn *pgx.Conn, schema, table string, m migration) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", m.file, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	// The pool's own search_path may name another schema (or none): pin it
	// so unqualified names in the file land in the schema being migrated.
	if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+quoteIdent(schema)); err != nil {
		return fmt.Errorf("%s: %w", m.file, err)
	}
	// No arguments: pgx sends the text with the simple protocol, which
	// allows several statements in one file.
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return fmt.Errorf("%s%s: %w", m.file, errorLine(m.sql, err), err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (version, name, checksum) VALUES ($1, $2, $3)`,
		m.version, m.file, m.checksum); err != nil {
		return fmt.Errorf("%s: record: %w", m.file, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: commit: %w", m.file, err)
	}
	return nil
}

// errorLine turns a server error's character position into " (line N)".
func errorLine(sql string, err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Position <= 0 {
		return ""
	}
	runes := []rune(sql)
	pos := min(int(pgErr.Position)-1, len(runes))
	return fmt.Sprintf(" (line %d)", strings.Count(string(runes[:pos]), "\n")+1)
}

// loadMigrations reads and checks every file at the root of fsys.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	if fsys == nil {
		return nil, errors.New("no migrations FS")
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	ms := make([]migration, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("unexpected directory %q among migrations (pass fs.Sub of the migrations directory)", e.Name())
		}
		sm := migrationNameRE.FindStringSubmatch(e.Name())
		if sm == nil {
			return nil, fmt.Errorf("bad migration file name %q: want NNNN_description.sql (digits, underscore, lowercase description)", e.Name())
		}
		v, err := strconv.ParseInt(sm[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad migration file name %q: %w", e.Name(), err)
		}
		if v == 0 {
			return nil, fmt.Errorf("bad migration file name %q: versions start at 0001", e.Name())
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		if strings.TrimSpace(string(body)) == "" {
			return nil, fmt.Errorf("migration %s is empty", e.Name())
		}
		sum := sha256.Sum256(body)
		ms = append(ms, migration{version: v, file: e.Name(), sql: string(body), checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i, m := range ms {
		want := int64(i + 1)
		switch {
		case i > 0 && m.version == ms[i-1].version:
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].file, m.file)
		case m.version != want:
			return nil, fmt.Errorf("migration version %d is missing (next file is %s); versions run 1, 2, 3… without gaps", want, m.file)
		}
	}
	return ms, nil
}

// lockKey is the advisory lock key for migrating schema. Advisory locks
// are per database, so the same schema name in two databases does not
// contend.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("infrapilot/pg.Migrate:" + schema))
	return int64(h.Sum64())
}

// unlock releases the advisory lock and returns the connection to the pool,
// or closes it when the unlock cannot be confirmed: a pooled session still
// holding the lock would block every later migration.
func unlock(conn *pgxpool.Conn, key int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&ok); err != nil || !ok {
		discard(conn)
		return
	}
	conn.Release()
}

// discard takes the connection out of the pool and closes it, ending its
// session and with it any session-level lock.
func discard(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Hijack().Close(ctx)
}
