// Package tenancy is InfraPilot's tenancy service: organisations, their
// members and roles, invitations, agent enrollment tokens, user
// administration within an org, and the plans' limits on users and agents.
//
// It is event-sourced on the TENANCY stream (aggregates: org with its
// members, slug claim, invitation, enrollment token) and keeps a read model
// in the Postgres schema "tenancy" whose tenant tables are protected by
// row-level security. Its request-reply operations are listed in
// events/api_tenancy.go and events/api_identity.go.
package tenancy

import (
	"embed"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/mail"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/service"
)

//go:embed migrations/*.sql
var migrations embed.FS

// SMTP TLS modes.
const (
	// TLSStartTLS upgrades with STARTTLS and refuses a server without it
	// (the default).
	TLSStartTLS = mail.TLSStartTLS
	// TLSImplicit speaks TLS from the start (SMTPS, port 465).
	TLSImplicit = mail.TLSImplicit
	// TLSNone sends in the clear (a local relay, a test sink).
	TLSNone = mail.TLSNone
)

// SMTP is the relay invitations are mailed through. With an empty Host
// nothing is mailed; invitations still work with the token the create
// operation returns.
type SMTP struct {
	Host     string
	Port     int
	From     string
	Username string
	Password string
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone.
	TLS string
}

// Plan is what an org on a plan may use; a zero limit is unlimited.
type Plan = domain.Plan

// DefaultPlans are free (3 users, 2 agents), pro (25, 50) and enterprise
// (unlimited).
func DefaultPlans() map[string]Plan { return domain.DefaultPlans() }

// Config configures the tenancy service.
type Config struct {
	SMTP SMTP
	// PublicURL is the web address of InfraPilot; invitation links are
	// <PublicURL>/invitations/<token>. Empty: invitations carry no link.
	PublicURL string
	// Plans by name; nil means DefaultPlans.
	Plans map[string]Plan
	// InvitationTTL is how long an invitation can be accepted (default 7
	// days).
	InvitationTTL time.Duration
	// AgentCredentials issues and revokes agents' NATS credentials (the
	// hub's natsauth keys); nil: agents cannot enroll.
	AgentCredentials AgentCredentials
	// PresenceTimeout is how long an agent may miss heartbeats before it
	// is offline (default 20s).
	PresenceTimeout time.Duration
	// Now overrides the host's clock (tests of expiry).
	Now func() time.Time
}

// AgentCredentials issues and revokes the NATS credentials of agents.
type AgentCredentials = service.AgentCredentials

// Module is the tenancy service for the host.
func Module(cfg Config) app.Module {
	m := app.EmbeddedModule(service.Name, migrations, "migrations", func(d app.Deps) (app.Service, error) {
		return service.New(service.Config{
			Mail: mail.Config{Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, From: cfg.SMTP.From,
				Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, TLS: cfg.SMTP.TLS},
			PublicURL:        cfg.PublicURL,
			Plans:            cfg.Plans,
			InvitationTTL:    cfg.InvitationTTL,
			AgentCredentials: cfg.AgentCredentials,
			PresenceTimeout:  cfg.PresenceTimeout,
		}, d)
	})
	m.Now = cfg.Now
	return m
}
