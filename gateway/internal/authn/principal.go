package authn

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
)

// identityTimeout bounds each identity call of the middleware, within the
// request's own deadline: a hung service costs a caller seconds, not the
// whole request timeout.
const identityTimeout = 5 * time.Second

// identityCall calls op of service. The identity operations are called
// before the caller is known, so they carry the request's ids but no
// Ip-Actor-*, Ip-Org-Id or Ip-Role header.
func identityCall[Req, Resp any](ctx context.Context, nc *nats.Conn, service, op string, req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	return natsreq.Call[Req, Resp](ctx, nc, events.ServiceEndpoint(service, op), req)
}

// membershipKey names one user's membership of one org in the cache.
type membershipKey struct{ org, user string }

// orgNotFound is the answer for an org the caller may not see: the same
// 404 as for an org that does not exist, so membership cannot be probed.
func orgNotFound() error { return events.NotFound("organisation not found") }

// userPrincipal resolves the org a verified user acts in: the one X-Org-ID
// names, if the user is a member (else 404), or the user's default org, or
// none (the principal then has no OrgID and Require answers 403).
func (a *Authenticator) userPrincipal(ctx context.Context, userID, org string) (reqctx.Principal, error) {
	p := reqctx.Principal{Kind: events.ActorUser, ID: userID}
	if org == "" {
		m, err := a.defaultOrg(ctx, userID)
		if err != nil {
			return reqctx.Principal{}, err
		}
		p.OrgID, p.Role = m.OrgID, string(m.Role)
		return p, nil
	}
	role, err := a.membership(ctx, org, userID)
	if err != nil {
		return reqctx.Principal{}, err
	}
	p.OrgID, p.Role = org, string(role)
	return p, nil
}

// membership returns user's role in org, or the 404 of orgNotFound. Only
// answers that a membership exists are cached (for MembershipTTL): a
// removal or a role change takes effect at this replica within it.
func (a *Authenticator) membership(ctx context.Context, org, user string) (events.Role, error) {
	key := membershipKey{org: org, user: user}
	if role, ok := a.members.get(key); ok {
		return role, nil
	}
	reply, err := identityCall[events.MembershipRequest, events.MembershipReply](ctx, a.nc,
		serviceTenancy, events.OpTenancyMembership, events.MembershipRequest{OrgID: org, UserID: user})
	if err != nil {
		if events.ErrorCode(err) == events.CodeNotFound {
			return "", orgNotFound()
		}
		return "", dependencyError(serviceTenancy, err)
	}
	if (reply.OrgID != "" && reply.OrgID != org) || !reply.Role.Valid() {
		return "", malformedReply(serviceTenancy, events.OpTenancyMembership)
	}
	a.members.put(key, reply.Role)
	return reply.Role, nil
}

// defaultOrg returns the org user acts in when a request names none; a
// zero reply when the user belongs to no org. "No org" is not cached, so
// an org the user has just created is used by their very next request.
func (a *Authenticator) defaultOrg(ctx context.Context, user string) (events.MembershipReply, error) {
	if m, ok := a.defOrgs.get(user); ok {
		return m, nil
	}
	reply, err := identityCall[events.DefaultOrgRequest, events.MembershipReply](ctx, a.nc,
		serviceTenancy, events.OpTenancyDefaultOrg, events.DefaultOrgRequest{UserID: user})
	switch {
	case events.ErrorCode(err) == events.CodeNotFound:
		return events.MembershipReply{}, nil
	case err != nil:
		return events.MembershipReply{}, dependencyError(serviceTenancy, err)
	case reply.OrgID == "":
		return events.MembershipReply{}, nil
	case !events.ValidToken(reply.OrgID) || reply.OrgID == events.PlatformOrg || !reply.Role.Valid():
		return events.MembershipReply{}, malformedReply(serviceTenancy, events.OpTenancyDefaultOrg)
	}
	a.defOrgs.put(user, reply)
	return reply, nil
}

// apiKeyPrincipal resolves an API key. The key's org is fixed: an X-Org-ID
// naming another org answers 404 like any resource of another org. The key
// acts with its own role, lowered to its creator's current role in the org,
// and stops working as soon as its creator is no longer a member (a removed
// admin's keys die with the membership, even before they are revoked).
//
// Only positive answers are cached, for APIKeyCacheTTL, under the key's
// SHA-256 (the key itself is never kept): a revoked key keeps working at
// this replica for at most that long.
func (a *Authenticator) apiKeyPrincipal(ctx context.Context, key, org string) (reqctx.Principal, error) {
	if !wellFormedAPIKey(key) {
		return reqctx.Principal{}, rejected("malformed api key")
	}
	sum := sha256.Sum256([]byte(key))
	rp, ok := a.apiKeys.get(sum)
	if !ok {
		var err error
		rp, err = identityCall[events.VerifyAPIKeyRequest, events.ResolvedPrincipal](ctx, a.nc,
			serviceAuth, events.OpAuthVerifyAPIKey, events.VerifyAPIKeyRequest{Key: key})
		if err != nil {
			switch code := events.ErrorCode(err); code {
			case events.CodeUnauthorized, events.CodeNotFound, events.CodeInvalid, events.CodeForbidden:
				return reqctx.Principal{}, rejected("auth service refused the api key: %s", code)
			}
			return reqctx.Principal{}, dependencyError(serviceAuth, err)
		}
		if rp.Kind != events.ActorAPIKey || !events.ValidToken(rp.ID) || !events.ValidToken(rp.OrgID) ||
			rp.OrgID == events.PlatformOrg || !rp.Role.Valid() || (rp.UserID != "" && !events.ValidToken(rp.UserID)) {
			return reqctx.Principal{}, malformedReply(serviceAuth, events.OpAuthVerifyAPIKey)
		}
		a.apiKeys.put(sum, rp)
	}
	if org != "" && org != rp.OrgID {
		return reqctx.Principal{}, orgNotFound()
	}
	role := rp.Role
	if rp.UserID != "" {
		member, err := a.membership(ctx, rp.OrgID, rp.UserID)
		if events.ErrorCode(err) == events.CodeNotFound {
			return reqctx.Principal{}, rejected("the api key's creator is no longer a member of its org")
		}
		if err != nil {
			return reqctx.Principal{}, err
		}
		if !member.AtLeast(role) {
			role = member
		}
	}
	return reqctx.Principal{OrgID: rp.OrgID, Kind: events.ActorAPIKey, ID: rp.ID, Role: string(role)}, nil
}

// dependencyError passes on what an identity service's outage or
// throttling means for the caller (503 or 504, 429, 500) and makes any
// other failure internal: the caller's credentials are not at fault, and
// the service's message is not for them.
func dependencyError(service string, err error) error {
	switch events.ErrorCode(err) {
	case events.CodeUnavailable, events.CodeRateLimited, events.CodeInternal:
		return err
	}
	return &events.Error{Code: events.CodeInternal, Message: "internal error",
		Err: fmt.Errorf("authn: %s answered unexpectedly: %w", service, err)}
}

func malformedReply(service, op string) error {
	return &events.Error{Code: events.CodeInternal, Message: "internal error",
		Err: fmt.Errorf("authn: malformed %s reply from %s", op, service)}
}
