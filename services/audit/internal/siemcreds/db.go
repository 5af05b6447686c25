package siemcreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// project records a credential's events in the read model. Both writes are
// idempotent, so a redelivery changes nothing.
func (s *Service) project(ctx context.Context, env events.Envelope) error {
	del, _ := router.DeliveryFrom(ctx)
	switch env.Type {
	case (events.AuditSIEMCredentialCreated{}).EventType():
		var p events.AuditSIEMCredentialCreated
		if err := json.Unmarshal(env.Data, &p); err != nil {
			return router.Permanent(err)
		}
		expires, err := time.Parse(time.RFC3339Nano, p.ExpiresAt)
		if err != nil {
			return router.Permanent(fmt.Errorf("expires_at: %w", err))
		}
		_, err = s.d.DB.Exec(ctx, `INSERT INTO siem_credentials (org_id, credential_id, name, user_key, consumer, subject,
				inbox_prefix, created_by, created_at, expires_at, created_seq, stream_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT DO NOTHING`,
			env.OrgID, env.Aggregate.ID, p.Name, p.UserKey, p.Consumer, p.Subject, p.InboxPrefix, env.Actor.ID, env.Time.UTC(),
			expires.UTC(), int64(del.Sequence))
		if err != nil {
			return fmt.Errorf("audit siem credentials: project %s: %w", env.Aggregate.ID, err)
		}
	case (events.AuditSIEMCredentialRevoked{}).EventType():
		_, err := s.d.DB.Exec(ctx, `UPDATE siem_credentials SET revoked_at = $3, revoked_by = $4, stream_seq = $5
			WHERE org_id = $1 AND credential_id = $2 AND revoked_at IS NULL`,
			env.OrgID, env.Aggregate.ID, env.Time.UTC(), env.Actor.ID, int64(del.Sequence))
		if err != nil {
			return fmt.Errorf("audit siem credentials: project %s: %w", env.Aggregate.ID, err)
		}
	}
	return nil
}

const columns = `credential_id, name, user_key, consumer, subject, inbox_prefix, created_by, created_at, expires_at,
	revoked_by, revoked_at, created_seq`

func scan(r pgx.Row) (events.AuditSIEMCredential, uint64, error) {
	var (
		c                events.AuditSIEMCredential
		created, expires time.Time
		revoked          *time.Time
		seq              int64
	)
	if err := r.Scan(&c.ID, &c.Name, &c.UserKey, &c.Consumer, &c.Subject, &c.InboxPrefix, &c.CreatedBy, &created, &expires,
		&c.RevokedBy, &revoked, &seq); err != nil {
		return events.AuditSIEMCredential{}, 0, err
	}
	c.Stream = events.StreamAudit
	c.CreatedAt, c.ExpiresAt = stamp(created), stamp(expires)
	if revoked != nil {
		c.RevokedAt = stamp(*revoked)
	}
	return c, uint64(seq), nil
}

func get(ctx context.Context, db *pgxpool.Pool, org, id string) (events.AuditSIEMCredential, bool, error) {
	c, _, err := scan(db.QueryRow(ctx, `SELECT `+columns+` FROM siem_credentials WHERE org_id = $1 AND credential_id = $2`, org, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return events.AuditSIEMCredential{}, false, nil
	}
	if err != nil {
		return events.AuditSIEMCredential{}, false, fmt.Errorf("audit siem credentials: get %s/%s: %w", org, id, err)
	}
	return c, true, nil
}

// list pages through org's credentials, newest first.
func list(ctx context.Context, db *pgxpool.Pool, org, cursor string, limit int) (events.List[events.AuditSIEMCredential], error) {
	before, err := store.DecodeCursor(cursor)
	if err != nil {
		return events.List[events.AuditSIEMCredential]{}, err
	}
	if limit <= 0 {
		limit = events.AuditListDefaultLimit
	}
	rows, err := db.Query(ctx, `SELECT `+columns+` FROM siem_credentials
		WHERE org_id = $1 AND ($2::bigint = 0 OR created_seq < $2) ORDER BY created_seq DESC LIMIT $3`, org, int64(before), limit+1)
	if err != nil {
		return events.List[events.AuditSIEMCredential]{}, fmt.Errorf("audit siem credentials: list %s: %w", org, err)
	}
	defer rows.Close()
	out := events.List[events.AuditSIEMCredential]{Items: []events.AuditSIEMCredential{}}
	var last uint64
	for rows.Next() {
		c, seq, err := scan(rows)
		if err != nil {
			return events.List[events.AuditSIEMCredential]{}, fmt.Errorf("audit siem credentials: list %s: %w", org, err)
		}
		if len(out.Items) == limit {
			out.NextCursor = store.EncodeCursor(last)
			break
		}
		out.Items = append(out.Items, c)
		last = seq
	}
	return out, rows.Err()
}

// countActive counts org's credentials neither revoked nor expired at now.
func countActive(ctx context.Context, db *pgxpool.Pool, org string, now time.Time) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM siem_credentials WHERE org_id = $1 AND revoked_at IS NULL AND expires_at > $2`,
		org, now.UTC()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("audit siem credentials: count %s: %w", org, err)
	}
	return n, nil
}
