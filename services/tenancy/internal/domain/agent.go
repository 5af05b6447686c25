package domain

import (
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Agent is the agent aggregate: an enrolled machine, the key of the NATS
// credentials it holds, and its presence as last decided.
type Agent struct {
	ID, OrgID     string
	Fingerprint   string
	Hostname      string
	OS, Arch      string
	Version       string
	TokenID       string
	Labels        map[string]string
	CredentialKey string
	EnrolledAt    time.Time
	Online        bool
	StatusAt      time.Time
	Deleted       bool
	Ver           uint64
}

// ReplayAgent rebuilds an agent from its events.
func ReplayAgent(orgID, id string, evs []events.Envelope, version uint64) (*Agent, error) {
	a := &Agent{ID: id, OrgID: orgID, Ver: version}
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			return nil, err
		}
		switch e := p.(type) {
		case *events.AgentEnrolled:
			a.Fingerprint, a.Hostname, a.OS, a.Arch, a.Version = e.Fingerprint, e.Hostname, e.OS, e.Arch, e.Version
			a.TokenID, a.Labels, a.CredentialKey = e.TokenID, e.Labels, e.CredentialKey
			a.EnrolledAt, a.StatusAt = env.Time, env.Time
		case *events.AgentReenrolled:
			a.Hostname, a.OS, a.Arch, a.Version = e.Hostname, e.OS, e.Arch, e.Version
			a.TokenID, a.CredentialKey = e.TokenID, e.CredentialKey
		case *events.AgentWentOnline:
			a.Online, a.StatusAt = true, e.At
			if e.Version != "" {
				a.Version = e.Version
			}
			if e.Hostname != "" {
				a.Hostname = e.Hostname
			}
		case *events.AgentWentOffline:
			a.Online, a.StatusAt = false, env.Time
		case *events.AgentDeleted:
			a.Deleted, a.Online, a.StatusAt = true, false, env.Time
		case *events.Unknown:
		default:
			return nil, fmt.Errorf("agent %s: unexpected event %s", id, env.Type)
		}
	}
	return a, nil
}

// Exists reports whether the agent enrolled and was not deleted.
func (a *Agent) Exists() bool { return !a.EnrolledAt.IsZero() && !a.Deleted }

// ErrAgentNotFound answers an unknown, deleted or foreign agent.
var ErrAgentNotFound = events.NotFound("agent not found")

// Status is the agent's presence as a word.
func (a *Agent) Status() string {
	if a.Online {
		return events.AgentOnline
	}
	return events.AgentOffline
}

// Heard decides what a heartbeat changes: an event when an existing,
// offline agent is heard from, nothing otherwise.
func (a *Agent) Heard(at time.Time, version, hostname string) *events.AgentWentOnline {
	if !a.Exists() || a.Online {
		return nil
	}
	return &events.AgentWentOnline{At: at.UTC(), Version: version, Hostname: hostname}
}

// Missed decides what silence since lastSeen changes: offline when the
// agent is online.
func (a *Agent) Missed(lastSeen time.Time) *events.AgentWentOffline {
	if !a.Exists() || !a.Online {
		return nil
	}
	return &events.AgentWentOffline{LastSeen: lastSeen.UTC()}
}

// Delete decides deleting the agent.
func (a *Agent) Delete() (*events.AgentDeleted, error) {
	if !a.Exists() {
		return nil, ErrAgentNotFound
	}
	return &events.AgentDeleted{CredentialKey: a.CredentialKey}, nil
}
