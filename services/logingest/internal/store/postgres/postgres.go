// Package postgres is the Postgres adapter of the log store: the embedded
// default when no ClickHouse is configured, and small installs.
//
// Lines live in table lines, whose primary key is the line's identity in
// the newest-first order of a query, so an insert is one INSERT … SELECT
// FROM unnest(…) ON CONFLICT DO NOTHING per chunk and an org-wide query is
// a backward index scan that stops at the limit. Metric samples are rolled
// up into one row per minute as they arrive (table metrics_minute, with a
// bitmask of the seconds already added, so a redelivered sample counts
// once). Tenant reads run as the role logingest_reader under row-level
// security, in a read-only transaction with a statement timeout taken from
// ctx's deadline.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/infrapilot/infrapilot/services/logingest/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReaderRole is the role tenant reads run as; the migration creates it.
const ReaderRole = "logingest_reader"

// insertChunk bounds the rows of one INSERT statement.
const insertChunk = 5000

// deleteChunk bounds the rows one retention DELETE removes, so that no
// statement holds locks (or bloats WAL) for long.
const deleteChunk = 10000

// Store is the Postgres log store. The pool's search_path must be the
// service's schema, where the migrations created the tables.
type Store struct {
	db *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// New returns a store on db.
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Close implements store.Store; the pool belongs to the host.
func (s *Store) Close() error { return nil }

// read runs fn in a read-only transaction as ReaderRole with org's rows
// visible, and with statement_timeout set from ctx's deadline.
func (s *Store) read(ctx context.Context, org string, fn func(pgx.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	timeout := "0"
	if dl, ok := ctx.Deadline(); ok {
		timeout = strconv.FormatInt(max(1, time.Until(dl).Milliseconds()), 10)
	}
	// set_config(…, true) is SET LOCAL: it ends with the transaction.
	if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('app.org_id', $2, true), set_config('statement_timeout', $3, true)`,
		ReaderRole, org, timeout); err != nil {
		return fmt.Errorf("postgres: scope: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// InsertLines implements store.Store.
func (s *Store) InsertLines(ctx context.Context, lines []store.Line) error {
	for len(lines) > 0 {
		n := min(len(lines), insertChunk)
		if err := s.insertLines(ctx, lines[:n]); err != nil {
			return err
		}
		lines = lines[n:]
	}
	return nil
}

func (s *Store) insertLines(ctx context.Context, lines []store.Line) error {
	n := len(lines)
	var (
		org, agent, source, container, stream, name, stack, level, msg, raw = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n)
		ts    = make([]int64, n)
		seq   = make([]int32, n)
		attrs = make([]map[string]string, n)
	)
	for i, l := range lines {
		org[i], agent[i], source[i], container[i], stream[i] = l.OrgID, l.AgentID, l.Source, l.Container, l.Stream
		name[i], stack[i], level[i], msg[i], raw[i] = l.ContainerName, l.Stack, l.Level, l.Message, l.Raw
		ts[i], seq[i], attrs[i] = l.Time.UnixNano(), int32(l.Seq), l.Attrs
	}
	_, err := s.db.Exec(ctx, `
		INSERT INTO lines (org_id, ts, agent_id, source, container, stream, seq, container_name, stack, level, message, raw, attrs)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::integer[],
		                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::jsonb[])
		ON CONFLICT DO NOTHING`,
		org, ts, agent, source, container, stream, seq, name, stack, level, msg, raw, attrs)
	if err != nil {
		return fmt.Errorf("postgres: insert %d lines: %w", n, err)
	}
	return nil
}

// QueryLines implements store.Store.
func (s *Store) QueryLines(ctx context.Context, f store.Filter) ([]store.Line, error) {
	if f.OrgID == "" || f.Limit <= 0 || f.From.IsZero() || f.To.IsZero() {
		return nil, errors.New("postgres: query needs an org, a time range and a limit")
	}
	q := &sqlBuilder{}
	where := "org_id = " + q.arg(f.OrgID) + " AND ts >= " + q.arg(f.From.UnixNano()) + " AND ts < " + q.arg(f.To.UnixNano())
	if f.AgentID != "" {
		where += " AND agent_id = " + q.arg(f.AgentID)
	}
	if f.Source != "" {
		where += " AND source = " + q.arg(f.Source)
	}
	if f.Container != "" {
		c := q.arg(f.Container)
		where += " AND (container = " + c + " OR container_name = " + c + " OR left(container, " + strconv.Itoa(len(f.Container)) + ") = " + c + ")"
	}
	if len(f.Levels) > 0 {
		where += " AND level = ANY(" + q.arg(f.Levels) + ")"
	}
	if f.Contains != "" {
		where += " AND strpos(lower(raw), lower(" + q.arg(f.Contains) + ")) > 0"
	}
	for _, lit := range f.Literals {
		where += " AND strpos(raw, " + q.arg(lit) + ") > 0"
	}
	if c := f.After; c != nil {
		where += " AND (ts, agent_id, source, container, stream, seq) < (" + q.arg(c.Time) + ", " + q.arg(c.AgentID) + ", " +
			q.arg(c.Source) + ", " + q.arg(c.Container) + ", " + q.arg(c.Stream) + ", " + q.arg(int32(c.Seq)) + ")"
	}
	sql := `SELECT org_id, ts, agent_id, source, container, stream, seq, container_name, stack, level, message, raw, attrs
		FROM lines WHERE ` + where + `
		ORDER BY ts DESC, agent_id DESC, source DESC, container DESC, stream DESC, seq DESC
		LIMIT ` + strconv.Itoa(f.Limit)
	var out []store.Line
	err := s.read(ctx, f.OrgID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, q.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				l  store.Line
				ts int64
				sq int32
			)
			if err := rows.Scan(&l.OrgID, &ts, &l.AgentID, &l.Source, &l.Container, &l.Stream, &sq,
				&l.ContainerName, &l.Stack, &l.Level, &l.Message, &l.Raw, &l.Attrs); err != nil {
				return err
			}
			l.Time, l.Seq = time.Unix(0, ts).UTC(), uint32(sq)
			out = append(out, l)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: query lines: %w", err)
	}
	return out, nil
}

// sqlBuilder numbers positional arguments.
type sqlBuilder struct{ args []any }

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}
