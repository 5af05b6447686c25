package events

import "encoding/json"

// PlatformOrg is the org token of aggregates that belong to no single
// organisation: user accounts, e-mail claims, signing keys. Real org ids are
// UUIDv7 strings and can never equal it.
const PlatformOrg = "platform"

// Operations the gateway's authentication middleware calls on every
// authenticated request. They are the cross-service contract of identity;
// the rest of each service's API is in api_auth.go and api_tenancy.go.
const (
	// OpAuthJWKS returns the public signing keys (JWKS JSON) the gateway
	// verifies access tokens with. Request: empty. Reply: JWKS.
	OpAuthJWKS = "jwks"
	// OpAuthVerifyAPIKey resolves an API key to its principal.
	// Request: VerifyAPIKeyRequest. Reply: ResolvedPrincipal.
	OpAuthVerifyAPIKey = "apikey_verify"
	// OpTenancyMembership returns a user's role in an org, or not_found
	// when the user is not a member (or the org does not exist).
	// Request: MembershipRequest. Reply: MembershipReply.
	OpTenancyMembership = "membership"
	// OpTenancyDefaultOrg returns the org a user acts in when a request
	// names none. Request: DefaultOrgRequest. Reply: MembershipReply.
	OpTenancyDefaultOrg = "default_org"

	// OpAuthCreateUser creates a user account (tenancy's user
	// administration and the dev bootstrap call it). Request:
	// CreateUserRequest. Reply: UserSummary. conflict when the e-mail is
	// taken.
	OpAuthCreateUser = "user_create"
	// OpAuthGetUsers returns the users with the given ids (for member
	// lists). Request: GetUsersRequest. Reply: List[UserSummary].
	OpAuthGetUsers = "users_get"
	// OpAuthFindUser returns the user with an e-mail address, or
	// not_found. Request: FindUserRequest. Reply: UserSummary.
	OpAuthFindUser = "user_find"
	// OpTenancyCreateOrg creates an organisation with its first owner (the
	// sign-up calls it after creating the user). Request:
	// CreateOrgRequest. Reply: OrgSummary.
	OpTenancyCreateOrg = "org_create"
)

// CreateUserRequest creates a user account.
type CreateUserRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// UserSummary is the public view of a user account.
type UserSummary struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	Name        string `json:"name"`
	MFAEnabled  bool   `json:"mfa_enabled"`
	Disabled    bool   `json:"disabled,omitempty"`
	CreatedAt   string `json:"created_at,omitempty"`
	LastLoginAt string `json:"last_login_at,omitempty"`
}

// GetUsersRequest names users by id.
type GetUsersRequest struct {
	IDs []string `json:"ids"`
}

// FindUserRequest names a user by e-mail.
type FindUserRequest struct {
	Email string `json:"email"`
}

// CreateOrgRequest creates an organisation owned by OwnerUserID.
type CreateOrgRequest struct {
	Name        string `json:"name"`
	Slug        string `json:"slug,omitempty"`
	Plan        string `json:"plan,omitempty"`
	OwnerUserID string `json:"owner_user_id"`
}

// OrgSummary is the public view of an organisation.
type OrgSummary struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Slug      string `json:"slug"`
	Plan      string `json:"plan"`
	CreatedAt string `json:"created_at,omitempty"`
	// Role is the caller's role, when the org is listed for a user.
	Role Role `json:"role,omitempty"`
}

// JWT parameters shared by the auth service (which signs) and the gateway
// (which verifies). Only EdDSA (Ed25519) is ever accepted.
const (
	JWTIssuer    = "infrapilot"
	JWTAudience  = "infrapilot-api"
	JWTAlgorithm = "EdDSA"
)

// AccessClaims are the claims of an access token beyond the registered ones
// (iss, aud, sub = user id, exp, nbf, iat, jti).
type AccessClaims struct {
	// SessionID is the refresh-token family the token was issued in.
	SessionID string `json:"sid"`
	// Email of the user, for display only; never used for authorisation.
	Email string `json:"email,omitempty"`
}

// JWK is one public key of a JWKS (RFC 7517, OKP/Ed25519 per RFC 8037).
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // base64url public key
	Kid string `json:"kid"`
	Alg string `json:"alg"` // "EdDSA"
	Use string `json:"use"` // "sig"
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// VerifyAPIKeyRequest asks the auth service who an API key belongs to. The
// key travels only over NATS between the gateway and the auth service.
type VerifyAPIKeyRequest struct {
	Key string `json:"key"`
}

// ResolvedPrincipal is an authenticated caller as the auth service knows
// it. For an API key, OrgID and Role are fixed by the key.
type ResolvedPrincipal struct {
	Kind   ActorKind `json:"kind"`
	ID     string    `json:"id"`
	UserID string    `json:"user_id,omitempty"` // the key's creator
	OrgID  string    `json:"org_id,omitempty"`
	Role   Role      `json:"role,omitempty"`
}

// MembershipRequest asks for a user's role in an org.
type MembershipRequest struct {
	OrgID  string `json:"org_id"`
	UserID string `json:"user_id"`
}

// MembershipReply is a user's role in an org.
type MembershipReply struct {
	OrgID string `json:"org_id"`
	Role  Role   `json:"role"`
}

// DefaultOrgRequest asks for the org a user acts in by default.
type DefaultOrgRequest struct {
	UserID string `json:"user_id"`
}

// List is the reply shape of every list operation, as API.md fixes it for
// the REST API: items and an opaque cursor for the next page.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Empty is the request or reply of an operation that carries no data.
type Empty struct{}

// RawJSON lets an operation pass a body through unchanged.
type RawJSON = json.RawMessage
