package domain

import (
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// TLS health deductions: a certificate close to expiry, and the HTTPS
// settings a host leaves off.
const (
	scoreUnder14Days = 30
	scoreUnder30Days = 10
	scoreNoHSTS      = 10
	scoreNoForce     = 10
	scoreNoHTTP2     = 5
)

// TLSHealth scores one host's TLS at now: 0 without a valid certificate
// (none, expired, or not covering the host's domains), otherwise 100 less
// 30 with under 14 days left (10 with under 30), 10 without HSTS, 10 when
// HTTP is not redirected to HTTPS and 5 without HTTP/2, never below 0.
// Issues say what cost points, and what is wrong without costing any (a
// failed renewal while the certificate is still valid).
func TLSHealth(h *Host, now time.Time) events.TLSHostHealth {
	c := h.Cert
	out := events.TLSHostHealth{AgentID: h.AgentID, HostID: h.ID, Domains: h.Spec.Domains, Status: c.Status,
		Issuer: c.Issuer, NotAfter: timePtr(c.NotAfter), Issues: []string{}}
	if out.Status == "" {
		out.Status = events.CertStatusNone
	}
	if out.Domains == nil {
		out.Domains = []string{}
	}
	if !c.NotAfter.IsZero() {
		days := int(c.NotAfter.Sub(now) / (24 * time.Hour))
		out.DaysLeft = &days
	}
	switch {
	case len(c.IssuedDomains) == 0:
		out.Issues = append(out.Issues, "no certificate has been issued")
		if c.LastError != "" {
			out.Issues = append(out.Issues, "the last attempt failed: "+c.LastError)
		}
		return out
	case !now.Before(c.NotAfter):
		out.Issues = append(out.Issues, "the certificate has expired")
		return out
	case !h.CertReady():
		out.Issues = append(out.Issues, "the certificate does not cover the host's current domains")
		return out
	}
	score := 100
	left := c.NotAfter.Sub(now)
	switch {
	case left < 14*24*time.Hour:
		score -= scoreUnder14Days
		out.Issues = append(out.Issues, "the certificate expires in less than 14 days")
	case left < 30*24*time.Hour:
		score -= scoreUnder30Days
		out.Issues = append(out.Issues, "the certificate expires in less than 30 days")
	}
	if !h.Spec.SSL.HSTS {
		score -= scoreNoHSTS
		out.Issues = append(out.Issues, "HSTS is off")
	}
	if !h.Spec.SSL.Force {
		score -= scoreNoForce
		out.Issues = append(out.Issues, "HTTP is not redirected to HTTPS")
	}
	if !h.Spec.SSL.HTTP2 {
		score -= scoreNoHTTP2
		out.Issues = append(out.Issues, "HTTP/2 is off")
	}
	if c.Status == events.CertStatusFailed && c.LastError != "" {
		out.Issues = append(out.Issues, "the last renewal failed: "+c.LastError)
	}
	out.Score = max(score, 0)
	return out
}

// TLSReport combines host health: the report's score is the lowest host
// score, 100 when no host uses TLS.
func TLSReport(hosts []events.TLSHostHealth) events.TLSHealthReport {
	out := events.TLSHealthReport{Hosts: hosts, Score: 100}
	if out.Hosts == nil {
		out.Hosts = []events.TLSHostHealth{}
	}
	for _, h := range hosts {
		out.Score = min(out.Score, h.Score)
	}
	return out
}
