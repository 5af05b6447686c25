package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/jackc/pgx/v5"
)

// Config returns org's audit configuration and the stream sequence of the
// event it was projected from; an org that never set one gets
// events.DefaultAuditConfig and sequence 0.
func (s *Store) Config(ctx context.Context, org string) (events.AuditConfig, uint64, error) {
	var (
		c   events.AuditConfig
		at  time.Time
		seq int64
	)
	err := s.db.QueryRow(ctx, `SELECT retention_days, retention_policy, compliance_mode, updated_at, updated_by, stream_seq
		FROM config WHERE org_id = $1`, org).Scan(&c.RetentionDays, &c.RetentionPolicy, &c.ComplianceMode, &at, &c.UpdatedBy, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.DefaultAuditConfig(), 0, nil
	}
	if err != nil {
		return events.AuditConfig{}, 0, fmt.Errorf("audit store: config of %s: %w", org, err)
	}
	c.UpdatedAt = at.UTC().Format(time.RFC3339Nano)
	return c, uint64(seq), nil
}

// PutConfig records org's configuration as of the event at stream sequence
// seq. An older event than the one already projected changes nothing, so
// redeliveries and out-of-order replays converge on the latest.
func (s *Store) PutConfig(ctx context.Context, org string, c events.AuditConfigUpdated, at time.Time, by string, seq uint64) error {
	_, err := s.db.Exec(ctx, `INSERT INTO config (org_id, retention_days, retention_policy, compliance_mode, updated_at, updated_by, stream_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (org_id) DO UPDATE SET retention_days = excluded.retention_days, retention_policy = excluded.retention_policy,
			compliance_mode = excluded.compliance_mode, updated_at = excluded.updated_at, updated_by = excluded.updated_by,
			stream_seq = excluded.stream_seq
		WHERE config.stream_seq < excluded.stream_seq`,
		org, c.RetentionDays, c.RetentionPolicy, c.ComplianceMode, at.UTC(), by, int64(seq))
	if err != nil {
		return fmt.Errorf("audit store: put config of %s: %w", org, err)
	}
	return nil
}

// ConfiguredOrgs lists the orgs with a configuration and that
// configuration, for the retention job.
func (s *Store) ConfiguredOrgs(ctx context.Context) (map[string]events.AuditConfig, error) {
	rows, err := s.db.Query(ctx, `SELECT org_id, retention_days, retention_policy, compliance_mode FROM config`)
	if err != nil {
		return nil, fmt.Errorf("audit store: configured orgs: %w", err)
	}
	defer rows.Close()
	out := map[string]events.AuditConfig{}
	for rows.Next() {
		var org string
		var c events.AuditConfig
		if err := rows.Scan(&org, &c.RetentionDays, &c.RetentionPolicy, &c.ComplianceMode); err != nil {
			return nil, fmt.Errorf("audit store: configured orgs: %w", err)
		}
		out[org] = c
	}
	return out, rows.Err()
}
