package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/config"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/obs"
)

type runFlags struct {
	natsURL       string
	natsCreds     string
	natsKeys      string
	agentNATSURL  string
	siemNATSURL   string
	pgURL         string
	clickhouseURL string
	http          string
	instance      string
	replicas      int
	requireAll    string
	metricsAddr   string
	logLevel      string
	services      serviceConfig
}

func runServices(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var f runFlags
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("infrapilot run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma separated")
	fs.StringVar(&f.natsCreds, "nats-creds", "", "NATS credentials file (.creds)")
	fs.StringVar(&f.natsKeys, "nats-keys", "", "natsauth keys file (from `infrapilot nats-init`): lets tenancy issue and revoke agents' NATS credentials; needed where tenancy runs")
	fs.StringVar(&f.agentNATSURL, "agent-nats-url", "", "leafnode URL enrolled agents dial (tls://hub.example.com:7422); required with --nats-keys")
	fs.StringVar(&f.siemNATSURL, "siem-nats-url", "", "client URL SIEMs connect to with their read-only credentials (default: the first --nats-url)")
	fs.StringVar(&f.pgURL, "pg-url", "", "Postgres URL, e.g. postgres://user:pass@host:5432/infrapilot")
	fs.StringVar(&f.clickhouseURL, "clickhouse-url", "", "ClickHouse native URL (clickhouse://host:9000): the log store and the audit analytics projection; empty: logs in Postgres, no audit projection")
	fs.StringVar(&f.http, "http", "127.0.0.1:8080", "gateway address when running \"gateway\"")
	fs.StringVar(&f.instance, "instance", host, "name of this process in health replies and logs")
	fs.IntVar(&f.replicas, "stream-replicas", 1, "replicas of every stream (3 on a NATS cluster)")
	fs.StringVar(&f.requireAll, "required-services", "", "services the gateway's /readyz waits for (comma separated; default: every known service)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "address serving /metrics and /healthz when \"gateway\" is not run here (empty: off)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	addServiceFlags(fs, &f.services)
	fs.Usage = config.Usage(fs, `Usage: infrapilot run [flags] <service>... 

Runs the named services (and the REST gateway when "gateway" is named)
against an external NATS server and Postgres. Any number of processes may run
the same service: endpoints share a queue group and consumers share their
durable consumer.

Services: `+serviceNames())
	if err := config.Parse(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "infrapilot run: name at least one service")
		fs.Usage()
		return errUsage
	}
	if _, err := pick(modules(), fs.Args()); err != nil {
		return err
	}
	if f.natsKeys != "" && f.agentNATSURL == "" {
		fmt.Fprintln(stderr, "infrapilot run: --nats-keys needs --agent-nats-url (the leafnode URL agents dial)")
		return errUsage
	}
	withGateway := false
	for _, a := range fs.Args() {
		withGateway = withGateway || a == "gateway"
	}
	level, err := obs.ParseLevel(f.logLevel)
	if err != nil {
		return err
	}
	log := obs.NewLogger(stderr, level, "run").With("instance", f.instance)
	reg := obs.NewRegistry()

	nc, err := natsx.Connect(natsx.ConnConfig{URL: f.natsURL, CredsFile: f.natsCreds, Name: "infrapilot-" + f.instance}, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := natsx.JetStream(nc)
	if err != nil {
		return err
	}
	sc := f.withClickHouse()
	if f.natsKeys != "" {
		keys, err := natsauth.Load(f.natsKeys)
		if err != nil {
			return err
		}
		sys, rev, issuer, err := issuers(ctx, keys, nc, f.natsURL, "infrapilot-"+f.instance, f.replicas, f.agentNATSURL, log)
		if err != nil {
			return err
		}
		defer sys.Close()
		sc.agentCreds = issuer
		siemURL := f.siemNATSURL
		if siemURL == "" {
			siemURL = strings.Split(f.natsURL, ",")[0]
		}
		if sc.siemCreds, err = natsauth.NewSIEMIssuer(keys, rev, siemURL); err != nil {
			return err
		}
	}
	all, err := modulesWith(sc)
	if err != nil {
		return err
	}
	mods, err := pick(all, fs.Args())
	if err != nil {
		return err
	}
	topo := events.DefaultTopology()
	topo.Replicas = f.replicas
	h, err := app.New(app.Config{Instance: f.instance, Version: version, PostgresURL: f.pgURL, Topology: topo}, nc, js, log, reg, mods)
	if err != nil {
		return err
	}
	defer h.Close()
	var gw *gateway.Gateway
	if withGateway {
		required := names(modules())
		if f.requireAll != "" {
			required = strings.Split(f.requireAll, ",")
		}
		gw, err = gateway.New(gateway.Config{Addr: f.http, RequiredServices: required, Version: version, AuthRateLimit: f.services.authRateLimit},
			gateway.Deps{NC: nc, Log: log.With("component", "gateway"), Registry: reg})
		if err != nil {
			return err
		}
	}
	var ops *opsServer
	if f.metricsAddr != "" && gw == nil {
		ops = newOpsServer(f.metricsAddr, reg)
	}
	start := time.Now()
	return serveWith(ctx, log, stdout, h, gw, ops, nc, func() error {
		log.Info("running", "services", strings.Join(fs.Args(), ","), "startup", time.Since(start).String())
		return nil
	})
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("infrapilot migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pgURL := fs.String("pg-url", "", "Postgres URL (required)")
	fs.Usage = config.Usage(fs, `Usage: infrapilot migrate --pg-url URL [service...]

Applies the embedded database migrations of the named services (default:
all), each in its own schema. Safe to run while services are running and from
several processes at once.`)
	if err := config.Parse(fs, args, getenv); err != nil {
		return err
	}
	if *pgURL == "" {
		fmt.Fprintln(stderr, "infrapilot migrate: --pg-url (or INFRAPILOT_PG_URL) is required")
		return errUsage
	}
	mods := modules()
	if fs.NArg() > 0 {
		var err error
		if mods, err = pick(mods, fs.Args()); err != nil {
			return err
		}
	}
	log := obs.NewLogger(stderr, 0, "migrate")
	applied, err := app.Migrate(ctx, *pgURL, log, mods)
	for _, m := range mods {
		if n, ok := applied[m.Name]; ok {
			fmt.Fprintf(stdout, "%-10s %d migration(s) applied\n", m.Name, n)
		}
	}
	if err == nil && len(applied) == 0 {
		fmt.Fprintln(stdout, "no service has migrations")
	}
	return err
}
