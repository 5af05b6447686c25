package service

import (
	"context"
	"fmt"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
)

// project is the one consumer that writes the read models. It is
// idempotent and independent of delivery order, so replicas may share it:
// for an aggregate event it rebuilds the aggregate (row snapshot + the
// events after it) and writes the whole row, guarded by version so an
// older state never overwrites a newer one.
func (s *Service) project(ctx context.Context, env events.Envelope) error {
	p, err := events.Catalogue.Decode(env)
	if err != nil {
		return router.Permanent(err)
	}
	if u, ok := p.(*events.Unknown); ok {
		router.Logger(ctx, s.log).Warn("unknown auth event type; skipped by the projection", "type", u.Type, "version", u.Version)
		return nil
	}
	id := env.Aggregate.ID
	switch env.Aggregate.Type {
	case domain.AggUser:
		return s.projectUser(ctx, id)
	case domain.AggSession:
		return s.projectSession(ctx, id)
	case domain.AggAPIKey:
		return s.projectAPIKey(ctx, env.OrgID, id)
	case domain.AggSigningKey:
		if e, ok := p.(*events.SigningKeyRotated); ok {
			_, err := s.db.Exec(ctx, `UPDATE signing_keys SET activated_at = $2 WHERE kid = $1 AND activated_at IS NULL`, e.Kid, env.Time)
			return err
		}
	case domain.AggLogin:
		if e, ok := p.(*events.LoginSucceeded); ok {
			_, err := s.db.Exec(ctx, `UPDATE users SET last_login_at = GREATEST(COALESCE(last_login_at, $2), $2) WHERE id = $1`,
				e.UserID, env.Time)
			return err
		}
	}
	return nil
}

func (s *Service) projectUser(ctx context.Context, id string) error {
	u, err := s.loadUser(ctx, id)
	if err != nil {
		return err
	}
	if !u.Exists() {
		// Only a registration makes a user; an event without one is
		// corrupt history.
		return router.Permanent(fmt.Errorf("auth: events for user %s without a registration", id))
	}
	_, err = s.db.Exec(ctx, `INSERT INTO users (id, email, name, mfa_enabled, disabled, created_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, mfa_enabled = EXCLUDED.mfa_enabled,
			disabled = EXCLUDED.disabled, version = EXCLUDED.version
		WHERE users.version < EXCLUDED.version`,
		u.ID, u.Email, u.Name, u.MFAEnabled, u.Disabled, u.CreatedAt, int64(u.Version))
	return err
}

func (s *Service) projectSession(ctx context.Context, id string) error {
	ss, err := s.loadSession(ctx, id)
	if err != nil {
		return err
	}
	if !ss.Exists() {
		return router.Permanent(fmt.Errorf("auth: events for session %s without a start", id))
	}
	var reason *string
	if ss.Revoked {
		reason = &ss.RevokedReason
	}
	_, err = s.db.Exec(ctx, `INSERT INTO sessions (id, user_id, generation, mfa, revoked_reason, started_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation, revoked_reason = EXCLUDED.revoked_reason,
			updated_at = EXCLUDED.updated_at, version = EXCLUDED.version
		WHERE sessions.version < EXCLUDED.version`,
		ss.ID, ss.UserID, ss.Generation, ss.MFA, reason, ss.StartedAt, ss.UpdatedAt, int64(ss.Version))
	return err
}

func (s *Service) projectAPIKey(ctx context.Context, org, id string) error {
	k, err := s.loadAPIKey(ctx, org, id)
	if err != nil {
		return err
	}
	if !k.Exists() {
		return router.Permanent(fmt.Errorf("auth: events for API key %s/%s without a creation", org, id))
	}
	_, err = s.db.Exec(ctx, `INSERT INTO api_keys (id, org_id, name, role, prefix, created_by, created_at, expires_at, revoked_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at, version = EXCLUDED.version
		WHERE api_keys.version < EXCLUDED.version`,
		k.ID, k.OrgID, k.Name, string(k.Role), k.Prefix, k.CreatedBy, k.CreatedAt, nullTime(k.ExpiresAt), nullTime(k.RevokedAt), int64(k.Version))
	return err
}
