package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/jackc/pgx/v5"
)

// The projection writes whole aggregates: it is handed the aggregate
// rebuilt from the event store and writes it only if its version is newer
// than the row's. That makes every write idempotent and insensitive to the
// order events are delivered in.

// SaveHost writes a host. It reports whether anything was written (false
// when the read model already held this version or a newer one).
func (s *Store) SaveHost(ctx context.Context, h *domain.Host) (bool, error) {
	if h.CreatedAt.IsZero() {
		return false, nil
	}
	spec, err := json.Marshal(domain.Canonical(h.Spec))
	if err != nil {
		return false, fmt.Errorf("encode spec: %w", err)
	}
	c := h.Cert
	return s.rm.Write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `
			INSERT INTO hosts (id, org_id, agent_id, spec, domains, enabled, ssl_enabled, status, status_message,
				applied_revision, render_version, cert_status, cert_reason, cert_request_domains, cert_requested_at,
				cert_attempts, cert_last_error, cert_next_attempt_at, cert_domains, cert_not_before, cert_not_after,
				cert_renew_at, cert_issuer, cert_serial, created_at, updated_at, deleted, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
				$22, $23, $24, $25, $26, $27, $28)
			ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec, domains = EXCLUDED.domains, enabled = EXCLUDED.enabled,
				ssl_enabled = EXCLUDED.ssl_enabled, status = EXCLUDED.status, status_message = EXCLUDED.status_message,
				applied_revision = EXCLUDED.applied_revision, render_version = EXCLUDED.render_version,
				cert_status = EXCLUDED.cert_status, cert_reason = EXCLUDED.cert_reason,
				cert_request_domains = EXCLUDED.cert_request_domains, cert_requested_at = EXCLUDED.cert_requested_at,
				cert_attempts = EXCLUDED.cert_attempts, cert_last_error = EXCLUDED.cert_last_error,
				cert_next_attempt_at = EXCLUDED.cert_next_attempt_at, cert_domains = EXCLUDED.cert_domains,
				cert_not_before = EXCLUDED.cert_not_before, cert_not_after = EXCLUDED.cert_not_after,
				cert_renew_at = EXCLUDED.cert_renew_at, cert_issuer = EXCLUDED.cert_issuer, cert_serial = EXCLUDED.cert_serial,
				updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted, version = EXCLUDED.version
			WHERE hosts.version < EXCLUDED.version AND hosts.org_id = EXCLUDED.org_id`,
			h.ID, h.OrgID, h.AgentID, spec, strs(h.Spec.Domains), h.Spec.Enabled, h.Spec.SSL.Enabled, h.Status, h.StatusMessage,
			int64(h.AppliedRevision), int64(h.RenderVersion), c.Status, c.Reason, strs(c.RequestDomains), null(c.RequestedAt),
			c.Attempts, c.LastError, null(c.NextAttemptAt), strs(c.IssuedDomains), null(c.NotBefore), null(c.NotAfter),
			null(c.RenewAt), c.Issuer, c.Serial, h.CreatedAt, h.UpdatedAt, h.Deleted, int64(h.Ver))
		return err == nil && tag.RowsAffected() > 0, err
	})
}

// SaveAgent writes an agent's proxy settings.
func (s *Store) SaveAgent(ctx context.Context, a *domain.Agent) (bool, error) {
	if a.Ver == 0 {
		return false, nil
	}
	var nginx []byte
	if a.Nginx != nil {
		b, err := json.Marshal(a.Nginx)
		if err != nil {
			return false, fmt.Errorf("encode nginx info: %w", err)
		}
		nginx = b
	}
	return s.rm.Write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `
			INSERT INTO agent_settings (org_id, agent_id, mode, acme_email, networks, nginx, applied_revision, last_error,
				updated_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (org_id, agent_id) DO UPDATE SET mode = EXCLUDED.mode, acme_email = EXCLUDED.acme_email,
				networks = EXCLUDED.networks, nginx = EXCLUDED.nginx, applied_revision = EXCLUDED.applied_revision,
				last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version
			WHERE agent_settings.version < EXCLUDED.version`,
			a.OrgID, a.ID, a.Mode, a.ACMEEmail, strs(a.Networks), nginx, int64(a.AppliedRevision), a.LastError,
			a.UpdatedAt, int64(a.Ver))
		return err == nil && tag.RowsAffected() > 0, err
	})
}

// strs keeps a nil list from becoming SQL NULL in a NOT NULL array column.
func strs(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// null stores a zero time as NULL.
func null(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
