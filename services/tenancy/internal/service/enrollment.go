package service

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
)

// Limits of enrollment tokens.
const (
	maxTokenUses     = 1_000_000
	maxTokenLifetime = 5 * 365 * 24 * time.Hour
)

// expiresIn parses the expires_in of a new token: a Go duration ("24h",
// "90m"), "" for the default, "never" for no expiry.
func (s *Service) expiresIn(p *domain.Problems, v string, now time.Time) *time.Time {
	var d time.Duration
	switch v = strings.TrimSpace(v); v {
	case "":
		d = s.cfg.EnrollmentTokenTTL
	case "never":
		return nil
	default:
		var err error
		d, err = time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxTokenLifetime {
			p.Add("expires_in", `must be a duration such as "24h" or "90m" (at most 5 years), or "never"`)
			return nil
		}
	}
	t := now.Add(d).UTC().Truncate(time.Microsecond)
	return &t
}

func (s *Service) createEnrollmentToken(ctx context.Context, req events.CreateEnrollmentTokenRequest) (events.NewEnrollmentToken, error) {
	c, err := inOrg(ctx, events.PermEnrollManage)
	if err != nil {
		return events.NewEnrollmentToken{}, err
	}
	now := s.now().UTC()
	var p domain.Problems
	name := domain.CleanName(&p, "name", req.Name)
	if req.MaxUses < 0 || req.MaxUses > maxTokenUses {
		p.Add("max_uses", fmt.Sprintf("must be 0 (unlimited) to %d", maxTokenUses))
	}
	expires := s.expiresIn(&p, req.ExpiresIn, now)
	domain.CheckLabels(&p, "labels", req.Labels)
	if err := p.Err(); err != nil {
		return events.NewEnrollmentToken{}, err
	}
	uid, err := uuid.NewV7()
	if err != nil {
		return events.NewEnrollmentToken{}, err
	}
	id := uid.String()
	token, hash := domain.NewSecret(domain.EnrollmentPrefix)
	labels := maps.Clone(req.Labels)
	v, err := s.appendTo(ctx, c.OrgID, events.TenancyAggEnrollmentToken, id, 0, events.EnrollmentTokenCreated{
		Name: name, MaxUses: req.MaxUses, ExpiresAt: expires, Labels: labels, TokenSHA256: hash})
	if err != nil {
		return events.NewEnrollmentToken{}, err
	}
	s.await(ctx, events.TenancyAggEnrollmentToken, id, v)
	if labels == nil {
		labels = map[string]string{}
	}
	return events.NewEnrollmentToken{Token: token, EnrollmentToken: events.EnrollmentToken{
		ID: id, Name: name, MaxUses: req.MaxUses, ExpiresAt: expires, Labels: labels, CreatedAt: now}}, nil
}

func (s *Service) listEnrollmentTokens(ctx context.Context, req events.ListRequest) (events.List[events.EnrollmentToken], error) {
	c, err := inOrg(ctx, events.PermEnrollmentRead)
	if err != nil {
		return events.List[events.EnrollmentToken]{}, err
	}
	page, err := readmodel.PageOf(req.Limit, req.Cursor)
	if err != nil {
		return events.List[events.EnrollmentToken]{}, err
	}
	items, next, err := s.db.ListEnrollmentTokens(ctx, c.OrgID, page)
	return events.List[events.EnrollmentToken]{Items: nonNil(items), NextCursor: next}, err
}

func (s *Service) revokeEnrollmentToken(ctx context.Context, req events.IDRequest) (events.EnrollmentToken, error) {
	c, err := inOrg(ctx, events.PermEnrollManage)
	if err != nil {
		return events.EnrollmentToken{}, err
	}
	if !events.ValidToken(req.ID) {
		return events.EnrollmentToken{}, domain.ErrTokenNotFound
	}
	var t *domain.EnrollmentToken
	err = eventstore.RetryConflicts(func() error {
		if t, err = s.loadEnrollmentToken(ctx, c.OrgID, req.ID); err != nil {
			return err
		}
		ev, err := t.Revoke()
		if err != nil || ev == nil {
			return err
		}
		t.Version, err = s.appendTo(ctx, c.OrgID, events.TenancyAggEnrollmentToken, req.ID, t.Version, *ev)
		t.Revoked = true
		return err
	})
	if err != nil {
		return events.EnrollmentToken{}, err
	}
	s.await(ctx, events.TenancyAggEnrollmentToken, req.ID, t.Version)
	return tokenView(t), nil
}

func (s *Service) deleteEnrollmentToken(ctx context.Context, req events.IDRequest) (events.Empty, error) {
	c, err := inOrg(ctx, events.PermEnrollManage)
	if err != nil {
		return events.Empty{}, err
	}
	if !events.ValidToken(req.ID) {
		return events.Empty{}, domain.ErrTokenNotFound
	}
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		t, err := s.loadEnrollmentToken(ctx, c.OrgID, req.ID)
		if err != nil {
			return err
		}
		ev, err := t.Delete()
		if err != nil {
			return err
		}
		v, err = s.appendTo(ctx, c.OrgID, events.TenancyAggEnrollmentToken, req.ID, t.Version, *ev)
		return err
	})
	if err != nil {
		return events.Empty{}, err
	}
	s.await(ctx, events.TenancyAggEnrollmentToken, req.ID, v)
	return events.Empty{}, nil
}

// useEnrollmentToken spends one use of a token for a machine (the first
// step of enrollAgent). The token
// names its org (looked up by hash, checked in constant time against the
// aggregate). Uses are appended on the token's version, so max_uses holds
// under concurrent enrollments; the org's agent limit is checked against
// the read model, so two machines enrolling at the same instant could
// both take the last agent slot.
func (s *Service) useEnrollmentToken(ctx context.Context, req events.UseEnrollmentTokenRequest) (events.EnrollmentUse, error) {
	var p domain.Problems
	domain.CheckFingerprint(&p, "fingerprint", req.Fingerprint)
	if err := p.Err(); err != nil {
		return events.EnrollmentUse{}, err
	}
	bad := events.Errorf(events.CodeUnauthorized, "invalid enrollment token")
	if !domain.PlausibleSecret(domain.EnrollmentPrefix, req.Token) {
		return events.EnrollmentUse{}, bad
	}
	orgID, id, ok, err := s.db.EnrollmentTokenByHash(ctx, domain.HashSecret(req.Token))
	if err != nil {
		return events.EnrollmentUse{}, err
	}
	if !ok {
		return events.EnrollmentUse{}, bad
	}
	o, err := s.loadOrg(ctx, orgID)
	if err != nil {
		return events.EnrollmentUse{}, err
	}
	if !o.Exists() {
		return events.EnrollmentUse{}, bad
	}
	plan := s.plan(o.Plan)
	agentsOK := func() error {
		enrolled, n, err := s.db.AgentEnrolled(ctx, orgID, req.Fingerprint)
		if err != nil || enrolled || plan.AgentsAllowed(n) {
			return err
		}
		return domain.PlanLimitError("agents", o.Plan, plan.MaxAgents)
	}
	var t *domain.EnrollmentToken
	repeat := false
	err = eventstore.RetryConflicts(func() error {
		if t, err = s.loadEnrollmentToken(ctx, orgID, id); err != nil {
			return err
		}
		if !domain.SecretMatches(req.Token, t.TokenHash) {
			return bad
		}
		var ev *events.EnrollmentTokenUsed
		ev, repeat, err = t.Use(s.now(), req.Fingerprint, agentsOK)
		if err != nil || ev == nil {
			return err
		}
		t.Version, err = s.appendTo(ctx, orgID, events.TenancyAggEnrollmentToken, id, t.Version, *ev)
		return err
	})
	if err != nil {
		return events.EnrollmentUse{}, err
	}
	s.await(ctx, events.TenancyAggEnrollmentToken, id, t.Version)
	return events.EnrollmentUse{OrgID: orgID, TokenID: id, Labels: t.Labels, Repeat: repeat}, nil
}

func tokenView(t *domain.EnrollmentToken) events.EnrollmentToken {
	out := events.EnrollmentToken{ID: t.ID, Name: t.Name, MaxUses: t.MaxUses, Uses: t.Uses(), ExpiresAt: t.ExpiresAt,
		Labels: t.Labels, Revoked: t.Revoked, CreatedAt: t.CreatedAt.UTC()}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if !t.LastUsedAt.IsZero() {
		lu := t.LastUsedAt.UTC()
		out.LastUsedAt = &lu
	}
	return out
}
