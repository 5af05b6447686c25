package tenancy_test

import (
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/tenancy"
)

func TestOrgLifecycle(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{})
	owner := h.signUp("ada@example.com", "Acme Corp")

	// Read your writes: the org and the owner's membership are visible as
	// soon as the create answered.
	var got events.OrgSummary
	h.must(owner, events.OpTenancyGetOrg, nil, &got)
	if got.ID != owner.org || got.Name != "Acme Corp" || got.Slug != "acme-corp" || got.Plan != "free" || got.Role != events.RoleOwner {
		t.Fatalf("get: %+v", got)
	}
	var m events.MembershipReply
	h.must(who{}, events.OpTenancyMembership, events.MembershipRequest{OrgID: owner.org, UserID: owner.user}, &m)
	if m.Role != events.RoleOwner {
		t.Fatalf("membership: %+v", m)
	}
	h.must(who{}, events.OpTenancyDefaultOrg, events.DefaultOrgRequest{UserID: owner.user}, &m)
	if m.OrgID != owner.org || m.Role != events.RoleOwner {
		t.Fatalf("default org: %+v", m)
	}

	// A second org of the same user, created through POST /orgs (the
	// gateway passes the caller as owner); the slug is explicit.
	var second events.OrgSummary
	h.must(who{user: owner.user}, events.OpTenancyCreateOrg,
		events.CreateOrgRequest{Name: "Acme Labs", Slug: "labs", OwnerUserID: owner.user}, &second)
	var list events.List[events.OrgSummary]
	h.must(who{user: owner.user}, events.OpTenancyListOrgs, events.ListRequest{}, &list)
	if len(list.Items) != 2 {
		t.Fatalf("list: %+v", list)
	}
	// The default org stays the first joined.
	h.must(who{}, events.OpTenancyDefaultOrg, events.DefaultOrgRequest{UserID: owner.user}, &m)
	if m.OrgID != owner.org {
		t.Fatalf("default org moved to %s", m.OrgID)
	}
	// Paging.
	h.must(who{user: owner.user}, events.OpTenancyListOrgs, events.ListRequest{Limit: 1}, &list)
	if len(list.Items) != 1 || list.NextCursor == "" {
		t.Fatalf("page 1: %+v", list)
	}
	cursor := list.NextCursor
	list = events.List[events.OrgSummary]{}
	h.must(who{user: owner.user}, events.OpTenancyListOrgs, events.ListRequest{Limit: 1, Cursor: cursor}, &list)
	if len(list.Items) != 1 || list.NextCursor != "" {
		t.Fatalf("page 2: %+v", list)
	}

	// A user cannot create an org for someone else.
	h.fails(who{user: owner.user}, events.OpTenancyCreateOrg,
		events.CreateOrgRequest{Name: "X", OwnerUserID: "someone-else"}, events.CodeForbidden, "own")

	// Slugs are unique: taken explicitly → conflict with a field error; a
	// derived one gets a suffix.
	e := h.fails(who{}, events.OpTenancyCreateOrg, events.CreateOrgRequest{Name: "Other", Slug: "acme-corp", OwnerUserID: "u2"},
		events.CodeConflict, "slug")
	hasField(t, e, "slug")
	var dup events.OrgSummary
	h.must(who{}, events.OpTenancyCreateOrg, events.CreateOrgRequest{Name: "Acme Corp", OwnerUserID: "u2"}, &dup)
	if dup.Slug == "acme-corp" || len(dup.Slug) < len("acme-corp-") {
		t.Fatalf("derived slug %q", dup.Slug)
	}

	// Update: rename and move the slug; the old slug is free again.
	name, slug := "Acme Inc", "acme"
	var upd events.OrgSummary
	h.must(owner, events.OpTenancyUpdateOrg, events.UpdateOrgRequest{Name: &name, Slug: &slug}, &upd)
	if upd.Name != name || upd.Slug != slug {
		t.Fatalf("update: %+v", upd)
	}
	h.must(owner, events.OpTenancyGetOrg, nil, &got)
	if got.Name != name || got.Slug != slug {
		t.Fatalf("after update: %+v", got)
	}
	var reuse events.OrgSummary
	h.must(who{}, events.OpTenancyCreateOrg, events.CreateOrgRequest{Name: "Reuse", Slug: "acme-corp", OwnerUserID: "u3"}, &reuse)
	taken := "labs"
	h.fails(owner, events.OpTenancyUpdateOrg, events.UpdateOrgRequest{Slug: &taken}, events.CodeConflict, "slug")

	// Only an admin may update, only an owner delete.
	viewer := who{org: owner.org, user: "v1", role: events.RoleViewer}
	h.fails(viewer, events.OpTenancyUpdateOrg, events.UpdateOrgRequest{Name: &name}, events.CodeForbidden, "org:update")
	admin := who{org: owner.org, user: "a1", role: events.RoleAdmin}
	h.fails(admin, events.OpTenancyDeleteOrg, nil, events.CodeForbidden, "org:delete")

	// Delete: the org is gone for everyone, memberships with it, and its
	// slug can be taken again.
	h.must(owner, events.OpTenancyDeleteOrg, nil, nil)
	h.fails(owner, events.OpTenancyGetOrg, nil, events.CodeNotFound, "organisation")
	h.fails(who{}, events.OpTenancyMembership, events.MembershipRequest{OrgID: owner.org, UserID: owner.user}, events.CodeNotFound, "member")
	h.fails(owner, events.OpTenancyDeleteOrg, nil, events.CodeNotFound, "organisation")
	h.must(who{}, events.OpTenancyDefaultOrg, events.DefaultOrgRequest{UserID: owner.user}, &m)
	if m.OrgID != second.ID {
		t.Fatalf("default org after delete: %+v", m)
	}
	h.must(who{}, events.OpTenancyCreateOrg, events.CreateOrgRequest{Name: "Acme again", Slug: "acme", OwnerUserID: "u4"}, &reuse)
}

func TestOrgValidation(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{})
	long := make([]byte, 101)
	for i := range long {
		long[i] = 'x'
	}
	cases := []struct {
		name  string
		req   events.CreateOrgRequest
		field string
	}{
		{"empty name", events.CreateOrgRequest{Name: "  ", OwnerUserID: "u"}, "name"},
		{"long name", events.CreateOrgRequest{Name: string(long), OwnerUserID: "u"}, "name"},
		{"control chars", events.CreateOrgRequest{Name: "a\x00b", OwnerUserID: "u"}, "name"},
		{"short slug", events.CreateOrgRequest{Name: "ok", Slug: "ab", OwnerUserID: "u"}, "slug"},
		{"bad slug", events.CreateOrgRequest{Name: "ok", Slug: "Not_A_Slug", OwnerUserID: "u"}, "slug"},
		{"long slug", events.CreateOrgRequest{Name: "ok", Slug: string(long[:41]), OwnerUserID: "u"}, "slug"},
		{"unknown plan", events.CreateOrgRequest{Name: "ok", Plan: "gold", OwnerUserID: "u"}, "plan"},
		{"no owner", events.CreateOrgRequest{Name: "ok"}, "owner_user_id"},
		{"bad owner", events.CreateOrgRequest{Name: "ok", OwnerUserID: "a.b"}, "owner_user_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := h.fails(who{}, events.OpTenancyCreateOrg, c.req, events.CodeInvalid, "")
			hasField(t, e, c.field)
		})
	}
	// Unknown fields are refused by the endpoint.
	h.fails(who{}, events.OpTenancyCreateOrg, map[string]any{"name": "x", "owner_user_id": "u", "org_id": "y"}, events.CodeInvalid, "unknown field")
}

func TestSetPlanAndUsage(t *testing.T) {
	t.Parallel()
	h := start(t, tenancy.Config{})
	owner := h.signUp("bo@example.com", "Bo")
	var u events.Usage
	h.must(owner, events.OpTenancyUsage, nil, &u)
	if u.Plan != "free" || u.Users != 1 || u.Agents != 0 || *u.Limits.Users != 3 || *u.Limits.Agents != 2 {
		t.Fatalf("usage: %+v", u)
	}
	// Billing (a service, no user) moves the org to enterprise: unlimited.
	h.must(who{org: owner.org}, events.OpTenancySetPlan, events.SetPlanRequest{Plan: "enterprise"}, nil)
	h.must(owner, events.OpTenancyUsage, nil, &u)
	if u.Plan != "enterprise" || u.Limits.Users != nil || u.Limits.Agents != nil {
		t.Fatalf("usage: %+v", u)
	}
	// A user needs billing:manage (owner) to do that; admins cannot.
	h.fails(who{org: owner.org, user: "x", role: events.RoleAdmin}, events.OpTenancySetPlan, events.SetPlanRequest{Plan: "free"}, events.CodeForbidden, "")
	e := h.fails(who{org: owner.org}, events.OpTenancySetPlan, events.SetPlanRequest{Plan: "gold"}, events.CodeInvalid, "")
	hasField(t, e, "plan")
}
