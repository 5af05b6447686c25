package service

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/jackc/pgx/v5"
)

// refreshTokenBytes is the entropy of refresh tokens.
const refreshTokenBytes = 32

// startSession opens a refresh-token family for u and returns its first
// tokens and the session id. The token's digest is stored before the
// session starts, so a handed-out token is always found.
func (s *Service) startSession(ctx context.Context, u *domain.User, mfa bool) (events.TokenResponse, string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return events.TokenResponse{}, "", err
	}
	sid := id.String()
	refresh, err := s.storeRefreshToken(ctx, sid, 1)
	if err != nil {
		return events.TokenResponse{}, "", err
	}
	a := userActor(ctx, u.ID)
	if _, err := s.append(ctx, platformRef(domain.AggSession, sid), 0, meta(ctx, events.PlatformOrg, a),
		events.SessionStarted{UserID: u.ID, MFA: mfa, IP: a.IP, UserAgent: a.UserAgent}); err != nil {
		return events.TokenResponse{}, "", err
	}
	access, err := s.signAccess(ctx, u, sid)
	if err != nil {
		return events.TokenResponse{}, "", err
	}
	return s.tokens(access, refresh), sid, nil
}

func (s *Service) tokens(access, refresh string) events.TokenResponse {
	return events.TokenResponse{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(s.cfg.AccessTTL / time.Second)}
}

// storeRefreshToken creates the refresh token of generation gen of a
// session and stores its digest.
func (s *Service) storeRefreshToken(ctx context.Context, sid string, gen int64) (string, error) {
	tok, err := secret.NewToken("", refreshTokenBytes)
	if err != nil {
		return "", err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at) VALUES ($1, $2, $3, $4)`,
		secret.Digest(tok), sid, gen, s.now().Add(s.cfg.RefreshTTL))
	return tok, err
}

// refreshRow is a stored refresh token.
type refreshRow struct {
	sessionID  string
	generation int64
	expiresAt  time.Time
}

// lookupRefresh finds a presented refresh token by its digest.
func (s *Service) lookupRefresh(ctx context.Context, token string) (refreshRow, bool, error) {
	var r refreshRow
	if token == "" || len(token) > 256 {
		return r, false, nil
	}
	d := secret.Digest(token)
	var stored []byte
	err := s.db.QueryRow(ctx, `SELECT token_hash, session_id, generation, expires_at FROM refresh_tokens WHERE token_hash = $1`, d).
		Scan(&stored, &r.sessionID, &r.generation, &r.expiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	// The lookup matched on the digest already; comparing again in
	// constant time keeps the rule "every secret comparison is
	// constant-time" true without reasoning about the index.
	return r, secret.Equal(stored, d), nil
}

// errBadRefresh is the answer to every unusable refresh token.
var errBadRefresh = events.Errorf(events.CodeUnauthorized, "invalid or expired refresh token; sign in again")

// Refresh rotates a refresh token: the presented one is spent, a new one of
// the next generation is issued with a new access token. A token that is
// not the family's current one (already spent) revokes the whole family:
// either it was stolen or two clients raced, and the safe answer to both
// is to sign everyone in that family out. Of two concurrent refreshes of
// the same token, one appends its rotation; the other's append conflicts,
// it reloads, finds the token spent and treats it as reuse.
func (s *Service) Refresh(ctx context.Context, req events.RefreshRequest) (events.TokenResponse, error) {
	if req.RefreshToken == "" {
		return events.TokenResponse{}, fieldInvalid("refresh_token", "is required")
	}
	row, ok, err := s.lookupRefresh(ctx, req.RefreshToken)
	if err != nil || !ok {
		return events.TokenResponse{}, orErr(err, errBadRefresh)
	}
	for attempt := 0; ; attempt++ {
		ss, err := s.loadSession(ctx, row.sessionID)
		if err != nil {
			return events.TokenResponse{}, err
		}
		switch {
		case !ss.Exists() || ss.Revoked:
			return events.TokenResponse{}, errBadRefresh
		case row.generation != ss.Generation:
			if err := s.revoke(ctx, ss.ID, events.SessionRevokedReuse); err != nil {
				return events.TokenResponse{}, err
			}
			s.log.Warn("refresh token reuse: session revoked", "session_id", ss.ID, "user_id", ss.UserID,
				"request_id", reqctx.From(ctx).RequestID)
			return events.TokenResponse{}, errBadRefresh
		case !s.now().Before(row.expiresAt):
			return events.TokenResponse{}, errBadRefresh
		}
		u, err := s.loadUser(ctx, ss.UserID)
		if err != nil {
			return events.TokenResponse{}, err
		}
		if !u.Exists() || u.Disabled {
			return events.TokenResponse{}, errBadRefresh
		}
		next := ss.Generation + 1
		refresh, err := s.storeRefreshToken(ctx, ss.ID, next)
		if err != nil {
			return events.TokenResponse{}, err
		}
		a := userActor(ctx, u.ID)
		_, err = s.append(ctx, platformRef(domain.AggSession, ss.ID), ss.Version, meta(ctx, events.PlatformOrg, a),
			events.SessionRefreshed{Generation: next, IP: a.IP})
		if errors.Is(err, eventstore.ErrConflict) && attempt < 3 {
			// Someone else changed the family (a concurrent refresh, a
			// logout): decide again on the new state.
			continue
		}
		if err != nil {
			return events.TokenResponse{}, err
		}
		access, err := s.signAccess(ctx, u, ss.ID)
		if err != nil {
			return events.TokenResponse{}, err
		}
		return s.tokens(access, refresh), nil
	}
}

// revoke ends a session, retrying on concurrent changes; revoking a
// revoked session does nothing.
func (s *Service) revoke(ctx context.Context, sid, reason string) error {
	for attempt := 0; ; attempt++ {
		ss, err := s.loadSession(ctx, sid)
		if err != nil {
			return err
		}
		if !ss.Exists() || ss.Revoked {
			return nil
		}
		a := userActor(ctx, ss.UserID)
		_, err = s.append(ctx, platformRef(domain.AggSession, sid), ss.Version, meta(ctx, events.PlatformOrg, a),
			events.SessionRevoked{Reason: reason, IP: a.IP})
		if errors.Is(err, eventstore.ErrConflict) && attempt < 8 {
			continue
		}
		return err
	}
}

// Logout revokes the family of a refresh token (any of its generations).
// It needs no access token, so a client whose access token has expired
// can still sign out.
func (s *Service) Logout(ctx context.Context, req events.LogoutRequest) (events.Empty, error) {
	if req.RefreshToken == "" {
		return events.Empty{}, fieldInvalid("refresh_token", "is required")
	}
	row, ok, err := s.lookupRefresh(ctx, req.RefreshToken)
	if err != nil || !ok {
		return events.Empty{}, orErr(err, errBadRefresh)
	}
	return events.Empty{}, s.revoke(ctx, row.sessionID, events.SessionRevokedLogout)
}

// orErr returns err when set, else fallback.
func orErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
