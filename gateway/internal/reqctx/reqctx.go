// Package reqctx carries what the gateway knows about an HTTP request in its
// context: the request identity (RequestInfo, set by the gateway's own
// middleware) and the authenticated caller (Principal, set by the auth
// middleware). The NATS request helper copies both into the Ip-* headers of
// every service request, so services see the same ids and actor as the
// gateway's access log.
package reqctx

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
)

// RequestInfo identifies one HTTP request. It is filled in before any
// handler runs and never changes afterwards.
type RequestInfo struct {
	// RequestID is the X-Request-Id echoed to the client and logged.
	RequestID string
	// CorrelationID ties together everything the request causes (service
	// calls, events); it starts out equal to RequestID.
	CorrelationID string
	// ClientIP is the caller's address, taken from X-Forwarded-For only when
	// the direct peer is a trusted proxy.
	ClientIP string
	// UserAgent is the caller's User-Agent header.
	UserAgent string
}

// Principal is the authenticated caller of a request. The zero value is an
// anonymous caller; no Ip-Actor-*, Ip-Org-Id or Ip-Role header is sent for
// it.
type Principal struct {
	// OrgID is the organisation the request acts in (X-Org-ID or the
	// caller's default org), already checked against the caller's
	// memberships by the auth middleware.
	OrgID string
	// Kind is user, api_key or agent.
	Kind events.ActorKind
	// ID is the user, API key or agent id.
	ID string
	// Role is the caller's role in OrgID (owner, admin, operator, viewer).
	Role string
}

type (
	requestInfoKey struct{}
	principalKey   struct{}
)

// WithRequestInfo returns ctx carrying info.
func WithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// RequestInfoFrom returns the RequestInfo of ctx; ok is false outside an HTTP
// request (for example in a background job).
func RequestInfoFrom(ctx context.Context) (info RequestInfo, ok bool) {
	info, ok = ctx.Value(requestInfoKey{}).(RequestInfo)
	return info, ok
}

// RequestID is RequestInfoFrom(ctx).RequestID, or "" outside a request.
func RequestID(ctx context.Context) string {
	info, _ := RequestInfoFrom(ctx)
	return info.RequestID
}

// WithPrincipal returns ctx carrying the authenticated caller p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the authenticated caller of ctx; ok is false for an
// anonymous request.
func PrincipalFrom(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}
