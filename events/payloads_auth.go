package events

// Payloads of the auth service. Users, e-mail claims, sessions, login
// attempts and signing keys belong to no organisation: their events carry
// org PlatformOrg. API keys belong to the org they were created in.
//
// No payload ever carries a secret: no password or password hash, no
// refresh token, API key, MFA token, TOTP secret, backup code or private
// key (nor a hash of one). Those live only in the auth service's Postgres
// schema; the events say that something happened and to whom.

// UserRegistered is emitted when a user account is created. The aggregate
// is ("user", user id) under org PlatformOrg.
type UserRegistered struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// EventType implements Payload.
func (UserRegistered) EventType() string { return "auth.user.registered" }

// EventVersion implements Payload.
func (UserRegistered) EventVersion() int { return 1 }

// EmailClaimed reserves an e-mail address for a user. The aggregate is
// ("email", hex SHA-256 of the normalised address): it is appended at
// expected version 0, so of two registrations of one address only one can
// claim it. It is appended before UserRegistered.
type EmailClaimed struct {
	UserID string `json:"user_id"`
}

// EventType implements Payload.
func (EmailClaimed) EventType() string { return "auth.email.claimed" }

// EventVersion implements Payload.
func (EmailClaimed) EventVersion() int { return 1 }

// Login failure reasons.
const (
	LoginFailedUnknownUser = "unknown_user"
	LoginFailedBadPassword = "bad_password"
	LoginFailedDisabled    = "disabled"
	LoginFailedThrottled   = "throttled"
)

// LoginSucceeded is emitted when a user has proved who they are (password,
// and the second factor when MFA is on) and a session starts. The
// aggregate is ("login", hex SHA-256 of the normalised e-mail).
type LoginSucceeded struct {
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
	Method    string `json:"method"`
	MFA       bool   `json:"mfa"`
	IP        string `json:"ip,omitempty"`
}

// EventType implements Payload.
func (LoginSucceeded) EventType() string { return "auth.login.succeeded" }

// EventVersion implements Payload.
func (LoginSucceeded) EventVersion() int { return 1 }

// LoginFailed is emitted for every refused password login, including
// those refused by throttling. The aggregate is ("login", hex SHA-256 of
// the normalised e-mail); the address itself is not recorded (users type
// passwords into it).
type LoginFailed struct {
	Reason string `json:"reason"`
	IP     string `json:"ip,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// EventType implements Payload.
func (LoginFailed) EventType() string { return "auth.login.failed" }

// EventVersion implements Payload.
func (LoginFailed) EventVersion() int { return 1 }

// MFASetupStarted is emitted when a user starts TOTP enrolment: a new
// secret is pending until confirmed. The secret itself is never in the
// event. The aggregate is ("user", user id).
type MFASetupStarted struct {
	Method string `json:"method"`
}

// EventType implements Payload.
func (MFASetupStarted) EventType() string { return "auth.mfa.setup_started" }

// EventVersion implements Payload.
func (MFASetupStarted) EventVersion() int { return 1 }

// MFAEnabled is emitted when a user confirms TOTP enrolment. The aggregate
// is ("user", user id).
type MFAEnabled struct {
	Method      string `json:"method"`
	BackupCodes int    `json:"backup_codes"`
}

// EventType implements Payload.
func (MFAEnabled) EventType() string { return "auth.mfa.enabled" }

// EventVersion implements Payload.
func (MFAEnabled) EventVersion() int { return 1 }

// MFADisabled is emitted when a user turns MFA off.
type MFADisabled struct {
	// With says how the user proved possession: "totp" or "backup_code".
	With string `json:"with"`
}

// EventType implements Payload.
func (MFADisabled) EventType() string { return "auth.mfa.disabled" }

// EventVersion implements Payload.
func (MFADisabled) EventVersion() int { return 1 }

// MFA failure stages and reasons.
const (
	MFAStageLogin       = "login"
	MFAStageConfirm     = "confirm"
	MFAStageDisable     = "disable"
	MFAStageBackupCodes = "backup_codes"

	MFAFailedBadCode  = "bad_code"
	MFAFailedReplay   = "replay"
	MFAFailedThrottle = "throttled"
)

// MFAFailed is emitted when a second-factor code is refused. The aggregate
// is ("user", user id).
type MFAFailed struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
	IP     string `json:"ip,omitempty"`
}

// EventType implements Payload.
func (MFAFailed) EventType() string { return "auth.mfa.failed" }

// EventVersion implements Payload.
func (MFAFailed) EventVersion() int { return 1 }

// MFABackupCodeUsed is emitted when a backup code is spent (each works
// once). The aggregate is ("user", user id).
type MFABackupCodeUsed struct {
	Stage     string `json:"stage"`
	Remaining int    `json:"remaining"`
	IP        string `json:"ip,omitempty"`
}

// EventType implements Payload.
func (MFABackupCodeUsed) EventType() string { return "auth.mfa.backup_code_used" }

// EventVersion implements Payload.
func (MFABackupCodeUsed) EventVersion() int { return 1 }

// MFABackupCodesRegenerated is emitted when a user replaces their backup
// codes; the old ones stop working.
type MFABackupCodesRegenerated struct {
	Count int `json:"count"`
}

// EventType implements Payload.
func (MFABackupCodesRegenerated) EventType() string { return "auth.mfa.backup_codes_regenerated" }

// EventVersion implements Payload.
func (MFABackupCodesRegenerated) EventVersion() int { return 1 }

// SessionStarted opens a refresh-token family. The aggregate is
// ("session", session id) under org PlatformOrg.
type SessionStarted struct {
	UserID    string `json:"user_id"`
	MFA       bool   `json:"mfa"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// EventType implements Payload.
func (SessionStarted) EventType() string { return "auth.session.started" }

// EventVersion implements Payload.
func (SessionStarted) EventVersion() int { return 1 }

// SessionRefreshed records a refresh-token rotation: the token of the
// previous generation is spent, one of Generation is issued.
type SessionRefreshed struct {
	Generation int64  `json:"generation"`
	IP         string `json:"ip,omitempty"`
}

// EventType implements Payload.
func (SessionRefreshed) EventType() string { return "auth.session.refreshed" }

// EventVersion implements Payload.
func (SessionRefreshed) EventVersion() int { return 1 }

// Session revocation reasons.
const (
	SessionRevokedLogout = "logout"
	SessionRevokedReuse  = "reuse"
)

// SessionRevoked ends a refresh-token family: none of its tokens works
// again. Reason "reuse" means a spent token was presented (a stolen token,
// or two clients racing), so the whole family is revoked.
type SessionRevoked struct {
	Reason string `json:"reason"`
	IP     string `json:"ip,omitempty"`
}

// EventType implements Payload.
func (SessionRevoked) EventType() string { return "auth.session.revoked" }

// EventVersion implements Payload.
func (SessionRevoked) EventVersion() int { return 1 }

// APIKeyCreated is emitted when an API key is created. The aggregate is
// ("apikey", key id) under the org the key acts in.
type APIKeyCreated struct {
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	Prefix    string `json:"prefix"`
	CreatedBy string `json:"created_by"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// EventType implements Payload.
func (APIKeyCreated) EventType() string { return "auth.apikey.created" }

// EventVersion implements Payload.
func (APIKeyCreated) EventVersion() int { return 1 }

// APIKeyRevoked is emitted when an API key is revoked; it stops working at
// once.
type APIKeyRevoked struct {
	RevokedBy string `json:"revoked_by"`
}

// EventType implements Payload.
func (APIKeyRevoked) EventType() string { return "auth.apikey.revoked" }

// EventVersion implements Payload.
func (APIKeyRevoked) EventVersion() int { return 1 }

// SigningKeyRotated is emitted when a new access-token signing key becomes
// the active one (including the first key). The aggregate is
// ("signing_key", "jwt") under org PlatformOrg. The previous keys stay in
// the JWKS until the tokens they signed have expired.
type SigningKeyRotated struct {
	Kid         string `json:"kid"`
	PreviousKid string `json:"previous_kid,omitempty"`
}

// EventType implements Payload.
func (SigningKeyRotated) EventType() string { return "auth.signing_key.rotated" }

// EventVersion implements Payload.
func (SigningKeyRotated) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(UserRegistered{}, "A user account was created. The password hash never appears in an event.")
	Catalogue.MustRegister(EmailClaimed{}, "An e-mail address was reserved for a user (aggregate: hash of the address); it makes addresses unique.")
	Catalogue.MustRegister(LoginSucceeded{}, "A user signed in (after the second factor when MFA is on).")
	Catalogue.MustRegister(LoginFailed{}, "A password sign-in was refused: unknown_user, bad_password, disabled or throttled. Never carries the password or the address.")
	Catalogue.MustRegister(MFASetupStarted{}, "A user started TOTP enrolment; a new secret is pending until confirmed (the secret is not in the event).")
	Catalogue.MustRegister(MFAEnabled{}, "A user confirmed TOTP enrolment; backup codes were issued (they are not in the event).")
	Catalogue.MustRegister(MFADisabled{}, "A user turned MFA off.")
	Catalogue.MustRegister(MFAFailed{}, "A second-factor code was refused (bad_code, replay or throttled).")
	Catalogue.MustRegister(MFABackupCodeUsed{}, "A backup code was spent; it never works again.")
	Catalogue.MustRegister(MFABackupCodesRegenerated{}, "A user replaced their backup codes; the old ones stopped working.")
	Catalogue.MustRegister(SessionStarted{}, "A session (refresh-token family) started.")
	Catalogue.MustRegister(SessionRefreshed{}, "A refresh token was rotated: the old one is spent.")
	Catalogue.MustRegister(SessionRevoked{}, "A session was revoked (logout, or reuse of a spent refresh token).")
	Catalogue.MustRegister(APIKeyCreated{}, "An API key was created for an org with a role. The key itself is shown once and never stored or sent in clear.")
	Catalogue.MustRegister(APIKeyRevoked{}, "An API key was revoked.")
	Catalogue.MustRegister(SigningKeyRotated{}, "A new access-token signing key became active. No key material is in the event.")
}
