package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/jackc/pgx/v5"
)

const hostColumns = `id, org_id, agent_id, spec, status, status_message, applied_revision, render_version,
	cert_status, cert_reason, cert_request_domains, cert_requested_at, cert_attempts, cert_last_error,
	cert_next_attempt_at, cert_domains, cert_not_before, cert_not_after, cert_renew_at, cert_issuer, cert_serial,
	created_at, updated_at, version`

func scanHost(r pgx.Row) (*domain.Host, error) {
	h := &domain.Host{}
	c := &h.Cert
	var spec []byte
	var applied, render, version int64
	var requestedAt, nextAttempt, notBefore, notAfter, renewAt *time.Time
	err := r.Scan(&h.ID, &h.OrgID, &h.AgentID, &spec, &h.Status, &h.StatusMessage, &applied, &render,
		&c.Status, &c.Reason, &c.RequestDomains, &requestedAt, &c.Attempts, &c.LastError,
		&nextAttempt, &c.IssuedDomains, &notBefore, &notAfter, &renewAt, &c.Issuer, &c.Serial,
		&h.CreatedAt, &h.UpdatedAt, &version)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(spec, &h.Spec); err != nil {
		return nil, err
	}
	h.AppliedRevision, h.RenderVersion, h.Ver = uint64(applied), uint64(render), uint64(version)
	for _, p := range []struct {
		dst *time.Time
		src *time.Time
	}{{&c.RequestedAt, requestedAt}, {&c.NextAttemptAt, nextAttempt}, {&c.NotBefore, notBefore},
		{&c.NotAfter, notAfter}, {&c.RenewAt, renewAt}} {
		if p.src != nil {
			*p.dst = p.src.UTC()
		}
	}
	if len(c.RequestDomains) == 0 {
		c.RequestDomains = nil
	}
	if len(c.IssuedDomains) == 0 {
		c.IssuedDomains = nil
	}
	h.CreatedAt, h.UpdatedAt = h.CreatedAt.UTC(), h.UpdatedAt.UTC()
	return h, nil
}

func collectHosts(rows pgx.Rows, err error) ([]*domain.Host, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*domain.Host, error) { return scanHost(r) })
}

// GetHost returns a live host of orgID.
func (s *Store) GetHost(ctx context.Context, orgID, id string) (h *domain.Host, ok bool, err error) {
	err = s.Read(ctx, orgID, func(tx pgx.Tx) error {
		h, err = scanHost(tx.QueryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE org_id = $1 AND id = $2 AND NOT deleted`, orgID, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return h, ok, err
}

// ListHosts lists one page of an agent's live hosts, oldest first.
func (s *Store) ListHosts(ctx context.Context, orgID, agentID string, p readmodel.Page) ([]*domain.Host, string, error) {
	var out []*domain.Host
	err := s.Read(ctx, orgID, func(tx pgx.Tx) error {
		var err error
		out, err = collectHosts(tx.Query(ctx, `SELECT `+hostColumns+` FROM hosts
			WHERE org_id = $1 AND agent_id = $2 AND NOT deleted AND id > $3 ORDER BY id LIMIT $4`,
			orgID, agentID, p.After, p.Limit+1))
		return err
	})
	items, cursor := readmodel.Next(out, p.Limit, func(h *domain.Host) string { return h.ID })
	return items, cursor, err
}

// AgentHosts returns every live host of an agent (at most
// events.ProxyMaxHostsAgent), by id: what its desired state is rendered
// from.
func (s *Store) AgentHosts(ctx context.Context, orgID, agentID string) ([]*domain.Host, error) {
	var out []*domain.Host
	err := s.Read(ctx, orgID, func(tx pgx.Tx) error {
		var err error
		out, err = collectHosts(tx.Query(ctx, `SELECT `+hostColumns+` FROM hosts
			WHERE org_id = $1 AND agent_id = $2 AND NOT deleted ORDER BY id`, orgID, agentID))
		return err
	})
	return out, err
}

// OrgSSLHosts returns the org's live hosts with SSL enabled, for the TLS
// health report.
func (s *Store) OrgSSLHosts(ctx context.Context, orgID string) ([]*domain.Host, error) {
	var out []*domain.Host
	err := s.Read(ctx, orgID, func(tx pgx.Tx) error {
		var err error
		out, err = collectHosts(tx.Query(ctx, `SELECT `+hostColumns+` FROM hosts
			WHERE org_id = $1 AND ssl_enabled AND NOT deleted ORDER BY agent_id, id`, orgID))
		return err
	})
	return out, err
}

// AgentHostCount counts an agent's live hosts.
func (s *Store) AgentHostCount(ctx context.Context, orgID, agentID string) (n int, err error) {
	err = s.Read(ctx, orgID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM hosts WHERE org_id = $1 AND agent_id = $2 AND NOT deleted`,
			orgID, agentID).Scan(&n)
	})
	return n, err
}

// DomainOwner returns a live host of the agent other than exceptID that
// serves one of domains, and that domain.
func (s *Store) DomainOwner(ctx context.Context, orgID, agentID, exceptID string, domains []string) (hostID, dom string, found bool, err error) {
	err = s.Read(ctx, orgID, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT h.id, d FROM hosts h, unnest(h.domains) d
			WHERE h.org_id = $1 AND h.agent_id = $2 AND NOT h.deleted AND h.id <> $3 AND h.domains && $4 AND d = ANY($4)
			LIMIT 1`, orgID, agentID, exceptID, domains).Scan(&hostID, &dom)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	return hostID, dom, found, err
}

// GetAgent returns an agent's proxy settings as the read model holds them;
// ok is false when nothing was recorded for it yet.
func (s *Store) GetAgent(ctx context.Context, orgID, agentID string) (a *domain.Agent, ok bool, err error) {
	err = s.Read(ctx, orgID, func(tx pgx.Tx) error {
		a = &domain.Agent{ID: agentID, OrgID: orgID, Mode: events.ProxyModeManaged}
		var nginx []byte
		var applied, version int64
		err := tx.QueryRow(ctx, `SELECT mode, acme_email, networks, nginx, applied_revision, last_error, updated_at, version
			FROM agent_settings WHERE org_id = $1 AND agent_id = $2`, orgID, agentID).
			Scan(&a.Mode, &a.ACMEEmail, &a.Networks, &nginx, &applied, &a.LastError, &a.UpdatedAt, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(a.Networks) == 0 {
			a.Networks = nil
		}
		if nginx != nil {
			a.Nginx = &events.NginxAgentInfo{}
			if err := json.Unmarshal(nginx, a.Nginx); err != nil {
				return err
			}
		}
		a.AppliedRevision, a.Ver, ok = uint64(applied), uint64(version), true
		return nil
	})
	return a, ok, err
}

// HostRef names one host of one org.
type HostRef struct{ OrgID, HostID string }

// CertCandidates lists hosts whose certificate may need the worker at now
// (every org: the worker serves them all): requests older than
// leaseStart, failures due for a retry, certificates due for renewal,
// SSL hosts without a certificate yet, and SSL hosts whose certificate no
// longer covers their domains. The
// worker decides again on each aggregate.
func (s *Store) CertCandidates(ctx context.Context, now, leaseStart time.Time, limit int) ([]HostRef, error) {
	rows, err := s.db.Query(ctx, `SELECT org_id, id FROM hosts WHERE NOT deleted AND (
			(cert_status = 'none' AND ssl_enabled)
			OR (cert_status = 'requested' AND cert_requested_at < $2)
			OR (cert_status = 'failed' AND cert_next_attempt_at <= $1)
			OR (cert_status = 'issued' AND cert_renew_at <= $1)
			OR (cert_status = 'issued' AND ssl_enabled AND NOT (cert_domains @> domains AND domains @> cert_domains)))
		ORDER BY coalesce(cert_next_attempt_at, cert_renew_at, cert_requested_at) LIMIT $3`, now, leaseStart, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (HostRef, error) {
		var x HostRef
		return x, r.Scan(&x.OrgID, &x.HostID)
	})
}

// AgentRef names one agent of one org.
type AgentRef struct{ OrgID, AgentID string }

// Agents lists every agent the proxy service knows of (with hosts or
// settings), after the given one, for the reconciler.
func (s *Store) Agents(ctx context.Context, after AgentRef, limit int) ([]AgentRef, error) {
	rows, err := s.db.Query(ctx, `SELECT org_id, agent_id FROM (
			SELECT org_id, agent_id FROM hosts WHERE NOT deleted
			UNION SELECT org_id, agent_id FROM agent_settings) a
		WHERE (org_id, agent_id) > ($1, $2) ORDER BY org_id, agent_id LIMIT $3`, after.OrgID, after.AgentID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AgentRef, error) {
		var x AgentRef
		return x, r.Scan(&x.OrgID, &x.AgentID)
	})
}
