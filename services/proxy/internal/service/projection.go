package service

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
)

// ProjectionHandler is the durable consumer that keeps the read model.
// Renaming it re-reads the whole stream.
const ProjectionHandler = "proxy_projection"

// registerProjection adds the read-model projection (readmodel.Projection:
// whole aggregates, version-guarded, idempotent).
//
// The projection renders nothing: the writes that change an agent's
// rendering render it themselves once their event is projected, and the
// reconciler repairs a render lost to a crash, only once this consumer has
// caught up (a rebuild must not push a half-built state to agents).
func (s *Service) registerProjection(d app.Deps) error {
	return readmodel.Projection{
		Handler: ProjectionHandler,
		Service: Name,
		Version: func(ctx context.Context, env events.Envelope) (uint64, error) {
			return s.db.Version(ctx, env.OrgID, env.Aggregate.Type, env.Aggregate.ID)
		},
		Project: s.project,
	}.Register(d.Router, s.applied)
}

func (s *Service) project(ctx context.Context, env events.Envelope) (bool, error) {
	switch env.Aggregate.Type {
	case events.ProxyAggHost:
		h, err := s.loadHost(ctx, env.OrgID, env.Aggregate.ID)
		if err != nil {
			return false, err
		}
		return s.db.SaveHost(ctx, h)
	case events.ProxyAggAgent:
		a, err := s.loadAgent(ctx, env.OrgID, env.Aggregate.ID)
		if err != nil {
			return false, err
		}
		return s.db.SaveAgent(ctx, a)
	default:
		// Unknown aggregates belong to a newer version of this service.
		return false, nil
	}
}

// await gives read-your-writes: it returns once the read model holds
// version (or a newer one) of the aggregate, or after the configured wait
// (readmodel.Waiter.Await: running out of time is logged, not an error).
func (s *Service) await(ctx context.Context, orgID, aggType, id string, version uint64) {
	s.applied.Await(ctx, aggType, id, version, func(ctx context.Context) (uint64, error) {
		return s.db.Version(ctx, orgID, aggType, id)
	})
}
