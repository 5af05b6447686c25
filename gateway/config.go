package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
)

// Defaults applied to a zero Config field.
const (
	DefaultAddr              = "127.0.0.1:8080"
	DefaultBodyLimit         = 1 << 20 // 1 MiB
	DefaultRequestTimeout    = 30 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 20 * time.Second
	DefaultReadyTimeout      = 2 * time.Second

	DefaultAuthRateLimit      = authn.DefaultAuthRateLimit // per minute and client IP
	DefaultJWKSRefresh        = authn.DefaultJWKSRefresh
	DefaultAPIKeyCacheTTL     = authn.DefaultAPIKeyCacheTTL
	DefaultMembershipCacheTTL = authn.DefaultMembershipTTL
)

// Config configures the gateway. A zero field takes its default.
type Config struct {
	// Addr is the HTTP listen address; "127.0.0.1:0" picks a free port
	// (see Gateway.Addr).
	Addr string
	// RequiredServices are the services /readyz asks on
	// svc.<name>.health; the gateway is ready only when each answers ok.
	RequiredServices []string
	// BodyLimit caps a request body in bytes; a larger one is answered 413.
	BodyLimit int64
	// RequestTimeout is the deadline of every request's context, and so of
	// every service call it makes (it travels in Ip-Deadline). Long-lived
	// handlers (WebSockets) detach from it with context.WithoutCancel.
	RequestTimeout time.Duration
	// ReadHeaderTimeout bounds reading request headers (slowloris).
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds an idle keep-alive connection.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop of Run: in-flight requests
	// still running after it are cut off. Keep it within the orchestrator's
	// grace period (Kubernetes: 30s by default).
	ShutdownTimeout time.Duration
	// ReadyTimeout bounds each /readyz service check.
	ReadyTimeout time.Duration
	// CORSOrigins are the browser origins ("https://app.example.com")
	// allowed to call the API; these may send credentials. The single
	// value "*" allows any origin but never with credentials. Empty
	// disables CORS.
	CORSOrigins []string
	// TrustedProxies are the IPs or CIDR prefixes of reverse proxies whose
	// X-Forwarded-For is believed. Empty (the default) trusts none: the
	// client IP is the TCP peer's.
	TrustedProxies []string
	// Version is reported by /readyz and the build-info metric.
	Version string

	// AuthRateLimit is how many requests a minute one client IP may send
	// to the auth routes wrapped in authn.LimitAuth (login, register,
	// refresh, MFA verification…); beyond it they answer 429 with
	// Retry-After. Zero means authn.DefaultAuthRateLimit; a negative value
	// turns the limit off (for a deployment whose proxy limits already).
	// Counted per gateway replica.
	AuthRateLimit int
	// JWKSRefresh is how old the cached signing keys of the auth service
	// may grow before they are fetched again: the bound on how long a key
	// the auth service withdrew keeps verifying tokens. Zero means
	// authn.DefaultJWKSRefresh.
	JWKSRefresh time.Duration
	// APIKeyCacheTTL is how long a verified API key is remembered: the
	// bound on how long a revoked key keeps working at one replica. Zero
	// means authn.DefaultAPIKeyCacheTTL, the maximum is
	// authn.MaxAPIKeyCacheTTL, a negative value turns the cache off.
	APIKeyCacheTTL time.Duration
	// MembershipCacheTTL is how long an org membership (and a default org)
	// is remembered: the bound on how long a removed member or a lowered
	// role keeps its access at one replica. Zero means
	// authn.DefaultMembershipTTL, the maximum is authn.MaxMembershipTTL, a
	// negative value turns the cache off.
	MembershipCacheTTL time.Duration
}

// authnConfig is the part of c the authentication middleware takes.
func (c Config) authnConfig() authn.Config {
	return authn.Config{
		AuthRateLimit:  c.AuthRateLimit,
		JWKSRefresh:    c.JWKSRefresh,
		APIKeyCacheTTL: c.APIKeyCacheTTL,
		MembershipTTL:  c.MembershipCacheTTL,
	}
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	setDuration := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDuration(&c.RequestTimeout, DefaultRequestTimeout)
	setDuration(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDuration(&c.IdleTimeout, DefaultIdleTimeout)
	setDuration(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setDuration(&c.ReadyTimeout, DefaultReadyTimeout)
	return c
}

// Validate reports every problem of c at once. Zero fields are valid: they
// take their defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
		}
	}
	if c.BodyLimit < 0 {
		errs = append(errs, fmt.Errorf("body limit %d is negative", c.BodyLimit))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"request timeout", c.RequestTimeout}, {"read header timeout", c.ReadHeaderTimeout},
		{"idle timeout", c.IdleTimeout}, {"shutdown timeout", c.ShutdownTimeout}, {"ready timeout", c.ReadyTimeout},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.d))
		}
	}
	seen := map[string]bool{}
	for _, s := range c.RequiredServices {
		if !events.ValidToken(s) {
			errs = append(errs, fmt.Errorf("required service %q is not a valid subject token", s))
		} else if seen[s] {
			errs = append(errs, fmt.Errorf("required service %q is listed twice", s))
		}
		seen[s] = true
	}
	if _, err := newCORS(c.CORSOrigins); err != nil {
		errs = append(errs, err)
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if err := c.authnConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway: invalid config: %w", err)
	}
	return nil
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an IP nor a CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
