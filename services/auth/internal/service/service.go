// Package service is the auth service: its request-reply operations, the
// projection of its events into the read models, and its background work.
//
// Storage follows one rule with one deliberate exception. Every state
// change is an event on the AUTH stream, and the read models (users,
// sessions, api_keys, the activation time of signing keys) are written only
// by the projection consumer. The exception is the secret store: password
// hashes, refresh-token, API-key, MFA-token and backup-code digests, sealed
// TOTP secrets and sealed signing keys, and login-throttle counters. Events
// must never carry them (nor digests of them), so the command handler that
// creates one writes it to its table itself, always before appending the
// event that makes it reachable. A crash in between leaves an unreachable
// row (keyed by a fresh random id or digest), never a reachable one without
// its event.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ThrottleConfig sets login throttling. After Failures failed attempts for
// one key (an account, a client IP, a user's second factor) with no gap
// longer than Window between them, the key is locked for BaseLockout, and
// each further failure doubles the lock up to MaxLockout. A success resets
// the account and second-factor keys; an IP key only expires.
type ThrottleConfig struct {
	AccountFailures int
	IPFailures      int
	MFAFailures     int
	Window          time.Duration
	BaseLockout     time.Duration
	MaxLockout      time.Duration
}

// Config configures the auth service. Start from DefaultConfig: the zero
// value of AllowSignup is false.
type Config struct {
	// AllowSignup lets anyone register a user and an org (the SaaS
	// sign-up); self-hosted installs switch it off.
	AllowSignup bool
	// AccessTTL is the lifetime of access tokens (default 15m).
	AccessTTL time.Duration
	// RefreshTTL is how long a refresh token stays valid unused (default
	// 30 days); each refresh issues a new one.
	RefreshTTL time.Duration
	// MFATokenTTL bounds the time between password and second factor
	// (default 5m).
	MFATokenTTL time.Duration
	// Argon2 are the cost parameters of new password hashes.
	Argon2 secret.Argon2Params
	// Issuer and Audience of access tokens (default events.JWTIssuer and
	// events.JWTAudience).
	Issuer   string
	Audience string
	// Throttle sets login throttling.
	Throttle ThrottleConfig
	// SealingKey (32 bytes) encrypts TOTP secrets and private signing keys
	// at rest. Empty: a key is generated on first start and kept in the
	// auth schema, which protects against leaks of single rows but not of
	// the whole database; production should set one.
	SealingKey []byte
	// ProjectionWait bounds how long a command waits for the read model to
	// show its own write (default 10s).
	ProjectionWait time.Duration
	// TenancyTimeout bounds the org_create call of a sign-up (default 10s).
	TenancyTimeout time.Duration
	// Clock overrides the host's clock (tests); nil uses the host's.
	Clock func() time.Time
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		AllowSignup: true,
		AccessTTL:   15 * time.Minute,
		RefreshTTL:  30 * 24 * time.Hour,
		MFATokenTTL: 5 * time.Minute,
		Argon2:      secret.DefaultArgon2(),
		Issuer:      events.JWTIssuer,
		Audience:    events.JWTAudience,
		Throttle: ThrottleConfig{AccountFailures: 5, IPFailures: 20, MFAFailures: 5,
			Window: 15 * time.Minute, BaseLockout: 30 * time.Second, MaxLockout: 15 * time.Minute},
		ProjectionWait: 10 * time.Second,
		TenancyTimeout: 10 * time.Second,
	}
}

// withDefaults fills unset durations and limits from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.AccessTTL, d.AccessTTL)
	set(&c.RefreshTTL, d.RefreshTTL)
	set(&c.MFATokenTTL, d.MFATokenTTL)
	set(&c.ProjectionWait, d.ProjectionWait)
	set(&c.TenancyTimeout, d.TenancyTimeout)
	set(&c.Throttle.Window, d.Throttle.Window)
	set(&c.Throttle.BaseLockout, d.Throttle.BaseLockout)
	set(&c.Throttle.MaxLockout, d.Throttle.MaxLockout)
	if c.Argon2 == (secret.Argon2Params{}) {
		c.Argon2 = d.Argon2
	}
	if c.Issuer == "" {
		c.Issuer = d.Issuer
	}
	if c.Audience == "" {
		c.Audience = d.Audience
	}
	if c.Throttle.AccountFailures == 0 {
		c.Throttle.AccountFailures = d.Throttle.AccountFailures
	}
	if c.Throttle.IPFailures == 0 {
		c.Throttle.IPFailures = d.Throttle.IPFailures
	}
	if c.Throttle.MFAFailures == 0 {
		c.Throttle.MFAFailures = d.Throttle.MFAFailures
	}
	return c
}

// Validate reports a configuration the service cannot run with.
func (c Config) Validate() error {
	switch {
	case c.AccessTTL < time.Minute || c.RefreshTTL < c.AccessTTL:
		return fmt.Errorf("auth: access TTL %s must be >= 1m and refresh TTL %s >= it", c.AccessTTL, c.RefreshTTL)
	case len(c.SealingKey) != 0 && len(c.SealingKey) != 32:
		return errors.New("auth: the sealing key must be 32 bytes")
	case c.Throttle.AccountFailures < 1 || c.Throttle.IPFailures < 1 || c.Throttle.MFAFailures < 1:
		return errors.New("auth: throttle failure limits must be >= 1")
	case c.Throttle.MaxLockout < c.Throttle.BaseLockout:
		return errors.New("auth: max lockout below base lockout")
	}
	return c.Argon2.Validate()
}

// Service is the running auth service.
type Service struct {
	cfg Config
	log *slog.Logger
	db  *pgxpool.Pool
	es  *eventstore.Store
	js  jetstream.JetStream
	nc  *nats.Conn
	now func() time.Time

	keys keyCache

	sealerMu sync.Mutex
	sealer   *secret.Sealer

	dummyOnce sync.Once
	dummy     string

	touched sync.Map // API key id -> time.Time of the last recorded use
}

// New builds the service and registers its operations and its projection
// consumer; it starts nothing.
func New(d app.Deps, cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.DB == nil {
		return nil, errors.New("auth: needs Postgres")
	}
	s := &Service{cfg: cfg, log: d.Log, db: d.DB, es: d.Events, js: d.JS, nc: d.NC, now: d.Now}
	if cfg.Clock != nil {
		s.now = cfg.Clock
	}
	if s.now == nil {
		s.now = time.Now
	}
	if len(cfg.SealingKey) == 32 {
		sl, err := secret.NewSealer(cfg.SealingKey)
		if err != nil {
			return nil, err
		}
		s.sealer = sl
	}
	s.register(d.Endpoints)
	if err := d.Router.AddEventHandler("auth_projection", events.DomainStream("auth"),
		[]string{events.DomainEvents("auth")}, s.project); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) register(e *endpoint.Server) {
	endpoint.Handle(e, events.OpAuthRegister, s.Register)
	endpoint.Handle(e, events.OpAuthLogin, s.Login)
	endpoint.Handle(e, events.OpAuthMFAVerify, s.MFAVerify)
	endpoint.Handle(e, events.OpAuthRefresh, s.Refresh)
	endpoint.Handle(e, events.OpAuthLogout, s.Logout)
	endpoint.Handle(e, events.OpAuthMe, s.Me)
	endpoint.Handle(e, events.OpAuthMFASetup, s.MFASetup)
	endpoint.Handle(e, events.OpAuthMFAConfirm, s.MFAConfirm)
	endpoint.Handle(e, events.OpAuthMFADisable, s.MFADisable)
	endpoint.Handle(e, events.OpAuthMFABackupCodes, s.MFABackupCodes)
	endpoint.Handle(e, events.OpAuthAPIKeyCreate, s.APIKeyCreate)
	endpoint.Handle(e, events.OpAuthAPIKeyList, s.APIKeyList)
	endpoint.Handle(e, events.OpAuthAPIKeyRevoke, s.APIKeyRevoke)
	endpoint.Handle(e, events.OpAuthVerifyAPIKey, s.APIKeyVerify)
	endpoint.Handle(e, events.OpAuthJWKS, s.JWKS)
	endpoint.Handle(e, events.OpAuthSigningKeyRotate, s.RotateSigningKey)
	endpoint.Handle(e, events.OpAuthCreateUser, s.CreateUser)
	endpoint.Handle(e, events.OpAuthGetUsers, s.GetUsers)
	endpoint.Handle(e, events.OpAuthFindUser, s.FindUser)
}

// maintenanceEvery is the period of the background work.
const maintenanceEvery = time.Minute

// Run makes sure a signing key exists, then refreshes the key cache and
// deletes expired secrets periodically until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(maintenanceEvery)
	defer t.Stop()
	for {
		if _, _, err := s.activeKey(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("signing key not ready; retrying", "err", err)
		}
		if err := s.cleanup(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("cleanup of expired secrets failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// cleanup deletes rows that can no longer matter: expired refresh tokens,
// MFA challenges and quiet throttle counters.
func (s *Service) cleanup(ctx context.Context) error {
	now := s.now()
	_, err := s.db.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at < $1`, now)
	if err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM mfa_challenges WHERE expires_at < $1`, now); err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `DELETE FROM login_throttle WHERE last_failure_at < $1 AND (locked_until IS NULL OR locked_until < $2)`,
		now.Add(-s.cfg.Throttle.Window), now)
	return err
}
