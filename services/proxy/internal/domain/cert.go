package domain

import (
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Reasons a certificate is requested, as recorded in ProxyCertRequested.
const (
	ReasonRequested      = "requested"
	ReasonRetry          = "retry"
	ReasonRenewal        = "renewal"
	ReasonDomainsChanged = "domains changed"
	ReasonAutomatic      = "ssl enabled"
)

func hasWildcard(domains []string) bool {
	for _, d := range domains {
		if strings.HasPrefix(d, "*.") {
			return true
		}
	}
	return false
}

// CertPolicy is when certificates are renewed and failures retried.
type CertPolicy struct {
	// RenewBefore is how long before expiry a certificate is renewed.
	RenewBefore time.Duration
	// RetryBase is the wait after the first failure, doubling per
	// attempt up to RetryMax.
	RetryBase time.Duration
	RetryMax  time.Duration
	// Lease is how long a request may stay unanswered before another
	// worker takes it over (the replica that sent it died).
	Lease time.Duration
}

// RetryDelay is the wait after failed attempt n (1, 2, …):
// min(RetryBase·2^(n−1), RetryMax).
func (p CertPolicy) RetryDelay(attempt int) time.Duration {
	d := p.RetryBase
	for i := 1; i < attempt; i++ {
		if d >= p.RetryMax/2 {
			return p.RetryMax
		}
		d *= 2
	}
	return min(d, p.RetryMax)
}

// RequestCert decides a certificate request asked for by a user: nil when
// one is already in flight.
func (h *Host) RequestCert() (*events.ProxyCertRequested, error) {
	if !h.Exists() {
		return nil, ErrHostNotFound
	}
	if hasWildcard(h.Spec.Domains) {
		return nil, events.Invalid("a certificate for a wildcard domain needs a DNS-01 challenge, which InfraPilot does not do").
			WithFields(events.FieldError{Field: "domains", Message: "wildcard domains cannot be validated with HTTP-01"})
	}
	if h.Cert.Status == events.CertStatusRequested {
		return nil, nil
	}
	return &events.ProxyCertRequested{AgentID: h.AgentID, Domains: h.Spec.Domains, Reason: ReasonRequested, Attempt: 1}, nil
}

// CertDue decides whether the certificate worker should request a
// certificate for the host at now, and why: a request nobody answered
// within the lease, a failure whose retry time came, a certificate due for
// renewal, or an SSL host whose domains changed since its certificate was
// issued. nil when nothing is due.
func (h *Host) CertDue(now time.Time, p CertPolicy) *events.ProxyCertRequested {
	if !h.Exists() {
		return nil
	}
	c := h.Cert
	req := func(reason string, attempt int) *events.ProxyCertRequested {
		return &events.ProxyCertRequested{AgentID: h.AgentID, Domains: h.Spec.Domains, Reason: reason, Attempt: attempt}
	}
	switch c.Status {
	case events.CertStatusNone:
		// Turning SSL on is enough: the first certificate is requested
		// without a separate call, as users of a proxy manager expect.
		// Wildcards need DNS-01, which is not done; TLS health says so.
		if h.Spec.SSL.Enabled && h.Spec.Enabled && !hasWildcard(h.Spec.Domains) {
			return req(ReasonAutomatic, 1)
		}
	case events.CertStatusRequested:
		if now.Sub(c.RequestedAt) > p.Lease {
			return req(c.Reason, max(c.Attempts, 1))
		}
	case events.CertStatusFailed:
		if !now.Before(c.NextAttemptAt) {
			return req(ReasonRetry, c.Attempts+1)
		}
	case events.CertStatusIssued:
		if !now.Before(c.RenewAt) {
			return req(ReasonRenewal, 1)
		}
		if h.Spec.SSL.Enabled && !h.CertReady() {
			return req(ReasonDomainsChanged, 1)
		}
	}
	return nil
}

// CertIssued records a certificate the agent stored.
func (h *Host) CertIssued(got events.CertIssued, requested []string, p CertPolicy) events.ProxyCertIssued {
	domains := got.Domains
	if len(domains) == 0 {
		domains = requested
	}
	return events.ProxyCertIssued{AgentID: h.AgentID, Domains: domains, NotBefore: got.NotBefore.UTC(),
		NotAfter: got.NotAfter.UTC(), Issuer: got.Issuer, Serial: got.Serial, RenewAt: got.NotAfter.Add(-p.RenewBefore).UTC()}
}

// CertFailed records a failed attempt and schedules the next one.
func (h *Host) CertFailed(domains []string, reason string, attempt int, now time.Time, p CertPolicy) events.ProxyCertFailed {
	return events.ProxyCertFailed{AgentID: h.AgentID, Domains: domains, Reason: reason, Attempt: attempt,
		NextAttemptAt: now.Add(p.RetryDelay(attempt)).UTC()}
}

// CertView is the API's view of the certificate state.
func (h *Host) CertView() events.CertState {
	c := h.Cert
	out := events.CertState{Status: c.Status, LastError: c.LastError, Attempts: c.Attempts, Issuer: c.Issuer}
	if out.Status == "" {
		out.Status = events.CertStatusNone
	}
	out.Domains = c.IssuedDomains
	if c.Status == events.CertStatusRequested || (c.Status == events.CertStatusFailed && len(c.IssuedDomains) == 0) {
		out.Domains = c.RequestDomains
	}
	out.NotAfter = timePtr(c.NotAfter)
	out.RenewAt = timePtr(c.RenewAt)
	out.NextAttemptAt = timePtr(c.NextAttemptAt)
	out.RequestedAt = timePtr(c.RequestedAt)
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
