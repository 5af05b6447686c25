package events

import "time"

// TenancyAggAgent is the aggregate type of an enrolled agent: ("agent",
// agent id), on the TENANCY stream.
const TenancyAggAgent = "agent"

// AgentEnrolled is emitted when a machine enrolls for the first time in
// an org. CredentialKey is the public nkey of the NATS user issued to it
// (never its seed); it is what a deletion revokes.
type AgentEnrolled struct {
	Fingerprint   string            `json:"fingerprint"`
	Hostname      string            `json:"hostname"`
	OS            string            `json:"os"`
	Arch          string            `json:"arch"`
	Version       string            `json:"version"`
	TokenID       string            `json:"token_id"`
	Labels        map[string]string `json:"labels,omitempty"`
	CredentialKey string            `json:"credential_key"`
}

// EventType implements Payload.
func (AgentEnrolled) EventType() string { return "tenancy.agent.enrolled" }

// EventVersion implements Payload.
func (AgentEnrolled) EventVersion() int { return 1 }

// AgentReenrolled is emitted when an enrolled machine enrolls again (a
// re-install): it keeps its agent id, gets new credentials, and the
// previous ones (PreviousKey) are revoked.
type AgentReenrolled struct {
	Hostname      string `json:"hostname"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	Version       string `json:"version"`
	TokenID       string `json:"token_id"`
	CredentialKey string `json:"credential_key"`
	PreviousKey   string `json:"previous_key"`
}

// EventType implements Payload.
func (AgentReenrolled) EventType() string { return "tenancy.agent.reenrolled" }

// EventVersion implements Payload.
func (AgentReenrolled) EventVersion() int { return 1 }

// AgentWentOnline is emitted when heartbeats of an offline agent arrive
// again (or for the first time).
type AgentWentOnline struct {
	At       time.Time `json:"at"`
	Version  string    `json:"version,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
}

// EventType implements Payload.
func (AgentWentOnline) EventType() string { return "tenancy.agent.online" }

// EventVersion implements Payload.
func (AgentWentOnline) EventVersion() int { return 1 }

// AgentWentOffline is emitted when an online agent has missed its
// heartbeats for the presence timeout. LastSeen is its last heartbeat.
type AgentWentOffline struct {
	LastSeen time.Time `json:"last_seen"`
}

// EventType implements Payload.
func (AgentWentOffline) EventType() string { return "tenancy.agent.offline" }

// EventVersion implements Payload.
func (AgentWentOffline) EventVersion() int { return 1 }

// AgentDeleted is emitted when an agent is deleted: its credentials
// (CredentialKey) are revoked and it no longer counts against the plan.
type AgentDeleted struct {
	CredentialKey string `json:"credential_key"`
}

// EventType implements Payload.
func (AgentDeleted) EventType() string { return "tenancy.agent.deleted" }

// EventVersion implements Payload.
func (AgentDeleted) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(AgentEnrolled{}, "A machine enrolled as a new agent; NATS credentials scoped to it were issued (only their public key is recorded).")
	Catalogue.MustRegister(AgentReenrolled{}, "An enrolled machine enrolled again: same agent id, new credentials, the previous ones revoked.")
	Catalogue.MustRegister(AgentWentOnline{}, "An agent's heartbeats arrived after it was offline (or for the first time).")
	Catalogue.MustRegister(AgentWentOffline{}, "An agent missed its heartbeats for the presence timeout.")
	Catalogue.MustRegister(AgentDeleted{}, "An agent was deleted; its credentials were revoked and its connection closed.")
}
