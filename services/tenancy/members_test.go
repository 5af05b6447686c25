package tenancy_test

import (
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/tenancy"
)

func TestMembersRolesAndTheLastOwner(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{Plans: map[string]tenancy.Plan{"free": {MaxUsers: 10, MaxAgents: 2}}})
	owner := h.signUp("owner@example.com", "Org")
	admin := h.auth.add("admin@example.com", "Admin")
	op := h.auth.add("Op@Example.com", "Op")

	var m events.Member
	h.must(owner, events.OpTenancyAddMember, events.AddMemberRequest{Email: "admin@example.com", Role: events.RoleAdmin}, &m)
	if m.UserID != admin.ID || m.Role != events.RoleAdmin || m.Email != "admin@example.com" {
		t.Fatalf("added: %+v", m)
	}
	asAdmin := who{org: owner.org, user: admin.ID, role: events.RoleAdmin}
	// E-mail lookup is case-insensitive.
	h.must(asAdmin, events.OpTenancyAddMember, events.AddMemberRequest{Email: "op@example.com", Role: events.RoleOperator}, &m)
	h.fails(asAdmin, events.OpTenancyAddMember, events.AddMemberRequest{Email: "op@example.com", Role: events.RoleViewer},
		events.CodeConflict, "already a member")
	e := h.fails(asAdmin, events.OpTenancyAddMember, events.AddMemberRequest{Email: "nobody@example.com", Role: events.RoleViewer},
		events.CodeNotFound, "invite")
	hasField(t, e, "email")
	e = h.fails(asAdmin, events.OpTenancyAddMember, events.AddMemberRequest{Email: "not-an-email", Role: "boss"}, events.CodeInvalid, "")
	hasField(t, e, "email")
	hasField(t, e, "role")

	// The list carries names from auth; the membership is what the
	// gateway sees.
	var list events.List[events.Member]
	h.must(who{org: owner.org, user: op.ID, role: events.RoleViewer}, events.OpTenancyListMembers, events.ListRequest{}, &list)
	if len(list.Items) != 3 {
		t.Fatalf("members: %+v", list)
	}
	for _, it := range list.Items {
		if it.Email == "" || it.Name == "" || it.JoinedAt.IsZero() {
			t.Fatalf("member without user data: %+v", it)
		}
	}
	var ms events.MembershipReply
	h.must(who{}, events.OpTenancyMembership, events.MembershipRequest{OrgID: owner.org, UserID: op.ID}, &ms)
	if ms.Role != events.RoleOperator {
		t.Fatalf("membership %+v", ms)
	}

	// Owners only: an admin can neither grant nor take the owner role,
	// nor remove an owner.
	h.fails(asAdmin, events.OpTenancyAddMember, events.AddMemberRequest{Email: "x@example.com", Role: events.RoleOwner}, events.CodeForbidden, "owner")
	h.fails(asAdmin, events.OpTenancyUpdateMember, events.UpdateMemberRequest{UserID: op.ID, Role: events.RoleOwner}, events.CodeForbidden, "owner")
	h.fails(asAdmin, events.OpTenancyUpdateMember, events.UpdateMemberRequest{UserID: owner.user, Role: events.RoleViewer}, events.CodeForbidden, "owner")
	h.fails(asAdmin, events.OpTenancyRemoveMember, events.UserRef{UserID: owner.user}, events.CodeForbidden, "owner")
	// Viewers and operators manage nobody.
	h.fails(who{org: owner.org, user: op.ID, role: events.RoleOperator}, events.OpTenancyRemoveMember, events.UserRef{UserID: admin.ID},
		events.CodeForbidden, "members:manage")

	// The last owner can be neither demoted nor removed…
	h.fails(owner, events.OpTenancyUpdateMember, events.UpdateMemberRequest{UserID: owner.user, Role: events.RoleAdmin}, events.CodeConflict, "owner")
	h.fails(owner, events.OpTenancyRemoveMember, events.UserRef{UserID: owner.user}, events.CodeConflict, "last owner")
	// …until there is another one.
	h.must(owner, events.OpTenancyUpdateMember, events.UpdateMemberRequest{UserID: admin.ID, Role: events.RoleOwner}, &m)
	if m.Role != events.RoleOwner || m.Email != "admin@example.com" {
		t.Fatalf("promoted: %+v", m)
	}
	h.must(who{}, events.OpTenancyMembership, events.MembershipRequest{OrgID: owner.org, UserID: admin.ID}, &ms)
	if ms.Role != events.RoleOwner {
		t.Fatalf("membership after promotion %+v (cache not invalidated?)", ms)
	}
	h.must(owner, events.OpTenancyUpdateMember, events.UpdateMemberRequest{UserID: owner.user, Role: events.RoleViewer}, &m)
	newOwner := who{org: owner.org, user: admin.ID, role: events.RoleOwner}
	h.fails(newOwner, events.OpTenancyRemoveMember, events.UserRef{UserID: admin.ID}, events.CodeConflict, "last owner")
	h.must(newOwner, events.OpTenancyRemoveMember, events.UserRef{UserID: op.ID}, nil)
	h.fails(who{}, events.OpTenancyMembership, events.MembershipRequest{OrgID: owner.org, UserID: op.ID}, events.CodeNotFound, "")
	h.fails(newOwner, events.OpTenancyRemoveMember, events.UserRef{UserID: op.ID}, events.CodeNotFound, "member")
	e = h.fails(newOwner, events.OpTenancyUpdateMember, events.UpdateMemberRequest{UserID: "a.b", Role: "x"}, events.CodeInvalid, "")
	hasField(t, e, "user_id")
	hasField(t, e, "role")
}

func TestPlanUserLimit(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{}) // free: 3 users
	owner := h.signUp("o@example.com", "Small")
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		h.auth.add(email, email)
	}
	h.must(owner, events.OpTenancyAddMember, events.AddMemberRequest{Email: "a@example.com", Role: events.RoleViewer}, nil)
	h.must(owner, events.OpTenancyAddMember, events.AddMemberRequest{Email: "b@example.com", Role: events.RoleViewer}, nil)
	h.fails(owner, events.OpTenancyAddMember, events.AddMemberRequest{Email: "c@example.com", Role: events.RoleViewer},
		events.CodeConflict, "free plan allows 3 users")
	// User administration refuses before creating an account.
	before := h.auth.count()
	h.fails(owner, events.OpTenancyCreateUser, events.CreateOrgUserRequest{Email: "d@example.com", Password: "pw", Name: "D", Role: events.RoleViewer},
		events.CodeConflict, "free plan allows 3 users")
	if h.auth.count() != before {
		t.Fatal("an account was created although the plan is full")
	}
	var u events.Usage
	h.must(owner, events.OpTenancyUsage, nil, &u)
	if u.Users != 3 {
		t.Fatalf("usage %+v", u)
	}
	// Moving to pro lifts the limit.
	h.must(who{org: owner.org}, events.OpTenancySetPlan, events.SetPlanRequest{Plan: "pro"}, nil)
	h.must(owner, events.OpTenancyAddMember, events.AddMemberRequest{Email: "c@example.com", Role: events.RoleViewer}, nil)
}

func TestUserAdministration(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{})
	owner := h.signUp("root@example.com", "Admin Org")
	admin := who{org: owner.org, user: owner.user, role: events.RoleAdmin}

	var m events.Member
	h.must(admin, events.OpTenancyCreateUser, events.CreateOrgUserRequest{Email: "new@example.com", Password: "s3cret-pass", Name: "New", Role: events.RoleOperator}, &m)
	if m.UserID == "" || m.Email != "new@example.com" || m.Role != events.RoleOperator {
		t.Fatalf("created: %+v", m)
	}
	h.fails(admin, events.OpTenancyCreateUser, events.CreateOrgUserRequest{Email: "boss@example.com", Password: "x", Name: "B", Role: events.RoleOwner},
		events.CodeForbidden, "owner")
	// An e-mail auth already has is auth's conflict.
	h.fails(admin, events.OpTenancyCreateUser, events.CreateOrgUserRequest{Email: "new@example.com", Password: "x", Name: "N", Role: events.RoleViewer},
		events.CodeConflict, "")
	e := h.fails(admin, events.OpTenancyCreateUser, events.CreateOrgUserRequest{Email: "bad", Name: "", Role: events.RoleViewer}, events.CodeInvalid, "")
	for _, f := range []string{"email", "name", "password"} {
		hasField(t, e, f)
	}

	var list events.List[events.Member]
	h.must(admin, events.OpTenancyListUsers, events.ListRequest{}, &list)
	if len(list.Items) != 2 {
		t.Fatalf("users: %+v", list)
	}
	// Listing users is for administrators; members:read is not enough.
	h.fails(who{org: owner.org, user: m.UserID, role: events.RoleViewer}, events.OpTenancyListUsers, events.ListRequest{}, events.CodeForbidden, "")

	h.must(admin, events.OpTenancyUpdateUser, events.UpdateMemberRequest{UserID: m.UserID, Role: events.RoleViewer}, &m)
	if m.Role != events.RoleViewer {
		t.Fatalf("updated: %+v", m)
	}
	h.must(admin, events.OpTenancyDeleteUser, events.UserRef{UserID: m.UserID}, nil)
	h.must(admin, events.OpTenancyListUsers, events.ListRequest{}, &list)
	if len(list.Items) != 1 {
		t.Fatalf("users after delete: %+v", list)
	}
}
