package proxy_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy"
)

func sslHost(agent string, domains ...string) events.ProxyHostWrite {
	w := hostWrite(agent, domains...)
	w.SSL = events.SSLSpec{Enabled: true, Force: true, HTTP2: true, HSTS: true}
	return w
}

// certRequests decodes the cert.issue commands the agent got.
func (a *fakeAgent) certRequests() []events.CertIssueRequest {
	var out []events.CertIssueRequest
	for _, c := range a.got(events.OpAgentCertIssue) {
		var r events.CertIssueRequest
		_ = json.Unmarshal(c.Data, &r)
		out = append(out, r)
	}
	return out
}

// waitCert waits for the host's certificate to reach status with the
// given number of attempts.
func (h *harness) waitCert(w who, agent, id, status string, attempts int) events.ProxyHost {
	h.t.Helper()
	var got events.ProxyHost
	checkFor(h.t, func() error {
		got = h.host(w, agent, id)
		if got.Cert.Status != status || got.Cert.Attempts != attempts {
			return errorf("cert %+v, want %s after %d attempts", got.Cert, status, attempts)
		}
		return nil
	})
	return got
}

// TestCertificateIssuedThenRenewed: a request reaches the agent as
// cert.issue with the service's CA and the agent's contact; the issued
// certificate switches the host's rendering to TLS and schedules the
// renewal 30 days before expiry; moving the clock past it renews.
func TestCertificateIssuedThenRenewed(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{ACMEDirectoryURL: "https://pebble.test:14000/dir"})
	w, ag := h.org()
	email := "ops@example.com"
	h.must(w, events.OpProxySettingsSet, events.ProxySettingsWrite{AgentID: ag.id, ACMEEmail: &email}, nil)
	var host events.ProxyHost
	h.must(w, events.OpProxyHostCreate, sslHost(ag.id, "app.example.com", "www.app.example.com"), &host)
	f, _ := fileOf(h.desired(w.org, ag.id), host.ID)
	if len(f.Requires) != 0 || host.Cert.Status != events.CertStatusNone {
		t.Fatalf("TLS rendered without a certificate: %+v %+v", f, host.Cert)
	}

	// SSL on is enough: the certificate is requested without a call.
	issued := h.waitCert(w, ag.id, host.ID, events.CertStatusIssued, 0)
	reqs := ag.certRequests()
	if len(reqs) != 1 || reqs[0].HostID != host.ID || reqs[0].Email != email || reqs[0].DirectoryURL != "https://pebble.test:14000/dir" ||
		strings.Join(reqs[0].Domains, ",") != "app.example.com,www.app.example.com" {
		t.Fatalf("cert.issue requests: %+v", reqs)
	}
	c := issued.Cert
	if c.NotAfter == nil || c.RenewAt == nil || !c.RenewAt.Equal(c.NotAfter.Add(-events.CertRenewBefore)) ||
		!strings.HasPrefix(c.Issuer, "Pebble") || len(c.Domains) != 2 {
		t.Fatalf("issued certificate: %+v", c)
	}
	// The desired state now carries the TLS server, requiring the files.
	var d *events.NginxDesired
	checkFor(t, func() error {
		d = h.desired(w.org, ag.id)
		if f, _ = fileOf(d, host.ID); len(f.Requires) == 0 || !strings.Contains(f.Content, "443") {
			return errorf("no TLS server after issuance: %+v", f)
		}
		return nil
	})
	h.waitStatus(w, ag.id, host.ID, events.ProxyStatusApplied, "")

	// Past the renewal date the worker renews by itself.
	h.clock.Advance(c.RenewAt.Sub(time.Now()) + time.Hour)
	checkFor(t, func() error {
		if n := len(ag.certRequests()); n != 2 {
			return errorf("%d cert.issue requests", n)
		}
		return nil
	})
	var renewed events.ProxyHost
	checkFor(t, func() error {
		renewed = h.host(w, ag.id, host.ID)
		if rc := renewed.Cert; rc.Status != events.CertStatusIssued || !rc.NotAfter.After(*c.NotAfter) {
			return errorf("not renewed yet: %+v", rc)
		}
		return nil
	})
	if !renewed.Cert.RenewAt.After(h.clock.Now()) {
		t.Fatalf("renewal: %+v (was %+v)", renewed.Cert, c)
	}
	if n := len(ag.certRequests()); n != 2 {
		t.Fatalf("%d cert.issue requests after one renewal", n)
	}
	// The renewed certificate is rendered as a new revision, so the
	// agent reloads nginx with it.
	checkFor(t, func() error {
		if d2 := h.desired(w.org, ag.id); d2.Revision <= d.Revision {
			return errorf("renewal did not produce a new revision (%d)", d2.Revision)
		}
		return nil
	})
}

// TestCertificateFailureIsRetriedWithBackoff: the agent's reason is
// recorded, the next attempt waits for the backoff (1 min, then 2 min),
// and a later success clears the failure.
func TestCertificateFailureIsRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	reason := "urn:ietf:params:acme:error:connection: 203.0.113.7: Fetching http://app.example.com/.well-known/acme-challenge/abc: Timeout during connect"
	ag.set(func(a *fakeAgent) { a.certError = reason })
	var host events.ProxyHost
	h.must(w, events.OpProxyHostCreate, sslHost(ag.id, "app.example.com"), &host)
	h.must(w, events.OpProxyHostSSL, events.ProxyHostRef{AgentID: ag.id, HostID: host.ID}, nil)

	failed := h.waitCert(w, ag.id, host.ID, events.CertStatusFailed, 1)
	if failed.Cert.LastError != reason || failed.Cert.NextAttemptAt == nil {
		t.Fatalf("failure: %+v", failed.Cert)
	}
	if wait := failed.Cert.NextAttemptAt.Sub(h.clock.Now()); wait < 50*time.Second || wait > time.Minute {
		t.Fatalf("next attempt in %s, want about a minute", wait)
	}
	if f, _ := fileOf(h.desired(w.org, ag.id), host.ID); len(f.Requires) != 0 {
		t.Fatal("TLS rendered without a certificate")
	}

	h.clock.Advance(61 * time.Second)
	second := h.waitCert(w, ag.id, host.ID, events.CertStatusFailed, 2)
	if wait := second.Cert.NextAttemptAt.Sub(h.clock.Now()); wait < 110*time.Second || wait > 2*time.Minute {
		t.Fatalf("second attempt: next in %s, want about two minutes", wait)
	}
	if n := len(ag.certRequests()); n != 2 {
		t.Fatalf("%d cert.issue requests, want 2", n)
	}

	ag.set(func(a *fakeAgent) { a.certError = "" })
	h.clock.Advance(121 * time.Second)
	ok := h.waitCert(w, ag.id, host.ID, events.CertStatusIssued, 0)
	if ok.Cert.LastError != "" || ok.Cert.NextAttemptAt != nil {
		t.Fatalf("after success: %+v", ok.Cert)
	}
	checkFor(t, func() error {
		if f, _ := fileOf(h.desired(w.org, ag.id), host.ID); len(f.Requires) == 0 {
			return errorf("no TLS after the certificate was issued")
		}
		return nil
	})
}

// TestTLSHealthScores scores hosts with and without certificates and
// HTTPS settings, and keeps a valid certificate's score through a failed
// renewal.
func TestTLSHealthScores(t *testing.T) {
	t.Parallel()
	h := start(t, proxy.Config{})
	w, ag := h.org()
	var full, bare, none events.ProxyHost
	h.must(w, events.OpProxyHostCreate, sslHost(ag.id, "full.example.com"), &full)
	plain := hostWrite(ag.id, "bare.example.com")
	plain.SSL.Enabled = true
	h.must(w, events.OpProxyHostCreate, plain, &bare)
	// A wildcard cannot be validated with HTTP-01: never requested.
	h.must(w, events.OpProxyHostCreate, sslHost(ag.id, "*.none.example.com"), &none)
	h.must(w, events.OpProxyHostCreate, hostWrite(ag.id, "http.example.com"), nil)
	for _, id := range []string{full.ID, bare.ID} {
		h.waitCert(w, ag.id, id, events.CertStatusIssued, 0)
	}

	report := func() map[string]events.TLSHostHealth {
		var r events.TLSHealthReport
		h.must(w, events.OpProxyTLSHealth, nil, &r)
		out := map[string]events.TLSHostHealth{}
		for _, x := range r.Hosts {
			out[x.HostID] = x
		}
		if len(out) != 3 || r.Score != 0 {
			t.Fatalf("report: %+v", r)
		}
		return out
	}
	got := report()
	if x := got[full.ID]; x.Score != 100 || x.DaysLeft == nil || *x.DaysLeft < 89 || len(x.Issues) != 0 || !strings.HasPrefix(x.Issuer, "Pebble") {
		t.Fatalf("full: %+v", x)
	}
	if x := got[bare.ID]; x.Score != 75 || len(x.Issues) != 3 {
		t.Fatalf("bare: %+v", x)
	}
	if x := got[none.ID]; x.Score != 0 || x.Status != events.CertStatusNone || x.DaysLeft != nil {
		t.Fatalf("none: %+v", x)
	}

	// Renewals fail from now on; 80 days later the certificate is still
	// valid for 10 days: -30, and the failure is an issue.
	ag.set(func(a *fakeAgent) { a.certError = "urn:ietf:params:acme:error:rateLimited: too many certificates" })
	h.clock.Advance(80 * 24 * time.Hour)
	h.waitCert(w, ag.id, full.ID, events.CertStatusFailed, 1)
	x := report()[full.ID]
	if x.Score != 70 || x.DaysLeft == nil || *x.DaysLeft != 9 || !strings.Contains(strings.Join(x.Issues, "|"), "too many certificates") {
		t.Fatalf("full, 80 days on: %+v", x)
	}
	// Expired: 0.
	h.clock.Advance(11 * 24 * time.Hour)
	if x := report()[full.ID]; x.Score != 0 {
		t.Fatalf("expired: %+v", x)
	}
}
