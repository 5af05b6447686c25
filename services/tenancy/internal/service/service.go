// Package service is the tenancy service: its request-reply operations
// (one file per area), the projection that keeps the read model, and the
// small machinery they share (read-your-writes waits, the membership
// cache, calls to the auth service).
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/mail"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/postgres"
	"github.com/nats-io/nats.go"
)

// Service name, as in subjects and the Postgres schema.
const Name = "tenancy"

// Config is the service's configuration, defaults applied by Validate.
type Config struct {
	Mail      mail.Config
	PublicURL string
	Plans     map[string]domain.Plan
	// DefaultPlan is the plan of a new org (default "free").
	DefaultPlan string
	// InvitationTTL is how long an invitation can be accepted (7 days).
	InvitationTTL time.Duration
	// EnrollmentTokenTTL is the lifetime of a token created without
	// expires_in (24h).
	EnrollmentTokenTTL time.Duration
	// ProjectionWait bounds the read-your-writes wait of a command (5s).
	ProjectionWait time.Duration
	// MembershipCacheTTL bounds how long a membership answer is cached
	// (2s); negative disables the cache.
	MembershipCacheTTL time.Duration
	// AgentCredentials issues and revokes agents' NATS credentials; nil:
	// enrollment answers unavailable.
	AgentCredentials AgentCredentials
	// PresenceTimeout is how long an agent may stay silent before it is
	// offline (20s: four missed heartbeats).
	PresenceTimeout time.Duration
	// PresenceFlush is how often heartbeats are written (1s).
	PresenceFlush time.Duration
}

// Validate applies defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Plans == nil {
		c.Plans = domain.DefaultPlans()
	}
	if c.DefaultPlan == "" {
		c.DefaultPlan = domain.PlanFree
	}
	if _, ok := c.Plans[c.DefaultPlan]; !ok {
		return fmt.Errorf("tenancy: default plan %q is not a plan", c.DefaultPlan)
	}
	if c.InvitationTTL == 0 {
		c.InvitationTTL = 7 * 24 * time.Hour
	}
	if c.EnrollmentTokenTTL == 0 {
		c.EnrollmentTokenTTL = 24 * time.Hour
	}
	if c.ProjectionWait == 0 {
		c.ProjectionWait = 5 * time.Second
	}
	if c.MembershipCacheTTL == 0 {
		c.MembershipCacheTTL = 2 * time.Second
	}
	if c.PresenceTimeout == 0 {
		c.PresenceTimeout = 20 * time.Second
	}
	if c.PresenceFlush == 0 {
		c.PresenceFlush = time.Second
	}
	if c.PresenceTimeout < 0 || c.PresenceFlush < 0 {
		return errors.New("tenancy: presence durations must be positive")
	}
	if c.InvitationTTL < 0 || c.EnrollmentTokenTTL < 0 || c.ProjectionWait < 0 {
		return errors.New("tenancy: durations must be positive")
	}
	return c.Mail.Validate()
}

// Service is the running tenancy service.
type Service struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	es      *eventstore.Store
	db      *postgres.Store
	mailer  *mail.Sender
	now     func() time.Time
	cache   *membershipCache
	applied *readmodel.Waiter
	creds   AgentCredentials
}

// New builds the service on the host's dependencies and registers its
// endpoints and its projection consumer. It starts nothing.
func New(cfg Config, d app.Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.DB == nil {
		return nil, errors.New("tenancy: needs Postgres")
	}
	mailer, err := mail.New(cfg.Mail)
	if err != nil {
		return nil, fmt.Errorf("tenancy: %w", err)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	s := &Service{
		cfg: cfg, log: d.Log, nc: d.NC, es: d.Events, db: postgres.New(d.DB), mailer: mailer, now: now,
		cache: newMembershipCache(cfg.MembershipCacheTTL), applied: readmodel.NewWaiter(cfg.ProjectionWait, d.Log), creds: cfg.AgentCredentials,
	}
	s.register(d)
	if err := s.registerProjection(d); err != nil {
		return nil, err
	}
	return s, nil
}

// Run keeps every replica's membership cache in step with the org
// events any replica appends, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	sub, err := s.nc.Subscribe(events.DomainEvent(Name, "*", events.TenancyAggOrg, "*"), func(m *nats.Msg) {
		if env, err := events.Unmarshal(m.Data); err == nil {
			s.cache.invalidateOrg(env.OrgID)
		}
	})
	if err != nil {
		return fmt.Errorf("tenancy: subscribe for cache invalidation: %w", err)
	}
	defer sub.Unsubscribe()
	if err := s.runPresence(ctx); err != nil {
		return fmt.Errorf("tenancy: agent presence: %w", err)
	}
	return nil
}

// caller is who asks, in which org, with which role.
type caller struct {
	OrgID string
	Role  events.Role
	Actor events.Actor
}

// inOrg returns the request's org and checks the caller holds perm there
// (no check for an empty perm: a service acting for itself).
// A request without an org gets not_found: the org it means is not one the
// gateway established for it.
func inOrg(ctx context.Context, perm events.Permission) (caller, error) {
	info := reqctx.From(ctx)
	c := caller{OrgID: info.OrgID, Role: events.Role(info.Role), Actor: info.Actor}
	if !events.ValidToken(c.OrgID) || c.OrgID == events.PlatformOrg {
		return c, domain.ErrOrgNotFound
	}
	if perm != "" && !events.Allowed(c.Role, perm) {
		return c, events.Errorf(events.CodeForbidden, "your role %q may not %s", c.Role, perm)
	}
	return c, nil
}

// user returns the calling user; API keys and anonymous callers are
// refused.
func user(ctx context.Context) (events.Actor, error) {
	a := reqctx.From(ctx).Actor
	if a.Kind != events.ActorUser || !events.ValidToken(a.ID) {
		return a, events.Errorf(events.CodeForbidden, "this operation needs a signed-in user")
	}
	return a, nil
}

// appendTo appends payloads to one aggregate at version and returns its new
// version. Work without an actor (a bootstrap, a service without headers)
// is the system's.
func (s *Service) appendTo(ctx context.Context, orgID, aggType, id string, version uint64, payloads ...events.Payload) (uint64, error) {
	return s.es.AppendPayloads(ctx, eventstore.Ref{OrgID: orgID, Type: aggType, ID: id}, version,
		reqctx.MetaIn(ctx, orgID, events.SystemActor(Name)), payloads...)
}

func (s *Service) loadOrg(ctx context.Context, orgID string) (*domain.Org, error) {
	evs, v, err := s.es.Load(ctx, eventstore.Ref{OrgID: orgID, Type: events.TenancyAggOrg, ID: orgID})
	if err != nil {
		return nil, err
	}
	return domain.ReplayOrg(orgID, evs, v)
}

func (s *Service) loadInvitation(ctx context.Context, orgID, id string) (*domain.Invitation, error) {
	evs, v, err := s.es.Load(ctx, eventstore.Ref{OrgID: orgID, Type: events.TenancyAggInvitation, ID: id})
	if err != nil {
		return nil, err
	}
	return domain.ReplayInvitation(orgID, id, evs, v)
}

func (s *Service) loadEnrollmentToken(ctx context.Context, orgID, id string) (*domain.EnrollmentToken, error) {
	evs, v, err := s.es.Load(ctx, eventstore.Ref{OrgID: orgID, Type: events.TenancyAggEnrollmentToken, ID: id})
	if err != nil {
		return nil, err
	}
	return domain.ReplayEnrollmentToken(orgID, id, evs, v)
}

// plan returns the plan named, falling back to the default plan's limits
// for a name this configuration does not know (a plan retired since).
func (s *Service) plan(name string) domain.Plan {
	if p, ok := s.cfg.Plans[name]; ok {
		return p
	}
	return s.cfg.Plans[s.cfg.DefaultPlan]
}
