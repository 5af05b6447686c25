package domain

import (
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// EnrollmentToken is the enrollment token aggregate.
type EnrollmentToken struct {
	ID        string
	OrgID     string
	Name      string
	MaxUses   int
	ExpiresAt *time.Time
	Labels    map[string]string
	TokenHash string
	CreatedAt time.Time
	Revoked   bool
	Deleted   bool
	// Used maps each fingerprint that enrolled with the token to when.
	Used       map[string]time.Time
	LastUsedAt time.Time
	Version    uint64
}

// ReplayEnrollmentToken rebuilds a token from its events.
func ReplayEnrollmentToken(orgID, id string, evs []events.Envelope, version uint64) (*EnrollmentToken, error) {
	t := &EnrollmentToken{ID: id, OrgID: orgID, Used: map[string]time.Time{}, Version: version}
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			return nil, err
		}
		switch e := p.(type) {
		case *events.EnrollmentTokenCreated:
			t.Name, t.MaxUses, t.ExpiresAt, t.Labels, t.TokenHash = e.Name, e.MaxUses, e.ExpiresAt, e.Labels, e.TokenSHA256
			t.CreatedAt = env.Time
		case *events.EnrollmentTokenUsed:
			if _, ok := t.Used[e.Fingerprint]; !ok {
				t.Used[e.Fingerprint] = env.Time
			}
			t.LastUsedAt = env.Time
		case *events.EnrollmentTokenRevoked:
			t.Revoked = true
		case *events.EnrollmentTokenDeleted:
			t.Deleted = true
		case *events.Unknown:
		default:
			return nil, fmt.Errorf("enrollment token %s: unexpected event %s", id, env.Type)
		}
	}
	return t, nil
}

// Exists reports whether the token was created and not deleted.
func (t *EnrollmentToken) Exists() bool { return !t.CreatedAt.IsZero() && !t.Deleted }

// Uses is how many machines enrolled with the token.
func (t *EnrollmentToken) Uses() int { return len(t.Used) }

// ErrTokenNotFound answers an unknown or deleted token.
var ErrTokenNotFound = events.NotFound("enrollment token not found")

// errBadToken is the one answer to a token that does not work for
// enrolling, whatever the reason, so that a caller without a valid token
// learns nothing about which tokens exist.
var errBadToken = events.Errorf(events.CodeUnauthorized, "invalid enrollment token")

// Use decides enrolling the machine with fingerprint at now. repeat is
// true (and the event nil) when the machine already used the token: a
// retried enrollment succeeds without spending a use. agentsOK reports
// whether the org's plan allows one more agent; it is only consulted for
// a machine new to the token.
func (t *EnrollmentToken) Use(now time.Time, fingerprint string, agentsOK func() error) (ev *events.EnrollmentTokenUsed, repeat bool, err error) {
	if !t.Exists() || t.Revoked {
		return nil, false, errBadToken
	}
	if _, ok := t.Used[fingerprint]; ok {
		return nil, true, nil
	}
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return nil, false, events.Errorf(events.CodeConflict, "the enrollment token has expired")
	}
	if t.MaxUses > 0 && t.Uses() >= t.MaxUses {
		return nil, false, events.Errorf(events.CodeConflict, "the enrollment token has no uses left")
	}
	if err := agentsOK(); err != nil {
		return nil, false, err
	}
	return &events.EnrollmentTokenUsed{Fingerprint: fingerprint}, false, nil
}

// Revoke decides disabling the token.
func (t *EnrollmentToken) Revoke() (*events.EnrollmentTokenRevoked, error) {
	if !t.Exists() {
		return nil, ErrTokenNotFound
	}
	if t.Revoked {
		return nil, nil
	}
	return &events.EnrollmentTokenRevoked{}, nil
}

// Delete decides deleting the token.
func (t *EnrollmentToken) Delete() (*events.EnrollmentTokenDeleted, error) {
	if !t.Exists() {
		return nil, ErrTokenNotFound
	}
	return &events.EnrollmentTokenDeleted{}, nil
}
