package readmodel

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
)

// Projection is the consumer that keeps a service's read model from its
// domain stream. For each event it skips what the read model already
// reflects, then has the service rebuild the event's aggregate from the
// event store and write it whole if it is newer than the row. That is
// idempotent, and insensitive to redelivery and to the order in which
// replicas handle events: an older event arriving late finds a newer row
// and writes nothing.
type Projection struct {
	// Handler is the durable consumer's name. Renaming it re-reads the
	// whole stream.
	Handler string
	// Service names the domain stream projected (events.DomainStream).
	Service string
	// Version returns the version the read model holds of env's
	// aggregate (0 when none). An event at or below it is acknowledged
	// without loading anything; an error (an aggregate without a read
	// model included) only means the event is handed to Project.
	Version func(ctx context.Context, env events.Envelope) (uint64, error)
	// Project rebuilds env's aggregate and writes it when it is newer
	// than what the read model holds, reporting whether it wrote. An
	// aggregate it does not know belongs to a newer version of the
	// service: false, nil. An error is retried by the router.
	Project func(ctx context.Context, env events.Envelope) (bool, error)
}

// Register adds the projection to r; after each write it wakes w's
// waiters (w may be nil).
func (p Projection) Register(r *router.Router, w *Waiter) error {
	return r.AddEventHandler(p.Handler, events.DomainStream(p.Service), []string{events.DomainEvents(p.Service)},
		func(ctx context.Context, env events.Envelope) error {
			wrote, err := p.handle(ctx, env)
			if err != nil {
				return err
			}
			if wrote && w != nil {
				w.Projected()
			}
			return nil
		})
}

func (p Projection) handle(ctx context.Context, env events.Envelope) (bool, error) {
	if env.Sequence > 0 {
		if v, err := p.Version(ctx, env); err == nil && v >= env.Sequence {
			return false, nil // already reflected
		}
	}
	return p.Project(ctx, env)
}
