package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/services/audit"
	"github.com/infrapilot/infrapilot/services/auth"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/logingest"
	"github.com/infrapilot/infrapilot/services/proxy"
	"github.com/infrapilot/infrapilot/services/tenancy"
)

// serviceConfig holds the per-service settings the commands expose as
// flags; each domain issue adds its service's settings here.
type serviceConfig struct {
	allowSignup   bool
	sealingKey    string
	authRateLimit int
	smtp          tenancy.SMTP
	publicURL     string
	clickhouseURL string
	agentOffline  time.Duration
	// ACME: the CA agents obtain certificates from, and how failures are
	// retried.
	acmeDirectory string
	acmeRetryBase time.Duration
	acmeRetryMax  time.Duration
	acmeInterval  time.Duration
	// agentCreds issues agents' NATS credentials: set by the commands
	// that run the hub in operator mode, not a flag.
	agentCreds tenancy.AgentCredentials
	// siemCreds issues SIEMs' read-only NATS credentials to their org's
	// audit chain: set, like agentCreds, by the commands that run the hub
	// in operator mode.
	siemCreds audit.SIEMIssuer
}

func defaultServiceConfig() serviceConfig { return serviceConfig{allowSignup: true} }

// addServiceFlags declares the services' settings on fs.
func addServiceFlags(fs *flag.FlagSet, sc *serviceConfig) {
	fs.BoolVar(&sc.allowSignup, "allow-signup", true, "let anyone register a user and a new organisation (the SaaS sign-up); false for self-hosted installs")
	fs.StringVar(&sc.sealingKey, "sealing-key", "", "base64 of 32 bytes that encrypt TOTP secrets and signing keys at rest (empty: generated and kept in the database)")
	fs.IntVar(&sc.authRateLimit, "auth-rate-limit", 20, "requests per minute per client IP on the unauthenticated auth routes (negative: off)")
	fs.StringVar(&sc.publicURL, "public-url", "http://127.0.0.1:8080", "URL users reach InfraPilot at (links in invitation e-mails)")
	fs.StringVar(&sc.smtp.Host, "smtp-host", "", "SMTP server for invitation e-mails (empty: invitations are not mailed)")
	fs.IntVar(&sc.smtp.Port, "smtp-port", 587, "SMTP port")
	fs.StringVar(&sc.smtp.From, "smtp-from", "InfraPilot <noreply@infrapilot.local>", "sender of InfraPilot's e-mails")
	fs.StringVar(&sc.smtp.Username, "smtp-username", "", "SMTP user name")
	fs.StringVar(&sc.smtp.Password, "smtp-password", "", "SMTP password (prefer the environment variable)")
	fs.StringVar(&sc.smtp.TLS, "smtp-tls", "starttls", "starttls, tls or none")
	fs.StringVar(&sc.acmeDirectory, "acme-directory", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory agents obtain certificates from (Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory)")
	fs.DurationVar(&sc.acmeRetryBase, "acme-retry-base", time.Minute, "first retry delay of a failed certificate request (doubles per attempt)")
	fs.DurationVar(&sc.acmeRetryMax, "acme-retry-max", 6*time.Hour, "longest delay between certificate retries")
	fs.DurationVar(&sc.acmeInterval, "acme-check-interval", time.Minute, "how often due certificate renewals and retries are looked for")
	fs.DurationVar(&sc.agentOffline, "agent-offline-after", 20*time.Second, "how long an agent may miss heartbeats (sent every 5s) before it is shown offline")
}

// modules lists every service this binary can run, in start order. Each
// domain issue adds its service here.
func modules() []app.Module {
	ms, _ := modulesWith(defaultServiceConfig())
	return ms
}

// modulesWith builds the modules with the given settings.
func modulesWith(sc serviceConfig) ([]app.Module, error) {
	authCfg := auth.DefaultConfig()
	authCfg.AllowSignup = sc.allowSignup
	if sc.sealingKey != "" {
		key, err := base64.StdEncoding.DecodeString(sc.sealingKey)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("--sealing-key must be the base64 of 32 bytes")
		}
		authCfg.SealingKey = key
	}
	tenancyCfg := tenancy.Config{SMTP: sc.smtp, PublicURL: sc.publicURL, AgentCredentials: sc.agentCreds, PresenceTimeout: sc.agentOffline}
	return []app.Module{
		auth.Module(authCfg),
		tenancy.Module(tenancyCfg),
		proxy.Module(proxy.Config{ACMEDirectoryURL: sc.acmeDirectory, RetryBase: sc.acmeRetryBase, RetryMax: sc.acmeRetryMax, CertInterval: sc.acmeInterval}),
		audit.Module(audit.Config{ClickHouseURL: sc.clickhouseURL, SIEMCredentials: sc.siemCreds}),
		logingest.Module(logingest.Config{ClickHouseURL: sc.clickhouseURL}),
	}, nil
}

func serviceNames() string {
	var names []string
	for _, m := range modules() {
		names = append(names, m.Name)
	}
	if len(names) == 0 {
		return "(none registered yet); gateway"
	}
	return strings.Join(names, ", ") + "; gateway"
}

// pick returns the modules named, in registry order, or an error naming
// the unknown ones.
func pick(all []app.Module, names []string) ([]app.Module, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []app.Module
	for _, m := range all {
		if want[m.Name] {
			out = append(out, m)
			delete(want, m.Name)
		}
	}
	delete(want, "gateway")
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		return nil, fmt.Errorf("unknown service(s) %s; known: %s", strings.Join(unknown, ", "), serviceNames())
	}
	return out, nil
}

func names(ms []app.Module) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func has(ms []app.Module, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
	}
	return false
}

func (f devFlags) withClickHouse() serviceConfig {
	sc := f.services
	sc.clickhouseURL = f.clickhouseURL
	return sc
}

func (f runFlags) withClickHouse() serviceConfig {
	sc := f.services
	sc.clickhouseURL = f.clickhouseURL
	return sc
}
