package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ActorKind says who caused an event.
type ActorKind string

// The kinds of actor an event can carry.
const (
	ActorUser   ActorKind = "user"
	ActorAgent  ActorKind = "agent"
	ActorAPIKey ActorKind = "api_key"
	ActorSystem ActorKind = "system"
)

// Actor identifies who caused an event. IP and UserAgent are empty for
// actors that did not come through the gateway.
type Actor struct {
	Kind      ActorKind `json:"kind"`
	ID        string    `json:"id"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

// SystemActor is the actor of events that InfraPilot causes by itself
// (schedulers, bootstrap, projections).
func SystemActor(component string) Actor { return Actor{Kind: ActorSystem, ID: component} }

// Aggregate names the aggregate an event belongs to: its type (for example
// "host" in the proxy service) and its id. Together with the org id and the
// owning service it determines the event's subject.
type Aggregate struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Envelope is the one wire format of every domain event. It is JSON on the
// wire; Data holds the payload as raw JSON so that a reader that does not know
// the type (or its version) still keeps the event intact.
type Envelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	OrgID         string          `json:"org_id"`
	Aggregate     Aggregate       `json:"aggregate"`
	Actor         Actor           `json:"actor"`
	Time          time.Time       `json:"time"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	CausationID   string          `json:"causation_id,omitempty"`
	Data          json.RawMessage `json:"data"`

	// Sequence is the stream sequence the event was stored at. It is filled
	// in by readers (the event store, consumers) and never sent on the wire.
	Sequence uint64 `json:"-"`
}

// Meta carries the context of a new event: who caused it and which request
// or event led to it.
type Meta struct {
	OrgID         string
	Actor         Actor
	CorrelationID string
	CausationID   string
}

// New builds an envelope for payload p with a fresh UUIDv7 id and the
// current UTC time. The time is truncated to microseconds so that the value
// survives a round trip through Postgres and JSON unchanged.
func New(p Payload, agg Aggregate, m Meta) (Envelope, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode %s: %w", p.EventType(), err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, fmt.Errorf("events: new id: %w", err)
	}
	corr := m.CorrelationID
	if corr == "" {
		corr = id.String()
	}
	return Envelope{
		ID:            id.String(),
		Type:          p.EventType(),
		Version:       p.EventVersion(),
		OrgID:         m.OrgID,
		Aggregate:     agg,
		Actor:         m.Actor,
		Time:          time.Now().UTC().Truncate(time.Microsecond),
		CorrelationID: corr,
		CausationID:   m.CausationID,
		Data:          data,
	}, nil
}

// Validate checks the fields every envelope must have before it is stored.
func (e Envelope) Validate() error {
	switch {
	case e.ID == "":
		return Invalid("event id is empty")
	case e.Type == "":
		return Invalid("event type is empty")
	case e.Version < 1:
		return Invalid("event %s has version %d, want >= 1", e.Type, e.Version)
	case !ValidToken(e.OrgID):
		return Invalid("event %s: org id %q is not a valid subject token", e.Type, e.OrgID)
	case !ValidToken(e.Aggregate.Type) || !ValidToken(e.Aggregate.ID):
		return Invalid("event %s: aggregate %q/%q is not a valid subject token", e.Type, e.Aggregate.Type, e.Aggregate.ID)
	case e.Actor.Kind == "":
		return Invalid("event %s has no actor", e.Type)
	case len(e.Data) == 0:
		return Invalid("event %s has no data", e.Type)
	}
	return nil
}

// Marshal encodes the envelope for the wire.
func (e Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

// Unmarshal decodes an envelope from the wire. It checks the JSON shape only;
// the payload stays raw until Registry.Decode is asked for it.
func Unmarshal(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, Invalid("malformed event envelope: %v", err)
	}
	if e.ID == "" || e.Type == "" {
		return Envelope{}, Invalid("event envelope without id or type")
	}
	return e, nil
}
