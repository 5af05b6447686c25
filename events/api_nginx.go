package events

import "time"

// The agent's side of the proxy: the desired nginx state, its application
// and certificates. The proxy service renders every file; the agent stages
// them, runs `nginx -t` on the complete staged configuration, swaps it in
// atomically, reloads, checks, and restores the last-known-good set on any
// failure. Agents have no JetStream API access on the hub (docs/security.md),
// so the desired state stored in KV reaches an agent as an OpAgentNginxApply
// command whenever it changes, and as the reply to AgentDesiredRequest when
// the agent (re)connects or finds drift.
const (
	// OpAgentNginxApply applies a complete desired state. Request:
	// NginxDesired. Reply: NginxApplyResult (also published as an
	// AgentNginxEvent). A revision lower than the one applied is ignored
	// (Stale in the reply).
	OpAgentNginxApply = "nginx.apply"
	// OpAgentNginxTest runs `nginx -t` on a complete desired state without
	// applying it. Request: NginxDesired. Reply: NginxTestResult.
	OpAgentNginxTest = "nginx.test"
	// OpAgentCertIssue obtains a certificate with ACME HTTP-01, answering
	// the challenge from the webroot nginx serves on port 80. The reply
	// comes when the certificate is stored (tens of seconds). Request:
	// CertIssueRequest. Reply: CertIssued; a failure is an error reply
	// carrying the CA's reason.
	OpAgentCertIssue = "cert.issue"

	// CertIssueTimeout bounds one OpAgentCertIssue request.
	CertIssueTimeout = 3 * time.Minute
)

// AgentDesiredRequest is the subject an agent asks for its desired nginx
// state on: "agent.<org>.<agent>.desired". Request: NginxAgentInfo (which
// the proxy service records and renders paths with). Reply: NginxDesired.
func AgentDesiredRequest(org, agent string) string { return join("agent", org, agent, "desired") }

// Ways an agent runs nginx.
const (
	NginxKindLocal     = "local"
	NginxKindContainer = "container"
)

// NginxAgentInfo is what an agent tells about its nginx. Root is the
// directory InfraPilot owns, as nginx sees it (inside the container when
// nginx runs in one): live configuration under Root/current, certificates
// under Root/certs/<host>/, the ACME webroot at Root/acme.
type NginxAgentInfo struct {
	// Enabled is false when the agent was started without nginx
	// management; it then applies nothing.
	Enabled   bool   `json:"enabled"`
	Kind      string `json:"kind,omitempty"`
	Root      string `json:"root,omitempty"`
	Container string `json:"container,omitempty"`
	Version   string `json:"version,omitempty"`
	// HTTPPort and HTTPSPort are the ports nginx listens on (80 and 443
	// unless the agent says otherwise).
	HTTPPort  int `json:"http_port,omitempty"`
	HTTPSPort int `json:"https_port,omitempty"`
	// CheckPort is the loopback port the agent wants the check server on
	// (0: the renderer's default, 8089), so that it can avoid a port
	// something else on the server uses.
	CheckPort int `json:"check_port,omitempty"`
}

// NginxFile is one rendered file, relative to the generation directory
// ("nginx.conf", "hosts/<host>.conf").
type NginxFile struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	// HostID is the host the file belongs to ("" for the main file).
	HostID string `json:"host_id,omitempty"`
	// Requires lists files outside the generation the config refers to
	// (certificates under Root/certs); the agent refuses to apply a file
	// whose requirements are missing, and reports the host failed.
	Requires []string `json:"requires,omitempty"`
}

// NginxDesired is an agent's complete desired nginx state, the value of
// its key in BucketAgentDesired. Revision grows with every change.
type NginxDesired struct {
	V        int         `json:"v"`
	Revision uint64      `json:"revision"`
	Mode     string      `json:"mode"`
	Files    []NginxFile `json:"files"`
	// Check is a path nginx answers on 127.0.0.1:CheckPort with the
	// revision, so the agent can tell that a reload took effect.
	CheckPort int `json:"check_port,omitempty"`
}

// Per-host outcomes of an apply.
const (
	NginxHostApplied = "applied"
	NginxHostFailed  = "failed"
)

// NginxHostResult is one host's outcome of an apply.
type NginxHostResult struct {
	HostID string `json:"host_id"`
	Status string `json:"status"`
	// Error is nginx's exact message when Status is failed.
	Error string `json:"error,omitempty"`
}

// NginxApplyResult is the outcome of applying a desired state. When the
// complete set fails `nginx -t` the agent applies the set without the
// hosts nginx names in its errors (their previous configuration, if any,
// is kept) and reports those as failed. Error is a failure of the whole
// set (reload failed, nginx not running); the last-known-good set was
// restored.
type NginxApplyResult struct {
	V          int               `json:"v"`
	Revision   uint64            `json:"revision"`
	Applied    bool              `json:"applied"`
	Stale      bool              `json:"stale,omitempty"`
	Hosts      []NginxHostResult `json:"hosts"`
	Error      string            `json:"error,omitempty"`
	Nginx      NginxAgentInfo    `json:"nginx"`
	AppliedAt  time.Time         `json:"applied_at"`
	Generation string            `json:"generation,omitempty"`
}

// NginxTestResult is the outcome of `nginx -t`: OK, and nginx's output.
type NginxTestResult struct {
	OK     bool   `json:"ok"`
	Output string `json:"output"`
}

// CertIssueRequest asks an agent for a certificate for Domains, stored for
// HostID under Root/certs/<host>/ (fullchain.pem, privkey.pem, 0600).
// DirectoryURL is the ACME directory; Email the account's contact. The
// agent keeps one ACME account key per org (its own), 0600.
type CertIssueRequest struct {
	HostID       string   `json:"host_id"`
	Domains      []string `json:"domains"`
	Email        string   `json:"email,omitempty"`
	DirectoryURL string   `json:"directory_url"`
}

// CertIssued describes a stored certificate.
type CertIssued struct {
	HostID    string    `json:"host_id"`
	Domains   []string  `json:"domains"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
}

// Agent event kinds for nginx on AgentEvents(org, agent).
const (
	// AgentEventKindNginxApplied carries an AgentNginxEvent with Result.
	AgentEventKindNginxApplied = "nginx.applied"
	// AgentEventKindNginxDrift carries an AgentNginxEvent with Drift: files
	// changed outside InfraPilot, and whether they were restored.
	AgentEventKindNginxDrift = "nginx.drift"
)

// NginxDrift reports files of the live configuration that differ from
// what the agent wrote.
type NginxDrift struct {
	Revision uint64   `json:"revision"`
	Files    []string `json:"files"`
	HostIDs  []string `json:"host_ids,omitempty"`
	Restored bool     `json:"restored"`
	Error    string   `json:"error,omitempty"`
}

// AgentNginxEvent is an nginx event an agent publishes through its outbox
// on AgentEvents(org, agent).
type AgentNginxEvent struct {
	V      int               `json:"v"`
	Kind   string            `json:"kind"`
	Time   time.Time         `json:"time"`
	Result *NginxApplyResult `json:"result,omitempty"`
	Drift  *NginxDrift       `json:"drift,omitempty"`
}
