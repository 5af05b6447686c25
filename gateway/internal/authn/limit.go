package authn

import (
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/httprate"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
)

type limiterKey struct{}

// LimitAuth rate-limits the routes it wraps per client IP: at most
// Config.AuthRateLimit requests a minute (a sliding window) across all the
// routes that use it, answering 429 problem+json with Retry-After beyond.
// The client IP is reqctx.RequestInfo.ClientIP, which believes
// X-Forwarded-For only from trusted proxies; IPv6 clients are counted per
// /64. Auth routes that take a secret from an anonymous caller (login,
// register, refresh, MFA verification, SSO and LDAP logins, invitation
// acceptance) use it:
//
//	api.With(authn.LimitAuth).Post("/auth/login", login)
//
// The limiter is the gateway's, handed over in the request context by
// Authenticator.Middleware, so the counts are per gateway replica. Outside
// that middleware (a route package's unit test on a bare router) there is
// no limiter and requests pass.
func LimitAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, _ := r.Context().Value(limiterKey{}).(*httprate.RateLimiter)
		if l != nil {
			key, _ := clientIPKey(r)
			if l.RespondOnLimit(w, r, key) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func newAuthLimiter(limit int, window time.Duration) *httprate.RateLimiter {
	retryAfter := int(window / time.Second)
	return httprate.NewRateLimiter(limit, window,
		httprate.WithKeyFuncs(clientIPKey),
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			httpapi.Error(w, r, &events.Error{Code: events.CodeRateLimited,
				Message: "too many authentication requests from your address; try again later", RetryAfter: retryAfter})
		}),
		httprate.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			httpapi.Error(w, r, fmt.Errorf("authn: rate limiter: %w", err))
		}),
	)
}

func clientIPKey(r *http.Request) (string, error) {
	info, _ := reqctx.RequestInfoFrom(r.Context())
	return httprate.CanonicalizeIP(info.ClientIP), nil
}
