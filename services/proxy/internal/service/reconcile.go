package service

import (
	"context"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy/internal/postgres"
)

// reconcileBatch is how many agents one page of the reconciler covers.
const reconcileBatch = 200

// reconcile renders every agent's desired state again, soon after start and
// then every ReconcileInterval. Rendering is a no-op for an agent whose
// stored state is current, so this only repairs a render lost between a
// stored event and its render (a crash). It runs only while the projection
// has caught up with the stream: rendering a half-rebuilt read model would
// push a partial configuration to agents.
func (s *Service) reconcile(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.projectionCaughtUp(ctx) {
			t.Reset(time.Second)
			continue
		}
		var after postgres.AgentRef
		for ctx.Err() == nil {
			agents, err := s.db.Agents(ctx, after, reconcileBatch)
			if err != nil {
				s.logErr(ctx, "reconciling desired states: listing agents", "err", err)
				break
			}
			for _, a := range agents {
				_ = s.renderAndPush(ctx, a.OrgID, a.AgentID)
			}
			if len(agents) < reconcileBatch {
				break
			}
			after = agents[len(agents)-1]
		}
		t.Reset(s.cfg.ReconcileInterval)
	}
}

// projectionCaughtUp reports whether the projection consumer has no event
// left to handle.
func (s *Service) projectionCaughtUp(ctx context.Context) bool {
	c, err := s.js.Consumer(ctx, events.DomainStream(Name), ProjectionHandler)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}
