// Package forward delivers an org's audit chain to SIEM destinations:
// webhooks (HMAC-SHA256 signed), syslog over TCP or TLS (RFC 5424
// messages in RFC 5425 octet-counting frames) and Splunk HTTP Event
// Collector.
//
// Each destination has its own durable JetStream consumer on
// audit.chain.<org> (Forwarder), so destinations progress independently
// and a slow or unreachable SIEM holds back nobody else. Delivery is
// at-least-once: a batch is acknowledged only after the destination
// accepted it, a failed delivery is retried with exponential backoff
// for as long as it takes (nothing is dropped or dead-lettered: a SIEM
// outage must not punch a hole in the audit trail), and a crash redelivers
// the unacknowledged batch. Receivers dedupe by (org_id, index), which
// every format carries. Only one batch per destination is outstanding at
// a time, across replicas, so entries arrive in chain order.
package forward

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Kind is a destination type.
type Kind string

// The destination types.
const (
	KindWebhook   Kind = "webhook"
	KindSyslog    Kind = "syslog"
	KindSplunkHEC Kind = "splunk_hec"
)

// Destination is one SIEM an org forwards its audit chain to.
//
// Secret is the webhook's HMAC key or the Splunk HEC token. It is never
// encoded to JSON (json:"-"): it must not reach an event, a log line or
// an API response; the configuration store keeps it apart.
type Destination struct {
	// ID names the destination within its org; the durable consumer is
	// ConsumerName(OrgID, ID), so changing the ID starts over.
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
	Kind  Kind   `json:"kind"`
	// URL is the webhook's URL, or the Splunk HEC base URL
	// (https://splunk.example.com:8088); https unless Config.AllowInsecure.
	URL string `json:"url,omitempty"`
	// Address is the syslog receiver's host:port.
	Address string `json:"address,omitempty"`
	// TLS selects syslog over TLS (RFC 5425) instead of plain TCP.
	TLS bool `json:"tls,omitempty"`
	// CACertPEM adds trust roots for the destination's certificate (a
	// private CA); the system roots are trusted as well.
	CACertPEM string `json:"ca_cert_pem,omitempty"`
	// ServerName overrides the name the TLS certificate is checked against.
	ServerName string `json:"server_name,omitempty"`
	// Index is the Splunk index (the token's default when empty).
	Index string `json:"index,omitempty"`
	// Hostname is the syslog HOSTNAME and the Splunk host field.
	Hostname string `json:"hostname,omitempty"`
	// FromStart forwards the org's whole chain to a new destination;
	// otherwise it receives the entries appended after it was added.
	FromStart bool `json:"from_start,omitempty"`

	Secret string `json:"-"`
}

// ConsumerName is the durable consumer of org's destination id. Both are
// in the name: two orgs may well name a destination alike.
func ConsumerName(org, id string) string { return "audit_fwd_" + org + "_" + id }

// Validate checks the destination against cfg and names each bad field.
func (d Destination) Validate(cfg Config) error {
	var fields []events.FieldError
	bad := func(field, msg string) { fields = append(fields, events.FieldError{Field: field, Message: msg}) }
	if !events.ValidToken(d.ID) || len(d.ID) > 64 {
		bad("id", "must be 1–64 letters, digits, '-' or '_'")
	}
	if !events.ValidToken(d.OrgID) {
		bad("org_id", "invalid org id")
	}
	switch d.Kind {
	case KindWebhook, KindSplunkHEC:
		u, err := url.Parse(d.URL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			bad("url", "must be an absolute http(s) URL")
		case u.Scheme == "http" && !cfg.AllowInsecure:
			bad("url", "must use https")
		case u.User != nil:
			bad("url", "must not carry credentials")
		}
		if d.Secret == "" {
			if d.Kind == KindWebhook {
				bad("secret", "a signing secret is required")
			} else {
				bad("secret", "the HEC token is required")
			}
		}
	case KindSyslog:
		host, port, err := net.SplitHostPort(d.Address)
		if err != nil || host == "" || port == "" {
			bad("address", "must be host:port")
		}
	default:
		bad("kind", "must be one of webhook, syslog, splunk_hec")
	}
	if d.CACertPEM != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(d.CACertPEM)) {
		bad("ca_cert_pem", "holds no PEM certificate")
	}
	if len(fields) > 0 {
		return events.Invalid("invalid SIEM destination").WithFields(fields...)
	}
	return nil
}

// Config is shared by every forwarder.
type Config struct {
	// Batch is the most entries one delivery carries (default 100).
	Batch int
	// MaxWait bounds how long a batch waits to fill (default 1s).
	MaxWait time.Duration
	// MinBackoff and MaxBackoff bound the retry delay (defaults 500ms and
	// 1 min); the delay doubles after each failure, with ±20% jitter.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one delivery attempt (default 15s).
	Timeout time.Duration
	// AllowPrivateNetworks lets destinations resolve to loopback, private,
	// link-local and other non-public addresses. Off by default: on a
	// shared control plane a tenant must not reach the operator's internal
	// network through a "SIEM". Single-tenant self-hosted installs whose
	// SIEM is on the LAN turn it on.
	AllowPrivateNetworks bool
	// AllowInsecure allows http:// webhook and HEC URLs (development).
	AllowInsecure bool
	// Version is sent in the User-Agent.
	Version string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.MaxWait <= 0 {
		c.MaxWait = time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// deliveryError is a failed delivery, with what the destination said.
func deliveryError(d Destination, format string, args ...any) error {
	return fmt.Errorf("%s %s: %s", d.Kind, d.ID, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
