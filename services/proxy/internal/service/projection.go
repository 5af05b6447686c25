package service

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
)

// ProjectionHandler is the durable consumer that keeps the read model.
// Renaming it re-reads the whole stream.
const ProjectionHandler = "proxy_projection"

// registerProjection adds the read-model projection. For each event it
// rebuilds the event's aggregate from the event store and writes it whole
// if it is newer than what the read model holds. That is idempotent, and
// insensitive to redelivery and to the order in which replicas handle
// events: an older event arriving late finds a newer row and writes
// nothing.
//
// The projection renders nothing: the writes that change an agent's
// rendering render it themselves once their event is projected, and the
// reconciler repairs a render lost to a crash, only once this consumer has
// caught up (a rebuild must not push a half-built state to agents).
func (s *Service) registerProjection(d app.Deps) error {
	return d.Router.AddEventHandler(ProjectionHandler, events.DomainStream(Name), []string{events.DomainEvents(Name)},
		func(ctx context.Context, env events.Envelope) error {
			wrote, err := s.project(ctx, env)
			if err != nil {
				return err
			}
			if wrote {
				s.applied.broadcast()
			}
			return nil
		})
}

func (s *Service) project(ctx context.Context, env events.Envelope) (bool, error) {
	if env.Sequence > 0 {
		if v, err := s.db.Version(ctx, env.OrgID, env.Aggregate.Type, env.Aggregate.ID); err == nil && v >= env.Sequence {
			return false, nil // already reflected
		}
	}
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
