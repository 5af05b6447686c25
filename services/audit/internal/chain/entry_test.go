package chain

import (
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// TestEntryForLinkedActivity: a user's platform event linked into an org
// becomes the source event's entry (time, actor, action, resource,
// outcome, details) in the linked event's org, under the linked event's
// id; any other event maps field by field.
func TestEntryForLinkedActivity(t *testing.T) {
	actor := events.Actor{Kind: events.ActorUser, ID: "u1", IP: "198.51.100.2", UserAgent: "ua"}
	src, err := events.New(events.LoginFailed{Reason: events.LoginFailedBadPassword, UserID: "u1"},
		events.Aggregate{Type: "login", ID: "h"}, events.Meta{OrgID: events.PlatformOrg, Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	linked, err := events.New(events.AuditUserActivityLinked{Source: src}, events.Aggregate{Type: events.AuditAggUserActivity, ID: "u1"},
		events.Meta{OrgID: "org-1", Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	got, want := EntryFor(linked), EntryFor(src)
	if got.OrgID != "org-1" || got.EventID != linked.ID || want.OrgID != events.PlatformOrg || want.EventID != src.ID {
		t.Fatalf("ids: %+v", got)
	}
	got.OrgID, got.EventID = want.OrgID, want.EventID
	if got.Time != want.Time || got.Actor != want.Actor || got.Action != "auth.login.failed" || got.Resource != want.Resource ||
		got.Outcome != events.OutcomeFailure || string(got.Details) != string(want.Details) {
		t.Fatalf("linked entry %+v, source entry %+v", got, want)
	}
	// A linked event whose source cannot be read is chained as itself.
	broken := linked
	broken.Data = []byte(`{"source":"x"}`)
	if e := EntryFor(broken); e.Action != "audit.user_activity.linked" || e.EventID != linked.ID {
		t.Fatalf("broken link %+v", e)
	}
}
