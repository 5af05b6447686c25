package docker

import (
	"context"
	"errors"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"github.com/infrapilot/infrapilot/events"
)

// mapError is the one place an engine error becomes an *events.Error.
// what names the object for the message ("container web", "network x").
//
// Docker classifies its errors by HTTP status. Podman's compatible API
// answers some client mistakes with 500, whose message is all there is
// to go by: a duplicate container name ("…is already in use") and a
// container already attached to a network ("…is already connected") are
// conflicts on both engines, and so are Docker's 403 answers to the same
// mistakes.
func mapError(err error, what string) error {
	if err == nil {
		return nil
	}
	var ee *events.Error
	if errors.As(err, &ee) {
		return ee
	}
	msg := engineMessage(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &events.Error{Code: events.CodeUnavailable, Message: "container engine did not answer in time", Err: err}
	case errors.Is(err, context.Canceled):
		return &events.Error{Code: events.CodeUnavailable, Message: "request canceled", Err: err}
	case client.IsErrConnectionFailed(err):
		return &events.Error{Code: events.CodeUnavailable, Message: "container engine is not reachable", Err: err}
	case cerrdefs.IsNotFound(err):
		return &events.Error{Code: events.CodeNotFound, Message: what + " not found", Err: err}
	case cerrdefs.IsConflict(err), isPodmanConflict(msg), cerrdefs.IsPermissionDenied(err):
		return &events.Error{Code: events.CodeConflict, Message: msg, Err: err}
	case cerrdefs.IsInvalidArgument(err):
		return &events.Error{Code: events.CodeInvalid, Message: msg, Err: err}
	case cerrdefs.IsNotModified(err):
		// Starting a running container or stopping a stopped one: the
		// state the caller wants is already there.
		return nil
	case cerrdefs.IsUnavailable(err):
		return &events.Error{Code: events.CodeUnavailable, Message: msg, Err: err}
	}
	return &events.Error{Code: events.CodeInternal, Message: "container engine error", Err: err}
}

// isPodmanConflict recognises the conflicts podman reports as 500.
func isPodmanConflict(msg string) bool {
	return strings.Contains(msg, "already in use") || strings.Contains(msg, "already connected") ||
		strings.Contains(msg, "already exists")
}

// engineMessage is the engine's own message without the client's
// "Error response from daemon: " prefix.
func engineMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "Error response from daemon: ")
}
