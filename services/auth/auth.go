// Package auth is InfraPilot's identity service: user accounts (argon2id
// passwords), sign-up, login with throttling, sessions with rotating
// refresh tokens, EdDSA access tokens and their JWKS, TOTP MFA with backup
// codes, and API keys. It is event-sourced on the AUTH stream; its read
// models and its secret store live in the Postgres schema "auth".
//
// The operations it answers are listed in events/api_auth.go and
// events/api_identity.go; its events in events/payloads_auth.go.
package auth

import (
	"embed"

	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/auth/internal/service"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service's subject token and schema name.
const Name = "auth"

// Config configures the service; start from DefaultConfig.
type Config = service.Config

// ThrottleConfig sets login throttling.
type ThrottleConfig = service.ThrottleConfig

// Argon2Params are the argon2id cost parameters of new password hashes.
type Argon2Params = secret.Argon2Params

// DefaultConfig returns the production defaults: sign-up allowed, 15-minute
// access tokens, 30-day refresh tokens, OWASP argon2id parameters, issuer
// and audience from events.
func DefaultConfig() Config { return service.DefaultConfig() }

// Module is the auth service for the host.
func Module(cfg Config) app.Module {
	return app.EmbeddedModule(Name, migrations, "migrations", func(d app.Deps) (app.Service, error) {
		return service.New(d, cfg)
	})
}
