package service

import (
	"context"
	"errors"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/jackc/pgx/v5"
)

// maxPasswordBytes bounds what reaches argon2 from an unauthenticated
// caller (256 characters of UTF-8 fit).
const maxPasswordBytes = 4 * domain.MaxPasswordLen

// errBadLogin is the one answer to a wrong address or password.
var errBadLogin = events.Errorf(events.CodeUnauthorized, "invalid e-mail address or password")

// dummyHash is a hash to check passwords of unknown addresses against, so
// that "no such user" takes as long as "wrong password".
func (s *Service) dummyHash() string {
	s.dummyOnce.Do(func() {
		h, err := secret.HashPassword("not a password of anyone", s.cfg.Argon2)
		if err == nil {
			s.dummy = h
		}
	})
	return s.dummy
}

// Login checks an e-mail and password. Throttling is checked first, per
// account and per client IP; a locked caller gets rate_limited with
// RetryAfter and its password is not even checked.
func (s *Service) Login(ctx context.Context, req events.LoginRequest) (events.LoginResponse, error) {
	var out events.LoginResponse
	var f domain.Fields
	email, fe := domain.NormalizeEmail("email", req.Email)
	f.Add(fe)
	if req.Password == "" {
		f.Add(&events.FieldError{Field: "password", Message: "is required"})
	} else if len(req.Password) > maxPasswordBytes {
		f.Add(&events.FieldError{Field: "password", Message: "is too long"})
	}
	if err := f.Err(); err != nil {
		return out, err
	}
	ekey := domain.EmailKey(email)
	ip := reqctx.From(ctx).Actor.IP
	keys := []string{accountKey(ekey)}
	if ip != "" {
		keys = append(keys, ipKey(ip))
	}
	wait, err := s.lockedFor(ctx, keys...)
	if err != nil {
		return out, err
	}
	if wait > 0 {
		if err := s.loginFailed(ctx, ekey, "", events.LoginFailedThrottled); err != nil {
			return out, err
		}
		return out, rateLimited(wait)
	}
	u, hash, found, err := s.userByEmail(ctx, email)
	if err != nil {
		return out, err
	}
	if !found {
		_, _ = secret.CheckPassword(req.Password, s.dummyHash())
		return out, s.countFailure(ctx, ekey, ip, "", events.LoginFailedUnknownUser)
	}
	ok, err := secret.CheckPassword(req.Password, hash)
	if err != nil {
		return out, err
	}
	if !ok {
		return out, s.countFailure(ctx, ekey, ip, u.ID, events.LoginFailedBadPassword)
	}
	if u.Disabled {
		if err := s.loginFailed(ctx, ekey, u.ID, events.LoginFailedDisabled); err != nil {
			return out, err
		}
		return out, events.Errorf(events.CodeUnauthorized, "this account is disabled")
	}
	if err := s.reset(ctx, accountKey(ekey)); err != nil {
		return out, err
	}
	if u.MFAEnabled {
		tok, err := s.newChallenge(ctx, u.ID)
		if err != nil {
			return out, err
		}
		return events.LoginResponse{MFARequired: true, MFAToken: tok}, nil
	}
	tokens, err := s.signIn(ctx, u, false)
	if err != nil {
		return out, err
	}
	return events.LoginResponse{AccessToken: tokens.AccessToken, RefreshToken: tokens.RefreshToken,
		TokenType: tokens.TokenType, ExpiresIn: tokens.ExpiresIn}, nil
}

// signIn starts a session for a user who has proved who they are and
// records the successful login.
func (s *Service) signIn(ctx context.Context, u *domain.User, mfa bool) (events.TokenResponse, error) {
	info := reqctx.From(ctx)
	info.Actor = userActor(ctx, u.ID)
	ctx = reqctx.With(ctx, info)
	tokens, sid, err := s.startSession(ctx, u, mfa)
	if err != nil {
		return tokens, err
	}
	err = s.record(ctx, platformRef(domain.AggLogin, domain.EmailKey(u.Email)), meta(ctx, events.PlatformOrg, info.Actor),
		events.LoginSucceeded{UserID: u.ID, SessionID: sid, Method: "password", MFA: mfa, IP: info.Actor.IP})
	return tokens, err
}

// countFailure counts a failed password for the account and the client IP,
// records it, and answers unauthorized.
func (s *Service) countFailure(ctx context.Context, ekey, ip, userID, reason string) error {
	if err := s.fail(ctx, accountKey(ekey), s.cfg.Throttle.AccountFailures); err != nil {
		return err
	}
	if ip != "" {
		if err := s.fail(ctx, ipKey(ip), s.cfg.Throttle.IPFailures); err != nil {
			return err
		}
	}
	if err := s.loginFailed(ctx, ekey, userID, reason); err != nil {
		return err
	}
	return errBadLogin
}

func (s *Service) loginFailed(ctx context.Context, ekey, userID, reason string) error {
	a := userActor(ctx, userID)
	return s.record(ctx, platformRef(domain.AggLogin, ekey), meta(ctx, events.PlatformOrg, a),
		events.LoginFailed{Reason: reason, IP: a.IP, UserID: userID})
}

// mfaChallengeAttempts is how many codes one MFA token may try.
const mfaChallengeAttempts = 5

// newChallenge stores an MFA token for a user whose password was right.
func (s *Service) newChallenge(ctx context.Context, userID string) (string, error) {
	tok, err := secret.NewToken("", 32)
	if err != nil {
		return "", err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO mfa_challenges (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		secret.Digest(tok), userID, s.now().Add(s.cfg.MFATokenTTL))
	return tok, err
}

var errBadChallenge = events.Errorf(events.CodeUnauthorized, "invalid or expired MFA token; sign in again")

// MFAVerify completes a login with a TOTP code or a backup code. The MFA
// token is single use and allows a few attempts; failures also count
// against the user's second-factor throttle key.
func (s *Service) MFAVerify(ctx context.Context, req events.MFAVerifyRequest) (events.TokenResponse, error) {
	var f domain.Fields
	if req.MFAToken == "" || len(req.MFAToken) > 256 {
		f.Add(&events.FieldError{Field: "mfa_token", Message: "is required"})
	}
	code := strings.TrimSpace(req.Code)
	if code == "" || len(code) > 64 {
		f.Add(&events.FieldError{Field: "code", Message: "is required"})
	}
	if err := f.Err(); err != nil {
		return events.TokenResponse{}, err
	}
	digest := secret.Digest(req.MFAToken)
	// Taking an attempt is atomic, so concurrent guesses cannot exceed the
	// limit.
	var userID string
	var stored []byte
	err := s.db.QueryRow(ctx, `UPDATE mfa_challenges SET attempts = attempts + 1
		WHERE token_hash = $1 AND attempts < $2 AND expires_at > $3 RETURNING user_id, token_hash`,
		digest, mfaChallengeAttempts, s.now()).Scan(&userID, &stored)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !secret.Equal(stored, digest)) {
		return events.TokenResponse{}, errBadChallenge
	}
	if err != nil {
		return events.TokenResponse{}, err
	}
	wait, err := s.lockedFor(ctx, mfaKey(userID))
	if err != nil {
		return events.TokenResponse{}, err
	}
	if wait > 0 {
		_ = s.mfaFailed(ctx, userID, events.MFAStageLogin, events.MFAFailedThrottle)
		return events.TokenResponse{}, rateLimited(wait)
	}
	u, err := s.loadUser(ctx, userID)
	if err != nil {
		return events.TokenResponse{}, err
	}
	if !u.Exists() || !u.MFAEnabled || u.Disabled {
		return events.TokenResponse{}, errBadChallenge
	}
	ok, err := s.checkSecondFactor(ctx, u.ID, code, events.MFAStageLogin, true)
	if err != nil {
		return events.TokenResponse{}, err
	}
	if !ok {
		return events.TokenResponse{}, events.Errorf(events.CodeUnauthorized, "invalid code")
	}
	tag, err := s.db.Exec(ctx, `DELETE FROM mfa_challenges WHERE token_hash = $1`, digest)
	if err != nil {
		return events.TokenResponse{}, err
	}
	if tag.RowsAffected() == 0 {
		return events.TokenResponse{}, errBadChallenge // used by a concurrent verify
	}
	return s.signIn(ctx, u, true)
}
