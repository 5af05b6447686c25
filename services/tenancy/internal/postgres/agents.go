package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
	"github.com/jackc/pgx/v5"
)

// SaveAgent writes an agent if this version is newer than the row's.
func (s *Store) SaveAgent(ctx context.Context, a *domain.Agent) (bool, error) {
	if a.EnrolledAt.IsZero() {
		return false, nil
	}
	labels, err := json.Marshal(nonNil(a.Labels))
	if err != nil {
		return false, fmt.Errorf("encode labels: %w", err)
	}
	return s.rm.Write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `
			INSERT INTO agents (id, org_id, fingerprint, hostname, os, arch, agent_version, labels, token_id,
				credential_key, status, status_changed_at, enrolled_at, deleted, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, os = EXCLUDED.os, arch = EXCLUDED.arch,
				agent_version = EXCLUDED.agent_version, token_id = EXCLUDED.token_id,
				credential_key = EXCLUDED.credential_key, status = EXCLUDED.status,
				status_changed_at = EXCLUDED.status_changed_at, deleted = EXCLUDED.deleted, version = EXCLUDED.version
			WHERE agents.version < EXCLUDED.version`,
			a.ID, a.OrgID, a.Fingerprint, a.Hostname, a.OS, a.Arch, a.Version, labels, a.TokenID,
			a.CredentialKey, a.Status(), a.StatusAt, a.EnrolledAt, a.Deleted, int64(a.Ver))
		if err != nil || tag.RowsAffected() == 0 {
			return false, err
		}
		if a.Deleted {
			if _, err := tx.Exec(ctx, `DELETE FROM agent_presence WHERE agent_id = $1`, a.ID); err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

// AgentByFingerprint returns the live agent of a machine in orgID.
func (s *Store) AgentByFingerprint(ctx context.Context, orgID, fingerprint string) (id string, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT id FROM agents WHERE org_id = $1 AND fingerprint = $2 AND NOT deleted`,
		orgID, fingerprint).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return id, err == nil, err
}

// AgentOrg returns the org of a live agent (presence needs it to load the
// aggregate; a heartbeat's subject names the org too, and both must agree).
func (s *Store) AgentOrg(ctx context.Context, id string) (orgID string, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT org_id FROM agents WHERE id = $1 AND NOT deleted`, id).Scan(&orgID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return orgID, err == nil, err
}

const agentColumns = `a.id, a.org_id, a.hostname, a.fingerprint, a.os, a.arch, a.agent_version, a.labels, a.status,
	a.status_changed_at, a.enrolled_at, p.last_seen, coalesce(p.engine, ''), p.started_at,
	coalesce(p.outbox_pending, 0), p.metrics, p.metrics_at`

func scanAgent(r pgx.Row) (events.Agent, error) {
	var a events.Agent
	var labels []byte
	var pending int64
	err := r.Scan(&a.ID, &a.OrgID, &a.Hostname, &a.Fingerprint, &a.OS, &a.Arch, &a.Version, &labels, &a.Status,
		&a.StatusChangedAt, &a.EnrolledAt, &a.LastSeen, &a.Engine, &a.StartedAt, &pending, &a.Metrics, &a.MetricsAt)
	if err != nil {
		return a, err
	}
	a.OutboxPending = uint64(max(pending, 0))
	if err := json.Unmarshal(labels, &a.Labels); err != nil || a.Labels == nil {
		a.Labels = map[string]string{}
	}
	a.StatusChangedAt, a.EnrolledAt = a.StatusChangedAt.UTC(), a.EnrolledAt.UTC()
	for _, t := range []*time.Time{a.LastSeen, a.StartedAt, a.MetricsAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return a, nil
}

// ListAgents lists the live agents of orgID, newest first.
func (s *Store) ListAgents(ctx context.Context, orgID string, p readmodel.Page) ([]events.Agent, string, error) {
	var out []events.Agent
	err := s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		after := p.After
		if after == "" {
			after = "\U0010FFFF"
		}
		rows, err := tx.Query(ctx, `SELECT `+agentColumns+`
			FROM agents a LEFT JOIN agent_presence p ON p.agent_id = a.id
			WHERE a.org_id = $1 AND NOT a.deleted AND a.id < $2 ORDER BY a.id DESC LIMIT $3`, orgID, after, p.Limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.Agent, error) { return scanAgent(r) })
		return err
	})
	items, cursor := readmodel.Next(out, p.Limit, func(a events.Agent) string { return a.ID })
	return items, cursor, err
}

// GetAgent returns a live agent of orgID.
func (s *Store) GetAgent(ctx context.Context, orgID, id string) (a events.Agent, ok bool, err error) {
	err = s.Read(ctx, Scope{OrgID: orgID}, func(tx pgx.Tx) error {
		a, err = scanAgent(tx.QueryRow(ctx, `SELECT `+agentColumns+`
			FROM agents a LEFT JOIN agent_presence p ON p.agent_id = a.id
			WHERE a.org_id = $1 AND a.id = $2 AND NOT a.deleted`, orgID, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return a, ok, err
}

// Beat is one agent's latest heartbeat or metrics sample, as presence
// writes it.
type Beat struct {
	OrgID, AgentID string
	Seen           time.Time
	Heartbeat      *events.AgentHeartbeatMessage
	Metrics        json.RawMessage
	MetricsAt      time.Time
}

// SavePresence writes the latest beats of many agents in one round trip.
// Only live agents of the beat's own org are written: a beat naming
// another org's agent changes nothing.
func (s *Store) SavePresence(ctx context.Context, beats []Beat) error {
	b := &pgx.Batch{}
	for _, x := range beats {
		if x.Heartbeat != nil {
			h := x.Heartbeat
			var started *time.Time
			if !h.StartedAt.IsZero() {
				started = &h.StartedAt
			}
			b.Queue(`INSERT INTO agent_presence (agent_id, org_id, last_seen, engine, agent_version, hostname, started_at, outbox_pending)
				SELECT id, org_id, $3, $4, $5, $6, $7, $8 FROM agents WHERE id = $1 AND org_id = $2 AND NOT deleted
				ON CONFLICT (agent_id) DO UPDATE SET last_seen = greatest(agent_presence.last_seen, EXCLUDED.last_seen),
					engine = EXCLUDED.engine, agent_version = EXCLUDED.agent_version, hostname = EXCLUDED.hostname,
					started_at = EXCLUDED.started_at, outbox_pending = EXCLUDED.outbox_pending`,
				x.AgentID, x.OrgID, x.Seen, h.Engine, h.Version, h.Hostname, started, int64(min(h.OutboxPending, 1<<62)))
		}
		if x.Metrics != nil {
			b.Queue(`INSERT INTO agent_presence (agent_id, org_id, last_seen, metrics, metrics_at)
				SELECT id, org_id, $3, $4, $5 FROM agents WHERE id = $1 AND org_id = $2 AND NOT deleted
				ON CONFLICT (agent_id) DO UPDATE SET last_seen = greatest(agent_presence.last_seen, EXCLUDED.last_seen),
					metrics = EXCLUDED.metrics, metrics_at = EXCLUDED.metrics_at
				WHERE agent_presence.metrics_at IS NULL OR agent_presence.metrics_at <= EXCLUDED.metrics_at`,
				x.AgentID, x.OrgID, x.Seen, []byte(x.Metrics), x.MetricsAt)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return s.db.SendBatch(ctx, b).Close()
}

// PresenceRow is what the presence sweep needs of an agent.
type PresenceRow struct {
	OrgID, AgentID string
	Online         bool
	LastSeen       time.Time // zero: never heard from
}

// StaleOnline lists online agents last heard before cutoff (or never).
func (s *Store) StaleOnline(ctx context.Context, cutoff time.Time) ([]PresenceRow, error) {
	rows, err := s.db.Query(ctx, `SELECT a.org_id, a.id, coalesce(p.last_seen, 'epoch'::timestamptz)
		FROM agents a LEFT JOIN agent_presence p ON p.agent_id = a.id
		WHERE NOT a.deleted AND a.status = 'online' AND coalesce(p.last_seen, 'epoch'::timestamptz) < $1
		LIMIT 1000`, cutoff)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PresenceRow, error) {
		x := PresenceRow{Online: true}
		err := r.Scan(&x.OrgID, &x.AgentID, &x.LastSeen)
		return x, err
	})
}

// Offline reports which of the given agents the read model shows offline
// (live ones only): the heartbeats that must turn them online.
func (s *Store) Offline(ctx context.Context, ids []string) (map[string]string, error) {
	rows, err := s.db.Query(ctx, `SELECT id, org_id FROM agents WHERE id = ANY($1) AND NOT deleted AND status = 'offline'`, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for rows.Next() {
		var id, org string
		if err := rows.Scan(&id, &org); err != nil {
			return nil, err
		}
		out[id] = org
	}
	return out, rows.Err()
}
