// Package postgres is the proxy service's read model in its own Postgres
// schema: the projection's writes (as the schema owner) and the queries.
//
// Tenant reads run under row-level security: in a read-only transaction as
// the NOLOGIN role ReaderRole with app.org_id set for that transaction, so
// even a query that forgot its WHERE clause sees only the request's org.
// The lookups that are cross-tenant by nature (read-your-writes versions,
// the certificate worker's scan, the reconciler's list of agents) run as
// the owner.
package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/infrapilot/infrapilot/events"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReaderRole is the role tenant reads run as; the migration creates it.
const ReaderRole = "proxy_reader"

// Store reads and writes the read model.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store on db, a pool in the proxy schema.
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Read runs fn in a read-only transaction under row-level security for
// orgID. It is exported for the isolation tests.
func (s *Store) Read(ctx context.Context, orgID string, fn func(pgx.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("proxy read: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// set_config(…, true) is SET LOCAL: it ends with the transaction, so
	// a pooled connection never carries a tenant into the next request.
	if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('app.org_id', $2, true)`,
		ReaderRole, orgID); err != nil {
		return fmt.Errorf("proxy read: scope: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Page is one page of a list: at most Limit rows with an id after After.
type Page struct {
	Limit int
	After string
}

// PageOf checks a list's limit and cursor and turns them into a page.
func PageOf(limit int, cursor string) (Page, error) {
	p := Page{Limit: limit}
	switch {
	case p.Limit == 0:
		p.Limit = events.DefaultListLimit
	case p.Limit < 0 || p.Limit > events.MaxListLimit:
		return p, events.Invalid("invalid limit").WithFields(events.FieldError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", events.MaxListLimit)})
	}
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !events.ValidToken(string(b)) {
			return p, events.Invalid("invalid cursor").WithFields(events.FieldError{Field: "cursor", Message: "is not a cursor from a previous page"})
		}
		p.After = string(b)
	}
	return p, nil
}

// next returns the cursor after a page: the last id when the page is full
// (one more row was fetched than asked for), else "".
func next[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, base64.RawURLEncoding.EncodeToString([]byte(id(items[len(items)-1])))
}

// Version returns the version the read model holds of one aggregate of
// orgID (0 when it has none), for read-your-writes waits.
func (s *Store) Version(ctx context.Context, orgID, aggType, id string) (uint64, error) {
	var q string
	switch aggType {
	case events.ProxyAggHost:
		q = `SELECT version FROM hosts WHERE org_id = $1 AND id = $2`
	case events.ProxyAggAgent:
		q = `SELECT version FROM agent_settings WHERE org_id = $1 AND agent_id = $2`
	default:
		return 0, fmt.Errorf("proxy: no read model for aggregate %s", aggType)
	}
	var v int64
	err := s.db.QueryRow(ctx, q, orgID, id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(v), err
}

func (s *Store) write(ctx context.Context, fn func(pgx.Tx) (bool, error)) (bool, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	wrote, err := fn(tx)
	if err != nil {
		return false, err
	}
	return wrote, tx.Commit(ctx)
}
