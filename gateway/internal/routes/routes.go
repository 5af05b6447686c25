// Package routes holds the REST routes of the gateway, one file per service
// area. Each area exposes a Mount function the gateway calls once; handlers
// stay thin: decode, take tenant and principal from ctx, call the service
// over NATS (natsreq.Call), write the reply or the problem.
package routes

import (
	"log/slog"

	"github.com/nats-io/nats.go"
)

// Deps is what route handlers need.
type Deps struct {
	NC  *nats.Conn
	Log *slog.Logger
}
