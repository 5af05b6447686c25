package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/activity"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// newEvent builds a real event of payload p.
func newEvent(t *testing.T, p events.Payload, org string, agg events.Aggregate, actor events.Actor) events.Envelope {
	t.Helper()
	env, err := events.New(p, agg, events.Meta{OrgID: org, Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// actions lists the actions of org's chain on the stream, in order.
func (e *env) actions(org string) []string {
	e.t.Helper()
	var out []string
	for _, en := range e.streamChain(org) {
		out = append(out, en.Action)
	}
	return out
}

// TestUserActivityIsLinkedIntoTheUsersOrgs: a user's platform events
// (failed and successful sign-ins, sessions) appear in the chain of every
// org the user was a member of when they happened — with the source
// event's actor, ip, action and outcome — and nowhere else; events before
// the user joined or after the user left an org stay out of it, as do
// failed sign-ins of unknown users. Re-reading every source event links
// nothing twice.
func TestUserActivityIsLinkedIntoTheUsersOrgs(t *testing.T) {
	e := newEnv(t)
	h := e.startHost(testConfig(), "a1")
	orgX, orgY, user := "org-act-x", "org-act-y", "u-act-1"
	ua := events.Actor{Kind: events.ActorUser, ID: user, IP: "198.51.100.20", UserAgent: "curl/8"}
	platform := func(p events.Payload, agg events.Aggregate, actor events.Actor) events.Envelope {
		return newEvent(t, p, events.PlatformOrg, agg, actor)
	}

	before := platform(events.UserRegistered{Email: "a@example.com", Name: "A"}, events.Aggregate{Type: "user", ID: user}, ua)
	before.Time = time.Now().Add(-time.Hour).UTC()
	e.publish(before)
	for _, org := range []string{orgX, orgY} {
		e.publish(newEvent(t, events.MemberAdded{UserID: user, Role: events.RoleAdmin}, org, events.Aggregate{Type: "org", ID: org}, ua))
	}
	failed := platform(events.LoginFailed{Reason: events.LoginFailedBadPassword, IP: ua.IP, UserID: user}, events.Aggregate{Type: "login", ID: "h1"}, ua)
	unknown := platform(events.LoginFailed{Reason: events.LoginFailedUnknownUser, IP: ua.IP}, events.Aggregate{Type: "login", ID: "h2"},
		events.Actor{Kind: events.ActorUser, ID: "anonymous", IP: ua.IP})
	refreshed := platform(events.SessionRefreshed{Generation: 2, IP: ua.IP}, events.Aggregate{Type: "session", ID: "s1"}, ua)
	for _, env := range []events.Envelope{failed, unknown, refreshed} {
		e.publish(env)
	}
	want := []string{"tenancy.member.added", "auth.login.failed", "auth.session.refreshed"}
	for _, org := range []string{orgX, orgY} {
		e.waitChained(org, len(want), 30*time.Second)
	}
	// Y removes the user; X keeps them.
	e.publish(newEvent(t, events.MemberRemoved{UserID: user, Role: events.RoleAdmin}, orgY, events.Aggregate{Type: "org", ID: orgY}, ua))
	e.waitChained(orgY, len(want)+1, 30*time.Second)
	after := platform(events.LoginSucceeded{UserID: user, SessionID: "s2", Method: "password", IP: ua.IP}, events.Aggregate{Type: "login", ID: "h1"}, ua)
	e.publish(after)
	e.waitChained(orgX, len(want)+1, 30*time.Second)

	check := func() {
		t.Helper()
		gotX, gotY := e.actions(orgX), e.actions(orgY)
		if fmt.Sprint(gotX) != fmt.Sprint(append(want, "auth.login.succeeded")) {
			t.Fatalf("chain of X: %v", gotX)
		}
		if fmt.Sprint(gotY) != fmt.Sprint(append(want, "tenancy.member.removed")) {
			t.Fatalf("chain of Y: %v", gotY)
		}
		for _, org := range []string{orgX, orgY} {
			entries := e.checkLinear(org, nil)
			en := entries[1]
			if en.Actor != ua || en.Outcome != events.OutcomeFailure || en.Resource != (events.AuditResource{Type: "login", ID: "h1"}) ||
				en.EventID != activity.LinkedID(org, failed.ID) || en.OrgID != org {
				t.Fatalf("%s: linked failed login %+v", org, en.AuditEntry)
			}
			var d events.LoginFailed
			if err := json.Unmarshal(en.Details, &d); err != nil || d.Reason != events.LoginFailedBadPassword || d.UserID != user {
				t.Fatalf("%s: details %s", org, en.Details)
			}
			if tm, _ := time.Parse(time.RFC3339Nano, en.Time); !tm.Equal(failed.Time) {
				t.Fatalf("%s: time %s, event at %s", org, en.Time, failed.Time)
			}
		}
	}
	check()
	// The platform chain keeps every source event.
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		got := map[string]bool{}
		for _, en := range e.streamChain(events.PlatformOrg) {
			got[en.EventID] = true
		}
		for _, env := range []events.Envelope{before, failed, unknown, refreshed, after} {
			if !got[env.ID] {
				return fmt.Errorf("platform chain lacks %s", env.Type)
			}
		}
		return nil
	})

	// Every source event read again (the linker's consumer reset) links
	// nothing twice.
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(context.Background(), events.DomainStream("auth"), activity.LinkerDurable); err != nil {
		t.Fatal(err)
	}
	e.startHost(testConfig(), "a2")
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		info, err := e.js.Consumer(context.Background(), events.DomainStream("auth"), activity.LinkerDurable)
		if err != nil {
			return err
		}
		if ci := info.CachedInfo(); ci.NumPending > 0 || ci.NumAckPending > 0 {
			return fmt.Errorf("linker still re-reading: %d pending", ci.NumPending+uint64(ci.NumAckPending))
		}
		return nil
	})
	e.publish(newEvent(t, events.OrgUpdated{Name: "X", Slug: "x"}, orgX, events.Aggregate{Type: "org", ID: orgX}, ua))
	e.waitChained(orgX, len(want)+2, 30*time.Second)
	if gotX := e.actions(orgX); len(gotX) != len(want)+2 || gotX[len(gotX)-1] != "tenancy.org.updated" {
		t.Fatalf("chain of X after the re-read: %v", gotX)
	}
	if gotY := e.actions(orgY); len(gotY) != len(want)+1 {
		t.Fatalf("chain of Y after the re-read: %v", gotY)
	}
}
