package tenancy_test

import (
	"context"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/tenancy"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/postgres"
	"github.com/jackc/pgx/v5"
)

// twoOrgs makes orgs A and B, each with a member, an invitation, an
// enrollment token and an enrolled agent.
type orgFixture struct {
	who    who
	member string
	inv    events.NewInvitation
	token  events.NewEnrollmentToken
	agent  events.AgentEnrollment
}

func fixture(t *testing.T, h *harness, name string) orgFixture {
	t.Helper()
	f := orgFixture{who: h.signUp(name+"-owner@example.com", name)}
	m := h.auth.add(name+"-member@example.com", name+" member")
	h.must(f.who, events.OpTenancyAddMember, events.AddMemberRequest{Email: m.Email, Role: events.RoleViewer}, nil)
	f.member = m.ID
	h.must(f.who, events.OpTenancyCreateInvitation, events.CreateInvitationRequest{Email: name + "-new@example.com", Role: events.RoleViewer}, &f.inv)
	h.must(f.who, events.OpTenancyCreateEnrollmentToken, events.CreateEnrollmentTokenRequest{Name: name}, &f.token)
	h.must(who{}, events.OpTenancyEnrollAgent, enrollReq(f.token.Token, name+"-host"), &f.agent)
	return f
}

var tenantTables = []string{"memberships", "invitations", "enrollment_tokens", "enrolled_agents", "agents", "orgs"}

func TestRowLevelSecurityHidesOtherOrgs(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{AgentCredentials: newIssuer(t)})
	a, b := fixture(t, h, "alpha"), fixture(t, h, "beta")
	ctx := context.Background()

	// As the owner (the projection's role) every row is there.
	for _, table := range tenantTables {
		var n int
		if err := h.db.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n < 2 {
			t.Fatalf("%s: %d rows as owner", table, n)
		}
	}

	count := func(tx pgx.Tx, table string) int {
		t.Helper()
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Under the reader role without app.org_id, no row of any tenant
	// table is visible, even with no WHERE clause at all.
	tx, err := h.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+postgres.ReaderRole); err != nil {
		t.Fatal(err)
	}
	for _, table := range tenantTables {
		if n := count(tx, table); n != 0 {
			t.Errorf("%s: %d rows visible without app.org_id", table, n)
		}
	}
	// Nor can the reader write.
	if _, err := tx.Exec(ctx, `UPDATE invitations SET revoked = true`); err == nil {
		t.Error("the reader role could write")
	}
	_ = tx.Rollback(ctx)

	// Scoped to org A through the store's read path: only A's rows, for
	// every table, whatever the query asks for.
	store := postgres.New(h.db)
	err = store.Read(ctx, postgres.Scope{OrgID: a.who.org}, func(tx pgx.Tx) error {
		for _, table := range tenantTables {
			col := "org_id"
			if table == "orgs" {
				col = "id"
			}
			var other, mine int
			if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE `+col+` <> $1), count(*) FILTER (WHERE `+col+` = $1) FROM `+table,
				a.who.org).Scan(&other, &mine); err != nil {
				return err
			}
			if other != 0 || mine == 0 {
				t.Errorf("%s scoped to A: %d rows of other orgs, %d of A", table, other, mine)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Scoped to a user: their own memberships and orgs only.
	err = store.Read(ctx, postgres.Scope{UserID: b.member}, func(tx pgx.Tx) error {
		if n := count(tx, "memberships"); n != 1 {
			t.Errorf("memberships of B's member: %d", n)
		}
		var id string
		if err := tx.QueryRow(ctx, `SELECT id FROM orgs`).Scan(&id); err != nil || id != b.who.org {
			t.Errorf("orgs of B's member: %s %v", id, err)
		}
		if n := count(tx, "invitations"); n != 0 {
			t.Errorf("invitations visible to a user scope: %d", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The setting does not outlive the transaction on a pooled connection.
	var setting string
	if err := h.db.QueryRow(ctx, `SELECT coalesce(current_setting('app.org_id', true), '')`).Scan(&setting); err != nil || setting != "" {
		t.Fatalf("app.org_id leaked: %q %v", setting, err)
	}
}

func TestOperationsNeverReachAnotherOrg(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{AgentCredentials: newIssuer(t)})
	a, b := fixture(t, h, "alpha"), fixture(t, h, "beta")
	asA := a.who

	// Every id of B, used in A: not found, never forbidden, never data.
	h.fails(asA, events.OpTenancyRevokeInvitation, events.IDRequest{ID: b.inv.ID}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyRevokeEnrollmentToken, events.IDRequest{ID: b.token.ID}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyDeleteEnrollmentToken, events.IDRequest{ID: b.token.ID}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyGetAgent, events.IDRequest{ID: b.agent.AgentID}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyDeleteAgent, events.IDRequest{ID: b.agent.AgentID}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyRemoveMember, events.UserRef{UserID: b.member}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyUpdateMember, events.UpdateMemberRequest{UserID: b.member, Role: events.RoleAdmin}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyDeleteUser, events.UserRef{UserID: b.who.user}, events.CodeNotFound, "")
	h.fails(asA, events.OpTenancyUpdateUser, events.UpdateMemberRequest{UserID: b.who.user, Role: events.RoleViewer}, events.CodeNotFound, "")

	// Lists in A show only A.
	var members events.List[events.Member]
	h.must(asA, events.OpTenancyListMembers, events.ListRequest{}, &members)
	for _, m := range members.Items {
		if m.UserID == b.member || m.UserID == b.who.user {
			t.Fatalf("B's member listed in A: %+v", m)
		}
	}
	var invs events.List[events.Invitation]
	h.must(asA, events.OpTenancyListInvitations, events.ListRequest{}, &invs)
	if len(invs.Items) != 1 || invs.Items[0].ID != a.inv.ID {
		t.Fatalf("invitations in A: %+v", invs)
	}
	var toks events.List[events.EnrollmentToken]
	h.must(asA, events.OpTenancyListEnrollmentTokens, events.ListRequest{}, &toks)
	if len(toks.Items) != 1 || toks.Items[0].ID != a.token.ID {
		t.Fatalf("tokens in A: %+v", toks)
	}
	var u events.Usage
	h.must(asA, events.OpTenancyUsage, nil, &u)
	if u.Users != 2 || u.Agents != 1 {
		t.Fatalf("usage of A counts B: %+v", u)
	}

	// A member of A is not a member of B, and a request without an org
	// (or with the platform's) reaches nothing.
	h.fails(who{}, events.OpTenancyMembership, events.MembershipRequest{OrgID: b.who.org, UserID: a.who.user}, events.CodeNotFound, "")
	h.fails(who{user: a.who.user, role: events.RoleOwner}, events.OpTenancyGetOrg, nil, events.CodeNotFound, "")
	h.fails(who{org: events.PlatformOrg, user: a.who.user, role: events.RoleOwner}, events.OpTenancyListMembers, events.ListRequest{}, events.CodeNotFound, "")

	// B's data is untouched.
	var bInvs events.List[events.Invitation]
	h.must(b.who, events.OpTenancyListInvitations, events.ListRequest{}, &bInvs)
	if len(bInvs.Items) != 1 || bInvs.Items[0].Status != events.InvitationStatusPending {
		t.Fatalf("B's invitations: %+v", bInvs)
	}
}
