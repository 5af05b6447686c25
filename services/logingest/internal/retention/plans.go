// Package retention keeps each org's logs and metrics only as long as its
// plan allows: it projects the org → plan table from the TENANCY stream
// and runs the retention job over the store.
package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PlansConsumer is the durable consumer name of the plan projection.
const PlansConsumer = "logingest_org_plans"

// Plans is the org → plan table (Postgres, table org_plans), written only
// by its projection consumer.
type Plans struct {
	db  *pgxpool.Pool
	now func() time.Time
}

// NewPlans returns the table on db.
func NewPlans(db *pgxpool.Pool, now func() time.Time) *Plans { return &Plans{db: db, now: now} }

// Register adds the projection consumer on the TENANCY stream's org
// events (tenancy.org.created, tenancy.org.plan_changed,
// tenancy.org.deleted).
func (p *Plans) Register(r *router.Router) error {
	return r.AddEventHandler(PlansConsumer, events.DomainStream("tenancy"),
		[]string{events.DomainEvent("tenancy", "*", events.TenancyAggOrg, "*")}, p.handle)
}

// handle applies one event. The stream sequence guards the row, so a
// redelivered older event never overwrites a newer plan.
func (p *Plans) handle(ctx context.Context, env events.Envelope) error {
	payload, err := events.Catalogue.Decode(env)
	if err != nil {
		return router.Permanent(err)
	}
	var plan string
	deleted := false
	switch e := payload.(type) {
	case *events.OrgCreated:
		plan = e.Plan
	case *events.OrgPlanChanged:
		plan = e.Plan
	case *events.OrgDeleted:
		deleted = true
	default:
		return nil
	}
	if deleted {
		_, err = p.db.Exec(ctx, `UPDATE org_plans SET deleted = true, seq = $2, updated_at = $3 WHERE org_id = $1 AND seq < $2`,
			env.OrgID, int64(env.Sequence), p.now())
		return err
	}
	_, err = p.db.Exec(ctx, `INSERT INTO org_plans (org_id, plan, seq, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id) DO UPDATE SET plan = EXCLUDED.plan, seq = EXCLUDED.seq, updated_at = EXCLUDED.updated_at
		WHERE org_plans.seq < EXCLUDED.seq`, env.OrgID, plan, int64(env.Sequence), p.now())
	return err
}

// Of returns the plans of orgs; an org the table does not know is left
// out.
func (p *Plans) Of(ctx context.Context, orgs []string) (map[string]string, error) {
	rows, err := p.db.Query(ctx, `SELECT org_id, plan FROM org_plans WHERE org_id = ANY($1)`, orgs)
	if err != nil {
		return nil, fmt.Errorf("retention: plans: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var o, pl string
		if err := rows.Scan(&o, &pl); err != nil {
			return nil, err
		}
		out[o] = pl
	}
	return out, rows.Err()
}

// Plan returns one org's plan, or ok false when unknown.
func (p *Plans) Plan(ctx context.Context, org string) (string, bool, error) {
	var pl string
	err := p.db.QueryRow(ctx, `SELECT plan FROM org_plans WHERE org_id = $1`, org).Scan(&pl)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return pl, err == nil, err
}
