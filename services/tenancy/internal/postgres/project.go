package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
	"github.com/jackc/pgx/v5"
)

// The projection writes whole aggregates: it is handed the aggregate
// rebuilt from the event store and writes it only if its version is newer
// than the row's. That makes every write idempotent and insensitive to the
// order events are delivered in.

// SaveOrg writes an org and its memberships. It reports whether anything
// was written (false when the read model already held this version or a
// newer one).
func (s *Store) SaveOrg(ctx context.Context, o *domain.Org) (bool, error) {
	if o.CreatedAt.IsZero() {
		return false, nil
	}
	return s.rm.Write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `
			INSERT INTO orgs (id, name, slug, plan, created_at, updated_at, deleted, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, slug = EXCLUDED.slug, plan = EXCLUDED.plan,
				updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted, version = EXCLUDED.version
			WHERE orgs.version < EXCLUDED.version`,
			o.ID, o.Name, o.Slug, o.Plan, o.CreatedAt, o.UpdatedAt, o.Deleted, int64(o.Version))
		if err != nil || tag.RowsAffected() == 0 {
			return false, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM memberships WHERE org_id = $1`, o.ID); err != nil {
			return false, err
		}
		if o.Deleted {
			// A deleted org has no members: every membership check fails.
			return true, nil
		}
		rows := make([][]any, 0, len(o.Members))
		for _, m := range o.SortedMembers() {
			rows = append(rows, []any{o.ID, m.UserID, string(m.Role), m.JoinedAt})
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"memberships"}, []string{"org_id", "user_id", "role", "joined_at"}, pgx.CopyFromRows(rows))
		return true, err
	})
}

// SaveInvitation writes an invitation.
func (s *Store) SaveInvitation(ctx context.Context, inv *domain.Invitation) (bool, error) {
	if !inv.Exists() {
		return false, nil
	}
	var acceptedBy *string
	var acceptedAt *time.Time
	if inv.Accepted {
		acceptedBy, acceptedAt = &inv.AcceptedBy, &inv.AcceptedAt
	}
	return s.rm.Write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `
			INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, expires_at,
				accepted_by, accepted_at, revoked, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (id) DO UPDATE SET accepted_by = EXCLUDED.accepted_by, accepted_at = EXCLUDED.accepted_at,
				revoked = EXCLUDED.revoked, version = EXCLUDED.version
			WHERE invitations.version < EXCLUDED.version`,
			inv.ID, inv.OrgID, inv.Email, string(inv.Role), inv.TokenHash, inv.InvitedBy, inv.CreatedAt, inv.ExpiresAt,
			acceptedBy, acceptedAt, inv.Revoked, int64(inv.Version))
		return err == nil && tag.RowsAffected() > 0, err
	})
}

// SaveEnrollmentToken writes an enrollment token and records the machines
// that enrolled with it.
func (s *Store) SaveEnrollmentToken(ctx context.Context, t *domain.EnrollmentToken) (bool, error) {
	if t.CreatedAt.IsZero() {
		return false, nil
	}
	labels, err := json.Marshal(nonNil(t.Labels))
	if err != nil {
		return false, fmt.Errorf("encode labels: %w", err)
	}
	var lastUsed *time.Time
	if !t.LastUsedAt.IsZero() {
		lastUsed = &t.LastUsedAt
	}
	return s.rm.Write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `
			INSERT INTO enrollment_tokens (id, org_id, name, token_hash, max_uses, uses, expires_at, labels,
				revoked, deleted, created_at, last_used_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (id) DO UPDATE SET uses = EXCLUDED.uses, revoked = EXCLUDED.revoked, deleted = EXCLUDED.deleted,
				last_used_at = EXCLUDED.last_used_at, version = EXCLUDED.version
			WHERE enrollment_tokens.version < EXCLUDED.version`,
			t.ID, t.OrgID, t.Name, t.TokenHash, t.MaxUses, t.Uses(), t.ExpiresAt, labels,
			t.Revoked, t.Deleted, t.CreatedAt, lastUsed, int64(t.Version))
		if err != nil || tag.RowsAffected() == 0 {
			return false, err
		}
		fps := make([]string, 0, len(t.Used))
		ats := make([]time.Time, 0, len(t.Used))
		for fp, at := range t.Used {
			fps, ats = append(fps, fp), append(ats, at)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO enrolled_agents (org_id, fingerprint, token_id, enrolled_at)
			SELECT $1, u.fp, $2, u.at FROM unnest($3::text[], $4::timestamptz[]) AS u(fp, at)
			ON CONFLICT DO NOTHING`, t.OrgID, t.ID, fps, ats); err != nil {
			return false, err
		}
		return true, nil
	})
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
