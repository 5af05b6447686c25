package events

// UserRegistered is emitted when a user account is created. The aggregate is
// ("user", user id); the org is the user's first organisation.
type UserRegistered struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// EventType implements Payload.
func (UserRegistered) EventType() string { return "auth.user.registered" }

// EventVersion implements Payload.
func (UserRegistered) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(UserRegistered{}, "A user account was created. The password hash never appears in an event.")
}
