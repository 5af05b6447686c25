// Package audit is the audit service: it chains every service's events
// into one tamper-evident hash chain per org on stream AUDIT, signs
// checkpoints of the chains, projects them into Postgres, and answers
// list, verify, checkpoint, public-key and configuration requests.
//
// The chain rule and the verification procedure are documented for third
// parties in docs/audit.md.
package audit

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/api"
	"github.com/infrapilot/infrapilot/services/audit/internal/chain"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/infrapilot/infrapilot/services/audit/internal/keys"
	"github.com/infrapilot/infrapilot/services/audit/internal/projection"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/audit/internal/verify"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Name is the service's subject token and schema name.
const Name = "audit"

// Config configures the audit service; the zero value is the default.
type Config struct {
	// Chain tunes the chain writer (checkpoint cadence, pipeline depth,
	// source consumers' ack wait).
	Chain chain.Config
	// Projection tunes the Postgres projection consumer.
	Projection projection.Config
	// StartTimeout bounds the I/O New does (loading the signing key).
	StartTimeout time.Duration
}

// Module returns the audit service's module for the host.
func Module(cfg Config) app.Module {
	// fs.Sub of a fixed embedded directory cannot fail; should it, New
	// reports it instead of panicking outside main.
	sub, subErr := fs.Sub(migrationFiles, "migrations")
	return app.Module{Name: Name, Migrations: sub, New: func(d app.Deps) (app.Service, error) {
		if subErr != nil {
			return nil, subErr
		}
		return New(cfg, d)
	}}
}

// Service is the running audit service.
type Service struct {
	writer    *chain.Writer
	projector *projection.Projector
}

// New builds the service: it loads (or creates) the checkpoint signing key
// and registers the operations and the configuration projection. It starts
// nothing.
func New(cfg Config, d app.Deps) (*Service, error) {
	if d.DB == nil {
		return nil, fmt.Errorf("audit: needs Postgres")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	st := store.New(d.DB)
	ring, err := keys.Load(ctx, d.DB, d.Events)
	if err != nil {
		return nil, err
	}
	writer, err := chain.New(cfg.Chain, chain.Deps{NC: d.NC, Log: d.Log, Metrics: d.Metrics, Now: d.Now, Signer: ring, Seen: st.HasEvent})
	if err != nil {
		return nil, err
	}
	projector := projection.New(cfg.Projection, d.JS, st, d.Log)
	verifier := verify.New(st, chainstream.New(d.JS), ring, d.Events, projector.Floor)
	api.Register(d.Endpoints, api.Deps{Store: st, Verifier: verifier, Keys: ring, Events: d.Events})

	// The configuration projection: one row per org, from the config
	// events on the AUDIT stream.
	err = d.Router.AddEventHandler("audit_config_projection", events.StreamAudit,
		[]string{events.DomainEvent(Name, "*", events.AuditAggConfig, "*")},
		func(ctx context.Context, env events.Envelope) error {
			var p events.AuditConfigUpdated
			if env.Type != p.EventType() {
				return nil
			}
			if err := json.Unmarshal(env.Data, &p); err != nil {
				return router.Permanent(err)
			}
			del, _ := router.DeliveryFrom(ctx)
			return st.PutConfig(ctx, env.OrgID, p, env.Time, env.Actor.ID, del.Sequence)
		})
	if err != nil {
		return nil, err
	}
	return &Service{writer: writer, projector: projector}, nil
}

// Run appends and projects until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	run := func(f func(context.Context) error) {
		err := f(ctx)
		cancel() // one stopping stops the other
		errc <- err
	}
	go run(s.writer.Run)
	go run(s.projector.Run)
	return errors.Join(<-errc, <-errc)
}
