// Package nginxconf validates proxy host specifications and renders them
// into nginx configuration. It is the only code that writes nginx syntax:
// everything it accepts renders a configuration that `nginx -t` accepts
// (fuzzed against a real nginx), and anything that could inject nginx
// syntax (';', '{', '}', quotes, newlines, '$', control characters,
// overlong or non-ASCII names that are not valid IDNs) is refused by
// Validate with a field error before it reaches a template.
package nginxconf

import "github.com/infrapilot/infrapilot/events"

// Layout is where an agent's nginx finds InfraPilot's files, as nginx sees
// them: the live generation under Root/current (nginx runs with
// -c Root/current/nginx.conf), certificates under Root/certs/<host>/, the
// ACME webroot at Root/acme, logs under Root/logs, pid and temp paths
// under Root/run.
type Layout struct {
	Root string
	// Kind is events.NginxKindLocal or events.NginxKindContainer; a local
	// nginx's check server listens on 127.0.0.1 only.
	Kind      string
	HTTPPort  int
	HTTPSPort int
	// CheckPort is the port of the check server that answers
	// GET /infrapilot-revision with the revision (events.NginxDesired).
	CheckPort int
}

// Defaults of a Layout: DefaultRoot when the agent has not reported its
// own, ports 80/443, check port 8089.
const (
	DefaultRoot      = "/var/lib/infrapilot-nginx"
	DefaultCheckPort = 8089
)

// LayoutFor returns the layout an agent reported (info may be nil), with
// defaults for what it left out.
func LayoutFor(info *events.NginxAgentInfo) Layout {
	l := Layout{Root: DefaultRoot, Kind: events.NginxKindLocal, HTTPPort: 80, HTTPSPort: 443, CheckPort: DefaultCheckPort}
	if info == nil {
		return l
	}
	if info.Root != "" {
		l.Root = info.Root
	}
	if info.Kind != "" {
		l.Kind = info.Kind
	}
	if info.HTTPPort > 0 {
		l.HTTPPort = info.HTTPPort
	}
	if info.HTTPSPort > 0 {
		l.HTTPSPort = info.HTTPSPort
	}
	if info.CheckPort > 0 {
		l.CheckPort = info.CheckPort
	}
	return l
}

// Host is one host to render. CertReady says a certificate for exactly
// Spec.Domains is stored on the agent (Root/certs/<ID>/fullchain.pem and
// privkey.pem): only then is the TLS server rendered (and Force/HSTS take
// effect).
type Host struct {
	ID        string
	Spec      events.ProxyHostSpec
	CertReady bool
}

// HostFile is the path of a host's file relative to the generation
// directory: "hosts/<id>.conf".
func HostFile(id string) string { return "hosts/" + id + ".conf" }
