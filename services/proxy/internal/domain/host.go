// Package domain holds the proxy service's aggregates and rules: a proxy
// host with its certificate, an agent's proxy settings, and the pure
// decisions taken on them (status transitions, certificate scheduling, TLS
// health). It does no I/O.
package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Cert is a host's certificate state. The fields of the last issued
// certificate (IssuedDomains, NotBefore, NotAfter, Issuer, Serial,
// RenewAt) outlive a later failed renewal: that certificate is still on
// the agent and still served.
type Cert struct {
	Status         string
	Reason         string
	RequestDomains []string
	RequestedAt    time.Time
	Attempts       int
	LastError      string
	NextAttemptAt  time.Time

	IssuedDomains []string
	NotBefore     time.Time
	NotAfter      time.Time
	RenewAt       time.Time
	Issuer        string
	Serial        string
}

// Host is the proxy host aggregate: its specification, its status on the
// agent and its certificate.
type Host struct {
	ID, OrgID, AgentID string
	Spec               events.ProxyHostSpec
	// Status is pending, applied or failed; a disabled host shows
	// disabled in its view (ViewStatus) whatever this says.
	Status          string
	StatusMessage   string
	AppliedRevision uint64
	// RenderVersion is the stream sequence of the host's last event that
	// changes its rendering (created, updated, certificate issued). The
	// desired state records it per host, so that an apply result is
	// credited only to the specification it carried.
	RenderVersion uint64
	Cert          Cert
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Deleted       bool
	// Ver is the sequence of the host's last event (0: no host).
	Ver uint64
}

// ErrHostNotFound answers an unknown or deleted host, and a host of
// another agent or org.
var ErrHostNotFound = events.NotFound("proxy host not found")

// ReplayHost rebuilds a host from its events.
func ReplayHost(orgID, id string, evs []events.Envelope, version uint64) (*Host, error) {
	h := &Host{ID: id, OrgID: orgID, Ver: version, Cert: Cert{Status: events.CertStatusNone}}
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			return nil, err
		}
		h.UpdatedAt = env.Time
		switch e := p.(type) {
		case *events.ProxyHostCreated:
			h.AgentID, h.Spec, h.CreatedAt = e.AgentID, e.Spec, env.Time
			h.Status, h.StatusMessage, h.RenderVersion = events.ProxyStatusPending, "", env.Sequence
		case *events.ProxyHostUpdated:
			h.Spec = e.Spec
			h.Status, h.StatusMessage, h.RenderVersion = events.ProxyStatusPending, "", env.Sequence
		case *events.ProxyHostDeleted:
			h.Deleted = true
		case *events.ProxyHostApplied:
			h.Status, h.StatusMessage, h.AppliedRevision = events.ProxyStatusApplied, "", max(h.AppliedRevision, e.Revision)
		case *events.ProxyHostFailed:
			h.Status, h.StatusMessage = events.ProxyStatusFailed, e.Error
		case *events.ProxyHostDrift:
			h.StatusMessage = DriftMessage(e.Files, e.Restored, e.Error)
		case *events.ProxyCertRequested:
			c := &h.Cert
			c.Status, c.Reason, c.RequestDomains, c.RequestedAt, c.Attempts = events.CertStatusRequested, e.Reason, e.Domains, env.Time, e.Attempt
			c.NextAttemptAt = time.Time{}
		case *events.ProxyCertIssued:
			h.Cert = Cert{Status: events.CertStatusIssued, Reason: h.Cert.Reason, RequestDomains: h.Cert.RequestDomains,
				RequestedAt: h.Cert.RequestedAt, IssuedDomains: e.Domains, NotBefore: e.NotBefore, NotAfter: e.NotAfter,
				RenewAt: e.RenewAt, Issuer: e.Issuer, Serial: e.Serial}
			h.Status, h.StatusMessage, h.RenderVersion = events.ProxyStatusPending, "", env.Sequence
		case *events.ProxyCertFailed:
			c := &h.Cert
			c.Status, c.LastError, c.Attempts, c.NextAttemptAt = events.CertStatusFailed, e.Reason, e.Attempt, e.NextAttemptAt
		case *events.Unknown:
			// A newer writer's event: keep what we know; the version
			// still moves on, so no decision overwrites it.
		default:
			return nil, fmt.Errorf("host %s: unexpected event %s", id, env.Type)
		}
	}
	return h, nil
}

// Exists reports whether the host was created and not deleted.
func (h *Host) Exists() bool { return !h.CreatedAt.IsZero() && !h.Deleted }

// Of reports whether the host exists and belongs to agent.
func (h *Host) Of(agent string) bool { return h.Exists() && h.AgentID == agent }

// ViewStatus is the status the API shows: disabled for a disabled host.
func (h *Host) ViewStatus() string {
	if !h.Spec.Enabled {
		return events.ProxyStatusDisabled
	}
	return h.Status
}

// CertReady reports whether the agent holds a certificate for exactly the
// host's current domains, which is when its TLS server can be rendered.
func (h *Host) CertReady() bool {
	return len(h.Cert.IssuedDomains) > 0 && SameDomains(h.Cert.IssuedDomains, h.Spec.Domains)
}

// SameDomains compares two domain lists as sets.
func SameDomains(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// DriftMessage describes a drift report for a host's status message.
func DriftMessage(files []string, restored bool, errMsg string) string {
	msg := fmt.Sprintf("configuration changed on the agent outside InfraPilot (%v)", files)
	switch {
	case errMsg != "":
		msg += "; restoring it failed: " + errMsg
	case restored:
		msg += "; restored"
	}
	return msg
}

// Canonical returns spec with empty lists as nil, so that two equal
// specifications compare (and encode) equal.
func Canonical(spec events.ProxyHostSpec) events.ProxyHostSpec {
	if len(spec.Domains) == 0 {
		spec.Domains = nil
	}
	if len(spec.RateLimits) == 0 {
		spec.RateLimits = nil
	}
	return spec
}

// SameSpec reports whether two specifications are the same.
func SameSpec(a, b events.ProxyHostSpec) bool {
	x, err1 := json.Marshal(Canonical(a))
	y, err2 := json.Marshal(Canonical(b))
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// Applied decides crediting revision rev, which carries the host's
// current specification, as applied: an event only when the status
// changes (a result is reported twice: as the reply and as an event).
func (h *Host) Applied(rev uint64) *events.ProxyHostApplied {
	if !h.Exists() || (h.Status == events.ProxyStatusApplied && h.StatusMessage == "") {
		return nil
	}
	return &events.ProxyHostApplied{AgentID: h.AgentID, Revision: rev}
}

// Failed decides recording nginx's refusal of the host's current
// specification in revision rev.
func (h *Host) Failed(rev uint64, msg string) *events.ProxyHostFailed {
	if !h.Exists() || (h.Status == events.ProxyStatusFailed && h.StatusMessage == msg) {
		return nil
	}
	return &events.ProxyHostFailed{AgentID: h.AgentID, Revision: rev, Error: msg}
}
