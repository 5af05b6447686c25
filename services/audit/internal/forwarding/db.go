package forwarding

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/jackc/pgx/v5"
)

// destinations returns org's destinations as last projected, and the
// stream sequence of the event they come from (0: never configured).
func (s *Service) destinations(ctx context.Context, org string) ([]events.AuditForwardDestination, uint64, error) {
	var raw []byte
	var seq int64
	err := s.db.QueryRow(ctx, `SELECT destinations, stream_seq FROM forwarding WHERE org_id = $1`, org).Scan(&raw, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("audit forwarding: destinations of %s: %w", org, err)
	}
	var out []events.AuditForwardDestination
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, 0, fmt.Errorf("audit forwarding: destinations of %s: %w", org, err)
	}
	return out, uint64(seq), nil
}

// all returns every configured org's destinations (orgs whose list is
// empty included, so that their forwarders are stopped).
func (s *Service) all(ctx context.Context) (map[string][]events.AuditForwardDestination, error) {
	rows, err := s.db.Query(ctx, `SELECT org_id, destinations FROM forwarding`)
	if err != nil {
		return nil, fmt.Errorf("audit forwarding: list: %w", err)
	}
	defer rows.Close()
	out := map[string][]events.AuditForwardDestination{}
	for rows.Next() {
		var org string
		var raw []byte
		if err := rows.Scan(&org, &raw); err != nil {
			return nil, fmt.Errorf("audit forwarding: list: %w", err)
		}
		var ds []events.AuditForwardDestination
		if err := json.Unmarshal(raw, &ds); err != nil {
			return nil, fmt.Errorf("audit forwarding: destinations of %s: %w", org, err)
		}
		out[org] = ds
	}
	return out, rows.Err()
}

// Project records org's destinations as of the event at stream sequence
// seq; an older event than the one projected changes nothing. It then
// asks the forwarders to catch up.
func (s *Service) Project(ctx context.Context, org string, p events.AuditForwardingUpdated, at time.Time, seq uint64) error {
	ds := p.Destinations
	if ds == nil {
		ds = []events.AuditForwardDestination{}
	}
	raw, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO forwarding (org_id, destinations, updated_at, stream_seq) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id) DO UPDATE SET destinations = excluded.destinations, updated_at = excluded.updated_at,
			stream_seq = excluded.stream_seq
		WHERE forwarding.stream_seq < excluded.stream_seq`, org, raw, at.UTC(), int64(seq))
	if err != nil {
		return fmt.Errorf("audit forwarding: project %s: %w", org, err)
	}
	s.Kick()
	return nil
}

// putSecret stores a destination's secret under a new secret id.
func (s *Service) putSecret(ctx context.Context, org, dest, secretID, secret string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO forwarding_secrets (org_id, destination_id, secret_id, secret) VALUES ($1, $2, $3, $4)`,
		org, dest, secretID, secret)
	if err != nil {
		return fmt.Errorf("audit forwarding: store the secret of %s/%s: %w", org, dest, err)
	}
	return nil
}

// secret returns a stored secret ("" when there is none).
func (s *Service) secret(ctx context.Context, org, dest, secretID string) (string, error) {
	if secretID == "" {
		return "", nil
	}
	var v string
	err := s.db.QueryRow(ctx, `SELECT secret FROM forwarding_secrets WHERE org_id = $1 AND destination_id = $2 AND secret_id = $3`,
		org, dest, secretID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("audit forwarding: secret of %s/%s: %w", org, dest, err)
	}
	return v, nil
}

// pruneSecrets deletes the secrets no destination refers to any more:
// replaced ones, and those of configuration changes that never made it to
// the stream. A secret younger than an hour is kept, since the event that
// refers to it may not be projected yet.
func (s *Service) pruneSecrets(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `DELETE FROM forwarding_secrets fs WHERE fs.created_at < now() - interval '1 hour'
		AND NOT EXISTS (SELECT 1 FROM forwarding f, jsonb_array_elements(f.destinations) d
			WHERE f.org_id = fs.org_id AND d->>'id' = fs.destination_id AND d->>'secret_id' = fs.secret_id)`)
	if err != nil {
		return fmt.Errorf("audit forwarding: prune secrets: %w", err)
	}
	return nil
}
