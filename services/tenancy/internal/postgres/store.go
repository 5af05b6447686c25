// Package postgres is the tenancy service's read model in its own Postgres
// schema: the projection's writes (as the schema owner) and the queries.
//
// Queries that answer tenant data run under row-level security: in a
// read-only transaction as the NOLOGIN role ReaderRole with app.org_id (and
// for a user's own orgs app.user_id) set for that transaction, so even a
// query that forgot its WHERE clause sees only the request's org. A few
// lookups are cross-tenant by nature and run as the owner: the membership
// and default-org lookups that decide which org a request acts in, and the
// lookups of an invitation or enrollment token by the hash of its secret,
// which is what tells which org the bearer of the secret belongs to.
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
const ReaderRole = "tenancy_reader"

// Store reads and writes the read model.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store on db, a pool in the tenancy schema.
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Scope is what a read may see: the rows of OrgID, and the memberships
// (and their orgs) of UserID. Empty fields match nothing.
type Scope struct {
	OrgID  string
	UserID string
}

// Read runs fn in a read-only transaction under row-level security for
// scope. It is exported for the isolation tests.
func (s *Store) Read(ctx context.Context, scope Scope, fn func(pgx.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("tenancy read: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// set_config(…, true) is SET LOCAL: it ends with the transaction, so
	// a pooled connection never carries a tenant into the next request.
	if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('app.org_id', $2, true), set_config('app.user_id', $3, true)`,
		ReaderRole, scope.OrgID, scope.UserID); err != nil {
		return fmt.Errorf("tenancy read: scope: %w", err)
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

// PageOf checks a list request and turns it into a page.
func PageOf(req events.ListRequest) (Page, error) {
	p := Page{Limit: req.Limit}
	switch {
	case p.Limit == 0:
		p.Limit = events.DefaultListLimit
	case p.Limit < 0 || p.Limit > events.MaxListLimit:
		return p, events.Invalid("invalid limit").WithFields(events.FieldError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", events.MaxListLimit)})
	}
	if req.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.Cursor)
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

// Version returns the version the read model holds of one aggregate (0
// when it has none), for read-your-writes waits.
func (s *Store) Version(ctx context.Context, aggType, id string) (uint64, error) {
	var q string
	switch aggType {
	case events.TenancyAggOrg:
		q = `SELECT version FROM orgs WHERE id = $1`
	case events.TenancyAggInvitation:
		q = `SELECT version FROM invitations WHERE id = $1`
	case events.TenancyAggEnrollmentToken:
		q = `SELECT version FROM enrollment_tokens WHERE id = $1`
	case events.TenancyAggAgent:
		q = `SELECT version FROM agents WHERE id = $1`
	default:
		return 0, fmt.Errorf("tenancy: no read model for aggregate %s", aggType)
	}
	var v int64
	err := s.db.QueryRow(ctx, q, id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(v), err
}
