// Package proxy is InfraPilot's proxy service: nginx reverse-proxy hosts on
// agents, their TLS certificates, and each agent's proxy settings.
//
// It is event-sourced on the PROXY stream (aggregates: host, with its
// certificate, and agent, with its settings, attached networks and what it
// reported about its nginx) and keeps a read model in the Postgres schema
// "proxy" protected by row-level security. It renders each agent's
// complete desired nginx state (internal/nginxconf), stores it in KV
// (events.BucketAgentDesired, events.AgentDesiredKey) and pushes it to the
// agent; agents ask for it on events.AgentDesiredRequest when they
// (re)connect, and report outcomes on AGENT_EVENTS. Certificates are
// obtained by the agents (ACME HTTP-01 through their nginx) on the
// service's schedule. Its operations are listed in events/api_proxy.go.
package proxy

import (
	"embed"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
	"github.com/infrapilot/infrapilot/services/proxy/internal/service"
)

//go:embed migrations/*.sql
var migrations embed.FS

// LetsEncrypt is the ACME directory of Let's Encrypt's production CA, the
// default of Config.ACMEDirectoryURL.
const LetsEncrypt = service.LetsEncrypt

// Config configures the proxy service. Zero values are the defaults.
type Config struct {
	// ACMEDirectoryURL is the ACME CA agents obtain certificates from
	// (LetsEncrypt; a staging CA or pebble in tests).
	ACMEDirectoryURL string
	// RenewBefore is how long before expiry a certificate is renewed
	// (events.CertRenewBefore, 30 days).
	RenewBefore time.Duration
	// RetryBase and RetryMax shape the retries of a failed certificate
	// request: RetryBase·2^(attempt−1), at most RetryMax (1 min, 6 h).
	RetryBase time.Duration
	RetryMax  time.Duration
	// CertInterval is how often the certificate worker looks for due
	// work (1 min); a request through the API is handled at once.
	CertInterval time.Duration
	// CertTimeout bounds one certificate request to an agent
	// (events.CertIssueTimeout).
	CertTimeout time.Duration
	// ApplyTimeout bounds pushing a desired state to an agent (30 s).
	ApplyTimeout time.Duration
	// ReconcileInterval is how often every agent's desired state is
	// rendered again to repair a render lost to a crash (5 min).
	ReconcileInterval time.Duration
	// Now overrides the clock of certificate scheduling and TLS health
	// (tests move it to a renewal date).
	Now func() time.Time
}

// Module is the proxy service for the host. It needs Postgres and the
// tenancy service (agent lookups) on the same NATS.
func Module(cfg Config) app.Module {
	m := app.EmbeddedModule(service.Name, migrations, "migrations", func(d app.Deps) (app.Service, error) {
		return service.New(service.Config{
			ACMEDirectoryURL:  cfg.ACMEDirectoryURL,
			Cert:              domain.CertPolicy{RenewBefore: cfg.RenewBefore, RetryBase: cfg.RetryBase, RetryMax: cfg.RetryMax},
			CertInterval:      cfg.CertInterval,
			CertTimeout:       cfg.CertTimeout,
			ApplyTimeout:      cfg.ApplyTimeout,
			ReconcileInterval: cfg.ReconcileInterval,
		}, d)
	})
	m.Now = cfg.Now
	return m
}
