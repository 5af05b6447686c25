package events

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

func init() {
	Catalogue.MustRegister(OrgCreated{}, "An organisation was created; its creator is its first owner.")
}
