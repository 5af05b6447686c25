package events

import (
	"bytes"
	"encoding/json"
	"time"
)

// Operations of the proxy service, served on ServiceEndpoint("proxy", op).
// The org is the request's org header; every host belongs to one agent of
// that org, and a host or agent of another org is not_found. The proxy
// service owns the desired nginx state of every agent: it renders each
// host's nginx configuration, keeps the agent's complete desired state in
// KV (BucketAgentDesired, AgentDesiredKey) and pushes it to the agent with
// OpAgentNginxApply; an agent that was away asks for it on
// AgentDesiredRequest when it comes back.
const (
	// OpProxyHostsList lists an agent's proxy hosts. Request:
	// ProxyAgentRequest. Reply: List[ProxyHost]. Permission: proxy:read.
	OpProxyHostsList = "hosts_list"
	// OpProxyHostCreate creates a host. Request: ProxyHostWrite. Reply:
	// ProxyHost. invalid (with field errors) for anything the validator
	// refuses; conflict when one of its domains is served by another host
	// of the same agent. Permission: proxy:write.
	OpProxyHostCreate = "host_create"
	// OpProxyHostGet returns one host. Request: ProxyHostRef. Reply:
	// ProxyHost. Permission: proxy:read.
	OpProxyHostGet = "host_get"
	// OpProxyHostUpdate replaces a host's specification (domains,
	// upstream, websocket, ssl, enabled); security headers and rate limits
	// keep their values unless given. Request: ProxyHostWrite with
	// HostID. Reply: ProxyHost. Permission: proxy:write.
	OpProxyHostUpdate = "host_update"
	// OpProxyHostDelete deletes a host; its configuration leaves the
	// agent's desired state. Request: ProxyHostRef. Reply: Empty.
	// Permission: proxy:write.
	OpProxyHostDelete = "host_delete"
	// OpProxyHostConfig returns the nginx configuration rendered for the
	// host, exactly the text the agent is asked to apply. Request:
	// ProxyHostRef. Reply: ProxyHostConfig. Permission: proxy:read.
	OpProxyHostConfig = "host_config"
	// OpProxyHostTest asks the agent to run `nginx -t` on its complete
	// desired configuration with this host's current rendering, without
	// applying anything. Request: ProxyHostRef. Reply: NginxTestResult.
	// unavailable when the agent does not answer. Permission: proxy:write.
	OpProxyHostTest = "host_test"
	// OpProxyHostSSL requests a certificate for the host's domains (or a
	// renewal now). The certificate is obtained by the agent (ACME
	// HTTP-01 through its nginx); the reply says it was requested, the
	// host's Cert shows the outcome. Request: ProxyHostRef. Reply:
	// ProxyHost. Permission: proxy:write.
	OpProxyHostSSL = "host_ssl"
	// OpProxySecurityHeadersSet replaces a host's security headers.
	// Request: ProxySecurityHeadersWrite. Reply: SecurityHeaders.
	// Permission: proxy:write.
	OpProxySecurityHeadersSet = "security_headers_set"
	// OpProxyRateLimitCreate adds a rate limit to a host. Request:
	// ProxyRateLimitWrite. Reply: RateLimit. Permission: proxy:write.
	OpProxyRateLimitCreate = "rate_limit_create"
	// OpProxyRateLimitUpdate replaces a rate limit. Request:
	// ProxyRateLimitWrite with RateLimit.ID. Reply: RateLimit.
	// Permission: proxy:write.
	OpProxyRateLimitUpdate = "rate_limit_update"
	// OpProxyRateLimitDelete removes a rate limit. Request:
	// ProxyRateLimitRef. Reply: Empty. Permission: proxy:write.
	OpProxyRateLimitDelete = "rate_limit_delete"
	// OpProxySettingsGet returns an agent's proxy settings. Request:
	// ProxyAgentRequest. Reply: ProxySettings. Permission: proxy:read.
	OpProxySettingsGet = "settings_get"
	// OpProxySettingsSet changes an agent's proxy settings. Request:
	// ProxySettingsWrite. Reply: ProxySettings. Permission: proxy:write.
	OpProxySettingsSet = "settings_set"
	// OpProxyNetworkAttach attaches the agent's nginx container to a
	// network (so that it reaches upstream containers by name). invalid
	// for host, none and overlay networks or when nginx does not run in a
	// container; not_found for an unknown network. Request:
	// ProxyNetworkRequest. Reply: ProxySettings. Permission: proxy:write.
	OpProxyNetworkAttach = "network_attach"
	// OpProxyNetworkDetach detaches it again. Request:
	// ProxyNetworkRequest. Reply: ProxySettings. Permission: proxy:write.
	OpProxyNetworkDetach = "network_detach"
	// OpProxyTLSHealth reports the certificates of every host of the org:
	// days left, issuer and a score. Request: Empty. Reply:
	// TLSHealthReport. Permission: proxy:read.
	OpProxyTLSHealth = "tls_health"
)

// Proxy modes of an agent: in ProxyModeManaged InfraPilot owns the agent's
// nginx configuration; in ProxyModeExternal it touches nothing of nginx
// (hosts can still be defined, they are not applied).
const (
	ProxyModeManaged  = "managed"
	ProxyModeExternal = "external"
)

// Host statuses: pending until the agent reports the revision that carries
// the host's current specification, then applied or failed (with nginx's
// message; the previous configuration keeps serving); disabled hosts are
// not in the agent's configuration.
const (
	ProxyStatusPending  = "pending"
	ProxyStatusApplied  = "applied"
	ProxyStatusFailed   = "failed"
	ProxyStatusDisabled = "disabled"
)

// Certificate statuses of a host.
const (
	CertStatusNone      = "none"
	CertStatusRequested = "requested"
	CertStatusIssued    = "issued"
	CertStatusFailed    = "failed"
)

// Proxy limits enforced by the validator.
const (
	ProxyMaxDomains     = 100
	ProxyMaxDomainLen   = 253
	ProxyMaxRateLimits  = 20
	ProxyMaxHeaderValue = 1024
	ProxyMaxHostsAgent  = 500
	// CertRenewBefore is how long before expiry a certificate is renewed.
	CertRenewBefore = 30 * 24 * time.Hour
)

// Upstream is where a host forwards requests: a URL (scheme http or https,
// host name or IP, optional port, optional path) or a container of the
// agent and its port. In JSON it is either a string (the URL) or an object
// {"container": "...", "port": 3000} (or {"url": "..."}).
type Upstream struct {
	URL       string `json:"url,omitempty"`
	Container string `json:"container,omitempty"`
	Port      int    `json:"port,omitempty"`
}

// UnmarshalJSON accepts the URL string form as well as the object.
func (u *Upstream) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*u = Upstream{}
		return json.Unmarshal(b, &u.URL)
	}
	type plain Upstream
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*u = Upstream(p)
	return nil
}

// SSLSpec is a host's TLS: Enabled serves HTTPS once a certificate is
// issued; Force redirects HTTP to HTTPS; HTTP2 enables h2 on the TLS
// listener; HSTS sends Strict-Transport-Security (max-age from the
// security headers, default one year).
type SSLSpec struct {
	Enabled bool `json:"enabled"`
	Force   bool `json:"force"`
	HTTP2   bool `json:"http2"`
	HSTS    bool `json:"hsts"`
}

// SecurityHeaders are response headers a host adds. FrameOptions is
// "DENY", "SAMEORIGIN" or empty (not sent); CSP is a Content-Security-
// Policy value (printable ASCII, no quotes that could end nginx's
// string: single quotes are allowed, double quotes and '$' are not).
type SecurityHeaders struct {
	HSTSMaxAge     int    `json:"hsts_max_age,omitempty"`
	HSTSSubdomains bool   `json:"hsts_include_subdomains,omitempty"`
	FrameOptions   string `json:"frame_options,omitempty"`
	NoSniff        bool   `json:"nosniff,omitempty"`
	XSSProtection  bool   `json:"xss_protection,omitempty"`
	CSP            string `json:"csp,omitempty"`
}

// RateLimit limits requests per client address on a host (an nginx
// limit_req zone of its own): Rate requests per Per ("second" or
// "minute"), Burst queued beyond it, NoDelay serves the burst at once.
// Path limits only requests under that prefix ("/" or empty: all).
type RateLimit struct {
	ID      string `json:"id"`
	Rate    int    `json:"rate"`
	Per     string `json:"per"`
	Burst   int    `json:"burst,omitempty"`
	NoDelay bool   `json:"nodelay,omitempty"`
	Path    string `json:"path,omitempty"`
}

// ProxyHostSpec is everything that determines a host's nginx
// configuration.
type ProxyHostSpec struct {
	Domains         []string        `json:"domains"`
	Upstream        Upstream        `json:"upstream"`
	Websocket       bool            `json:"websocket"`
	SSL             SSLSpec         `json:"ssl"`
	Enabled         bool            `json:"enabled"`
	SecurityHeaders SecurityHeaders `json:"security_headers"`
	RateLimits      []RateLimit     `json:"rate_limits"`
}

// ProxyAgentRequest names an agent of the request's org.
type ProxyAgentRequest struct {
	AgentID string `json:"agent_id"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
}

// ProxyHostRef names a host of an agent.
type ProxyHostRef struct {
	AgentID string `json:"agent_id"`
	HostID  string `json:"host_id"`
}

// ProxyHostWrite creates (HostID empty) or updates a host. Enabled nil
// means true on create and unchanged on update; SecurityHeaders and
// RateLimits nil mean defaults on create and unchanged on update.
type ProxyHostWrite struct {
	AgentID         string           `json:"agent_id"`
	HostID          string           `json:"host_id,omitempty"`
	Domains         []string         `json:"domains"`
	Upstream        Upstream         `json:"upstream"`
	Websocket       bool             `json:"websocket"`
	SSL             SSLSpec          `json:"ssl"`
	Enabled         *bool            `json:"enabled,omitempty"`
	SecurityHeaders *SecurityHeaders `json:"security_headers,omitempty"`
	RateLimits      []RateLimit      `json:"rate_limits,omitempty"`
}

// ProxySecurityHeadersWrite replaces a host's security headers.
type ProxySecurityHeadersWrite struct {
	AgentID string          `json:"agent_id"`
	HostID  string          `json:"host_id"`
	Headers SecurityHeaders `json:"headers"`
}

// ProxyRateLimitWrite adds or replaces one rate limit of a host.
type ProxyRateLimitWrite struct {
	AgentID   string    `json:"agent_id"`
	HostID    string    `json:"host_id"`
	RateLimit RateLimit `json:"rate_limit"`
}

// ProxyRateLimitRef names one rate limit of a host.
type ProxyRateLimitRef struct {
	AgentID     string `json:"agent_id"`
	HostID      string `json:"host_id"`
	RateLimitID string `json:"rate_limit_id"`
}

// CertState is a host's certificate as the proxy service knows it.
type CertState struct {
	Status   string     `json:"status"`
	Domains  []string   `json:"domains,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	Issuer   string     `json:"issuer,omitempty"`
	// RenewAt is when the service will renew it (CertRenewBefore before
	// NotAfter); NextAttemptAt is the retry time after a failure.
	RenewAt       *time.Time `json:"renew_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	Attempts      int        `json:"attempts,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	RequestedAt   *time.Time `json:"requested_at,omitempty"`
}

// ProxyHost is the API's view of a host.
type ProxyHost struct {
	ID      string `json:"id"`
	OrgID   string `json:"org_id"`
	AgentID string `json:"agent_id"`
	ProxyHostSpec
	// Status is one of the ProxyStatus values; StatusMessage carries
	// nginx's error for ProxyStatusFailed, and a drift report.
	Status        string    `json:"status"`
	StatusMessage string    `json:"status_message,omitempty"`
	Revision      uint64    `json:"revision"`
	Cert          CertState `json:"cert"`
	// Networks are the networks the agent's nginx container is attached
	// to through InfraPilot (see OpProxyNetworkAttach).
	Networks  []string  `json:"networks"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ProxyHostConfig is a host's rendered configuration.
type ProxyHostConfig struct {
	HostID string `json:"host_id"`
	// File is the file name under the agent's hosts directory.
	File   string `json:"file"`
	Config string `json:"config"`
}

// ProxySettingsWrite changes an agent's proxy settings; nil fields stay.
type ProxySettingsWrite struct {
	AgentID string  `json:"agent_id"`
	Mode    *string `json:"mode,omitempty"`
	// ACMEEmail is the contact address of the agent's ACME account.
	ACMEEmail *string `json:"acme_email,omitempty"`
}

// ProxySettings are an agent's proxy settings and what the agent last
// reported about its nginx.
type ProxySettings struct {
	AgentID   string   `json:"agent_id"`
	Mode      string   `json:"mode"`
	ACMEEmail string   `json:"acme_email,omitempty"`
	Networks  []string `json:"networks"`
	// Nginx is what the agent reported (nil before its first report).
	Nginx *NginxAgentInfo `json:"nginx,omitempty"`
	// AppliedRevision is the last desired revision the agent applied.
	AppliedRevision uint64 `json:"applied_revision"`
	DesiredRevision uint64 `json:"desired_revision"`
	LastError       string `json:"last_error,omitempty"`
}

// ProxyNetworkRequest names a network of the agent.
type ProxyNetworkRequest struct {
	AgentID string `json:"agent_id"`
	Network string `json:"network"`
}

// TLSHostHealth is one host's certificate health. Score is 0–100: 0
// without a valid certificate, lowered by little time left, missing
// HSTS, HTTP not redirected and missing HTTP/2.
type TLSHostHealth struct {
	AgentID  string     `json:"agent_id"`
	HostID   string     `json:"host_id"`
	Domains  []string   `json:"domains"`
	Status   string     `json:"status"`
	Issuer   string     `json:"issuer,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	DaysLeft *int       `json:"days_left,omitempty"`
	Score    int        `json:"score"`
	Issues   []string   `json:"issues"`
}

// TLSHealthReport is the reply of OpProxyTLSHealth.
type TLSHealthReport struct {
	Hosts []TLSHostHealth `json:"hosts"`
	// Score is the lowest host score (100 without hosts using TLS).
	Score int `json:"score"`
}
