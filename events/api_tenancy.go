package events

import "time"

// Operations of the tenancy service, served on
// ServiceEndpoint("tenancy", op). The org an operation acts in is always
// the request's org header (the gateway's X-Org-ID resolution), never a
// field of the request; the caller's role travels in the role header and
// the service checks it against the permission named below as well.
// The identity operations (org_create, membership, default_org) are in
// api_identity.go.
const (
	// OpTenancyListOrgs lists the orgs the calling user belongs to, with
	// their role in each. Request: ListRequest. Reply: List[OrgSummary].
	OpTenancyListOrgs = "orgs_list"
	// OpTenancyGetOrg returns the request's org with the caller's role.
	// Request: Empty. Reply: OrgSummary. Permission: org:read.
	OpTenancyGetOrg = "org_get"
	// OpTenancyUpdateOrg renames the org or changes its slug. Request:
	// UpdateOrgRequest. Reply: OrgSummary. Permission: org:update.
	OpTenancyUpdateOrg = "org_update"
	// OpTenancyDeleteOrg deletes the org (soft). Request: Empty. Reply:
	// Empty. Permission: org:delete.
	OpTenancyDeleteOrg = "org_delete"
	// OpTenancySetPlan moves the org to another plan (called by billing).
	// Request: SetPlanRequest. Reply: OrgSummary.
	OpTenancySetPlan = "org_set_plan"
	// OpTenancyUsage returns the org's users and agents against its plan's
	// limits. Request: Empty. Reply: Usage. Permission: org:read.
	OpTenancyUsage = "usage"

	// OpTenancyListMembers lists the org's members with their e-mail and
	// name. Request: ListRequest. Reply: List[Member]. Permission:
	// members:read.
	OpTenancyListMembers = "members_list"
	// OpTenancyAddMember adds an existing user, named by e-mail, with a
	// role. Request: AddMemberRequest. Reply: Member. Permission:
	// members:manage, and owners:manage to add an owner. conflict when the
	// plan's user limit is reached or the user is already a member.
	OpTenancyAddMember = "member_add"
	// OpTenancyUpdateMember changes a member's role. Request:
	// UpdateMemberRequest. Reply: Member. Permission: members:manage, and
	// owners:manage to make or unmake an owner. conflict when it would
	// leave the org without an owner.
	OpTenancyUpdateMember = "member_update"
	// OpTenancyRemoveMember removes a member. Request: UserRef. Reply:
	// Empty. Permission: members:manage, and owners:manage to remove an
	// owner. conflict for the last owner.
	OpTenancyRemoveMember = "member_remove"

	// OpTenancyCreateInvitation invites an e-mail address with a role and
	// mails the link when SMTP is configured. Request:
	// CreateInvitationRequest. Reply: NewInvitation (the token is in it
	// once). Permission: members:manage (owners:manage for owner).
	OpTenancyCreateInvitation = "invitation_create"
	// OpTenancyListInvitations lists the org's invitations. Request:
	// ListRequest. Reply: List[Invitation]. Permission: members:manage.
	OpTenancyListInvitations = "invitations_list"
	// OpTenancyRevokeInvitation withdraws a pending invitation. Request:
	// IDRequest. Reply: Empty. Permission: members:manage.
	OpTenancyRevokeInvitation = "invitation_revoke"
	// OpTenancyAcceptInvitation makes the calling user a member of the
	// inviting org. The user's e-mail must be the invited address. It
	// needs no org header. Request: AcceptInvitationRequest. Reply:
	// OrgSummary (with the new role). not_found for an unknown token;
	// conflict when it was used, revoked or has expired, or the plan's
	// user limit is reached; forbidden for another user's invitation.
	OpTenancyAcceptInvitation = "invitation_accept"

	// OpTenancyCreateEnrollmentToken creates an agent enrollment token.
	// Request: CreateEnrollmentTokenRequest. Reply: NewEnrollmentToken (the
	// token is in it once). Permission: enrollment:manage.
	OpTenancyCreateEnrollmentToken = "enrollment_token_create"
	// OpTenancyListEnrollmentTokens lists the org's tokens, never their
	// secrets. Request: ListRequest. Reply: List[EnrollmentToken].
	// Permission: enrollment:read.
	OpTenancyListEnrollmentTokens = "enrollment_tokens_list"
	// OpTenancyRevokeEnrollmentToken disables a token. Request: IDRequest.
	// Reply: EnrollmentToken. Permission: enrollment:manage.
	OpTenancyRevokeEnrollmentToken = "enrollment_token_revoke"
	// OpTenancyDeleteEnrollmentToken deletes a token. Request: IDRequest.
	// Reply: Empty. Permission: enrollment:manage.
	OpTenancyDeleteEnrollmentToken = "enrollment_token_delete"

	// OpTenancyListUsers lists the org's users (user administration).
	// Request: ListRequest. Reply: List[Member]. Permission: members:manage.
	OpTenancyListUsers = "users_list"
	// OpTenancyCreateUser creates a user account (through the auth
	// service) and makes it a member. Request: CreateOrgUserRequest.
	// Reply: Member. Permission: members:manage (owners:manage for owner).
	OpTenancyCreateUser = "user_create"
	// OpTenancyUpdateUser changes a user's role in the org. Request:
	// UpdateMemberRequest. Reply: Member. As OpTenancyUpdateMember.
	OpTenancyUpdateUser = "user_update"
	// OpTenancyDeleteUser removes a user from the org; the account itself
	// stays (it may belong to other orgs). Request: UserRef. Reply: Empty.
	// As OpTenancyRemoveMember.
	OpTenancyDeleteUser = "user_delete"
)

// Limits of list operations.
const (
	DefaultListLimit = 100
	MaxListLimit     = 500
)

// ListRequest asks for one page of a list: at most Limit items (default
// DefaultListLimit, at most MaxListLimit) after the opaque Cursor a
// previous page returned.
type ListRequest struct {
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// UpdateOrgRequest changes an org; nil fields stay as they are.
type UpdateOrgRequest struct {
	Name *string `json:"name,omitempty"`
	Slug *string `json:"slug,omitempty"`
}

// SetPlanRequest names the plan an org moves to.
type SetPlanRequest struct {
	Plan string `json:"plan"`
}

// PlanLimits are a plan's limits; null means unlimited.
type PlanLimits struct {
	Users  *int `json:"users"`
	Agents *int `json:"agents"`
}

// Usage is what an org uses against its plan's limits.
type Usage struct {
	Plan   string     `json:"plan"`
	Users  int        `json:"users"`
	Agents int        `json:"agents"`
	Limits PlanLimits `json:"limits"`
}

// Member is a user's membership of an org, with the user's e-mail and name
// from the auth service (empty when auth could not be asked).
type Member struct {
	UserID   string    `json:"user_id"`
	Email    string    `json:"email,omitempty"`
	Name     string    `json:"name,omitempty"`
	Role     Role      `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

// AddMemberRequest adds the existing user with Email to the org.
type AddMemberRequest struct {
	Email string `json:"email"`
	Role  Role   `json:"role"`
}

// UpdateMemberRequest changes a member's role.
type UpdateMemberRequest struct {
	UserID string `json:"user_id"`
	Role   Role   `json:"role"`
}

// UserRef names a user (a member of the request's org).
type UserRef struct {
	UserID string `json:"user_id"`
}

// IDRequest names a resource of the request's org by id.
type IDRequest struct {
	ID string `json:"id"`
}

// CreateInvitationRequest invites Email to the org with Role.
type CreateInvitationRequest struct {
	Email string `json:"email"`
	Role  Role   `json:"role"`
}

// Invitation statuses.
const (
	InvitationStatusPending  = "pending"
	InvitationStatusAccepted = "accepted"
	InvitationStatusRevoked  = "revoked"
	InvitationStatusExpired  = "expired"
)

// Invitation is the public view of an invitation (never its token).
type Invitation struct {
	ID         string     `json:"id"`
	Email      string     `json:"email"`
	Role       Role       `json:"role"`
	Status     string     `json:"status"`
	InvitedBy  string     `json:"invited_by,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedBy string     `json:"accepted_by,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

// NewInvitation is the reply to creating an invitation: the invitation,
// its token (shown this once), the accept link when a public URL is
// configured, and whether the link was mailed.
type NewInvitation struct {
	Invitation
	Token     string `json:"token"`
	AcceptURL string `json:"accept_url,omitempty"`
	EmailSent bool   `json:"email_sent"`
}

// AcceptInvitationRequest carries the invitation token.
type AcceptInvitationRequest struct {
	Token string `json:"token"`
}

// CreateEnrollmentTokenRequest creates an enrollment token. MaxUses 0 means
// unlimited. ExpiresIn is a Go duration string ("24h", "90m", "720h");
// empty means the service default (24h) and "never" a token that does not
// expire.
type CreateEnrollmentTokenRequest struct {
	Name      string            `json:"name"`
	MaxUses   int               `json:"max_uses,omitempty"`
	ExpiresIn string            `json:"expires_in,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// EnrollmentToken is the public view of an enrollment token (never the
// token itself).
type EnrollmentToken struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	MaxUses    int               `json:"max_uses"`
	Uses       int               `json:"uses"`
	ExpiresAt  *time.Time        `json:"expires_at"`
	Labels     map[string]string `json:"labels"`
	Revoked    bool              `json:"revoked"`
	CreatedAt  time.Time         `json:"created_at"`
	LastUsedAt *time.Time        `json:"last_used_at,omitempty"`
}

// NewEnrollmentToken is the reply to creating a token: the token ("ipe_…")
// is in it this once.
type NewEnrollmentToken struct {
	EnrollmentToken
	Token string `json:"token"`
}

// UseEnrollmentTokenRequest spends a use of Token for the machine with
// Fingerprint: the first step of OpTenancyEnrollAgent. The same machine
// may use the same token again without spending a use.
type UseEnrollmentTokenRequest struct {
	Token       string `json:"token"`
	Fingerprint string `json:"fingerprint"`
}

// EnrollmentUse is the result of a successful use: the org and labels the
// agent joins with. Repeat is true when this fingerprint had already used
// the token (no use was spent).
type EnrollmentUse struct {
	OrgID   string            `json:"org_id"`
	TokenID string            `json:"token_id"`
	Labels  map[string]string `json:"labels,omitempty"`
	Repeat  bool              `json:"repeat,omitempty"`
}

// CreateOrgUserRequest creates a user account and adds it to the org.
type CreateOrgUserRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Role     Role   `json:"role"`
}
