package main

import (
	"context"
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
func serve(ctx context.Context, log *slog.Logger, stdout io.Writer, host *app.Host, gw *gateway.Gateway, nc *nats.Conn, ready func()) error {
	if gw != nil {
		if err := gw.Listen(ctx); err != nil {
			return err
		}
	}
	hostCtx, stopHost := context.WithCancel(context.Background())
	defer stopHost()
	gwCtx, stopGW := context.WithCancel(context.Background())
	defer stopGW()

	hostErr := make(chan error, 1)
	go func() { hostErr <- host.Run(hostCtx) }()
	gwErr := make(chan error, 1)
	if gw != nil {
		go func() { gwErr <- gw.Run(gwCtx) }()
	}

	var err error
	hostDone, gwDone := false, gw == nil
	select {
	case <-host.Ready():
		ready()
	case err = <-hostErr:
		hostDone = true
	case err = <-gwErr:
		gwDone = true
	case <-ctx.Done():
	}
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
