package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/httprate"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/nats-io/nats.go"
)

// The services the middleware asks on every authenticated request.
const (
	serviceAuth    = "auth"
	serviceTenancy = "tenancy"
)

// HeaderOrgID names the organisation a request acts in.
const HeaderOrgID = "X-Org-ID"

// Defaults and bounds of Config. The caches are short on purpose: they
// bound how long a revoked API key, a removed member or a lowered role keeps
// working at one gateway replica.
const (
	DefaultLeeway          = 10 * time.Second
	MaxLeeway              = 30 * time.Second
	DefaultJWKSRefresh     = time.Minute
	DefaultJWKSMinInterval = 5 * time.Second
	DefaultJWKSMaxStale    = 15 * time.Minute
	DefaultAPIKeyCacheTTL  = 5 * time.Second
	MaxAPIKeyCacheTTL      = 5 * time.Second
	DefaultMembershipTTL   = 2 * time.Second
	MaxMembershipTTL       = 2 * time.Second
	DefaultAuthRateLimit   = 20 // requests per minute per client IP
)

// Config configures an Authenticator. A zero field takes its default; a
// negative cache TTL turns that cache off, a negative AuthRateLimit turns
// the auth-route limiter off.
type Config struct {
	// NC is the connection to the auth and tenancy services. Required.
	NC *nats.Conn
	// Log receives rejected-credential reasons (debug) and JWKS problems
	// (warn). Credentials themselves are never logged. nil discards.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on exp, nbf and iat (at most
	// MaxLeeway).
	Leeway time.Duration
	// JWKSRefresh is how old the cached signing keys may grow before the
	// next request refreshes them; it bounds how long a key the auth
	// service withdrew keeps verifying.
	JWKSRefresh time.Duration
	// JWKSMinInterval is the least time between two JWKS fetches. A token
	// with an unknown kid triggers a fetch only when the last one is older,
	// so a flood of forged kids costs the auth service at most one request
	// per interval.
	JWKSMinInterval time.Duration
	// JWKSMaxStale is how long the last fetched keys stay in use while the
	// auth service cannot be reached; after it JWT requests answer 503.
	JWKSMaxStale time.Duration
	// APIKeyCacheTTL is how long a verified API key is remembered (at most
	// MaxAPIKeyCacheTTL): the bound on how long a revoked key keeps working.
	APIKeyCacheTTL time.Duration
	// MembershipTTL is how long a membership or default-org answer is
	// remembered (at most MaxMembershipTTL).
	MembershipTTL time.Duration
	// AuthRateLimit is the number of requests per minute and client IP
	// that LimitAuth lets through.
	AuthRateLimit int
}

func (c Config) withDefaults() Config {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&c.Leeway, DefaultLeeway)
	set(&c.JWKSRefresh, DefaultJWKSRefresh)
	set(&c.JWKSMinInterval, DefaultJWKSMinInterval)
	set(&c.JWKSMaxStale, DefaultJWKSMaxStale)
	set(&c.APIKeyCacheTTL, DefaultAPIKeyCacheTTL)
	set(&c.MembershipTTL, DefaultMembershipTTL)
	if c.AuthRateLimit == 0 {
		c.AuthRateLimit = DefaultAuthRateLimit
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("jwt leeway %s is not within 0..%s", c.Leeway, MaxLeeway))
	}
	if c.APIKeyCacheTTL > MaxAPIKeyCacheTTL {
		errs = append(errs, fmt.Errorf("api key cache ttl %s exceeds %s", c.APIKeyCacheTTL, MaxAPIKeyCacheTTL))
	}
	if c.MembershipTTL > MaxMembershipTTL {
		errs = append(errs, fmt.Errorf("membership cache ttl %s exceeds %s", c.MembershipTTL, MaxMembershipTTL))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"jwks refresh", c.JWKSRefresh}, {"jwks min interval", c.JWKSMinInterval}, {"jwks max stale", c.JWKSMaxStale}} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.d))
		}
	}
	return errors.Join(errs...)
}

// Authenticator is the authentication middleware of /api/v1 and the JWKS
// endpoint. It is safe for concurrent use and starts no goroutine: the
// signing keys and caches are refreshed by the requests that need them.
type Authenticator struct {
	nc      *nats.Conn
	log     *slog.Logger
	keys    *keySet
	verify  jwtVerifier
	apiKeys *ttlCache[[32]byte, events.ResolvedPrincipal]
	members *ttlCache[membershipKey, events.Role]
	defOrgs *ttlCache[string, events.MembershipReply]
	limiter *httprate.RateLimiter
}

// New checks cfg and builds an Authenticator. It contacts nothing: the
// first authenticated request loads the signing keys.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("authn: invalid config: %w", err)
	}
	if cfg.NC == nil {
		return nil, errors.New("authn: a NATS connection is required")
	}
	cfg = cfg.withDefaults()
	a := &Authenticator{nc: cfg.NC, log: cfg.Log}
	a.keys = newKeySet(cfg.NC, cfg.Log, cfg.Now, cfg.JWKSRefresh, cfg.JWKSMinInterval, cfg.JWKSMaxStale)
	a.verify = newJWTVerifier(a.keys, cfg.Now, cfg.Leeway)
	a.apiKeys = newTTLCache[[32]byte, events.ResolvedPrincipal](cfg.APIKeyCacheTTL, cfg.Now)
	a.members = newTTLCache[membershipKey, events.Role](cfg.MembershipTTL, cfg.Now)
	a.defOrgs = newTTLCache[string, events.MembershipReply](cfg.MembershipTTL, cfg.Now)
	if cfg.AuthRateLimit > 0 {
		a.limiter = newAuthLimiter(cfg.AuthRateLimit, time.Minute)
	}
	return a, nil
}

// Middleware authenticates the caller of every request it wraps and puts
// the result in ctx as a reqctx.Principal:
//
//   - no Authorization header: no principal;
//   - "Bearer ipk_…": an API key, resolved by the auth service; its org and
//     role are fixed by the key;
//   - "Bearer <jwt>": an access token, verified locally against the auth
//     service's signing keys; the org comes from X-Org-ID (checked against
//     the user's memberships) or else the user's default org.
//
// The Middleware itself refuses nothing: routes decide. When credentials
// were presented but could not be turned into a principal, the request
// goes on without one and Require and RequireUser answer with the reason:
// 401 with WWW-Authenticate: Bearer error="invalid_token" for any rejected
// credential (one generic message, whatever check failed), 404 for an
// X-Org-ID the caller is no member of (as for any resource of another
// org), 400 for a malformed X-Org-ID, and 503 when the auth or tenancy
// service cannot answer (so an outage does not look like a logout). Public
// routes (login, refresh, logout…) therefore work for a client that still
// sends an expired access token. The Middleware also gives LimitAuth its
// limiter.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if a.limiter != nil {
			ctx = context.WithValue(ctx, limiterKey{}, a.limiter)
		}
		if values := r.Header.Values("Authorization"); len(values) > 0 {
			p, err := a.authenticate(ctx, values, r.Header.Values(HeaderOrgID))
			if err != nil {
				a.logFailure(ctx, err)
				ctx = context.WithValue(ctx, failureKey{}, err)
			} else {
				ctx = reqctx.WithPrincipal(ctx, p)
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticate turns the Authorization header values and the X-Org-ID
// values into a principal.
func (a *Authenticator) authenticate(ctx context.Context, auth, orgHeader []string) (reqctx.Principal, error) {
	if len(auth) != 1 {
		return reqctx.Principal{}, rejected("several Authorization headers")
	}
	token, err := ParseBearer(auth[0])
	if err != nil {
		return reqctx.Principal{}, err
	}
	org, err := orgFromHeader(orgHeader)
	if err != nil {
		return reqctx.Principal{}, err
	}
	if IsAPIKey(token) {
		return a.apiKeyPrincipal(ctx, token, org)
	}
	userID, err := a.verify.userID(ctx, token)
	if err != nil {
		return reqctx.Principal{}, err
	}
	return a.userPrincipal(ctx, userID, org)
}

// errInvalidToken is what a caller learns about any rejected credential:
// which check failed stays in the debug log.
var errInvalidToken = &events.Error{Code: events.CodeUnauthorized, Message: "invalid or expired token"}

// rejection is a credential that failed a check; reason is for the debug
// log only.
type rejection struct{ reason error }

func (e *rejection) Error() string { return "credential rejected: " + e.reason.Error() }
func (e *rejection) Unwrap() error { return e.reason }

func rejected(format string, args ...any) error {
	return &rejection{reason: fmt.Errorf(format, args...)}
}

type failureKey struct{}

// logFailure records why credentials were refused: rejections at debug
// level (which check failed is for operators, not callers), service
// failures are logged by the access log line of the 5xx answer.
func (a *Authenticator) logFailure(ctx context.Context, err error) {
	var rej *rejection
	if errors.As(err, &rej) {
		a.log.DebugContext(ctx, "authn: credential rejected",
			"request_id", reqctx.RequestID(ctx), "reason", rej.reason.Error())
	}
}

// unauthenticated answers a request that reached a protected route without
// a principal: with the reason its credentials were refused, or with a
// plain challenge when it presented none (RFC 6750 section 3).
func unauthenticated(w http.ResponseWriter, r *http.Request) {
	err, _ := r.Context().Value(failureKey{}).(error)
	var rej *rejection
	switch {
	case err == nil:
		w.Header().Set("WWW-Authenticate", "Bearer")
		httpapi.Error(w, r, events.Errorf(events.CodeUnauthorized, "authentication required"))
	case errors.As(err, &rej):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		httpapi.Error(w, r, errInvalidToken)
	default:
		httpapi.Error(w, r, err)
	}
}
