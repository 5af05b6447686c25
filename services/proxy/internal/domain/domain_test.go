package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/proxy/internal/domain"
)

var policy = domain.CertPolicy{RenewBefore: 30 * 24 * time.Hour, RetryBase: time.Minute, RetryMax: 6 * time.Hour, Lease: 4 * time.Minute}

func TestRetryDelayDoublesUpToTheMaximum(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {9, 256 * time.Minute}, {10, 6 * time.Hour}, {100, 6 * time.Hour}} {
		if got := policy.RetryDelay(tc.attempt); got != tc.want {
			t.Errorf("attempt %d: %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

func sslHost(c domain.Cert, domains ...string) *domain.Host {
	return &domain.Host{ID: "h1", AgentID: "a1", CreatedAt: time.Unix(1, 0), Cert: c,
		Spec: events.ProxyHostSpec{Domains: domains, Enabled: true, SSL: events.SSLSpec{Enabled: true, Force: true, HTTP2: true, HSTS: true}}}
}

func TestCertDue(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	issued := domain.Cert{Status: events.CertStatusIssued, IssuedDomains: []string{"a.example.com"},
		NotAfter: now.Add(40 * 24 * time.Hour), RenewAt: now.Add(10 * 24 * time.Hour)}
	for _, tc := range []struct {
		name    string
		host    *domain.Host
		reason  string
		attempt int
	}{
		{"never requested: SSL on is enough", sslHost(domain.Cert{Status: events.CertStatusNone}, "a.example.com"), domain.ReasonAutomatic, 1},
		{"never requested, SSL off", func() *domain.Host {
			h := sslHost(domain.Cert{Status: events.CertStatusNone}, "a.example.com")
			h.Spec.SSL.Enabled = false
			return h
		}(), "", 0},
		{"never requested, host disabled", func() *domain.Host {
			h := sslHost(domain.Cert{Status: events.CertStatusNone}, "a.example.com")
			h.Spec.Enabled = false
			return h
		}(), "", 0},
		{"never requested, wildcard (needs DNS-01)", sslHost(domain.Cert{Status: events.CertStatusNone}, "*.example.com"), "", 0},
		{"request in flight", sslHost(domain.Cert{Status: events.CertStatusRequested, RequestedAt: now.Add(-time.Minute), Attempts: 1}, "a.example.com"), "", 0},
		{"request lost", sslHost(domain.Cert{Status: events.CertStatusRequested, Reason: domain.ReasonRenewal, RequestedAt: now.Add(-5 * time.Minute), Attempts: 1}, "a.example.com"), domain.ReasonRenewal, 1},
		{"failed, waiting", sslHost(domain.Cert{Status: events.CertStatusFailed, Attempts: 2, NextAttemptAt: now.Add(time.Second)}, "a.example.com"), "", 0},
		{"failed, due", sslHost(domain.Cert{Status: events.CertStatusFailed, Attempts: 2, NextAttemptAt: now}, "a.example.com"), domain.ReasonRetry, 3},
		{"issued", sslHost(issued, "a.example.com"), "", 0},
		{"issued, same domains as a set", sslHost(issued, "a.example.com", "a.example.com"), "", 0},
		{"issued, domains changed", sslHost(issued, "a.example.com", "b.example.com"), domain.ReasonDomainsChanged, 1},
		{"renewal due", func() *domain.Host { c := issued; c.RenewAt = now; return sslHost(c, "a.example.com") }(), domain.ReasonRenewal, 1},
		{"deleted", func() *domain.Host {
			h := sslHost(domain.Cert{Status: events.CertStatusFailed}, "a.example.com")
			h.Deleted = true
			return h
		}(), "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.host.CertDue(now, policy)
			if tc.reason == "" {
				if ev != nil {
					t.Fatalf("due: %+v", ev)
				}
				return
			}
			if ev == nil || ev.Reason != tc.reason || ev.Attempt != tc.attempt || strings.Join(ev.Domains, ",") != strings.Join(tc.host.Spec.Domains, ",") {
				t.Fatalf("got %+v, want %s attempt %d", ev, tc.reason, tc.attempt)
			}
		})
	}
}

func TestRequestCertRefusesWildcardsAndRepeats(t *testing.T) {
	if _, err := sslHost(domain.Cert{}, "*.example.com").RequestCert(); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("wildcard: %v", err)
	}
	ev, err := sslHost(domain.Cert{Status: events.CertStatusRequested}, "a.example.com").RequestCert()
	if ev != nil || err != nil {
		t.Fatalf("in flight: %+v %v", ev, err)
	}
	ev, err = sslHost(domain.Cert{Status: events.CertStatusIssued}, "a.example.com").RequestCert()
	if ev == nil || err != nil || ev.Reason != domain.ReasonRequested || ev.Attempt != 1 {
		t.Fatalf("again: %+v %v", ev, err)
	}
}

func TestTLSHealthScore(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	valid := func(left time.Duration) domain.Cert {
		return domain.Cert{Status: events.CertStatusIssued, IssuedDomains: []string{"a.example.com"}, NotAfter: now.Add(left), Issuer: "CA"}
	}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name  string
		host  *domain.Host
		score int
		days  int
	}{
		{"everything", sslHost(valid(60*day), "a.example.com"), 100, 60},
		{"under 30 days", sslHost(valid(20*day), "a.example.com"), 90, 20},
		{"under 14 days", sslHost(valid(13*day+time.Hour), "a.example.com"), 70, 13},
		{"no HSTS, no redirect, no HTTP/2", func() *domain.Host {
			h := sslHost(valid(60*day), "a.example.com")
			h.Spec.SSL = events.SSLSpec{Enabled: true}
			return h
		}(), 75, 60},
		{"every deduction", func() *domain.Host {
			h := sslHost(valid(day), "a.example.com")
			h.Spec.SSL = events.SSLSpec{Enabled: true}
			return h
		}(), 45, 1},
		{"no certificate", sslHost(domain.Cert{Status: events.CertStatusNone}, "a.example.com"), 0, -1},
		{"expired", sslHost(valid(-time.Hour), "a.example.com"), 0, 0},
		{"other domains", sslHost(valid(60*day), "b.example.com"), 0, 60},
		{"renewal failed, still valid", func() *domain.Host {
			c := valid(20 * day)
			c.Status, c.LastError = events.CertStatusFailed, "rate limited"
			return sslHost(c, "a.example.com")
		}(), 90, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.TLSHealth(tc.host, now)
			if got.Score != tc.score {
				t.Fatalf("score %d, want %d (%v)", got.Score, tc.score, got.Issues)
			}
			if tc.days < 0 {
				if got.DaysLeft != nil {
					t.Fatalf("days left %d without a certificate", *got.DaysLeft)
				}
			} else if got.DaysLeft == nil || *got.DaysLeft != tc.days {
				t.Fatalf("days left %v, want %d", got.DaysLeft, tc.days)
			}
			if got.Score < 100 && len(got.Issues) == 0 {
				t.Fatal("a lowered score without issues")
			}
		})
	}
	r := domain.TLSReport(nil)
	if r.Score != 100 || r.Hosts == nil {
		t.Fatalf("empty report: %+v", r)
	}
	r = domain.TLSReport([]events.TLSHostHealth{{Score: 90}, {Score: 45}, {Score: 100}})
	if r.Score != 45 {
		t.Fatalf("report score %d", r.Score)
	}
}

func TestSettingsAndReports(t *testing.T) {
	a := &domain.Agent{ID: "a1", Mode: events.ProxyModeManaged}
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		mode, email *string
		field       string
	}{
		{str("weird"), nil, "mode"},
		{nil, str("not-an-address"), "acme_email"},
		{nil, str("Ops <ops@example.com>"), "acme_email"},
		{nil, str("ops@example.com\nBcc: x@example.com"), "acme_email"},
	} {
		_, err := a.SetSettings(tc.mode, tc.email)
		e, ok := err.(*events.Error)
		if !ok || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
			t.Errorf("%v %v: %v", tc.mode, tc.email, err)
		}
	}
	if ev, err := a.SetSettings(str(events.ProxyModeManaged), str("")); ev != nil || err != nil {
		t.Fatalf("no change: %+v %v", ev, err)
	}
	ev, err := a.SetSettings(str(" external "), str("ops@example.com"))
	if err != nil || ev.Mode != events.ProxyModeExternal || ev.ACMEEmail != "ops@example.com" {
		t.Fatalf("change: %+v %v", ev, err)
	}

	info := &events.NginxAgentInfo{Enabled: true, Kind: events.NginxKindLocal}
	rep := a.Report(info, 3, "")
	if rep == nil || rep.AppliedRevision != 3 {
		t.Fatalf("report: %+v", rep)
	}
	a.Nginx, a.AppliedRevision = rep.Nginx, rep.AppliedRevision
	if again := a.Report(&events.NginxAgentInfo{Enabled: true, Kind: events.NginxKindLocal}, 2, ""); again != nil {
		t.Fatalf("an older revision and the same facts are news: %+v", again)
	}
	if failed := a.Report(nil, 0, "reload failed"); failed == nil || failed.AppliedRevision != 3 || failed.Nginx == nil {
		t.Fatalf("whole-set failure: %+v", failed)
	}
}

func TestAttachableNetworks(t *testing.T) {
	for _, tc := range []struct {
		n  events.Network
		ok bool
	}{
		{events.Network{Name: "bridge", Driver: "bridge"}, true},
		{events.Network{Name: "app", Driver: "macvlan"}, true},
		{events.Network{Name: "host", Driver: "host"}, false},
		{events.Network{Name: "none", Driver: "null"}, false},
		{events.Network{Name: "HOST", Driver: "bridge"}, false},
		{events.Network{Name: "swarm", Driver: "overlay"}, false},
	} {
		if err := domain.CheckAttachable(tc.n); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.n, err)
		}
	}
	a := &domain.Agent{Nginx: &events.NginxAgentInfo{Kind: events.NginxKindContainer}}
	if _, err := a.NginxContainer(); err == nil {
		t.Fatal("a container kind without a container name")
	}
	a.Nginx.Container = "nginx"
	if c, err := a.NginxContainer(); err != nil || c != "nginx" {
		t.Fatalf("%q %v", c, err)
	}
}
