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
	"fmt"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReaderRole is the role tenant reads run as; the migration creates it.
const ReaderRole = "proxy_reader"

// Store reads and writes the read model.
type Store struct {
	db *pgxpool.Pool
	rm *readmodel.Store
}

// New returns a store on db, a pool in the proxy schema.
func New(db *pgxpool.Pool) *Store {
	return &Store{db: db, rm: readmodel.NewStore(db, "proxy", ReaderRole)}
}

// Read runs fn in a read-only transaction under row-level security for
// orgID. It is exported for the isolation tests.
func (s *Store) Read(ctx context.Context, orgID string, fn func(pgx.Tx) error) error {
	return s.rm.Read(ctx, readmodel.Scope{OrgID: orgID}, fn)
}

// Version returns the version the read model holds of one aggregate of
// orgID (0 when it has none), for read-your-writes waits.
func (s *Store) Version(ctx context.Context, orgID, aggType, id string) (uint64, error) {
	switch aggType {
	case events.ProxyAggHost:
		return s.rm.Version(ctx, `SELECT version FROM hosts WHERE org_id = $1 AND id = $2`, orgID, id)
	case events.ProxyAggAgent:
		return s.rm.Version(ctx, `SELECT version FROM agent_settings WHERE org_id = $1 AND agent_id = $2`, orgID, id)
	default:
		return 0, fmt.Errorf("proxy: no read model for aggregate %s", aggType)
	}
}
