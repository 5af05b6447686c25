package domain

import (
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Aggregate types of the auth service (the <aggregate> token of its
// subjects).
const (
	AggUser       = "user"
	AggEmail      = "email"
	AggLogin      = "login"
	AggSession    = "session"
	AggAPIKey     = "apikey"
	AggSigningKey = "signing_key"
	// SigningKeyRing is the id of the one signing-key aggregate.
	SigningKeyRing = "jwt"
)

// decode returns the typed payload of env, or an error for a payload of a
// known type that does not decode. Unknown types decode to *events.Unknown
// and are ignored by the aggregates (a newer writer's events).
func decode(env events.Envelope) (events.Payload, error) {
	p, err := events.Catalogue.Decode(env)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return p, nil
}

// User is the state of a user account.
type User struct {
	ID         string
	Email      string
	Name       string
	MFAEnabled bool
	Disabled   bool
	CreatedAt  time.Time
	// Version is the stream sequence of the last event applied.
	Version uint64
}

// Exists reports whether the user has been registered.
func (u *User) Exists() bool { return !u.CreatedAt.IsZero() }

// Apply folds events into the user.
func (u *User) Apply(evs ...events.Envelope) error {
	for _, env := range evs {
		p, err := decode(env)
		if err != nil {
			return err
		}
		switch e := p.(type) {
		case *events.UserRegistered:
			u.Email, u.Name, u.CreatedAt = e.Email, e.Name, env.Time
		case *events.MFAEnabled:
			u.MFAEnabled = true
		case *events.MFADisabled:
			u.MFAEnabled = false
		}
		u.Version = env.Sequence
	}
	return nil
}

// Summary is the public view of the user.
func (u *User) Summary() events.UserSummary {
	return events.UserSummary{ID: u.ID, Email: u.Email, Name: u.Name, MFAEnabled: u.MFAEnabled,
		Disabled: u.Disabled, CreatedAt: FormatTime(u.CreatedAt)}
}

// Session is the state of a refresh-token family.
type Session struct {
	ID            string
	UserID        string
	Generation    int64
	MFA           bool
	Revoked       bool
	RevokedReason string
	StartedAt     time.Time
	UpdatedAt     time.Time
	Version       uint64
}

// Exists reports whether the session has started.
func (s *Session) Exists() bool { return s.UserID != "" }

// Apply folds events into the session.
func (s *Session) Apply(evs ...events.Envelope) error {
	for _, env := range evs {
		p, err := decode(env)
		if err != nil {
			return err
		}
		switch e := p.(type) {
		case *events.SessionStarted:
			s.UserID, s.MFA, s.Generation, s.StartedAt = e.UserID, e.MFA, 1, env.Time
		case *events.SessionRefreshed:
			s.Generation = e.Generation
		case *events.SessionRevoked:
			if !s.Revoked {
				s.Revoked, s.RevokedReason = true, e.Reason
			}
		}
		s.UpdatedAt = env.Time
		s.Version = env.Sequence
	}
	return nil
}

// APIKey is the state of an API key.
type APIKey struct {
	ID        string
	OrgID     string
	Name      string
	Role      events.Role
	Prefix    string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: active
	Version   uint64
}

// Exists reports whether the key was created.
func (k *APIKey) Exists() bool { return !k.CreatedAt.IsZero() }

// Usable reports whether the key authenticates at now.
func (k *APIKey) Usable(now time.Time) bool {
	return k.Exists() && k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// Apply folds events into the key.
func (k *APIKey) Apply(evs ...events.Envelope) error {
	for _, env := range evs {
		p, err := decode(env)
		if err != nil {
			return err
		}
		switch e := p.(type) {
		case *events.APIKeyCreated:
			k.OrgID, k.Name, k.Role, k.Prefix, k.CreatedBy, k.CreatedAt = env.OrgID, e.Name, e.Role, e.Prefix, e.CreatedBy, env.Time
			if e.ExpiresAt != "" {
				t, err := time.Parse(time.RFC3339Nano, e.ExpiresAt)
				if err != nil {
					return fmt.Errorf("auth: apikey %s: bad expires_at: %w", k.ID, err)
				}
				k.ExpiresAt = t
			}
		case *events.APIKeyRevoked:
			if k.RevokedAt.IsZero() {
				k.RevokedAt = env.Time
			}
		}
		k.Version = env.Sequence
	}
	return nil
}

// View is the public view of the key.
func (k *APIKey) View(lastUsed time.Time) events.APIKey {
	return events.APIKey{ID: k.ID, Name: k.Name, Role: k.Role, Prefix: k.Prefix, CreatedBy: k.CreatedBy,
		CreatedAt: FormatTime(k.CreatedAt), ExpiresAt: FormatTime(k.ExpiresAt), RevokedAt: FormatTime(k.RevokedAt),
		LastUsedAt: FormatTime(lastUsed)}
}

// KeyRing is the state of the signing-key aggregate: the kids in the order
// they became active.
type KeyRing struct {
	Kids    []string
	Version uint64
}

// Active is the newest kid, "" before the first rotation.
func (r *KeyRing) Active() string {
	if len(r.Kids) == 0 {
		return ""
	}
	return r.Kids[len(r.Kids)-1]
}

// Apply folds events into the ring.
func (r *KeyRing) Apply(evs ...events.Envelope) error {
	for _, env := range evs {
		p, err := decode(env)
		if err != nil {
			return err
		}
		if e, ok := p.(*events.SigningKeyRotated); ok {
			r.Kids = append(r.Kids, e.Kid)
		}
		r.Version = env.Sequence
	}
	return nil
}

// FormatTime renders t as RFC 3339 UTC, "" for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
