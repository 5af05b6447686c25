// Package app hosts InfraPilot services in a process: it owns the order in
// which their infrastructure starts and stops, and hands each service its
// dependencies (NATS, its own Postgres schema, an event store, a consumer
// router, request-reply endpoints).
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/endpoint"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/pg"
	"github.com/infrapilot/infrapilot/services/internal/platform/router"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Service is a running domain service. Its request-reply handlers and
// consumers are registered in the Module's New; Run does the service's own
// background work (schedulers, projections rebuilds) and returns when ctx
// ends. A service without background work just waits for ctx.
type Service interface {
	Run(ctx context.Context) error
}

// Module describes one service to the host.
type Module struct {
	// Name is the service's subject token: "auth", "tenancy", …
	Name string
	// Migrations are the service's embedded SQL migrations, applied to its
	// own schema (named after the service) at start. Nil: no Postgres.
	Migrations fs.FS
	// New builds the service from its dependencies. It must start nothing.
	New func(Deps) (Service, error)
	// Now, when set, replaces the host's clock in the service's Deps
	// (tests move it to an expiry or a renewal date).
	Now func() time.Time
}

// EmbeddedModule is the Module of service name whose SQL migrations are
// the directory dir of files (a service embeds them with
// //go:embed migrations/*.sql) and whose New is newFn. fs.Sub fails only
// for a malformed dir; New reports that rather than a panic outside main.
func EmbeddedModule(name string, files fs.FS, dir string, newFn func(Deps) (Service, error)) Module {
	sub, subErr := fs.Sub(files, dir)
	return Module{Name: name, Migrations: sub, New: func(d Deps) (Service, error) {
		if subErr != nil {
			return nil, subErr
		}
		return newFn(d)
	}}
}

// Deps is what the host hands a service.
type Deps struct {
	Log       *slog.Logger
	NC        *nats.Conn
	JS        jetstream.JetStream
	DB        *pgxpool.Pool // nil when the module has no migrations
	Events    *eventstore.Store
	Endpoints *endpoint.Server
	Router    *router.Router
	Metrics   prometheus.Registerer
	Now       func() time.Time
	Instance  string
}

// Config configures a host.
type Config struct {
	Instance    string
	Version     string
	PostgresURL string
	Topology    events.Topology
	Router      router.Config
	// DrainTimeout bounds how long shutdown waits for in-flight work and
	// publish acks.
	DrainTimeout time.Duration
}

// Host runs a set of modules in one process.
type Host struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	reg     prometheus.Registerer
	modules []Module
	pools   []*pgxpool.Pool
	ready   chan struct{}
}

// New validates the configuration; it connects to nothing.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer, modules []Module) (*Host, error) {
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 15 * time.Second
	}
	seen := map[string]bool{}
	for _, m := range modules {
		if !events.ValidToken(m.Name) || m.New == nil {
			return nil, fmt.Errorf("app: module %q needs a valid name and a constructor", m.Name)
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("app: module %s registered twice", m.Name)
		}
		seen[m.Name] = true
		if m.Migrations != nil && cfg.PostgresURL == "" {
			return nil, fmt.Errorf("app: service %s needs Postgres: set --pg-url", m.Name)
		}
	}
	return &Host{cfg: cfg, log: log, nc: nc, js: js, reg: reg, modules: modules, ready: make(chan struct{})}, nil
}

type running struct {
	name      string
	svc       Service
	endpoints *endpoint.Server
	router    *router.Router
}

// Run ensures the streams, migrates and builds every service, serves until
// ctx ends, then shuts down in order: consumers drain, endpoints stop,
// services return, pending publishes are acknowledged. The caller closes
// NATS and then calls Close for Postgres.
func (h *Host) Run(ctx context.Context) error {
	all, err := h.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			// Asked to stop while starting: nothing runs yet, that is a
			// clean stop, not a failure.
			return nil
		}
		return err
	}

	return h.serve(ctx, all)
}

// start ensures the streams and builds every module; it starts nothing.
func (h *Host) start(ctx context.Context) ([]running, error) {
	if err := events.Ensure(ctx, h.js, h.cfg.Topology); err != nil {
		return nil, err
	}
	var all []running
	for _, m := range h.modules {
		r, err := h.build(ctx, m)
		if err != nil {
			return nil, err
		}
		all = append(all, r)
	}
	return all, nil
}

// serve runs the built modules until ctx ends, then stops them in order.
func (h *Host) serve(ctx context.Context, all []running) error {
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	routerCtx, stopRouters := context.WithCancel(workCtx)
	defer stopRouters()

	errc := make(chan error, 2*len(all))
	var routers, services sync.WaitGroup
	for _, r := range all {
		if err := r.endpoints.Start(workCtx); err != nil {
			return err
		}
		routers.Add(1)
		go func(r running) {
			defer routers.Done()
			if err := r.router.Run(routerCtx); err != nil {
				errc <- fmt.Errorf("%s router: %w", r.name, err)
			}
		}(r)
		services.Add(1)
		go func(r running) {
			defer services.Done()
			if err := r.svc.Run(workCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", r.name, err)
			}
		}(r)
		h.log.Info("service started", "service", r.name)
	}

	close(h.ready)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		h.log.Error("service failed, shutting down", "err", runErr)
	}

	// Shutdown order: consumers drain, then endpoints, then the services'
	// own work, then publish acks.
	stopRouters()
	wait(&routers, h.cfg.DrainTimeout, h.log, "consumers")
	for _, r := range all {
		if err := r.endpoints.Stop(); err != nil {
			h.log.Warn("endpoint stop", "service", r.name, "err", err)
		}
	}
	stopWork()
	wait(&services, h.cfg.DrainTimeout, h.log, "services")
	pctx, cancel := context.WithTimeout(context.Background(), h.cfg.DrainTimeout)
	defer cancel()
	if err := natsx.WaitPublishes(pctx, h.js); err != nil {
		h.log.Error("shutdown", "err", err)
	}
	h.log.Info("services stopped")
	return runErr
}

// Ready is closed once every service is built and its endpoints and
// consumers are running.
func (h *Host) Ready() <-chan struct{} { return h.ready }

// Close releases the Postgres pools; call it after NATS is closed.
func (h *Host) Close() {
	for _, p := range h.pools {
		p.Close()
	}
	h.pools = nil
}

func (h *Host) build(ctx context.Context, m Module) (running, error) {
	log := h.log.With("service", m.Name)
	deps := Deps{Log: log, NC: h.nc, JS: h.js, Metrics: h.reg, Now: time.Now, Instance: h.cfg.Instance,
		Events: eventstore.New(h.js, m.Name)}
	if m.Now != nil {
		deps.Now = m.Now
	}
	checks := map[string]endpoint.Check{}
	if m.Migrations != nil {
		pool, err := pg.Open(ctx, h.cfg.PostgresURL, m.Name, log)
		if err != nil {
			return running{}, fmt.Errorf("%s: %w", m.Name, err)
		}
		h.pools = append(h.pools, pool)
		n, err := pg.Migrate(ctx, pool, m.Name, m.Migrations)
		if err != nil {
			return running{}, fmt.Errorf("%s: migrate: %w", m.Name, err)
		}
		if n > 0 {
			log.Info("migrations applied", "count", n)
		}
		deps.DB = pool
		checks["postgres"] = func(ctx context.Context) error { return pg.Ping(ctx, pool) }
	}
	var err error
	deps.Endpoints, err = endpoint.New(endpoint.Config{Service: m.Name, Version: h.cfg.Version, Instance: h.cfg.Instance, Checks: checks},
		h.nc, log, h.reg)
	if err != nil {
		return running{}, err
	}
	rcfg := h.cfg.Router
	rcfg.Service = m.Name
	deps.Router, err = router.New(rcfg, router.Deps{Conn: h.nc, JS: h.js, Logger: log, Metrics: h.reg})
	if err != nil {
		return running{}, fmt.Errorf("%s: router: %w", m.Name, err)
	}
	svc, err := m.New(deps)
	if err != nil {
		return running{}, fmt.Errorf("%s: %w", m.Name, err)
	}
	return running{name: m.Name, svc: svc, endpoints: deps.Endpoints, router: deps.Router}, nil
}

func wait(wg *sync.WaitGroup, timeout time.Duration, log *slog.Logger, what string) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		log.Error("shutdown: gave up waiting", "what", what, "timeout", timeout)
	}
}

// Migrate applies the migrations of the given modules and returns how many
// were applied per service.
func Migrate(ctx context.Context, pgURL string, log *slog.Logger, modules []Module) (map[string]int, error) {
	out := map[string]int{}
	for _, m := range modules {
		if m.Migrations == nil {
			continue
		}
		pool, err := pg.Open(ctx, pgURL, m.Name, log)
		if err != nil {
			return out, fmt.Errorf("%s: %w", m.Name, err)
		}
		n, err := pg.Migrate(ctx, pool, m.Name, m.Migrations)
		pool.Close()
		if err != nil {
			return out, fmt.Errorf("%s: migrate: %w", m.Name, err)
		}
		out[m.Name] = n
	}
	return out, nil
}
