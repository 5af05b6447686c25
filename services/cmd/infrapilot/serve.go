package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/services/internal/platform/app"
	"github.com/nats-io/nats.go"
)

// serve runs the host and (when gw is not nil) the gateway until ctx ends or
// one of them fails, then stops them in the documented order: HTTP first,
// then the services (consumers drain, endpoints stop, publishes are acked),
// then NATS. Postgres is closed by the caller's deferred calls afterwards.
func serve(ctx context.Context, log *slog.Logger, stdout io.Writer, host *app.Host, gw *gateway.Gateway, nc *nats.Conn, ready func() error) error {
	return serveWith(ctx, log, stdout, host, gw, nil, nc, ready)
}

// serveWith is serve with an optional operations listener (/metrics,
// /healthz) for processes that run no gateway; it stops with the HTTP side.
func serveWith(ctx context.Context, log *slog.Logger, stdout io.Writer, host *app.Host, gw *gateway.Gateway, ops *opsServer, nc *nats.Conn, ready func() error) error {
	hostCtx, stopHost := context.WithCancel(context.Background())
	defer stopHost()
	hostErr := make(chan error, 1)
	go func() { hostErr <- host.Run(hostCtx) }()

	// HTTP opens only once every service runs, so a 200 from /readyz, or
	// any API answer, never comes from a half-started process.
	select {
	case <-host.Ready():
	case err := <-hostErr:
		return err
	case <-ctx.Done():
		stopHost()
		return <-hostErr
	}
	stopHostNow := func() error {
		stopHost()
		return <-hostErr
	}
	if ops != nil {
		if err := ops.start(); err != nil {
			return errors.Join(err, stopHostNow())
		}
	}
	gwCtx, stopGW := context.WithCancel(context.Background())
	defer stopGW()
	gwErr := make(chan error, 1)
	if gw != nil {
		if err := gw.Listen(ctx); err != nil {
			return errors.Join(err, stopHostNow())
		}
	}
	// ready runs while the listener is bound but not yet served (bootstrap
	// of the first admin, the banner): clients connecting now wait instead
	// of seeing a half-initialised system.
	err := ready()
	if gw != nil {
		go func() { gwErr <- gw.Run(gwCtx) }()
	}
	hostDone, gwDone := false, gw == nil
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-hostErr:
			hostDone = true
		case err = <-gwErr:
			gwDone = true
		}
	}
	if err != nil {
		log.Error("stopping after a failure", "err", err)
	}
	fmt.Fprintln(stdout, "stopping…")

	// Order: HTTP, then the services (consumers drain, endpoints stop,
	// publishes are acked), then NATS; Postgres closes in the caller.
	if ops != nil {
		ops.stop(log)
	}
	stopGW()
	if !gwDone {
		if e := <-gwErr; e != nil && err == nil {
			err = e
		}
	}
	stopHost()
	if !hostDone {
		if e := <-hostErr; e != nil && err == nil {
			err = e
		}
	}
	if ferr := nc.Flush(); ferr != nil {
		log.Warn("nats flush", "err", ferr)
	}
	nc.Close()
	return err
}
