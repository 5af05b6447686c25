package service

import (
	"context"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
)

// listMembers lists the org's members; members_list needs members:read,
// the user administration's users_list members:manage.
func (s *Service) listMembers(perm events.Permission) func(context.Context, events.ListRequest) (events.List[events.Member], error) {
	return func(ctx context.Context, req events.ListRequest) (events.List[events.Member], error) {
		c, err := inOrg(ctx, perm)
		if err != nil {
			return events.List[events.Member]{}, err
		}
		page, err := readmodel.PageOf(req.Limit, req.Cursor)
		if err != nil {
			return events.List[events.Member]{}, err
		}
		items, next, err := s.db.ListMembers(ctx, c.OrgID, page)
		if err != nil {
			return events.List[events.Member]{}, err
		}
		return events.List[events.Member]{Items: s.withUsers(ctx, nonNil(items)), NextCursor: next}, nil
	}
}

// addMember adds an existing user, found by e-mail, with a role.
func (s *Service) addMember(ctx context.Context, req events.AddMemberRequest) (events.Member, error) {
	c, err := inOrg(ctx, events.PermMembersManage)
	if err != nil {
		return events.Member{}, err
	}
	var p domain.Problems
	email := domain.CleanEmail(&p, "email", req.Email)
	domain.CheckRole(&p, "role", req.Role)
	if err := p.Err(); err != nil {
		return events.Member{}, err
	}
	if err := domain.MayGrant(c.Role, req.Role); err != nil {
		return events.Member{}, err
	}
	u, err := callAuth[events.FindUserRequest, events.UserSummary](ctx, s.nc, events.OpAuthFindUser, events.FindUserRequest{Email: email})
	if events.ErrorCode(err) == events.CodeNotFound {
		return events.Member{}, events.NotFound("no user has this e-mail address: invite them instead").
			WithFields(events.FieldError{Field: "email", Message: "no user has this e-mail address"})
	}
	if err != nil {
		return events.Member{}, err
	}
	m, err := s.join(ctx, c.OrgID, c.Role, u.ID, req.Role, "")
	m.Email, m.Name = u.Email, u.Name
	return m, err
}

// join adds userID to orgID with role, deciding on the org's latest
// version (actor "" for the system: an accepted invitation).
func (s *Service) join(ctx context.Context, orgID string, actor events.Role, userID string, role events.Role, invitationID string) (events.Member, error) {
	var v uint64
	err := eventstore.RetryConflicts(func() error {
		o, err := s.loadOrg(ctx, orgID)
		if err != nil {
			return err
		}
		ev, err := o.AddMember(actor, userID, role, s.plan(o.Plan))
		if err != nil {
			return err
		}
		ev.InvitationID = invitationID
		v, err = s.appendTo(ctx, orgID, events.TenancyAggOrg, orgID, o.Version, ev)
		return err
	})
	if err != nil {
		return events.Member{}, err
	}
	s.await(ctx, events.TenancyAggOrg, orgID, v)
	return events.Member{UserID: userID, Role: role, JoinedAt: s.now().UTC()}, nil
}

func (s *Service) updateMember(ctx context.Context, req events.UpdateMemberRequest) (events.Member, error) {
	c, err := inOrg(ctx, events.PermMembersManage)
	if err != nil {
		return events.Member{}, err
	}
	var p domain.Problems
	domain.CheckID(&p, "user_id", req.UserID)
	domain.CheckRole(&p, "role", req.Role)
	if err := p.Err(); err != nil {
		return events.Member{}, err
	}
	var m domain.Member
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		o, err := s.loadOrg(ctx, c.OrgID)
		if err != nil {
			return err
		}
		ev, err := o.ChangeRole(c.Role, req.UserID, req.Role)
		if err != nil {
			return err
		}
		m, v = o.Members[req.UserID], o.Version
		if ev == nil {
			return nil
		}
		v, err = s.appendTo(ctx, c.OrgID, events.TenancyAggOrg, c.OrgID, o.Version, *ev)
		m.Role = req.Role
		return err
	})
	if err != nil {
		return events.Member{}, err
	}
	s.await(ctx, events.TenancyAggOrg, c.OrgID, v)
	out := []events.Member{{UserID: m.UserID, Role: m.Role, JoinedAt: m.JoinedAt.UTC()}}
	return s.withUsers(ctx, out)[0], nil
}

func (s *Service) removeMember(ctx context.Context, req events.UserRef) (events.Empty, error) {
	c, err := inOrg(ctx, events.PermMembersManage)
	if err != nil {
		return events.Empty{}, err
	}
	var p domain.Problems
	domain.CheckID(&p, "user_id", req.UserID)
	if err := p.Err(); err != nil {
		return events.Empty{}, err
	}
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		o, err := s.loadOrg(ctx, c.OrgID)
		if err != nil {
			return err
		}
		ev, err := o.RemoveMember(c.Role, req.UserID)
		if err != nil {
			return err
		}
		v, err = s.appendTo(ctx, c.OrgID, events.TenancyAggOrg, c.OrgID, o.Version, ev)
		return err
	})
	if err != nil {
		return events.Empty{}, err
	}
	s.await(ctx, events.TenancyAggOrg, c.OrgID, v)
	return events.Empty{}, nil
}

// createUser is user administration: it creates the account through the
// auth service and makes it a member. The plan's user limit and the owner
// rule are checked before the account is created, so a refused request
// leaves no account behind (bar a race with another addition, which the
// membership append then refuses).
func (s *Service) createUser(ctx context.Context, req events.CreateOrgUserRequest) (events.Member, error) {
	c, err := inOrg(ctx, events.PermMembersManage)
	if err != nil {
		return events.Member{}, err
	}
	var p domain.Problems
	email := domain.CleanEmail(&p, "email", req.Email)
	name := domain.CleanName(&p, "name", req.Name)
	if strings.TrimSpace(req.Password) == "" {
		p.Add("password", "is required")
	}
	domain.CheckRole(&p, "role", req.Role)
	if err := p.Err(); err != nil {
		return events.Member{}, err
	}
	if err := domain.MayGrant(c.Role, req.Role); err != nil {
		return events.Member{}, err
	}
	o, err := s.loadOrg(ctx, c.OrgID)
	if err != nil {
		return events.Member{}, err
	}
	if !o.Exists() {
		return events.Member{}, domain.ErrOrgNotFound
	}
	if plan := s.plan(o.Plan); !plan.UsersAllowed(len(o.Members)) {
		return events.Member{}, domain.PlanLimitError("users", o.Plan, plan.MaxUsers)
	}
	u, err := callAuth[events.CreateUserRequest, events.UserSummary](ctx, s.nc, events.OpAuthCreateUser,
		events.CreateUserRequest{Email: email, Password: req.Password, Name: name})
	if err != nil {
		return events.Member{}, err
	}
	m, err := s.join(ctx, c.OrgID, c.Role, u.ID, req.Role, "")
	m.Email, m.Name = u.Email, u.Name
	return m, err
}
