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
	"fmt"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReaderRole is the role tenant reads run as; the migration creates it.
const ReaderRole = "tenancy_reader"

// Store reads and writes the read model.
type Store struct {
	db *pgxpool.Pool
	rm *readmodel.Store
}

// New returns a store on db, a pool in the tenancy schema.
func New(db *pgxpool.Pool) *Store {
	return &Store{db: db, rm: readmodel.NewStore(db, "tenancy", ReaderRole)}
}

// Scope is what a read may see: the rows of OrgID, and the memberships
// (and their orgs) of UserID. Empty fields match nothing.
type Scope = readmodel.Scope

// Read runs fn in a read-only transaction under row-level security for
// scope. It is exported for the isolation tests.
func (s *Store) Read(ctx context.Context, scope Scope, fn func(pgx.Tx) error) error {
	return s.rm.Read(ctx, scope, fn)
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
	return s.rm.Version(ctx, q, id)
}
