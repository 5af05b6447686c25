package service

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
)

// ProjectionHandler is the durable consumer that keeps the read model.
// Renaming it re-reads the whole stream.
const ProjectionHandler = "tenancy_projection"

// registerProjection adds the read-model projection (readmodel.Projection:
// whole aggregates, version-guarded, idempotent).
func (s *Service) registerProjection(d app.Deps) error {
	return readmodel.Projection{
		Handler: ProjectionHandler,
		Service: Name,
		Version: func(ctx context.Context, env events.Envelope) (uint64, error) {
			return s.db.Version(ctx, env.Aggregate.Type, env.Aggregate.ID)
		},
		Project: s.project,
	}.Register(d.Router, s.applied)
}

// project writes the aggregate of env. An org it wrote drops the org's
// cached membership answers on this replica before any waiter wakes.
func (s *Service) project(ctx context.Context, env events.Envelope) (bool, error) {
	wrote, err := s.save(ctx, env)
	if err != nil {
		return false, err
	}
	if wrote && env.Aggregate.Type == events.TenancyAggOrg {
		s.cache.invalidateOrg(env.OrgID)
	}
	return wrote, nil
}

func (s *Service) save(ctx context.Context, env events.Envelope) (bool, error) {
	switch env.Aggregate.Type {
	case events.TenancyAggOrg:
		o, err := s.loadOrg(ctx, env.OrgID)
		if err != nil {
			return false, err
		}
		return s.db.SaveOrg(ctx, o)
	case events.TenancyAggInvitation:
		inv, err := s.loadInvitation(ctx, env.OrgID, env.Aggregate.ID)
		if err != nil {
			return false, err
		}
		return s.db.SaveInvitation(ctx, inv)
	case events.TenancyAggEnrollmentToken:
		t, err := s.loadEnrollmentToken(ctx, env.OrgID, env.Aggregate.ID)
		if err != nil {
			return false, err
		}
		return s.db.SaveEnrollmentToken(ctx, t)
	case events.TenancyAggAgent:
		a, err := s.loadAgent(ctx, env.OrgID, env.Aggregate.ID)
		if err != nil {
			return false, err
		}
		return s.db.SaveAgent(ctx, a)
	default:
		// Slug claims have no read model; unknown aggregates belong to a
		// newer version of this service.
		return false, nil
	}
}

// await gives read-your-writes: it returns once the read model holds
// version (or a newer one) of the aggregate, or after the configured wait
// (readmodel.Waiter.Await: running out of time is logged, not an error).
func (s *Service) await(ctx context.Context, aggType, id string, version uint64) {
	s.applied.Await(ctx, aggType, id, version, func(ctx context.Context) (uint64, error) {
		return s.db.Version(ctx, aggType, id)
	})
}
