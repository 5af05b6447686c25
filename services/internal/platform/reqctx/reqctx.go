// Package reqctx carries the context of one request or event — tenant,
// principal, correlation — through ctx with typed accessors, and converts it
// to and from the NATS headers of events/headers.go.
package reqctx

import (
	"context"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// Info is what a handler knows about who asked and on whose behalf.
type Info struct {
	RequestID     string
	CorrelationID string
	// CausationID is the id of the event that caused this work, if any.
	CausationID string
	OrgID       string
	Actor       events.Actor
	Role        string
}

type ctxKey struct{}

// With returns ctx carrying info.
func With(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the Info in ctx, zero when there is none.
func From(ctx context.Context) Info {
	info, _ := ctx.Value(ctxKey{}).(Info)
	return info
}

// OrgID returns the tenant of ctx, "" when there is none.
func OrgID(ctx context.Context) string { return From(ctx).OrgID }

// Meta builds the metadata of a new event caused by the work in ctx.
func Meta(ctx context.Context) events.Meta {
	info := From(ctx)
	return events.Meta{OrgID: info.OrgID, Actor: info.Actor, CorrelationID: info.CorrelationID, CausationID: info.CausationID}
}

// MetaIn is Meta for an event of an aggregate of orgID. Work without an
// actor (a worker, a bootstrap, an agent's report, a service calling
// without headers) is attributed to system, usually events.SystemActor of
// the service doing it.
func MetaIn(ctx context.Context, orgID string, system events.Actor) events.Meta {
	m := Meta(ctx)
	m.OrgID = orgID
	if m.Actor.Kind == "" {
		m.Actor = system
	}
	return m
}

// FromHeaders reads the request context the gateway (or another service)
// put on a NATS message.
func FromHeaders(h nats.Header) Info {
	return Info{
		RequestID:     h.Get(events.HeaderRequestID),
		CorrelationID: h.Get(events.HeaderCorrelationID),
		OrgID:         h.Get(events.HeaderOrgID),
		Role:          h.Get(events.HeaderRole),
		Actor: events.Actor{
			Kind:      events.ActorKind(h.Get(events.HeaderActorKind)),
			ID:        h.Get(events.HeaderActorID),
			IP:        h.Get(events.HeaderActorIP),
			UserAgent: h.Get(events.HeaderActorUA),
		},
	}
}

// Headers writes info into NATS headers for a request to another service.
func (info Info) Headers(h nats.Header) {
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	set(events.HeaderRequestID, info.RequestID)
	set(events.HeaderCorrelationID, info.CorrelationID)
	set(events.HeaderOrgID, info.OrgID)
	set(events.HeaderRole, info.Role)
	set(events.HeaderActorKind, string(info.Actor.Kind))
	set(events.HeaderActorID, info.Actor.ID)
	set(events.HeaderActorIP, info.Actor.IP)
	set(events.HeaderActorUA, info.Actor.UserAgent)
}

// Deadline parses the caller's deadline header; ok is false when absent or
// malformed.
func Deadline(h nats.Header) (time.Time, bool) {
	v := h.Get(events.HeaderDeadline)
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}
