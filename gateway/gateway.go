// Package gateway is InfraPilot's only HTTP entry: a chi router that
// answers the REST API by request-reply over NATS to the services. It
// knows only NATS and the events contract, never a service's code.
//
// New builds it without starting anything; Listen binds the address; Run
// serves until its context ends and then stops gracefully. The route areas
// listed in areas are mounted under /api/v1 by New, behind the
// authentication middleware (internal/authn); more routes may be registered
// on API() before Run.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/openapi"
	"github.com/infrapilot/infrapilot/gateway/internal/routes"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// APIPrefix is the base path of the REST API.
const APIPrefix = "/api/v1"

// JWKSPath is where the auth service's public signing keys are served.
const JWKSPath = "/.well-known/jwks.json"

// areas are the route areas New mounts on the /api/v1 router, behind the
// authentication middleware, in this order. Each registers its own routes
// (public ones included) and decides per route with authn.Require,
// authn.RequireUser and authn.LimitAuth.
//
// ROUTE AREAS: add each area's Mount function here (routes.MountAuth,
// routes.MountTenancy, …).
var areas = []func(api chi.Router, d routes.Deps){routes.MountAuth, routes.MountTenancy, routes.MountAudit, routes.MountLogs, routes.MountAgents, routes.MountProxy}

// Deps are the gateway's dependencies. The gateway does not own them: the
// caller closes (drains) NC after Run returns.
type Deps struct {
	// NC is the connection every service request goes over. Required.
	NC *nats.Conn
	// Log receives the access log and errors; nil discards.
	Log *slog.Logger
	// Registry receives the gateway's metrics and is served on /metrics;
	// nil means a fresh *prometheus.Registry. The Go and process
	// collectors are added unless already registered.
	Registry Registry
}

// Gateway is the HTTP server. Its routes must all be registered before Run.
type Gateway struct {
	cfg            Config
	nc             *nats.Conn
	log            *slog.Logger
	reg            Registry
	metrics        *httpMetrics
	authn          *authn.Authenticator
	trustedProxies []netip.Prefix
	mux            *chi.Mux
	api            chi.Router

	mu      sync.Mutex
	ln      net.Listener
	started bool
}

// New validates cfg, registers the metrics and builds the router. It starts
// nothing.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if deps.NC == nil {
		return nil, errors.New("gateway: a NATS connection is required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	metrics, err := newHTTPMetrics(deps.Registry, cfg.Version)
	if err != nil {
		return nil, err
	}
	trusted, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	cors, err := newCORS(cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	acfg := cfg.authnConfig()
	acfg.NC, acfg.Log = deps.NC, deps.Log
	auth, err := authn.New(acfg)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg: cfg, nc: deps.NC, log: deps.Log, reg: deps.Registry,
		metrics: metrics, authn: auth, trustedProxies: trusted,
	}
	g.routes(cors)
	return g, nil
}

// routes builds the middleware chain and the routes of the gateway itself.
// Order matters: the request id comes first so that everything after it,
// panics included, is logged with it; instrument wraps the rest so that
// what CORS or the body limit answer is counted and logged too.
func (g *Gateway) routes(cors *corsPolicy) {
	mux := chi.NewRouter()
	mux.Use(g.requestInfo, g.instrument)
	if cors != nil {
		mux.Use(cors.middleware)
	}
	mux.Use(g.limitBody, g.deadline)
	mux.NotFound(g.notFound)
	mux.MethodNotAllowed(g.methodNotAllowed)

	mux.Get("/healthz", g.healthz)
	mux.Get("/readyz", g.readyz)
	mux.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(g.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// The OpenAPI document and the signing keys are public documents, so
	// they sit on the root router, outside authentication.
	mux.Get(APIPrefix+"/openapi.json", openapi.Handler)
	mux.Get(JWKSPath, g.authn.JWKSHandler)

	api := chi.NewRouter()
	api.Use(g.authn.Middleware)
	d := routes.Deps{NC: g.nc, Log: g.log}
	for _, mount := range areas {
		mount(api, d)
	}
	mux.Mount(APIPrefix, api)
	g.mux, g.api = mux, api
}

// Handler is the gateway's complete HTTP handler, for tests and for
// embedding under another server.
func (g *Gateway) Handler() http.Handler { return g.mux }

// API is the router mounted at /api/v1, behind the authentication
// middleware: a request on it carries a reqctx.Principal when it presented
// valid credentials, and none otherwise (authn.Require and
// authn.RequireUser then answer why). Tests and
// callers may register more routes on it before Run (with Group or With for
// middleware: the areas have registered routes already, so Use would
// panic); the router is not safe to change while serving. Unknown paths and
// methods under it answer 404/405 problems like the root router.
func (g *Gateway) API() chi.Router { return g.api }

// Listen binds Config.Addr. Run calls it when it has not been called;
// calling it first lets a caller learn Addr (of "127.0.0.1:0", say)
// before serving.
func (g *Gateway) Listen(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen: %w", err)
	}
	g.ln = ln
	return nil
}

// Addr is the bound address ("127.0.0.1:38411"), or "" before Listen.
func (g *Gateway) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// Run serves HTTP until ctx ends, then shuts down gracefully: it stops
// accepting connections, lets in-flight requests finish for at most
// ShutdownTimeout, and then cuts off the rest. Request contexts do not
// derive from ctx, so a shutdown never cancels a request that can still
// finish in time. Run returns nil after a clean shutdown. It may be called
// once.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Listen(ctx); err != nil {
		return err
	}
	g.mu.Lock()
	if g.started {
		g.mu.Unlock()
		return errors.New("gateway: Run called twice")
	}
	g.started = true
	ln := g.ln
	g.mu.Unlock()

	srv := &http.Server{
		Handler:           g.mux,
		ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
		IdleTimeout:       g.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	g.log.InfoContext(ctx, "gateway listening", "addr", ln.Addr().String(), "version", g.cfg.Version)

	select {
	case err := <-served:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	g.log.Info("gateway shutting down", "timeout", g.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("gateway: graceful shutdown: %w", err)
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("gateway: serve: %w", serveErr))
	}
	g.log.Info("gateway stopped")
	return err
}

// Route is one registered method and path pattern.
type Route struct {
	Method  string
	Pattern string
}

// Routes lists every route the gateway serves, with chi's path patterns
// ("/api/v1/orgs/{org}/members/{user}"). Tests walk it so that a new route
// is covered by cross-cutting checks (tenant isolation) without being named.
func (g *Gateway) Routes() ([]Route, error) {
	var out []Route
	err := chi.Walk(g.mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, Route{Method: method, Pattern: strings.TrimSuffix(strings.ReplaceAll(route, "/*/", "/"), "/*")})
		return nil
	})
	return out, err
}
