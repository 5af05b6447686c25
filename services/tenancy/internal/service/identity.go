package service

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
)

// register adds every operation of the service.
func (s *Service) register(d app.Deps) {
	e := d.Endpoints
	endpoint.Handle(e, events.OpTenancyCreateOrg, s.createOrg)
	endpoint.Handle(e, events.OpTenancyMembership, s.membership)
	endpoint.Handle(e, events.OpTenancyDefaultOrg, s.defaultOrg)

	endpoint.Handle(e, events.OpTenancyListOrgs, s.listOrgs)
	endpoint.Handle(e, events.OpTenancyGetOrg, s.getOrg)
	endpoint.Handle(e, events.OpTenancyUpdateOrg, s.updateOrg)
	endpoint.Handle(e, events.OpTenancyDeleteOrg, s.deleteOrg)
	endpoint.Handle(e, events.OpTenancySetPlan, s.setPlan)
	endpoint.Handle(e, events.OpTenancyUsage, s.usage)

	endpoint.Handle(e, events.OpTenancyListMembers, s.listMembers(events.PermMembersRead))
	endpoint.Handle(e, events.OpTenancyAddMember, s.addMember)
	endpoint.Handle(e, events.OpTenancyUpdateMember, s.updateMember)
	endpoint.Handle(e, events.OpTenancyRemoveMember, s.removeMember)
	endpoint.Handle(e, events.OpTenancyListUsers, s.listMembers(events.PermMembersManage))
	endpoint.Handle(e, events.OpTenancyCreateUser, s.createUser)
	endpoint.Handle(e, events.OpTenancyUpdateUser, s.updateMember)
	endpoint.Handle(e, events.OpTenancyDeleteUser, s.removeMember)

	endpoint.Handle(e, events.OpTenancyCreateInvitation, s.createInvitation)
	endpoint.Handle(e, events.OpTenancyListInvitations, s.listInvitations)
	endpoint.Handle(e, events.OpTenancyRevokeInvitation, s.revokeInvitation)
	endpoint.Handle(e, events.OpTenancyAcceptInvitation, s.acceptInvitation)

	endpoint.Handle(e, events.OpTenancyCreateEnrollmentToken, s.createEnrollmentToken)
	endpoint.Handle(e, events.OpTenancyListEnrollmentTokens, s.listEnrollmentTokens)
	endpoint.Handle(e, events.OpTenancyRevokeEnrollmentToken, s.revokeEnrollmentToken)
	endpoint.Handle(e, events.OpTenancyDeleteEnrollmentToken, s.deleteEnrollmentToken)

	endpoint.Handle(e, events.OpTenancyEnrollAgent, s.enrollAgent)
	endpoint.Handle(e, events.OpTenancyEnrollStatus, s.enrollStatus)
	endpoint.Handle(e, events.OpTenancyListAgents, s.listAgents)
	endpoint.Handle(e, events.OpTenancyGetAgent, s.getAgent)
	endpoint.Handle(e, events.OpTenancyDeleteAgent, s.deleteAgent)
}

// createOrg creates an org with its first owner. The gateway's POST /orgs
// sets the owner to the caller; the auth service's sign-up to the new
// user. A user may only create orgs they own.
func (s *Service) createOrg(ctx context.Context, req events.CreateOrgRequest) (events.OrgSummary, error) {
	var p domain.Problems
	name := domain.CleanName(&p, "name", req.Name)
	if req.Slug != "" {
		domain.CheckSlug(&p, "slug", req.Slug)
	}
	plan := req.Plan
	if plan == "" {
		plan = s.cfg.DefaultPlan
	} else if _, ok := s.cfg.Plans[plan]; !ok {
		p.Add("plan", "is not a plan")
	}
	domain.CheckID(&p, "owner_user_id", req.OwnerUserID)
	if err := p.Err(); err != nil {
		return events.OrgSummary{}, err
	}
	if a := reqctx.From(ctx).Actor; a.Kind == events.ActorUser && a.ID != req.OwnerUserID {
		return events.OrgSummary{}, events.Errorf(events.CodeForbidden, "you can only create organisations that you own")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return events.OrgSummary{}, err
	}
	orgID := id.String()
	slug, err := s.claimNewSlug(ctx, orgID, req.Slug, name)
	if err != nil {
		return events.OrgSummary{}, err
	}
	v, err := s.appendTo(ctx, orgID, events.TenancyAggOrg, orgID, 0,
		events.OrgCreated{Name: name, Slug: slug, Plan: plan, Owner: req.OwnerUserID},
		events.MemberAdded{UserID: req.OwnerUserID, Role: events.RoleOwner})
	if err != nil {
		s.releaseSlug(ctx, orgID, slug)
		return events.OrgSummary{}, err
	}
	s.await(ctx, events.TenancyAggOrg, orgID, v)
	return events.OrgSummary{ID: orgID, Name: name, Slug: slug, Plan: plan, Role: events.RoleOwner,
		CreatedAt: s.now().UTC().Format(time.RFC3339Nano)}, nil
}

// claimNewSlug claims the requested slug (conflict when taken) or, with
// none requested, one derived from the name, with a random suffix when the
// plain one is taken.
func (s *Service) claimNewSlug(ctx context.Context, orgID, wanted, name string) (string, error) {
	if wanted != "" {
		return wanted, s.claimSlug(ctx, orgID, wanted)
	}
	slug := domain.Slugify(name)
	for i := 0; ; i++ {
		err := s.claimSlug(ctx, orgID, slug)
		if events.ErrorCode(err) != events.CodeConflict || i == 5 {
			return slug, err
		}
		slug = domain.WithSuffix(domain.Slugify(name))
	}
}

// errSlugTaken is the answer when another org holds a slug.
func errSlugTaken() error {
	return events.Errorf(events.CodeConflict, "the slug is taken").
		WithFields(events.FieldError{Field: "slug", Message: "is taken by another organisation"})
}

// claimSlug makes orgID the holder of slug. The claim is an aggregate of
// its own, appended with optimistic concurrency, so of two orgs claiming
// the same slug at once exactly one wins.
func (s *Service) claimSlug(ctx context.Context, orgID, slug string) error {
	return eventstore.RetryConflicts(func() error {
		ref := eventstore.Ref{OrgID: events.PlatformOrg, Type: events.TenancyAggSlug, ID: slug}
		evs, v, err := s.es.Load(ctx, ref)
		if err != nil {
			return err
		}
		c, err := domain.ReplaySlug(evs, v)
		if err != nil {
			return err
		}
		switch c.Holder {
		case orgID:
			return nil
		case "":
			_, err = s.appendTo(ctx, events.PlatformOrg, events.TenancyAggSlug, slug, v, events.SlugClaimed{OrgID: orgID})
			return err
		default:
			return errSlugTaken()
		}
	})
}

// releaseSlug gives slug up if orgID holds it. It is best effort: a claim
// left behind only keeps a slug from being reused, and is logged.
func (s *Service) releaseSlug(ctx context.Context, orgID, slug string) {
	ctx = context.WithoutCancel(ctx)
	err := eventstore.RetryConflicts(func() error {
		ref := eventstore.Ref{OrgID: events.PlatformOrg, Type: events.TenancyAggSlug, ID: slug}
		evs, v, err := s.es.Load(ctx, ref)
		if err != nil {
			return err
		}
		c, err := domain.ReplaySlug(evs, v)
		if err != nil || c.Holder != orgID {
			return err
		}
		_, err = s.appendTo(ctx, events.PlatformOrg, events.TenancyAggSlug, slug, v, events.SlugReleased{OrgID: orgID})
		return err
	})
	if err != nil {
		s.log.Error("slug not released", "slug", slug, "org_id", orgID, "err", err)
	}
}

// membership answers the gateway's question on every authenticated
// request: a primary-key lookup, cached briefly.
func (s *Service) membership(ctx context.Context, req events.MembershipRequest) (events.MembershipReply, error) {
	if !events.ValidToken(req.OrgID) || !events.ValidToken(req.UserID) {
		return events.MembershipReply{}, events.NotFound("not a member of this organisation")
	}
	now := s.now()
	role, ok, hit, gen := s.cache.get(req.OrgID, req.UserID, now)
	if !hit {
		var err error
		role, ok, err = s.db.Membership(ctx, req.OrgID, req.UserID)
		if err != nil {
			return events.MembershipReply{}, err
		}
		s.cache.put(req.OrgID, req.UserID, role, ok, gen, now)
	}
	if !ok {
		return events.MembershipReply{}, events.NotFound("not a member of this organisation")
	}
	return events.MembershipReply{OrgID: req.OrgID, Role: role}, nil
}

// defaultOrg answers the org a user acts in when a request names none: the
// first one they joined.
func (s *Service) defaultOrg(ctx context.Context, req events.DefaultOrgRequest) (events.MembershipReply, error) {
	if !events.ValidToken(req.UserID) {
		return events.MembershipReply{}, events.NotFound("no organisation")
	}
	org, role, ok, err := s.db.DefaultOrg(ctx, req.UserID)
	if err != nil {
		return events.MembershipReply{}, err
	}
	if !ok {
		return events.MembershipReply{}, events.NotFound("no organisation")
	}
	return events.MembershipReply{OrgID: org, Role: role}, nil
}
