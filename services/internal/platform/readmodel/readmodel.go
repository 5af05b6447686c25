// Package readmodel is the read side of an event-sourced service: the
// projection consumer that keeps a Postgres read model from the service's
// domain stream, the read-your-writes wait of a command for its event to be
// projected, and the helpers of the read model's store (tenant reads under
// row-level security, version-guarded writes, cursor pages).
//
// The model it serves: a command appends to the event store, then waits
// (Waiter.Await) until the read model holds the version it appended, so a
// read that follows sees its effect. Only the projection writes the read
// model (no dual writes); it rebuilds each event's aggregate from the event
// store and writes it whole when it is newer than the row, which makes it
// idempotent and insensitive to redelivery and to the order in which
// replicas handle events.
//
// What the read model holds, and how an aggregate is rebuilt and written,
// is each service's own; this package holds only that machinery.
package readmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is a service's read-model pool with the two ways it is used: tenant
// reads, as a NOLOGIN reader role confined by row-level security, and the
// projection's writes, as the schema owner.
type Store struct {
	db   *pgxpool.Pool
	name string
	role string
}

// NewStore returns the store of service name (it prefixes errors) on db, a
// pool in the service's schema; readerRole is the role tenant reads run as,
// which the service's migrations create with its row-level security
// policies.
func NewStore(db *pgxpool.Pool, name, readerRole string) *Store {
	return &Store{db: db, name: name, role: readerRole}
}

// Scope is what a tenant read may see, as the settings the row-level
// security policies read: OrgID is app.org_id, UserID is app.user_id. An
// empty field matches nothing; a policy that does not read a setting is not
// affected by it.
type Scope struct {
	OrgID  string
	UserID string
}

// Read runs fn in a read-only transaction as the reader role with scope's
// settings, so even a query that forgot its WHERE clause sees only what
// scope may.
func (s *Store) Read(ctx context.Context, scope Scope, fn func(pgx.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("%s read: begin: %w", s.name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// set_config(…, true) is SET LOCAL: it ends with the transaction, so
	// a pooled connection never carries a tenant into the next request.
	if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('app.org_id', $2, true), set_config('app.user_id', $3, true)`,
		s.role, scope.OrgID, scope.UserID); err != nil {
		return fmt.Errorf("%s read: scope: %w", s.name, err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Write runs fn, a projection write, in a transaction as the schema owner
// and commits it; fn reports whether it wrote anything (false when the read
// model already held that version or a newer one).
func (s *Store) Write(ctx context.Context, fn func(pgx.Tx) (bool, error)) (bool, error) {
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

// Version runs query, which selects one row's version column, as the owner
// and returns it (0 when there is no row): what read-your-writes waits and
// the projection's skip of events already reflected compare with.
func (s *Store) Version(ctx context.Context, query string, args ...any) (uint64, error) {
	var v int64
	err := s.db.QueryRow(ctx, query, args...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(v), err
}
