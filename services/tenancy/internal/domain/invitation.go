package domain

import (
	"fmt"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Invitation is the invitation aggregate.
type Invitation struct {
	ID         string
	OrgID      string
	Email      string
	Role       events.Role
	TokenHash  string
	InvitedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Accepted   bool
	AcceptedBy string
	AcceptedAt time.Time
	Revoked    bool
	Version    uint64
}

// ReplayInvitation rebuilds an invitation from its events.
func ReplayInvitation(orgID, id string, evs []events.Envelope, version uint64) (*Invitation, error) {
	inv := &Invitation{ID: id, OrgID: orgID, Version: version}
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			return nil, err
		}
		switch e := p.(type) {
		case *events.InvitationCreated:
			inv.Email, inv.Role, inv.ExpiresAt, inv.TokenHash = e.Email, e.Role, e.ExpiresAt, e.TokenSHA256
			inv.CreatedAt, inv.InvitedBy = env.Time, env.Actor.ID
		case *events.InvitationAccepted:
			inv.Accepted, inv.AcceptedBy, inv.AcceptedAt = true, e.UserID, env.Time
		case *events.InvitationRevoked:
			inv.Revoked = true
		case *events.Unknown:
		default:
			return nil, fmt.Errorf("invitation %s: unexpected event %s", id, env.Type)
		}
	}
	return inv, nil
}

// Exists reports whether the invitation was created.
func (i *Invitation) Exists() bool { return !i.CreatedAt.IsZero() }

// Status is the invitation's status at now.
func (i *Invitation) Status(now time.Time) string {
	switch {
	case i.Accepted:
		return events.InvitationStatusAccepted
	case i.Revoked:
		return events.InvitationStatusRevoked
	case !now.Before(i.ExpiresAt):
		return events.InvitationStatusExpired
	}
	return events.InvitationStatusPending
}

// ErrInvitationNotFound answers an unknown invitation or token.
var ErrInvitationNotFound = events.NotFound("invitation not found")

// Accept decides whether the user with id userID and e-mail email may
// accept the invitation at now.
func (i *Invitation) Accept(now time.Time, userID, email string) (events.InvitationAccepted, error) {
	if !i.Exists() {
		return events.InvitationAccepted{}, ErrInvitationNotFound
	}
	switch i.Status(now) {
	case events.InvitationStatusAccepted:
		return events.InvitationAccepted{}, events.Errorf(events.CodeConflict, "this invitation has already been used")
	case events.InvitationStatusRevoked:
		return events.InvitationAccepted{}, events.Errorf(events.CodeConflict, "this invitation was revoked")
	case events.InvitationStatusExpired:
		return events.InvitationAccepted{}, events.Errorf(events.CodeConflict, "this invitation has expired: ask for a new one")
	}
	if !strings.EqualFold(strings.TrimSpace(email), i.Email) {
		return events.InvitationAccepted{}, events.Errorf(events.CodeForbidden, "this invitation was sent to another e-mail address")
	}
	return events.InvitationAccepted{UserID: userID}, nil
}

// Revoke decides withdrawing the invitation.
func (i *Invitation) Revoke() (*events.InvitationRevoked, error) {
	if !i.Exists() {
		return nil, ErrInvitationNotFound
	}
	if i.Accepted {
		return nil, events.Errorf(events.CodeConflict, "this invitation has already been accepted")
	}
	if i.Revoked {
		return nil, nil
	}
	return &events.InvitationRevoked{}, nil
}
