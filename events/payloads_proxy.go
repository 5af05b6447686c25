package events

import "time"

// Aggregate types of the proxy service, on the PROXY stream: a proxy host
// ("host", host id) and an agent's proxy settings ("agent", agent id).
const (
	ProxyAggHost  = "host"
	ProxyAggAgent = "agent"
)

// ProxyHostCreated is emitted when a host is created. Spec is complete.
type ProxyHostCreated struct {
	AgentID string        `json:"agent_id"`
	Spec    ProxyHostSpec `json:"spec"`
}

// EventType implements Payload.
func (ProxyHostCreated) EventType() string { return "proxy.host.created" }

// EventVersion implements Payload.
func (ProxyHostCreated) EventVersion() int { return 1 }

// ProxyHostUpdated is emitted when a host's specification changes (also
// for security headers and rate limits). Spec is the complete new one.
type ProxyHostUpdated struct {
	AgentID string        `json:"agent_id"`
	Spec    ProxyHostSpec `json:"spec"`
}

// EventType implements Payload.
func (ProxyHostUpdated) EventType() string { return "proxy.host.updated" }

// EventVersion implements Payload.
func (ProxyHostUpdated) EventVersion() int { return 1 }

// ProxyHostDeleted is emitted when a host is deleted.
type ProxyHostDeleted struct {
	AgentID string   `json:"agent_id"`
	Domains []string `json:"domains"`
}

// EventType implements Payload.
func (ProxyHostDeleted) EventType() string { return "proxy.host.deleted" }

// EventVersion implements Payload.
func (ProxyHostDeleted) EventVersion() int { return 1 }

// ProxyHostApplied is emitted when the agent reports a revision carrying
// the host's current specification as applied.
type ProxyHostApplied struct {
	AgentID  string `json:"agent_id"`
	Revision uint64 `json:"revision"`
}

// EventType implements Payload.
func (ProxyHostApplied) EventType() string { return "proxy.host.applied" }

// EventVersion implements Payload.
func (ProxyHostApplied) EventVersion() int { return 1 }

// ProxyHostFailed is emitted when the agent could not apply the host's
// configuration; Error is nginx's message. Its previous configuration
// keeps serving.
type ProxyHostFailed struct {
	AgentID  string `json:"agent_id"`
	Revision uint64 `json:"revision"`
	Error    string `json:"error"`
}

// EventType implements Payload.
func (ProxyHostFailed) EventType() string { return "proxy.host.failed" }

// EventVersion implements Payload.
func (ProxyHostFailed) EventVersion() int { return 1 }

// ProxyHostDrift is emitted when the agent found the host's files changed
// on disk outside InfraPilot.
type ProxyHostDrift struct {
	AgentID  string   `json:"agent_id"`
	Files    []string `json:"files"`
	Restored bool     `json:"restored"`
	Error    string   `json:"error,omitempty"`
}

// EventType implements Payload.
func (ProxyHostDrift) EventType() string { return "proxy.host.drift_detected" }

// EventVersion implements Payload.
func (ProxyHostDrift) EventVersion() int { return 1 }

// ProxyCertRequested is emitted when a certificate is requested from the
// agent (first issue, renewal, or retry).
type ProxyCertRequested struct {
	AgentID string   `json:"agent_id"`
	Domains []string `json:"domains"`
	Reason  string   `json:"reason"`
	Attempt int      `json:"attempt"`
}

// EventType implements Payload.
func (ProxyCertRequested) EventType() string { return "proxy.cert.requested" }

// EventVersion implements Payload.
func (ProxyCertRequested) EventVersion() int { return 1 }

// ProxyCertIssued is emitted when the agent stored a certificate.
type ProxyCertIssued struct {
	AgentID   string    `json:"agent_id"`
	Domains   []string  `json:"domains"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	RenewAt   time.Time `json:"renew_at"`
}

// EventType implements Payload.
func (ProxyCertIssued) EventType() string { return "proxy.cert.issued" }

// EventVersion implements Payload.
func (ProxyCertIssued) EventVersion() int { return 1 }

// ProxyCertFailed is emitted when obtaining a certificate failed; it is
// retried at NextAttemptAt (exponential backoff).
type ProxyCertFailed struct {
	AgentID       string    `json:"agent_id"`
	Domains       []string  `json:"domains"`
	Reason        string    `json:"reason"`
	Attempt       int       `json:"attempt"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
}

// EventType implements Payload.
func (ProxyCertFailed) EventType() string { return "proxy.cert.failed" }

// EventVersion implements Payload.
func (ProxyCertFailed) EventVersion() int { return 1 }

// ProxySettingsChanged is emitted when an agent's proxy settings change.
type ProxySettingsChanged struct {
	Mode      string `json:"mode"`
	ACMEEmail string `json:"acme_email,omitempty"`
}

// EventType implements Payload.
func (ProxySettingsChanged) EventType() string { return "proxy.settings.changed" }

// EventVersion implements Payload.
func (ProxySettingsChanged) EventVersion() int { return 1 }

// ProxyNetworkAttached is emitted when the agent's nginx container was
// attached to a network.
type ProxyNetworkAttached struct {
	Network   string `json:"network"`
	Container string `json:"container"`
}

// EventType implements Payload.
func (ProxyNetworkAttached) EventType() string { return "proxy.network.attached" }

// EventVersion implements Payload.
func (ProxyNetworkAttached) EventVersion() int { return 1 }

// ProxyNetworkDetached is emitted when it was detached.
type ProxyNetworkDetached struct {
	Network   string `json:"network"`
	Container string `json:"container"`
}

// EventType implements Payload.
func (ProxyNetworkDetached) EventType() string { return "proxy.network.detached" }

// EventVersion implements Payload.
func (ProxyNetworkDetached) EventVersion() int { return 1 }

// ProxyAgentReported is emitted when what an agent reports about its nginx
// changes: its nginx facts (how it runs nginx, its root and ports), the
// last desired revision it applied, and the error of an apply that failed
// as a whole (empty again once a later apply succeeds). It carries the
// complete reported state, so replaying the last one is enough. These are
// the agent's facts, kept apart from ProxySettingsChanged, which records
// what a user chose.
type ProxyAgentReported struct {
	Nginx           *NginxAgentInfo `json:"nginx,omitempty"`
	AppliedRevision uint64          `json:"applied_revision,omitempty"`
	LastError       string          `json:"last_error,omitempty"`
}

// EventType implements Payload.
func (ProxyAgentReported) EventType() string { return "proxy.agent.reported" }

// EventVersion implements Payload.
func (ProxyAgentReported) EventVersion() int { return 1 }

func init() {
	Catalogue.MustRegister(ProxyHostCreated{}, "A proxy host was created on an agent (complete specification).")
	Catalogue.MustRegister(ProxyHostUpdated{}, "A proxy host's specification changed (complete new specification).")
	Catalogue.MustRegister(ProxyHostDeleted{}, "A proxy host was deleted; its configuration leaves the agent's desired state.")
	Catalogue.MustRegister(ProxyHostApplied{}, "The agent applied the revision carrying the host's current configuration.")
	Catalogue.MustRegister(ProxyHostFailed{}, "The agent could not apply the host's configuration (nginx's message); the previous configuration keeps serving.")
	Catalogue.MustRegister(ProxyHostDrift{}, "The host's files were changed on the agent outside InfraPilot (and restored).")
	Catalogue.MustRegister(ProxyCertRequested{}, "A certificate was requested from the agent (first issue, renewal or retry).")
	Catalogue.MustRegister(ProxyCertIssued{}, "The agent obtained and stored a certificate; renewal is scheduled.")
	Catalogue.MustRegister(ProxyCertFailed{}, "Obtaining a certificate failed (the CA's reason); it is retried with backoff.")
	Catalogue.MustRegister(ProxySettingsChanged{}, "An agent's proxy settings changed (mode managed or external, ACME contact).")
	Catalogue.MustRegister(ProxyNetworkAttached{}, "The agent's nginx container was attached to a network.")
	Catalogue.MustRegister(ProxyNetworkDetached{}, "The agent's nginx container was detached from a network.")
	Catalogue.MustRegister(ProxyAgentReported{}, "What an agent reports about its nginx changed: its nginx facts, the last revision it applied, the error of a failed apply.")
}
