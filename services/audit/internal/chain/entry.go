package chain

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// TimeLayout is how an entry's time is written: RFC 3339 in UTC with
// exactly nine fractional digits, so that entry times sort as strings.
// Verifiers treat the time as an opaque string: it is hashed as written.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// Outcome classifies an event type: "*.failed" is a failure, "*.denied"
// and "*.blocked" (refused requests, policy blocks) are denials, anything
// else a success.
func Outcome(eventType string) string {
	switch {
	case strings.HasSuffix(eventType, ".failed"):
		return events.OutcomeFailure
	case strings.HasSuffix(eventType, ".denied"), strings.HasSuffix(eventType, ".blocked"):
		return events.OutcomeDenied
	}
	return events.OutcomeSuccess
}

// EntryFor maps a source event to the content of its audit entry (index,
// prev_hash and hash are the writer's to fill, with Seal): action = event
// type, resource = aggregate, actor = the envelope's actor, details = the
// event's data. Events carry no secrets, so neither do entries.
//
// An audit.user_activity.linked event (a user's platform event linked into
// one of the user's orgs) becomes the entry of the event it links — its
// time, actor, action, resource, outcome and details — in the linked
// event's org and under the linked event's id.
func EntryFor(env events.Envelope) events.AuditEntry {
	var linked events.AuditUserActivityLinked
	if env.Type == linked.EventType() && json.Unmarshal(env.Data, &linked) == nil && linked.Source.Type != "" {
		e := entryOf(linked.Source)
		e.OrgID, e.EventID = env.OrgID, env.ID
		return e
	}
	return entryOf(env)
}

func entryOf(env events.Envelope) events.AuditEntry {
	t := env.Time
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return events.AuditEntry{
		OrgID:    env.OrgID,
		EventID:  env.ID,
		Time:     t.UTC().Format(TimeLayout),
		Actor:    env.Actor,
		Action:   env.Type,
		Resource: events.AuditResource{Type: env.Aggregate.Type, ID: env.Aggregate.ID},
		Outcome:  Outcome(env.Type),
		Details:  env.Data,
	}
}

// Seal links e after (prevIndex, prevHash) and computes its hash. Details
// that cannot be put in canonical form (numbers out of IEEE 754 range,
// invalid UTF-8) are replaced by their base64 encoding, so that every event
// still gets its entry.
func Seal(e *events.AuditEntry, prevIndex uint64, prevHash string) error {
	p, err := prepare(*e)
	if err != nil {
		return err
	}
	h, _, err := p.seal(prevIndex+1, prevHash)
	if err != nil {
		return err
	}
	e.Details, e.Index, e.PrevHash, e.Hash = p.details, prevIndex+1, prevHash, h
	return nil
}
