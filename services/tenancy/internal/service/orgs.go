package service

import (
	"context"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
)

func (s *Service) listOrgs(ctx context.Context, req events.ListRequest) (events.List[events.OrgSummary], error) {
	u, err := user(ctx)
	if err != nil {
		return events.List[events.OrgSummary]{}, err
	}
	page, err := readmodel.PageOf(req.Limit, req.Cursor)
	if err != nil {
		return events.List[events.OrgSummary]{}, err
	}
	items, next, err := s.db.ListOrgs(ctx, u.ID, page)
	return events.List[events.OrgSummary]{Items: nonNil(items), NextCursor: next}, err
}

func (s *Service) getOrg(ctx context.Context, _ events.Empty) (events.OrgSummary, error) {
	c, err := inOrg(ctx, events.PermOrgRead)
	if err != nil {
		return events.OrgSummary{}, err
	}
	o, ok, err := s.db.GetOrg(ctx, c.OrgID)
	if err != nil {
		return o, err
	}
	if !ok {
		return o, domain.ErrOrgNotFound
	}
	o.Role = c.Role
	return o, nil
}

func (s *Service) updateOrg(ctx context.Context, req events.UpdateOrgRequest) (events.OrgSummary, error) {
	c, err := inOrg(ctx, events.PermOrgUpdate)
	if err != nil {
		return events.OrgSummary{}, err
	}
	var p domain.Problems
	var name, slug string
	if req.Name != nil {
		name = domain.CleanName(&p, "name", *req.Name)
	}
	if req.Slug != nil {
		slug = *req.Slug
		domain.CheckSlug(&p, "slug", slug)
	}
	if req.Name == nil && req.Slug == nil {
		p.Add("name", "give a name or a slug to change")
	}
	if err := p.Err(); err != nil {
		return events.OrgSummary{}, err
	}
	var o *domain.Org
	var oldSlug string
	claimed := ""
	err = eventstore.RetryConflicts(func() error {
		if o, err = s.loadOrg(ctx, c.OrgID); err != nil {
			return err
		}
		if !o.Exists() {
			return domain.ErrOrgNotFound
		}
		upd := events.OrgUpdated{Name: o.Name, Slug: o.Slug}
		if req.Name != nil {
			upd.Name = name
		}
		if req.Slug != nil {
			upd.Slug = slug
		}
		if upd.Name == o.Name && upd.Slug == o.Slug {
			return nil
		}
		if upd.Slug != o.Slug && claimed != upd.Slug {
			if err := s.claimSlug(ctx, c.OrgID, upd.Slug); err != nil {
				return err
			}
			claimed = upd.Slug
		}
		oldSlug = o.Slug
		v, err := s.appendTo(ctx, c.OrgID, events.TenancyAggOrg, c.OrgID, o.Version, upd)
		if err != nil {
			return err
		}
		o.Name, o.Slug, o.Version = upd.Name, upd.Slug, v
		return nil
	})
	if err != nil {
		if claimed != "" {
			s.releaseSlug(ctx, c.OrgID, claimed)
		}
		return events.OrgSummary{}, err
	}
	if oldSlug != "" && oldSlug != o.Slug {
		s.releaseSlug(ctx, c.OrgID, oldSlug)
	}
	s.await(ctx, events.TenancyAggOrg, c.OrgID, o.Version)
	return summary(o, c.Role), nil
}

func (s *Service) deleteOrg(ctx context.Context, _ events.Empty) (events.Empty, error) {
	c, err := inOrg(ctx, events.PermOrgDelete)
	if err != nil {
		return events.Empty{}, err
	}
	var o *domain.Org
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		if o, err = s.loadOrg(ctx, c.OrgID); err != nil {
			return err
		}
		if !o.Exists() {
			return domain.ErrOrgNotFound
		}
		v, err = s.appendTo(ctx, c.OrgID, events.TenancyAggOrg, c.OrgID, o.Version, events.OrgDeleted{})
		return err
	})
	if err != nil {
		return events.Empty{}, err
	}
	s.releaseSlug(ctx, c.OrgID, o.Slug)
	s.await(ctx, events.TenancyAggOrg, c.OrgID, v)
	return events.Empty{}, nil
}

// setPlan is for the billing service; a person calling it through some
// future route needs billing:manage.
func (s *Service) setPlan(ctx context.Context, req events.SetPlanRequest) (events.OrgSummary, error) {
	var c caller
	var err error
	switch reqctx.From(ctx).Actor.Kind {
	case events.ActorUser, events.ActorAPIKey, events.ActorAgent:
		c, err = inOrg(ctx, events.PermBillingManage)
	default:
		c, err = inOrg(ctx, "")
	}
	if err != nil {
		return events.OrgSummary{}, err
	}
	if _, ok := s.cfg.Plans[req.Plan]; !ok {
		var p domain.Problems
		p.Add("plan", "is not a plan")
		return events.OrgSummary{}, p.Err()
	}
	var o *domain.Org
	err = eventstore.RetryConflicts(func() error {
		if o, err = s.loadOrg(ctx, c.OrgID); err != nil {
			return err
		}
		if !o.Exists() {
			return domain.ErrOrgNotFound
		}
		if o.Plan == req.Plan {
			return nil
		}
		v, err := s.appendTo(ctx, c.OrgID, events.TenancyAggOrg, c.OrgID, o.Version, events.OrgPlanChanged{Plan: req.Plan, Previous: o.Plan})
		o.Plan, o.Version = req.Plan, v
		return err
	})
	if err != nil {
		return events.OrgSummary{}, err
	}
	s.await(ctx, events.TenancyAggOrg, c.OrgID, o.Version)
	return summary(o, c.Role), nil
}

func (s *Service) usage(ctx context.Context, _ events.Empty) (events.Usage, error) {
	c, err := inOrg(ctx, events.PermOrgRead)
	if err != nil {
		return events.Usage{}, err
	}
	o, ok, err := s.db.GetOrg(ctx, c.OrgID)
	if err != nil {
		return events.Usage{}, err
	}
	if !ok {
		return events.Usage{}, domain.ErrOrgNotFound
	}
	users, agents, err := s.db.Usage(ctx, c.OrgID)
	if err != nil {
		return events.Usage{}, err
	}
	return events.Usage{Plan: o.Plan, Users: users, Agents: agents, Limits: s.plan(o.Plan).Limits()}, nil
}

func summary(o *domain.Org, role events.Role) events.OrgSummary {
	return events.OrgSummary{ID: o.ID, Name: o.Name, Slug: o.Slug, Plan: o.Plan, Role: role,
		CreatedAt: o.CreatedAt.UTC().Format(time.RFC3339Nano)}
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}
