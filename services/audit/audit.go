// Package audit is the audit service: it chains every service's events
// into one tamper-evident hash chain per org on stream AUDIT, signs
// checkpoints of the chains, projects them into Postgres (and ClickHouse
// when configured), and answers list, verify, checkpoint, public-key and
// configuration requests. It also runs exports and compliance reports
// (stored in JetStream object store buckets), forwards each org's chain to
// its SIEM destinations, prunes the projections by each org's retention
// period, links users' own sign-in events into their orgs' chains, and
// issues SIEMs read-only NATS credentials to their org's chain.
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
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/activity"
	"github.com/infrapilot/infrapilot/services/audit/internal/api"
	"github.com/infrapilot/infrapilot/services/audit/internal/chain"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/infrapilot/infrapilot/services/audit/internal/exports"
	"github.com/infrapilot/infrapilot/services/audit/internal/forwarding"
	"github.com/infrapilot/infrapilot/services/audit/internal/keys"
	"github.com/infrapilot/infrapilot/services/audit/internal/objects"
	"github.com/infrapilot/infrapilot/services/audit/internal/projection"
	"github.com/infrapilot/infrapilot/services/audit/internal/reports"
	"github.com/infrapilot/infrapilot/services/audit/internal/retention"
	"github.com/infrapilot/infrapilot/services/audit/internal/siemcreds"
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
	// StartTimeout bounds the I/O New does (loading the signing key,
	// creating the object store buckets).
	StartTimeout time.Duration
	// ClickHouseURL, when set, runs the ClickHouse projection (native
	// protocol: clickhouse://user:password@host:9000/database; the
	// database must exist). Empty: the projection is off, and the health
	// check says "off (not configured)" without degrading the service.
	ClickHouseURL string
	// Objects configures the object store buckets of exports, archives
	// and reports.
	Objects objects.Config
	// Exports tunes the export jobs.
	Exports exports.Config
	// Reports tunes the compliance reports.
	Reports reports.Config
	// Forwarding configures SIEM forwarding (private networks and plain
	// http are refused unless allowed here).
	Forwarding forwarding.Config
	// Retention tunes the retention job.
	Retention retention.Config
	// Activity tunes the linking of users' sign-in events into their
	// orgs' chains.
	Activity activity.Config
	// SIEMCredentials issues the read-only NATS credentials of POST
	// /audit/siem-credentials (natsauth.NewSIEMIssuer). Nil when the hub
	// does not run in operator mode: those operations then answer
	// unavailable.
	SIEMCredentials SIEMIssuer
	// SIEM tunes the SIEM credentials (default lifetime, cap per org).
	SIEM siemcreds.Config
}

// SIEMIssuer issues and revokes SIEMs' read-only NATS credentials to one
// org's audit chain, and names the NATS URL they connect to.
type SIEMIssuer = siemcreds.Issuer

// Module returns the audit service's module for the host.
func Module(cfg Config) app.Module {
	return app.EmbeddedModule(Name, migrationFiles, "migrations", func(d app.Deps) (app.Service, error) {
		return New(cfg, d)
	})
}

// Service is the running audit service.
type Service struct {
	writer     *chain.Writer
	projector  *projection.Projector
	exports    *exports.Service
	forwarding *forwarding.Service
	retention  *retention.Job
	analytics  *analytics
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

	buckets := objects.New(d.JS, cfg.Objects)
	if err := buckets.Ensure(ctx); err != nil {
		return nil, err
	}
	an := newAnalytics(cfg.ClickHouseURL, d.JS, d.Log)
	d.Endpoints.AddCheck("clickhouse", an.check)

	fw := forwarding.New(cfg.Forwarding, d.JS, d.DB, d.Log)
	fw.Register(d.Endpoints)
	ex := exports.New(cfg.Exports, exports.Deps{JS: d.JS, DB: d.DB, Events: d.Events, Store: st, Buckets: buckets, Log: d.Log})
	if err := ex.Register(d.Endpoints, d.Router); err != nil {
		return nil, err
	}
	rp := reports.New(cfg.Reports, reports.Deps{DB: d.DB, Events: d.Events, Source: st, Buckets: buckets, Log: d.Log, Now: d.Now})
	if err := rp.Register(d.Endpoints, d.Router); err != nil {
		return nil, err
	}
	act := activity.New(cfg.Activity, activity.Deps{JS: d.JS, DB: d.DB, Events: d.Events, Seen: st.HasEvent, Log: d.Log})
	if err := act.Register(d.Router); err != nil {
		return nil, err
	}
	siem := siemcreds.New(cfg.SIEM, siemcreds.Deps{JS: d.JS, DB: d.DB, Events: d.Events, Issuer: cfg.SIEMCredentials,
		Log: d.Log, Now: d.Now})
	if err := siem.Register(d.Endpoints, d.Router); err != nil {
		return nil, err
	}
	ret := retention.New(cfg.Retention, retention.Deps{DB: d.DB, Store: st, Events: d.Events, Archiver: ex,
		Analytics: an.pruner, Log: d.Log, Now: d.Now})
	api.Register(d.Endpoints, api.Deps{Store: st, Verifier: verifier, Keys: ring, Events: d.Events, Forwarding: fw,
		Retention: func(ctx context.Context, org string) (*events.AuditRetentionStatus, error) {
			return retention.Status(ctx, d.Events, org)
		},
		ClickHouse: an.state})

	// The configuration projection: one row per org, from the config
	// events on the AUDIT stream (retention settings, SIEM destinations).
	err = d.Router.AddEventHandler("audit_config_projection", events.StreamAudit,
		[]string{events.DomainEvent(Name, "*", events.AuditAggConfig, "*")},
		func(ctx context.Context, env events.Envelope) error {
			del, _ := router.DeliveryFrom(ctx)
			switch env.Type {
			case (events.AuditConfigUpdated{}).EventType():
				var p events.AuditConfigUpdated
				if err := json.Unmarshal(env.Data, &p); err != nil {
					return router.Permanent(err)
				}
				return st.PutConfig(ctx, env.OrgID, p, env.Time, env.Actor.ID, del.Sequence)
			case (events.AuditForwardingUpdated{}).EventType():
				var p events.AuditForwardingUpdated
				if err := json.Unmarshal(env.Data, &p); err != nil {
					return router.Permanent(err)
				}
				return fw.Project(ctx, env.OrgID, p, env.Time, del.Sequence)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return &Service{writer: writer, projector: projector, exports: ex, forwarding: fw, retention: ret, analytics: an}, nil
}

// Run appends, projects, exports, forwards and prunes until ctx ends. If
// any part stops on its own, the others are stopped too, and Run returns
// their errors.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := []func(context.Context) error{s.writer.Run, s.projector.Run, s.exports.Run, s.forwarding.Run,
		s.retention.Run, s.analytics.Run}
	errc := make(chan error, len(parts))
	for _, f := range parts {
		go func() {
			err := f(ctx)
			cancel() // one stopping stops the others
			errc <- err
		}()
	}
	var errs []error
	for range parts {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}
