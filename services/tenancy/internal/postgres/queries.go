package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/jackc/pgx/v5"
)

// Membership returns userID's role in orgID; ok is false when the user is
// not a member (or the org does not exist or was deleted, which removes
// its memberships). It runs as the owner: it is how a request's org is
// established, one primary-key lookup.
func (s *Store) Membership(ctx context.Context, orgID, userID string) (role events.Role, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2`, orgID, userID).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return role, err == nil, err
}

// DefaultOrg returns the org userID joined first, with the role there.
func (s *Store) DefaultOrg(ctx context.Context, userID string) (orgID string, role events.Role, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY joined_at, org_id LIMIT 1`, userID).
		Scan(&orgID, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	return orgID, role, err == nil, err
}

// ListOrgs lists the orgs userID belongs to, with the role in each.
func (s *Store) ListOrgs(ctx context.Context, userID string, p readmodel.Page) ([]events.OrgSummary, string, error) {
	var out []events.OrgSummary
	err := s.Read(ctx, Scope{UserID: userID}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT o.id, o.name, o.slug, o.plan, o.created_at, m.role
			FROM memberships m JOIN orgs o ON o.id = m.org_id
			WHERE m.user_id = $1 AND NOT o.deleted AND o.id > $2
			ORDER BY o.id LIMIT $3`, userID, p.After, p.Limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.OrgSummary, error) {
			var o events.OrgSummary
			var created time.Time
			err := r.Scan(&o.ID, &o.Name, &o.Slug, &o.Plan, &created, &o.Role)
			o.CreatedAt = created.UTC().Format(time.RFC3339Nano)
			return o, err
		})
		return err
	})
	items, cursor := readmodel.Next(out, p.Limit, func(o events.OrgSummary) string { return o.ID })
	return items, cursor, err
}

// GetOrg returns orgID; ok is false when it does not exist or was deleted.
func (s *Store) GetOrg(ctx context.Context, orgID string) (o events.OrgSummary, ok bool, err error) {
	err = s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		var created time.Time
		err := tx.QueryRow(ctx, `SELECT id, name, slug, plan, created_at FROM orgs WHERE id = $1 AND NOT deleted`, orgID).
			Scan(&o.ID, &o.Name, &o.Slug, &o.Plan, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		o.CreatedAt = created.UTC().Format(time.RFC3339Nano)
		return err
	})
	return o, ok, err
}

// ListMembers lists the members of orgID by user id.
func (s *Store) ListMembers(ctx context.Context, orgID string, p readmodel.Page) ([]events.Member, string, error) {
	var out []events.Member
	err := s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT user_id, role, joined_at FROM memberships
			WHERE org_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, orgID, p.After, p.Limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.Member, error) {
			var m events.Member
			err := r.Scan(&m.UserID, &m.Role, &m.JoinedAt)
			m.JoinedAt = m.JoinedAt.UTC()
			return m, err
		})
		return err
	})
	items, cursor := readmodel.Next(out, p.Limit, func(m events.Member) string { return m.UserID })
	return items, cursor, err
}

// Usage counts the members and enrolled agents of orgID.
func (s *Store) Usage(ctx context.Context, orgID string) (users, agents int, err error) {
	err = s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM memberships WHERE org_id = $1),
			(SELECT count(*) FROM agents WHERE org_id = $1 AND NOT deleted)`, orgID).Scan(&users, &agents)
	})
	return users, agents, err
}

// AgentEnrolled reports whether the machine fingerprint is a live agent
// of orgID, and how many live agents it has: what the plan's agent limit
// is checked against.
func (s *Store) AgentEnrolled(ctx context.Context, orgID, fingerprint string) (enrolled bool, count int, err error) {
	err = s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents WHERE org_id = $1 AND fingerprint = $2 AND NOT deleted),
			(SELECT count(*) FROM agents WHERE org_id = $1 AND NOT deleted)`, orgID, fingerprint).Scan(&enrolled, &count)
	})
	return enrolled, count, err
}

// ListInvitations lists the invitations of orgID, newest id last.
func (s *Store) ListInvitations(ctx context.Context, orgID string, now time.Time, p readmodel.Page) ([]events.Invitation, string, error) {
	var out []events.Invitation
	err := s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, email, role, invited_by, created_at, expires_at,
				coalesce(accepted_by, ''), accepted_at, revoked
			FROM invitations WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3`, orgID, p.After, p.Limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.Invitation, error) {
			var inv events.Invitation
			var revoked bool
			err := r.Scan(&inv.ID, &inv.Email, &inv.Role, &inv.InvitedBy, &inv.CreatedAt, &inv.ExpiresAt,
				&inv.AcceptedBy, &inv.AcceptedAt, &revoked)
			inv.CreatedAt, inv.ExpiresAt = inv.CreatedAt.UTC(), inv.ExpiresAt.UTC()
			switch {
			case inv.AcceptedAt != nil:
				t := inv.AcceptedAt.UTC()
				inv.AcceptedAt, inv.Status = &t, events.InvitationStatusAccepted
			case revoked:
				inv.Status = events.InvitationStatusRevoked
			case !now.Before(inv.ExpiresAt):
				inv.Status = events.InvitationStatusExpired
			default:
				inv.Status = events.InvitationStatusPending
			}
			return inv, err
		})
		return err
	})
	items, cursor := readmodel.Next(out, p.Limit, func(i events.Invitation) string { return i.ID })
	return items, cursor, err
}

// ListEnrollmentTokens lists the tokens of orgID that are not deleted.
func (s *Store) ListEnrollmentTokens(ctx context.Context, orgID string, p readmodel.Page) ([]events.EnrollmentToken, string, error) {
	var out []events.EnrollmentToken
	err := s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, name, max_uses, uses, expires_at, labels, revoked, created_at, last_used_at
			FROM enrollment_tokens WHERE org_id = $1 AND NOT deleted AND id > $2 ORDER BY id LIMIT $3`, orgID, p.After, p.Limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.EnrollmentToken, error) {
			var t events.EnrollmentToken
			var labels []byte
			err := r.Scan(&t.ID, &t.Name, &t.MaxUses, &t.Uses, &t.ExpiresAt, &labels, &t.Revoked, &t.CreatedAt, &t.LastUsedAt)
			if err != nil {
				return t, err
			}
			t.CreatedAt = t.CreatedAt.UTC()
			t.ExpiresAt, t.LastUsedAt = utc(t.ExpiresAt), utc(t.LastUsedAt)
			return t, json.Unmarshal(labels, &t.Labels)
		})
		return err
	})
	items, cursor := readmodel.Next(out, p.Limit, func(t events.EnrollmentToken) string { return t.ID })
	return items, cursor, err
}

// InvitationByHash finds the invitation whose token hashes to hash, in
// any org: the token is what names the org.
func (s *Store) InvitationByHash(ctx context.Context, hash string) (orgID, id string, ok bool, err error) {
	return s.byHash(ctx, `SELECT org_id, id FROM invitations WHERE token_hash = $1`, hash)
}

// EnrollmentTokenByHash finds the enrollment token whose secret hashes to
// hash, in any org.
func (s *Store) EnrollmentTokenByHash(ctx context.Context, hash string) (orgID, id string, ok bool, err error) {
	return s.byHash(ctx, `SELECT org_id, id FROM enrollment_tokens WHERE token_hash = $1`, hash)
}

func (s *Store) byHash(ctx context.Context, q, hash string) (orgID, id string, ok bool, err error) {
	err = s.db.QueryRow(ctx, q, hash).Scan(&orgID, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	return orgID, id, err == nil, err
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
