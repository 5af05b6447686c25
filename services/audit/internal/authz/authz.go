// Package authz is how every audit operation decides who may call it: the
// org comes from the request context (the gateway's headers), never from a
// body, and the caller's role is checked against the one permission matrix
// as the gateway does.
package authz

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
)

// Org returns the request's org after checking the caller's role holds p.
// A request without a role (a service calling another) is trusted: only
// the gateway and services may publish on svc.>.
func Org(ctx context.Context, p events.Permission) (string, error) {
	info := reqctx.From(ctx)
	if !events.ValidToken(info.OrgID) {
		return "", events.Invalid("the request names no organisation")
	}
	if info.Role != "" && !events.Allowed(events.Role(info.Role), p) {
		return "", events.Errorf(events.CodeForbidden, "your role %q may not %s", info.Role, p)
	}
	return info.OrgID, nil
}

// ID checks an id named by a request: an id that could not be one of ours
// (not a subject token) is simply not found, like another org's.
func ID(id, what string) error {
	if !events.ValidToken(id) {
		return events.NotFound("%s not found", what)
	}
	return nil
}
