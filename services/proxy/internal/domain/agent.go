package domain

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Agent is an agent's proxy aggregate: the settings a user chose (mode,
// ACME contact), the networks its nginx container was attached to, and
// what the agent reported about its nginx.
type Agent struct {
	ID, OrgID string
	Mode      string
	ACMEEmail string
	Networks  []string
	// Nginx is the agent's last report about its nginx (nil before one).
	Nginx           *events.NginxAgentInfo
	AppliedRevision uint64
	LastError       string
	UpdatedAt       time.Time
	// Ver is the sequence of the aggregate's last event (0: none yet).
	Ver uint64
}

// ReplayAgent rebuilds an agent's proxy aggregate from its events.
func ReplayAgent(orgID, id string, evs []events.Envelope, version uint64) (*Agent, error) {
	a := &Agent{ID: id, OrgID: orgID, Mode: events.ProxyModeManaged, Ver: version}
	for _, env := range evs {
		p, err := events.Catalogue.Decode(env)
		if err != nil {
			return nil, err
		}
		a.UpdatedAt = env.Time
		switch e := p.(type) {
		case *events.ProxySettingsChanged:
			if e.Mode != "" {
				a.Mode = e.Mode
			}
			a.ACMEEmail = e.ACMEEmail
		case *events.ProxyAgentReported:
			a.Nginx, a.AppliedRevision, a.LastError = e.Nginx, e.AppliedRevision, e.LastError
		case *events.ProxyNetworkAttached:
			if !slices.Contains(a.Networks, e.Network) {
				a.Networks = append(a.Networks, e.Network)
				slices.Sort(a.Networks)
			}
		case *events.ProxyNetworkDetached:
			a.Networks = slices.DeleteFunc(a.Networks, func(n string) bool { return n == e.Network })
		case *events.Unknown:
		default:
			return nil, fmt.Errorf("agent %s: unexpected event %s", id, env.Type)
		}
	}
	return a, nil
}

// Maximum length of an ACME contact address.
const maxEmail = 254

// SetSettings decides a settings change; nil when nothing changes.
func (a *Agent) SetSettings(mode, email *string) (*events.ProxySettingsChanged, error) {
	next := events.ProxySettingsChanged{Mode: a.Mode, ACMEEmail: a.ACMEEmail}
	var bad []events.FieldError
	if mode != nil {
		switch m := strings.TrimSpace(*mode); m {
		case events.ProxyModeManaged, events.ProxyModeExternal:
			next.Mode = m
		default:
			bad = append(bad, events.FieldError{Field: "mode", Message: "must be managed or external"})
		}
	}
	if email != nil {
		e := strings.TrimSpace(*email)
		if e != "" && !ValidEmail(e) {
			bad = append(bad, events.FieldError{Field: "acme_email", Message: "is not an e-mail address"})
		}
		next.ACMEEmail = e
	}
	if len(bad) > 0 {
		return nil, events.Invalid("invalid proxy settings").WithFields(bad...)
	}
	if next.Mode == a.Mode && next.ACMEEmail == a.ACMEEmail {
		return nil, nil
	}
	return &next, nil
}

// ValidEmail accepts a plain address (no display name) of printable ASCII.
func ValidEmail(s string) bool {
	if len(s) > maxEmail {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == '"' || r == '\\' {
			return false
		}
	}
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Address == s && addr.Name == ""
}

// Report decides recording what the agent reported: nginx facts (nil:
// unchanged), the revision it applied and the error of a failed apply.
// nil when nothing changes.
func (a *Agent) Report(info *events.NginxAgentInfo, applied uint64, lastErr string) *events.ProxyAgentReported {
	next := events.ProxyAgentReported{Nginx: a.Nginx, AppliedRevision: max(a.AppliedRevision, applied), LastError: lastErr}
	if info != nil {
		i := *info
		next.Nginx = &i
	}
	if sameInfo(next.Nginx, a.Nginx) && next.AppliedRevision == a.AppliedRevision && next.LastError == a.LastError {
		return nil
	}
	return &next
}

func sameInfo(a, b *events.NginxAgentInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Networks the proxy refuses to attach nginx to: the host's own stack, no
// network at all, and swarm overlays (as the seed did).
var refusedDrivers = []string{"host", "none", "null", "overlay"}

// CheckAttachable refuses networks nginx cannot usefully join.
func CheckAttachable(n events.Network) error {
	name, driver := strings.ToLower(n.Name), strings.ToLower(n.Driver)
	if name == "host" || name == "none" || slices.Contains(refusedDrivers, driver) {
		return events.Invalid("the proxy cannot be attached to network %q (driver %s)", n.Name, n.Driver).
			WithFields(events.FieldError{Field: "network", Message: "host, none and overlay networks cannot be attached"})
	}
	return nil
}

// NginxContainer returns the container nginx runs in, or an invalid error
// when the agent did not report one.
func (a *Agent) NginxContainer() (string, error) {
	if a.Nginx == nil || a.Nginx.Kind != events.NginxKindContainer || a.Nginx.Container == "" {
		return "", events.Invalid("nginx does not run in a container on this agent")
	}
	return a.Nginx.Container, nil
}

// Attached reports whether network is recorded as attached.
func (a *Agent) Attached(network string) bool { return slices.Contains(a.Networks, network) }

// Settings is the API's view of the aggregate; desired is the revision of
// the agent's desired state.
func (a *Agent) Settings(desired uint64) events.ProxySettings {
	nets := slices.Clone(a.Networks)
	if nets == nil {
		nets = []string{}
	}
	return events.ProxySettings{AgentID: a.ID, Mode: a.Mode, ACMEEmail: a.ACMEEmail, Networks: nets, Nginx: a.Nginx,
		AppliedRevision: a.AppliedRevision, DesiredRevision: desired, LastError: a.LastError}
}
