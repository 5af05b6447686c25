package events

// Operations of the auth service that the gateway's REST routes call, on
// ServiceEndpoint("auth", op). The cross-service identity operations (jwks,
// apikey_verify, user_create, users_get, user_find) are in api_identity.go.
//
// Public operations (register, login, mfa_verify, refresh, logout) need no
// principal; the client IP in the Ip-Actor-Ip header drives login
// throttling. The others act for the principal in the request headers.
const (
	// OpAuthRegister signs a new user up with a new org they own.
	// Request: RegisterRequest. Reply: RegisterResponse. conflict when the
	// e-mail is taken; forbidden when sign-up is switched off.
	OpAuthRegister = "register"
	// OpAuthLogin checks a password. Request: LoginRequest. Reply:
	// LoginResponse (tokens, or mfa_required with an mfa_token).
	// unauthorized for wrong credentials, rate_limited (with RetryAfter)
	// while the account or the client IP is locked out.
	OpAuthLogin = "login"
	// OpAuthMFAVerify completes a login with a TOTP or backup code.
	// Request: MFAVerifyRequest. Reply: TokenResponse.
	OpAuthMFAVerify = "mfa_verify"
	// OpAuthRefresh rotates a refresh token. Request: RefreshRequest.
	// Reply: TokenResponse. A spent token revokes its whole family and
	// answers unauthorized.
	OpAuthRefresh = "refresh"
	// OpAuthLogout revokes the session of a refresh token. Request:
	// LogoutRequest. Reply: Empty.
	OpAuthLogout = "logout"
	// OpAuthMe returns the calling user. Request: Empty. Reply: UserSummary.
	OpAuthMe = "me"
	// OpAuthMFASetup starts TOTP enrolment for the calling user. Request:
	// Empty. Reply: MFASetupResponse.
	OpAuthMFASetup = "mfa_setup"
	// OpAuthMFAConfirm enables MFA with a first TOTP code. Request:
	// MFACodeRequest. Reply: BackupCodesResponse (shown once).
	OpAuthMFAConfirm = "mfa_confirm"
	// OpAuthMFADisable turns MFA off; the code is a TOTP or backup code.
	// Request: MFACodeRequest. Reply: Empty.
	OpAuthMFADisable = "mfa_disable"
	// OpAuthMFABackupCodes replaces the backup codes. Request:
	// MFACodeRequest (a TOTP code). Reply: BackupCodesResponse.
	OpAuthMFABackupCodes = "mfa_backup_codes"
	// OpAuthAPIKeyCreate creates an API key in the caller's org with a
	// role no higher than the caller's. Request: APIKeyCreateRequest.
	// Reply: NewAPIKey (the key is shown once).
	OpAuthAPIKeyCreate = "apikey_create"
	// OpAuthAPIKeyList lists the API keys of the caller's org. Request:
	// Empty. Reply: List[APIKey].
	OpAuthAPIKeyList = "apikey_list"
	// OpAuthAPIKeyRevoke revokes an API key of the caller's org (not_found
	// for a key of another org). Request: APIKeyRevokeRequest. Reply: Empty.
	OpAuthAPIKeyRevoke = "apikey_revoke"
	// OpAuthSigningKeyRotate makes a new signing key active; the previous
	// public keys stay in the JWKS until the tokens they signed expire.
	// An operator operation (no REST route). Request: Empty. Reply:
	// SigningKeyRotateResponse.
	OpAuthSigningKeyRotate = "signing_key_rotate"
)

// RegisterRequest is the body of POST /auth/register.
type RegisterRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	OrgName  string `json:"org_name"`
}

// TokenResponse carries a new access token and refresh token.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	// TokenType is always "Bearer".
	TokenType string `json:"token_type"`
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int `json:"expires_in"`
}

// RegisterResponse is the 201 body of POST /auth/register.
type RegisterResponse struct {
	User         UserSummary `json:"user"`
	Org          OrgSummary  `json:"org"`
	AccessToken  string      `json:"access_token"`
	RefreshToken string      `json:"refresh_token"`
	TokenType    string      `json:"token_type"`
	ExpiresIn    int         `json:"expires_in"`
}

// LoginRequest is the body of POST /auth/login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// LoginResponse is either tokens, or MFARequired with an MFAToken to pass
// to mfa_verify within a few minutes.
type LoginResponse struct {
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type,omitempty"`
	ExpiresIn    int    `json:"expires_in,omitempty"`
	MFARequired  bool   `json:"mfa_required,omitempty"`
	MFAToken     string `json:"mfa_token,omitempty"`
}

// MFAVerifyRequest is the body of POST /auth/mfa/verify. Code is a 6-digit
// TOTP code or a backup code.
type MFAVerifyRequest struct {
	MFAToken string `json:"mfa_token"`
	Code     string `json:"code"`
}

// RefreshRequest is the body of POST /auth/refresh.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// LogoutRequest is the body of POST /auth/logout.
type LogoutRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// MFASetupResponse is the TOTP secret to enrol in an authenticator app;
// MFA is on only once confirmed with a code.
type MFASetupResponse struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
}

// MFACodeRequest carries one second-factor code.
type MFACodeRequest struct {
	Code string `json:"code"`
}

// BackupCodesResponse lists fresh backup codes; they are shown only once.
type BackupCodesResponse struct {
	BackupCodes []string `json:"backup_codes"`
}

// APIKeyCreateRequest is the body of POST /auth/api-keys. ExpiresIn is in
// seconds; 0 means the key does not expire.
type APIKeyCreateRequest struct {
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	ExpiresIn int64  `json:"expires_in,omitempty"`
}

// APIKey is the public view of an API key: never the key itself.
type APIKey struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Role       Role   `json:"role"`
	Prefix     string `json:"prefix"`
	CreatedBy  string `json:"created_by"`
	CreatedAt  string `json:"created_at"`
	ExpiresAt  string `json:"expires_at,omitempty"`
	LastUsedAt string `json:"last_used_at,omitempty"`
	RevokedAt  string `json:"revoked_at,omitempty"`
}

// NewAPIKey is the 201 body of POST /auth/api-keys: the key, in clear,
// this one time only.
type NewAPIKey struct {
	APIKey
	Key string `json:"key"`
}

// APIKeyRevokeRequest names the key of DELETE /auth/api-keys/{id}.
type APIKeyRevokeRequest struct {
	ID string `json:"id"`
}

// SigningKeyRotateResponse names the new active signing key.
type SigningKeyRotateResponse struct {
	Kid string `json:"kid"`
}
