package events

import (
	"encoding/json"
	"time"
)

// Operations of the tenancy service on the fleet: the registry of enrolled
// agents and their presence. Enrollment spends a use of an enrollment
// token (enabled, not expired, uses left; a machine repeating itself
// spends nothing), checks the plan's agent limit, and issues NATS
// credentials scoped to the agent; deleting an agent revokes them, which
// disconnects it.
const (
	// OpTenancyEnrollAgent enrolls a machine (no org header: the token
	// names the org; the gateway's POST /agents/enroll calls it without a
	// bearer). The same fingerprint enrolling again in the same org gets
	// the same agent id and fresh credentials; the previous credentials
	// are revoked. Request: EnrollAgentRequest. Reply: AgentEnrollment.
	// unauthorized for an unknown, revoked or deleted token; conflict when
	// it has expired, has no uses left, or the plan allows no more agents;
	// unavailable when this control plane issues no agent credentials.
	OpTenancyEnrollAgent = "agent_enroll"
	// OpTenancyEnrollStatus tells whether a machine has enrolled in the
	// request's org (a UI polls it after showing the enroll command).
	// Request: EnrollStatusRequest. Reply: EnrollStatus. Permission:
	// agents:read.
	OpTenancyEnrollStatus = "agent_enroll_status"
	// OpTenancyListAgents lists the org's agents, newest first. Request:
	// ListRequest. Reply: List[Agent]. Permission: agents:read.
	OpTenancyListAgents = "agents_list"
	// OpTenancyGetAgent returns one agent; not_found for an agent of
	// another org. Request: IDRequest. Reply: Agent. Permission:
	// agents:read.
	OpTenancyGetAgent = "agent_get"
	// OpTenancyDeleteAgent deletes an agent: its credentials are revoked
	// (its leaf connection is closed within a second and cannot be
	// reopened) and it no longer counts against the plan. Request:
	// IDRequest. Reply: Empty. Permission: agents:manage.
	OpTenancyDeleteAgent = "agent_delete"
)

// Agent statuses.
const (
	AgentOnline  = "online"
	AgentOffline = "offline"
)

// EnrollAgentRequest is what `infrapilot-agent enroll` sends: the token
// and the machine's facts. Fingerprint is stable for a machine (the agent
// derives it from the machine id), so a re-install re-enrolls the same
// agent.
type EnrollAgentRequest struct {
	Token       string `json:"token"`
	Fingerprint string `json:"fingerprint"`
	Hostname    string `json:"hostname"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Version     string `json:"version"`
}

// AgentEnrollment is the reply to an enrollment: who the agent is and how
// it joins the hub. Credentials is a NATS .creds file (a user JWT and its
// nkey seed): a secret, shown this once; the agent stores it 0600.
type AgentEnrollment struct {
	AgentID     string `json:"agent_id"`
	OrgID       string `json:"org_id"`
	NATSURL     string `json:"nats_url"`
	Credentials string `json:"credentials"`
	// Reenrolled is true when the machine was enrolled already and kept
	// its agent id.
	Reenrolled bool `json:"reenrolled,omitempty"`
}

// EnrollStatusRequest names a machine by its fingerprint.
type EnrollStatusRequest struct {
	Fingerprint string `json:"fingerprint"`
}

// EnrollStatus says whether the machine is enrolled in the org, and as
// which agent.
type EnrollStatus struct {
	Enrolled bool   `json:"enrolled"`
	AgentID  string `json:"agent_id,omitempty"`
	Status   string `json:"status,omitempty"`
}

// Agent is the registry's view of an agent: its facts from enrollment and
// the latest heartbeat, its presence, and its latest host metrics sample.
type Agent struct {
	ID          string            `json:"id"`
	OrgID       string            `json:"org_id"`
	Hostname    string            `json:"hostname"`
	Fingerprint string            `json:"fingerprint"`
	OS          string            `json:"os"`
	Arch        string            `json:"arch"`
	Version     string            `json:"version"`
	Engine      string            `json:"engine,omitempty"`
	Labels      map[string]string `json:"labels"`
	// Status is AgentOnline while heartbeats arrive and AgentOffline
	// after a few are missed (or before the first).
	Status          string     `json:"status"`
	StatusChangedAt time.Time  `json:"status_changed_at"`
	LastSeen        *time.Time `json:"last_seen"`
	EnrolledAt      time.Time  `json:"enrolled_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	// OutboxPending is the agent's backlog at its last heartbeat.
	OutboxPending uint64 `json:"outbox_pending"`
	// Metrics is the latest host sample (HostMetrics) and its time.
	Metrics   json.RawMessage `json:"metrics,omitempty"`
	MetricsAt *time.Time      `json:"metrics_at,omitempty"`
}
