// Command infrapilot-gateway runs the InfraPilot gateway on its own: the
// HTTP API in front of services reached over NATS. Every flag has an
// environment variable; a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// drainTimeout bounds the NATS drain after HTTP has stopped.
const drainTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "infrapilot-gateway:", err)
		stop()
		os.Exit(1)
	}
}

// options are the command line, after environment defaults.
type options struct {
	http, natsURL, natsCreds, services, corsOrigins, trustedProxies, logLevel string

	authRateLimit                              int
	jwksRefresh, apiKeyCacheTTL, membershipTTL time.Duration
}

// envDefaults reads flag defaults from the environment. A value that does
// not parse is remembered per flag: it is an error only when the command
// line does not replace it.
type envDefaults struct {
	getenv func(string) string
	errs   map[string]error // by flag name
}

func (e *envDefaults) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envDefaults) int(flagName, name string, def int) int {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs[flagName] = fmt.Errorf("%s=%q is not an integer", name, v)
		return def
	}
	return n
}

func (e *envDefaults) duration(flagName, name string, def time.Duration) time.Duration {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs[flagName] = fmt.Errorf("%s=%q is not a duration", name, v)
		return def
	}
	return d
}

// check returns the errors of the environment values fs's command line did
// not replace.
func (e *envDefaults) check(fs *flag.FlagSet) error {
	fs.Visit(func(f *flag.Flag) { delete(e.errs, f.Name) })
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(e.errs)) {
		errs = append(errs, e.errs[name])
	}
	return errors.Join(errs...)
}

func parseFlags(args []string, getenv func(string) string, out io.Writer) (options, error) {
	e := &envDefaults{getenv: getenv, errs: map[string]error{}}
	env := e.str
	var o options
	fs := flag.NewFlagSet("infrapilot-gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.http, "http", env("INFRAPILOT_HTTP", gateway.DefaultAddr), "HTTP listen address (INFRAPILOT_HTTP)")
	fs.StringVar(&o.natsURL, "nats-url", env("INFRAPILOT_NATS_URL", nats.DefaultURL), "NATS server URL(s), comma separated (INFRAPILOT_NATS_URL)")
	fs.StringVar(&o.natsCreds, "nats-creds", env("INFRAPILOT_NATS_CREDS", ""), "NATS credentials file (INFRAPILOT_NATS_CREDS)")
	fs.StringVar(&o.services, "services", env("INFRAPILOT_SERVICES", strings.Join(events.Services, ",")),
		"services /readyz requires, comma separated; empty for none (INFRAPILOT_SERVICES)")
	fs.StringVar(&o.corsOrigins, "cors-origins", env("INFRAPILOT_CORS_ORIGINS", ""), "allowed browser origins, comma separated, or * (INFRAPILOT_CORS_ORIGINS)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", env("INFRAPILOT_TRUSTED_PROXIES", ""),
		"IPs or CIDRs of proxies whose X-Forwarded-For is trusted, comma separated (INFRAPILOT_TRUSTED_PROXIES)")
	fs.IntVar(&o.authRateLimit, "auth-rate-limit", e.int("auth-rate-limit", "INFRAPILOT_AUTH_RATE_LIMIT", gateway.DefaultAuthRateLimit),
		"requests a minute one client IP may send to login, register, refresh and the other auth routes; negative for no limit (INFRAPILOT_AUTH_RATE_LIMIT)")
	fs.DurationVar(&o.jwksRefresh, "jwks-refresh", e.duration("jwks-refresh", "INFRAPILOT_JWKS_REFRESH", gateway.DefaultJWKSRefresh),
		"how often the auth service's signing keys are refetched: a withdrawn key verifies for at most this long (INFRAPILOT_JWKS_REFRESH)")
	fs.DurationVar(&o.apiKeyCacheTTL, "apikey-cache-ttl", e.duration("apikey-cache-ttl", "INFRAPILOT_APIKEY_CACHE_TTL", gateway.DefaultAPIKeyCacheTTL),
		"how long a verified API key is remembered, at most 5s: a revoked key works for at most this long; negative for no cache (INFRAPILOT_APIKEY_CACHE_TTL)")
	fs.DurationVar(&o.membershipTTL, "membership-cache-ttl", e.duration("membership-cache-ttl", "INFRAPILOT_MEMBERSHIP_CACHE_TTL", gateway.DefaultMembershipCacheTTL),
		"how long an org membership is remembered, at most 2s; negative for no cache (INFRAPILOT_MEMBERSHIP_CACHE_TTL)")
	fs.StringVar(&o.logLevel, "log-level", env("INFRAPILOT_LOG_LEVEL", "info"), "debug, info, warn or error (INFRAPILOT_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: infrapilot-gateway [flags]\n\nRuns the InfraPilot HTTP gateway (version %s).\n\nFlags:\n", version)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := e.check(fs); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return o, nil
}

func list(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// run wires the gateway and serves until ctx ends. Shutdown order: HTTP
// stops accepting and finishes in-flight requests (gateway.Run), then the
// NATS connection drains.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := gateway.Config{
		Addr:             o.http,
		RequiredServices: list(o.services),
		CORSOrigins:      list(o.corsOrigins),
		TrustedProxies:   list(o.trustedProxies),
		Version:          version,

		AuthRateLimit:      o.authRateLimit,
		JWKSRefresh:        o.jwksRefresh,
		APIKeyCacheTTL:     o.apiKeyCacheTTL,
		MembershipCacheTTL: o.membershipTTL,
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	nc, closed, err := connect(o, log)
	if err != nil {
		return err
	}
	defer nc.Close()

	reg := prometheus.NewRegistry()
	gw, err := gateway.New(cfg, gateway.Deps{NC: nc, Log: log, Registry: reg})
	if err != nil {
		return err
	}
	runErr := gw.Run(ctx)

	// Drain lets replies to requests already sent arrive; a connection that
	// is not up (still retrying) has nothing to drain and is just closed.
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", "err", err)
		nc.Close()
	}
	select {
	case <-closed:
	case <-time.After(drainTimeout + time.Second):
		log.Warn("nats drain timed out")
	}
	return runErr
}

// connect dials NATS. It keeps retrying in the background when the server
// is not up yet, so the gateway starts anyway and /readyz reports NATS as
// unavailable until it is. The creds file's secrets are never logged.
func connect(o options, log *slog.Logger) (*nats.Conn, <-chan struct{}, error) {
	closed := make(chan struct{})
	opts := []nats.Option{
		nats.Name("infrapilot-gateway"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DrainTimeout(drainTimeout),
		nats.ConnectHandler(func(c *nats.Conn) { log.Info("nats connected", "url", c.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	if o.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(o.natsCreds))
	}
	nc, err := nats.Connect(o.natsURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats connect: %w", err)
	}
	return nc, closed, nil
}
