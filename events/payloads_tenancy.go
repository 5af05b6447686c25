package events

import "time"

// Aggregate types of the tenancy service. An org's own events, its members
// included, live on ("org", org id) so that one optimistic-concurrency check
// covers the last-owner rule and the plan's user limit. A slug claim is a
// platform aggregate, so that two orgs can never hold the same slug.
const (
	TenancyAggOrg             = "org"
	TenancyAggSlug            = "slug"
	TenancyAggInvitation      = "invitation"
	TenancyAggEnrollmentToken = "enrollment_token"
)

// OrgCreated is emitted when an organisation is created (sign-up or by an
// administrator). The aggregate is ("org", org id).
type OrgCreated struct {
	Name  string `json:"name"`
	Slug  string `json:"slug"`
	Plan  string `json:"plan"`
	Owner string `json:"owner_user_id"`
}

// EventType implements Payload.
func (OrgCreated) EventType() string { return "tenancy.org.created" }

// EventVersion implements Payload.
func (OrgCreated) EventVersion() int { return 1 }

// OrgUpdated is emitted when an organisation's name or slug changes. Both
// fields carry the new values, changed or not.
type OrgUpdated struct {
	Name string `json:"name"`
	Slug string `json:"slug"`
}

// EventType implements Payload.
func (OrgUpdated) EventType() string { return "tenancy.org.updated" }

// EventVersion implements Payload.
func (OrgUpdated) EventVersion() int { return 1 }

// OrgPlanChanged is emitted when an organisation moves to another plan
// (billing decides; tenancy enforces the plan's limits).
type OrgPlanChanged struct {
	Plan     string `json:"plan"`
	Previous string `json:"previous_plan"`
}

// EventType implements Payload.
func (OrgPlanChanged) EventType() string { return "tenancy.org.plan_changed" }

// EventVersion implements Payload.
func (OrgPlanChanged) EventVersion() int { return 1 }

// OrgDeleted is emitted when an organisation is deleted. The deletion is
// soft: the events stay, but the org answers not_found from then on and its
// members lose access.
type OrgDeleted struct{}

// EventType implements Payload.
func (OrgDeleted) EventType() string { return "tenancy.org.deleted" }

// EventVersion implements Payload.
func (OrgDeleted) EventVersion() int { return 1 }

// MemberAdded is emitted when a user joins an organisation: as its creator,
// added by an administrator, created by user administration, or by
// accepting an invitation (InvitationID set). The aggregate is the org.
type MemberAdded struct {
	UserID       string `json:"user_id"`
	Role         Role   `json:"role"`
	InvitationID string `json:"invitation_id,omitempty"`
}

// EventType implements Payload.
func (MemberAdded) EventType() string { return "tenancy.member.added" }

// EventVersion implements Payload.
func (MemberAdded) EventVersion() int { return 1 }

// MemberRoleChanged is emitted when a member's role changes.
type MemberRoleChanged struct {
	UserID   string `json:"user_id"`
	Role     Role   `json:"role"`
	Previous Role   `json:"previous_role"`
}

// EventType implements Payload.
func (MemberRoleChanged) EventType() string { return "tenancy.member.role_changed" }

// EventVersion implements Payload.
func (MemberRoleChanged) EventVersion() int { return 1 }

// MemberRemoved is emitted when a user leaves an organisation or is
// removed from it. Role is the role they had.
type MemberRemoved struct {
	UserID string `json:"user_id"`
	Role   Role   `json:"role"`
}

// EventType implements Payload.
func (MemberRemoved) EventType() string { return "tenancy.member.removed" }

// EventVersion implements Payload.
func (MemberRemoved) EventVersion() int { return 1 }

// SlugClaimed is emitted when an organisation takes a slug. The aggregate
// is ("slug", the slug) of PlatformOrg; while its last event is a claim,
// no other org can take the slug.
type SlugClaimed struct {
	OrgID string `json:"org_id"`
}

// EventType implements Payload.
func (SlugClaimed) EventType() string { return "tenancy.slug.claimed" }

// EventVersion implements Payload.
func (SlugClaimed) EventVersion() int { return 1 }

// SlugReleased is emitted when an organisation gives a slug up (renamed or
// deleted); another org may claim it afterwards.
type SlugReleased struct {
	OrgID string `json:"org_id"`
}

// EventType implements Payload.
func (SlugReleased) EventType() string { return "tenancy.slug.released" }

// EventVersion implements Payload.
func (SlugReleased) EventVersion() int { return 1 }

// InvitationCreated is emitted when someone is invited to an organisation.
// The aggregate is ("invitation", invitation id). TokenSHA256 is the hex
// SHA-256 of the invitation token, a 256-bit random value: the hash lets
// the read model be rebuilt and cannot be turned back into the token, which
// is shown once to the inviter (and mailed) and never stored.
type InvitationCreated struct {
	Email       string    `json:"email"`
	Role        Role      `json:"role"`
	ExpiresAt   time.Time `json:"expires_at"`
	TokenSHA256 string    `json:"token_sha256"`
}

// EventType implements Payload.
func (InvitationCreated) EventType() string { return "tenancy.invitation.created" }

// EventVersion implements Payload.
func (InvitationCreated) EventVersion() int { return 1 }

// InvitationAccepted is emitted when the invited user accepts; the
// matching tenancy.member.added follows on the org.
type InvitationAccepted struct {
	UserID string `json:"user_id"`
}

// EventType implements Payload.
func (InvitationAccepted) EventType() string { return "tenancy.invitation.accepted" }

// EventVersion implements Payload.
func (InvitationAccepted) EventVersion() int { return 1 }

// InvitationRevoked is emitted when an administrator withdraws a pending
// invitation; its token stops working.
type InvitationRevoked struct{}

// EventType implements Payload.
func (InvitationRevoked) EventType() string { return "tenancy.invitation.revoked" }

// EventVersion implements Payload.
func (InvitationRevoked) EventVersion() int { return 1 }

// EnrollmentTokenCreated is emitted when an agent enrollment token is
// created. The aggregate is ("enrollment_token", token id). MaxUses 0 means
// no limit; a nil ExpiresAt means the token does not expire. TokenSHA256
// is the hex SHA-256 of the 256-bit token, which is shown once and never
// stored.
type EnrollmentTokenCreated struct {
	Name        string            `json:"name"`
	MaxUses     int               `json:"max_uses"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	TokenSHA256 string            `json:"token_sha256"`
}

// EventType implements Payload.
func (EnrollmentTokenCreated) EventType() string { return "tenancy.enrollment_token.created" }

// EventVersion implements Payload.
func (EnrollmentTokenCreated) EventVersion() int { return 1 }

// EnrollmentTokenUsed is emitted when an agent enrolls with the token. A
// second enrollment of the same machine (Fingerprint) with the same token
// emits nothing and uses nothing up.
type EnrollmentTokenUsed struct {
	Fingerprint string `json:"fingerprint"`
}

// EventType implements Payload.
func (EnrollmentTokenUsed) EventType() string { return "tenancy.enrollment_token.used" }

// EventVersion implements Payload.
func (EnrollmentTokenUsed) EventVersion() int { return 1 }

// EnrollmentTokenRevoked is emitted when a token is disabled; it stays
// listed but no agent can enroll with it.
type EnrollmentTokenRevoked struct{}

// EventType implements Payload.
func (EnrollmentTokenRevoked) EventType() string { return "tenancy.enrollment_token.revoked" }

// EventVersion implements Payload.
func (EnrollmentTokenRevoked) EventVersion() int { return 1 }

// EnrollmentTokenDeleted is emitted when a token is deleted: it stops
// working and is no longer listed.
type EnrollmentTokenDeleted struct{}

// EventType implements Payload.
func (EnrollmentTokenDeleted) EventType() string { return "tenancy.enrollment_token.deleted" }

// EventVersion implements Payload.
func (EnrollmentTokenDeleted) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(OrgCreated{}, "An organisation was created; its creator is its first owner.")
	Catalogue.MustRegister(OrgUpdated{}, "An organisation's name or slug changed.")
	Catalogue.MustRegister(OrgPlanChanged{}, "An organisation moved to another plan; the new plan's limits apply from now on.")
	Catalogue.MustRegister(OrgDeleted{}, "An organisation was deleted (soft): it answers not_found and its members lose access.")
	Catalogue.MustRegister(MemberAdded{}, "A user became a member of an organisation with a role.")
	Catalogue.MustRegister(MemberRoleChanged{}, "A member's role changed.")
	Catalogue.MustRegister(MemberRemoved{}, "A member left or was removed from an organisation.")
	Catalogue.MustRegister(SlugClaimed{}, "An organisation took a slug (platform aggregate: one holder per slug).")
	Catalogue.MustRegister(SlugReleased{}, "An organisation gave a slug up.")
	Catalogue.MustRegister(InvitationCreated{}, "Someone was invited to an organisation. Only the token's SHA-256 is recorded, never the token.")
	Catalogue.MustRegister(InvitationAccepted{}, "The invited user accepted an invitation.")
	Catalogue.MustRegister(InvitationRevoked{}, "A pending invitation was withdrawn.")
	Catalogue.MustRegister(EnrollmentTokenCreated{}, "An agent enrollment token was created. Only the token's SHA-256 is recorded, never the token.")
	Catalogue.MustRegister(EnrollmentTokenUsed{}, "An agent enrolled with a token (once per machine fingerprint).")
	Catalogue.MustRegister(EnrollmentTokenRevoked{}, "An enrollment token was disabled.")
	Catalogue.MustRegister(EnrollmentTokenDeleted{}, "An enrollment token was deleted.")
}
