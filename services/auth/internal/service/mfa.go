package service

import (
	"context"
	"errors"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/jackc/pgx/v5"
)

// backupCodeCount is how many backup codes a user gets.
const backupCodeCount = 10

// totpIssuer names InfraPilot in authenticator apps.
const totpIssuer = "InfraPilot"

func totpAD(userID string) []byte { return []byte("totp:" + userID) }

// MFASetup starts TOTP enrolment: a new secret, stored sealed and pending
// until MFAConfirm. Calling it again replaces a pending secret; once MFA is
// on it answers conflict (disable first).
func (s *Service) MFASetup(ctx context.Context, _ events.Empty) (events.MFASetupResponse, error) {
	var out events.MFASetupResponse
	uid, err := callerUser(ctx)
	if err != nil {
		return out, err
	}
	u, err := s.loadUser(ctx, uid)
	if err != nil {
		return out, err
	}
	if !u.Exists() {
		return out, unauthorized("unknown user")
	}
	if u.MFAEnabled {
		return out, events.Errorf(events.CodeConflict, "MFA is already enabled; disable it first")
	}
	b32, url, err := secret.NewTOTP(totpIssuer, u.Email)
	if err != nil {
		return out, err
	}
	sl, err := s.sealing(ctx)
	if err != nil {
		return out, err
	}
	sealed, err := sl.Seal([]byte(b32), totpAD(uid))
	if err != nil {
		return out, err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO mfa_secrets (user_id, secret_enc, last_step) VALUES ($1, $2, 0)
		ON CONFLICT (user_id) DO UPDATE SET secret_enc = EXCLUDED.secret_enc, last_step = 0, created_at = now()`, uid, sealed)
	if err != nil {
		return out, err
	}
	// The state change is recorded (and audited) without the secret.
	_, err = s.append(ctx, platformRef(domain.AggUser, u.ID), u.Version, meta(ctx, events.PlatformOrg, events.Actor{}),
		events.MFASetupStarted{Method: "totp"})
	if errors.Is(err, eventstore.ErrConflict) {
		return out, events.Errorf(events.CodeConflict, "your account changed at the same time; retry")
	}
	if err != nil {
		return out, err
	}
	return events.MFASetupResponse{Secret: b32, OTPAuthURL: url}, nil
}

// MFAConfirm turns MFA on with a first TOTP code and returns the backup
// codes, which are shown only this once.
func (s *Service) MFAConfirm(ctx context.Context, req events.MFACodeRequest) (events.BackupCodesResponse, error) {
	var out events.BackupCodesResponse
	u, code, err := s.mfaCaller(ctx, req.Code)
	if err != nil {
		return out, err
	}
	if u.MFAEnabled {
		return out, events.Errorf(events.CodeConflict, "MFA is already enabled")
	}
	if ok, err := s.checkSecondFactor(ctx, u.ID, code, events.MFAStageConfirm, false); err != nil || !ok {
		return out, orErr(err, errBadCode)
	}
	codes, err := s.replaceBackupCodes(ctx, u.ID)
	if err != nil {
		return out, err
	}
	v, err := s.append(ctx, platformRef(domain.AggUser, u.ID), u.Version, meta(ctx, events.PlatformOrg, events.Actor{}),
		events.MFAEnabled{Method: "totp", BackupCodes: len(codes)})
	if errors.Is(err, eventstore.ErrConflict) {
		return out, events.Errorf(events.CodeConflict, "your account changed at the same time; retry")
	}
	if err != nil {
		return out, err
	}
	if err := s.waitVersion(ctx, "users", u.ID, v); err != nil {
		return out, err
	}
	return events.BackupCodesResponse{BackupCodes: codes}, nil
}

// MFADisable turns MFA off; the code may be a TOTP or a backup code (for a
// user who lost their device).
func (s *Service) MFADisable(ctx context.Context, req events.MFACodeRequest) (events.Empty, error) {
	u, code, err := s.mfaCaller(ctx, req.Code)
	if err != nil {
		return events.Empty{}, err
	}
	if !u.MFAEnabled {
		return events.Empty{}, events.Errorf(events.CodeConflict, "MFA is not enabled")
	}
	if ok, err := s.checkSecondFactor(ctx, u.ID, code, events.MFAStageDisable, true); err != nil || !ok {
		return events.Empty{}, orErr(err, errBadCode)
	}
	with := "totp"
	if !isTOTPCode(code) {
		with = "backup_code"
	}
	// The user may have changed since loading (a spent backup code is an
	// event on the user): decide again on the fresh state.
	for attempt := 0; ; attempt++ {
		v, err := s.append(ctx, platformRef(domain.AggUser, u.ID), u.Version, meta(ctx, events.PlatformOrg, events.Actor{}),
			events.MFADisabled{With: with})
		if errors.Is(err, eventstore.ErrConflict) && attempt < 3 {
			if u, err = s.loadUser(ctx, u.ID); err != nil {
				return events.Empty{}, err
			}
			if !u.MFAEnabled {
				return events.Empty{}, nil
			}
			continue
		}
		if err != nil {
			return events.Empty{}, err
		}
		if err := s.waitVersion(ctx, "users", u.ID, v); err != nil {
			return events.Empty{}, err
		}
		break
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM mfa_backup_codes WHERE user_id = $1`, u.ID); err != nil {
		return events.Empty{}, err
	}
	_, err = s.db.Exec(ctx, `DELETE FROM mfa_secrets WHERE user_id = $1`, u.ID)
	return events.Empty{}, err
}

// MFABackupCodes replaces the backup codes (the old ones stop working).
func (s *Service) MFABackupCodes(ctx context.Context, req events.MFACodeRequest) (events.BackupCodesResponse, error) {
	var out events.BackupCodesResponse
	u, code, err := s.mfaCaller(ctx, req.Code)
	if err != nil {
		return out, err
	}
	if !u.MFAEnabled {
		return out, events.Errorf(events.CodeConflict, "MFA is not enabled")
	}
	if ok, err := s.checkSecondFactor(ctx, u.ID, code, events.MFAStageBackupCodes, false); err != nil || !ok {
		return out, orErr(err, errBadCode)
	}
	codes, err := s.replaceBackupCodes(ctx, u.ID)
	if err != nil {
		return out, err
	}
	err = s.record(ctx, platformRef(domain.AggUser, u.ID), meta(ctx, events.PlatformOrg, events.Actor{}),
		events.MFABackupCodesRegenerated{Count: len(codes)})
	return events.BackupCodesResponse{BackupCodes: codes}, err
}

// errBadCode answers a wrong code from a signed-in user: invalid input,
// not unauthorized, so that clients do not take it for an expired session.
var errBadCode = events.Invalid("the code is not valid").WithFields(events.FieldError{Field: "code", Message: "is not valid"})

// mfaCaller loads the calling user and checks the code's presence and the
// second-factor throttle.
func (s *Service) mfaCaller(ctx context.Context, code string) (*domain.User, string, error) {
	uid, err := callerUser(ctx)
	if err != nil {
		return nil, "", err
	}
	code = strings.TrimSpace(code)
	if code == "" || len(code) > 64 {
		return nil, "", fieldInvalid("code", "is required")
	}
	wait, err := s.lockedFor(ctx, mfaKey(uid))
	if err != nil {
		return nil, "", err
	}
	if wait > 0 {
		return nil, "", rateLimited(wait)
	}
	u, err := s.loadUser(ctx, uid)
	if err != nil {
		return nil, "", err
	}
	if !u.Exists() {
		return nil, "", unauthorized("unknown user")
	}
	return u, code, nil
}

func isTOTPCode(code string) bool {
	if len(code) != int(secret.TOTPDigits) {
		return false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// checkSecondFactor checks a TOTP code (refusing a time step already used,
// so a code seen over someone's shoulder cannot be replayed) or, when
// allowBackup, a backup code (spent atomically: of two uses only one
// succeeds). A failure is counted against the user's second-factor
// throttle key and recorded as auth.mfa.failed.
func (s *Service) checkSecondFactor(ctx context.Context, userID, code, stage string, allowBackup bool) (bool, error) {
	reason := events.MFAFailedBadCode
	if isTOTPCode(code) {
		var sealed []byte
		err := s.db.QueryRow(ctx, `SELECT secret_enc FROM mfa_secrets WHERE user_id = $1`, userID).Scan(&sealed)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, events.Errorf(events.CodeConflict, "no MFA enrolment in progress; run setup first")
		}
		if err != nil {
			return false, err
		}
		sl, err := s.sealing(ctx)
		if err != nil {
			return false, err
		}
		b32, err := sl.Open(sealed, totpAD(userID))
		if err != nil {
			return false, err
		}
		if step, ok := secret.MatchTOTP(string(b32), code, s.now()); ok {
			tag, err := s.db.Exec(ctx, `UPDATE mfa_secrets SET last_step = $2 WHERE user_id = $1 AND last_step < $2`, userID, step)
			if err != nil {
				return false, err
			}
			if tag.RowsAffected() == 1 {
				return true, s.reset(ctx, mfaKey(userID))
			}
			reason = events.MFAFailedReplay
		}
	} else if allowBackup {
		var remaining int
		err := s.db.QueryRow(ctx, `WITH used AS (
				UPDATE mfa_backup_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING 1)
			SELECT count(*) FROM used`, userID, secret.Digest(secret.NormalizeBackupCode(code)), s.now()).Scan(&remaining)
		if err != nil {
			return false, err
		}
		if remaining == 1 {
			if err := s.db.QueryRow(ctx, `SELECT count(*) FROM mfa_backup_codes WHERE user_id = $1 AND used_at IS NULL`, userID).Scan(&remaining); err != nil {
				return false, err
			}
			a := userActor(ctx, userID)
			if err := s.record(ctx, platformRef(domain.AggUser, userID), meta(ctx, events.PlatformOrg, a),
				events.MFABackupCodeUsed{Stage: stage, Remaining: remaining, IP: a.IP}); err != nil {
				return false, err
			}
			return true, s.reset(ctx, mfaKey(userID))
		}
	}
	if err := s.fail(ctx, mfaKey(userID), s.cfg.Throttle.MFAFailures); err != nil {
		return false, err
	}
	return false, s.mfaFailed(ctx, userID, stage, reason)
}

func (s *Service) mfaFailed(ctx context.Context, userID, stage, reason string) error {
	a := userActor(ctx, userID)
	return s.record(ctx, platformRef(domain.AggUser, userID), meta(ctx, events.PlatformOrg, a),
		events.MFAFailed{Stage: stage, Reason: reason, IP: a.IP})
}

// replaceBackupCodes issues fresh backup codes, storing only their
// digests; the previous codes are deleted in the same transaction.
func (s *Service) replaceBackupCodes(ctx context.Context, userID string) ([]string, error) {
	codes := make([]string, backupCodeCount)
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `DELETE FROM mfa_backup_codes WHERE user_id = $1`, userID); err != nil {
		return nil, err
	}
	for i := range codes {
		c, err := secret.NewBackupCode()
		if err != nil {
			return nil, err
		}
		codes[i] = c
		if _, err := tx.Exec(ctx, `INSERT INTO mfa_backup_codes (user_id, code_hash) VALUES ($1, $2)`,
			userID, secret.Digest(secret.NormalizeBackupCode(c))); err != nil {
			return nil, err
		}
	}
	return codes, tx.Commit(ctx)
}
