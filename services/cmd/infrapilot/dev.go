package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/infrapilot/infrapilot/services/internal/platform/config"
	"github.com/infrapilot/infrapilot/services/internal/platform/devch"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/infrapilot/infrapilot/services/internal/platform/natsx"
	"github.com/infrapilot/infrapilot/services/internal/platform/obs"
	"github.com/infrapilot/infrapilot/services/internal/platform/pg/devpg"
)

type devFlags struct {
	dataDir       string
	http          string
	natsPort      int
	leafPort      int
	pgPort        int
	clickhouseURL string
	noClickHouse  bool
	agentNATSURL  string
	adminEmail    string
	adminPassword string
	logLevel      string
	services      serviceConfig
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var f devFlags
	fs := flag.NewFlagSet("infrapilot dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dataDir, "data-dir", "./.infrapilot", "directory for all state (NATS store, Postgres data); reused across restarts")
	fs.StringVar(&f.http, "http", "127.0.0.1:8080", "address of the REST gateway")
	fs.IntVar(&f.natsPort, "nats-port", 4222, "NATS client port on 127.0.0.1 (0 picks a free one)")
	fs.IntVar(&f.leafPort, "leaf-port", 7422, "NATS leafnode port on 127.0.0.1 that agents dial (-1 picks a free one)")
	fs.IntVar(&f.pgPort, "pg-port", 5433, "port of the private Postgres on 127.0.0.1 (0 picks a free one)")
	fs.StringVar(&f.clickhouseURL, "clickhouse-url", "", "ClickHouse native URL (clickhouse://host:9000): the log store and the audit analytics projection; empty: a private ClickHouse when clickhouse-server is installed, else logs in Postgres and no audit projection")
	fs.BoolVar(&f.noClickHouse, "no-clickhouse", false, "do not start the private ClickHouse even when clickhouse-server is installed: logs in Postgres, no audit projection")
	fs.StringVar(&f.agentNATSURL, "agent-nats-url", "", "leafnode URL enrolled agents dial (empty: nats-leaf://127.0.0.1:<leaf-port>, for agents on this machine)")
	fs.StringVar(&f.adminEmail, "admin-email", "admin@infrapilot.local", "e-mail of the first admin, created on the first start of a data dir")
	fs.StringVar(&f.adminPassword, "admin-password", "", "password of the first admin (empty: generated and printed once)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	addServiceFlags(fs, &f.services)
	fs.Usage = config.Usage(fs, `Usage: infrapilot dev [flags]

Runs all of InfraPilot in one process: an embedded NATS server with JetStream
(file store in the data dir) in operator mode (agents get credentials scoped
to themselves at enrollment), a private PostgreSQL started and stopped with
it (trust auth on loopback: for development only), a private ClickHouse the
same way when clickhouse-server is installed (no password, loopback only;
--no-clickhouse or --clickhouse-url to opt out), every service, and the
gateway. Ctrl-C stops everything; a restart on the same data dir keeps all state.`)
	if err := config.Parse(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "infrapilot dev takes no arguments, got %q\n", fs.Args())
		return errUsage
	}
	level, err := obs.ParseLevel(f.logLevel)
	if err != nil {
		return err
	}
	log := obs.NewLogger(stderr, level, "dev")
	reg := obs.NewRegistry()

	dataDir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// Searchable but not listable by others: when started as root the
	// private Postgres runs as the postgres user and must reach its
	// subdirectory; the NATS store stays private (0700).
	if err := os.Chmod(dataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if f.natsPort == 0 {
		if f.natsPort, err = natsx.FreePort("127.0.0.1"); err != nil {
			return err
		}
	}
	if f.pgPort == 0 {
		if f.pgPort, err = natsx.FreePort("127.0.0.1"); err != nil {
			return err
		}
	}

	start := time.Now()
	fmt.Fprintf(stdout, "infrapilot %s — data in %s\n", version, dataDir)
	fmt.Fprintln(stdout, "starting NATS…")
	sh, err := startSecuredHub(ctx, dataDir,
		natsx.HubConfig{Host: "127.0.0.1", Port: f.natsPort, LeafPort: f.leafPort, StoreDir: filepath.Join(dataDir, "nats")},
		func(h *natsx.Hub) string {
			if f.agentNATSURL != "" {
				return f.agentNATSURL
			}
			return fmt.Sprintf("nats-leaf://127.0.0.1:%d", h.LeafPort())
		}, "infrapilot-dev", log)
	if err != nil {
		return err
	}
	defer sh.Close()
	hub, nc := sh.hub, sh.nc

	fmt.Fprintln(stdout, "starting Postgres…")
	pgsrv, err := devpg.Start(ctx, devpg.Config{DataDir: filepath.Join(dataDir, "postgres"), Port: f.pgPort, Log: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgsrv.Stop(sctx); err != nil {
			log.Error("stopping postgres", "err", err)
		}
	}()

	if f.clickhouseURL == "" && !f.noClickHouse {
		if bin, ok := devch.Find(); ok {
			fmt.Fprintln(stdout, "starting ClickHouse…")
			chsrv, err := devch.Start(ctx, devch.Config{DataDir: filepath.Join(dataDir, "clickhouse"), Binary: bin, Log: log})
			if err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := chsrv.Stop(sctx); err != nil {
					log.Error("stopping clickhouse", "err", err)
				}
			}()
			f.clickhouseURL = chsrv.URL()
		}
	}

	js, err := natsx.JetStream(nc)
	if err != nil {
		return err
	}

	sc := f.withClickHouse()
	if sh.issuer != nil {
		sc.agentCreds = sh.issuer
	}
	siemCreds, err := natsauth.NewSIEMIssuer(sh.keys, sh.revoker, hub.ClientURL())
	if err != nil {
		return err
	}
	sc.siemCreds = siemCreds
	mods, err := modulesWith(sc)
	if err != nil {
		return err
	}
	host, err := app.New(app.Config{Instance: "dev", Version: version, PostgresURL: pgsrv.URL(), Topology: events.DefaultTopology()},
		nc, js, log, reg, mods)
	if err != nil {
		return err
	}
	defer host.Close()
	gw, err := gateway.New(gateway.Config{Addr: f.http, RequiredServices: names(mods), Version: version, AuthRateLimit: f.services.authRateLimit},
		gateway.Deps{NC: nc, Log: log.With("component", "gateway"), Registry: reg})
	if err != nil {
		return err
	}
	return serve(ctx, log, stdout, host, gw, nc, func() error {
		fmt.Fprintf(stdout, "\nInfraPilot is running (started in %s)\n", time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(stdout, "  API        http://%s/api/v1   (ready: http://%s/readyz)\n", gw.Addr(), gw.Addr())
		fmt.Fprintf(stdout, "  NATS       %s\n", hub.ClientURL())
		if hub.LeafPort() > 0 {
			fmt.Fprintf(stdout, "  leafnodes  nats-leaf://127.0.0.1:%d (agents dial this)\n", hub.LeafPort())
		}
		fmt.Fprintf(stdout, "  Postgres   %s\n", pgsrv.URL())
		if f.clickhouseURL != "" {
			fmt.Fprintf(stdout, "  ClickHouse %s\n", f.clickhouseURL)
		}
		creds, err := sh.keys.ServiceCreds("tools")
		if err != nil {
			return err
		}
		info := devInfo{PID: os.Getpid(), StartedAt: start.UTC(), Version: version, APIURL: "http://" + gw.Addr() + "/api/v1",
			NATSURL: hub.ClientURL(), PostgresURL: pgsrv.URL(), ClickHouseURL: f.clickhouseURL, AdminEmail: f.adminEmail}
		if hub.LeafPort() > 0 {
			info.LeafURL = fmt.Sprintf("nats-leaf://127.0.0.1:%d", hub.LeafPort())
		}
		removeInfo, err := writeDevInfo(dataDir, info, creds)
		if err != nil {
			return err
		}
		context.AfterFunc(ctx, removeInfo)
		if has(mods, "auth") && has(mods, "tenancy") {
			rec, err := bootstrapAdmin(ctx, nc, dataDir, f.adminEmail, f.adminPassword, stdout)
			if err != nil {
				return err
			}
			if sh.issuer != nil {
				if err := printEnrollCommand(ctx, nc, rec, "http://"+gw.Addr(), stdout); err != nil {
					log.Warn("no enrollment command", "err", err)
				}
			}
		}
		fmt.Fprintf(stdout, "Press Ctrl-C to stop.\n")
		return nil
	})
}

// errStopped is returned by serve's goroutines when they end because the
// process is stopping, not because they failed.
var errStopped = errors.New("stopped")
