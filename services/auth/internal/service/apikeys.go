package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/jackc/pgx/v5"
)

// API keys: "ipk_" and 32 random bytes in base64url. The first
// apiKeyPrefixLen characters are shown in lists so people can tell keys
// apart; the rest is never stored.
const (
	apiKeyPrefix    = "ipk_"
	apiKeyBytes     = 32
	apiKeyLen       = len(apiKeyPrefix) + 43
	apiKeyPrefixLen = len(apiKeyPrefix) + 8
	maxAPIKeyTTL    = 10 * 365 * 24 * time.Hour
	// usageEvery bounds how often a key's last-used time is written.
	usageEvery = time.Minute
)

// keyCaller returns the org and role the request acts with, checking that
// the caller may manage API keys there (the gateway checks it too).
func keyCaller(ctx context.Context) (org string, role events.Role, err error) {
	info := reqctx.From(ctx)
	role = events.Role(info.Role)
	switch {
	case info.Actor.ID == "":
		return "", "", unauthorized("authentication required")
	case !events.ValidToken(info.OrgID):
		return "", "", events.Errorf(events.CodeForbidden, "no organisation: name one with X-Org-ID")
	case !events.Allowed(role, events.PermAPIKeysManage):
		return "", "", events.Errorf(events.CodeForbidden, "your role %q may not manage API keys", role)
	}
	return info.OrgID, role, nil
}

// APIKeyCreate creates an API key in the caller's org, with a role no
// higher than the caller's own. The key is returned once; only its digest
// is stored.
func (s *Service) APIKeyCreate(ctx context.Context, req events.APIKeyCreateRequest) (events.NewAPIKey, error) {
	var out events.NewAPIKey
	org, callerRole, err := keyCaller(ctx)
	if err != nil {
		return out, err
	}
	var f domain.Fields
	name, fe := domain.CleanName("name", req.Name, domain.MaxKeyNameLen)
	f.Add(fe)
	switch {
	case !req.Role.Valid():
		f.Add(&events.FieldError{Field: "role", Message: "must be one of owner, admin, operator, viewer"})
	case !callerRole.AtLeast(req.Role):
		f.Add(&events.FieldError{Field: "role", Message: "must not be higher than your own role"})
	}
	if req.ExpiresIn < 0 || time.Duration(req.ExpiresIn)*time.Second > maxAPIKeyTTL {
		f.Add(&events.FieldError{Field: "expires_in", Message: "must be between 0 (never) and 10 years, in seconds"})
	}
	if err := f.Err(); err != nil {
		return out, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return out, err
	}
	key, err := secret.NewToken(apiKeyPrefix, apiKeyBytes)
	if err != nil {
		return out, err
	}
	var expires string
	if req.ExpiresIn > 0 {
		expires = domain.FormatTime(s.now().Add(time.Duration(req.ExpiresIn) * time.Second))
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO api_key_secrets (key_hash, key_id, org_id) VALUES ($1, $2, $3)`,
		secret.Digest(key), id.String(), org); err != nil {
		return out, err
	}
	ref := eventstore.Ref{OrgID: org, Type: domain.AggAPIKey, ID: id.String()}
	v, err := s.append(ctx, ref, 0, meta(ctx, org, events.Actor{}), events.APIKeyCreated{
		Name: name, Role: req.Role, Prefix: key[:apiKeyPrefixLen], CreatedBy: reqctx.From(ctx).Actor.ID, ExpiresAt: expires})
	if err != nil {
		return out, err
	}
	if err := s.waitVersion(ctx, "api_keys", ref.ID, v); err != nil {
		return out, err
	}
	k, err := s.loadAPIKey(ctx, org, ref.ID)
	if err != nil {
		return out, err
	}
	return events.NewAPIKey{APIKey: k.View(time.Time{}), Key: key}, nil
}

// APIKeyList lists the caller's org's keys that are not revoked, newest
// first. Orgs have few keys, so the list is not paginated.
func (s *Service) APIKeyList(ctx context.Context, _ events.Empty) (events.List[events.APIKey], error) {
	out := events.List[events.APIKey]{Items: []events.APIKey{}}
	org, _, err := keyCaller(ctx)
	if err != nil {
		return out, err
	}
	rows, err := s.db.Query(ctx, `SELECT k.id, k.name, k.role, k.prefix, k.created_by, k.created_at, k.expires_at, u.last_used_at
		FROM api_keys k LEFT JOIN api_key_usage u ON u.key_id = k.id
		WHERE k.org_id = $1 AND k.revoked_at IS NULL ORDER BY k.created_at DESC, k.id`, org)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		k := domain.APIKey{OrgID: org}
		var expires, used *time.Time
		if err := rows.Scan(&k.ID, &k.Name, &k.Role, &k.Prefix, &k.CreatedBy, &k.CreatedAt, &expires, &used); err != nil {
			return out, err
		}
		if expires != nil {
			k.ExpiresAt = *expires
		}
		var lastUsed time.Time
		if used != nil {
			lastUsed = *used
		}
		out.Items = append(out.Items, k.View(lastUsed))
	}
	return out, rows.Err()
}

// APIKeyRevoke revokes a key of the caller's org. A key of another org is
// not found (its events are under that org's subject). Revoking twice is
// not an error.
func (s *Service) APIKeyRevoke(ctx context.Context, req events.APIKeyRevokeRequest) (events.Empty, error) {
	org, _, err := keyCaller(ctx)
	if err != nil {
		return events.Empty{}, err
	}
	for attempt := 0; ; attempt++ {
		k, err := s.loadAPIKey(ctx, org, req.ID)
		if err != nil {
			return events.Empty{}, err
		}
		if !k.Exists() {
			return events.Empty{}, events.NotFound("API key not found")
		}
		if !k.RevokedAt.IsZero() {
			return events.Empty{}, nil
		}
		ref := eventstore.Ref{OrgID: org, Type: domain.AggAPIKey, ID: k.ID}
		v, err := s.append(ctx, ref, k.Version, meta(ctx, org, events.Actor{}),
			events.APIKeyRevoked{RevokedBy: reqctx.From(ctx).Actor.ID})
		if errors.Is(err, eventstore.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return events.Empty{}, err
		}
		// The key must stop working when this returns: wait for the read
		// model apikey_verify consults.
		return events.Empty{}, s.waitVersion(ctx, "api_keys", k.ID, v)
	}
}

var errBadKey = events.Errorf(events.CodeUnauthorized, "invalid, expired or revoked API key")

// APIKeyVerify resolves an API key to its principal for the gateway, and
// records when it was last used (at most once a minute per key).
func (s *Service) APIKeyVerify(ctx context.Context, req events.VerifyAPIKeyRequest) (events.ResolvedPrincipal, error) {
	var out events.ResolvedPrincipal
	if len(req.Key) != apiKeyLen || !strings.HasPrefix(req.Key, apiKeyPrefix) {
		return out, errBadKey
	}
	d := secret.Digest(req.Key)
	var stored []byte
	var id, org string
	err := s.db.QueryRow(ctx, `SELECT key_hash, key_id, org_id FROM api_key_secrets WHERE key_hash = $1`, d).Scan(&stored, &id, &org)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !secret.Equal(stored, d)) {
		return out, errBadKey
	}
	if err != nil {
		return out, err
	}
	k := domain.APIKey{ID: id}
	var expires, revoked *time.Time
	err = s.db.QueryRow(ctx, `SELECT org_id, role, created_by, created_at, expires_at, revoked_at FROM api_keys WHERE id = $1 AND org_id = $2`, id, org).
		Scan(&k.OrgID, &k.Role, &k.CreatedBy, &k.CreatedAt, &expires, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, errBadKey
	}
	if err != nil {
		return out, err
	}
	if expires != nil {
		k.ExpiresAt = *expires
	}
	if revoked != nil {
		k.RevokedAt = *revoked
	}
	now := s.now()
	if !k.Usable(now) {
		return out, errBadKey
	}
	s.touch(ctx, id, now)
	return events.ResolvedPrincipal{Kind: events.ActorAPIKey, ID: id, UserID: k.CreatedBy, OrgID: k.OrgID, Role: k.Role}, nil
}

// touch records a key's use, skipping the write when this process or
// another recorded one less than usageEvery ago. A failed write is only
// logged: the key is valid either way.
func (s *Service) touch(ctx context.Context, id string, now time.Time) {
	if last, ok := s.touched.Load(id); ok && now.Sub(last.(time.Time)) < usageEvery {
		return
	}
	s.touched.Store(id, now)
	_, err := s.db.Exec(ctx, `INSERT INTO api_key_usage (key_id, last_used_at) VALUES ($1, $2)
		ON CONFLICT (key_id) DO UPDATE SET last_used_at = EXCLUDED.last_used_at
		WHERE api_key_usage.last_used_at < EXCLUDED.last_used_at - make_interval(secs => $3)`, id, now, usageEvery.Seconds())
	if err != nil {
		s.log.Warn("recording API key use failed", "key_id", id, "err", err)
	}
}
