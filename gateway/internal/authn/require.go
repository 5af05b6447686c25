// Package authn authenticates REST callers (bearer JWT or API key), resolves
// the organisation a request acts in, and authorises each route against the
// one permission matrix in events.
package authn

import (
	"net/http"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
)

// Require lets a request through only when its caller is authenticated,
// acts in an organisation, and holds permission p there: without a caller
// it answers why (401, or the 404, 400 or 503 of Middleware), and 403 when
// the caller acts in no org or its role lacks p. The org was checked by the
// Middleware already: a caller never reaches here with an org it is not a
// member of.
func Require(p events.Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pr, ok := reqctx.PrincipalFrom(r.Context())
			if !ok || pr.ID == "" {
				unauthenticated(w, r)
				return
			}
			if pr.OrgID == "" {
				httpapi.Error(w, r, events.Errorf(events.CodeForbidden, "no organisation: name one with X-Org-ID"))
				return
			}
			if !events.Allowed(events.Role(pr.Role), p) {
				httpapi.Error(w, r, events.Errorf(events.CodeForbidden, "your role %q may not %s", pr.Role, p))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireUser lets a request through when its caller is an authenticated
// user, whether or not it acts in an organisation (for example GET
// /auth/me, GET and POST /orgs). Without a caller it answers like Require;
// API keys are refused with 403: they act for one org only.
func RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, ok := reqctx.PrincipalFrom(r.Context())
		if !ok || pr.ID == "" {
			unauthenticated(w, r)
			return
		}
		if pr.Kind != events.ActorUser {
			httpapi.Error(w, r, events.Errorf(events.CodeForbidden, "this route needs a user's token, not an API key"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
