package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/pquerna/otp/totp"
)

// auditLog reads an org's audit log through the API as one of its
// administrators.
type auditLog struct {
	c          *apiClient
	token, org string
	seen       uint64 // the highest index already accounted for
}

// all returns every entry of the org's log, oldest first.
func (l *auditLog) all() []events.AuditEntry {
	l.c.t.Helper()
	var out []events.AuditEntry
	cursor := ""
	for {
		r := l.c.must(200, "GET", api+"/audit?limit=500&cursor="+url.QueryEscape(cursor), l.token, l.org, nil)
		var page events.List[events.AuditEntry]
		if err := json.Unmarshal(r.Raw, &page); err != nil {
			l.c.t.Fatal(err)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	slices.SortFunc(out, func(a, b events.AuditEntry) int { return int(a.Index) - int(b.Index) })
	return out
}

// want is one entry a request must add to the log.
type want struct {
	action  string
	kind    events.ActorKind
	actor   string
	outcome string
	ip      string // the client's, "" for the system's own work
}

// expect waits until the log has grown by len(ws) entries and checks that
// the new entries are exactly ws (in any order: different streams reach
// the chain in their own time), then accounts for them.
func (l *auditLog) expect(t *testing.T, step string, ws ...want) []events.AuditEntry {
	t.Helper()
	var fresh []events.AuditEntry
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		fresh = fresh[:0]
		for _, e := range l.all() {
			if e.Index > l.seen {
				fresh = append(fresh, e)
			}
		}
		if len(fresh) < len(ws) {
			return fmt.Errorf("%s: %d new entries, want %d", step, len(fresh), len(ws))
		}
		return nil
	})
	describe := func(es []events.AuditEntry) string {
		var b strings.Builder
		for _, e := range es {
			fmt.Fprintf(&b, "\n  #%d %s by %s %s from %q: %s", e.Index, e.Action, e.Actor.Kind, e.Actor.ID, e.Actor.IP, e.Outcome)
		}
		return b.String()
	}
	if len(fresh) != len(ws) {
		t.Fatalf("%s: %d new entries, want %d:%s", step, len(fresh), len(ws), describe(fresh))
	}
	left := slices.Clone(fresh)
	for _, w := range ws {
		i := slices.IndexFunc(left, func(e events.AuditEntry) bool {
			return e.Action == w.action && e.Actor.Kind == w.kind && e.Actor.ID == w.actor && e.Outcome == w.outcome &&
				e.Actor.IP == w.ip && e.OrgID == l.org
		})
		if i < 0 {
			t.Fatalf("%s: no entry %s by %s %s (%s) from %q among:%s", step, w.action, w.kind, w.actor, w.outcome, w.ip, describe(fresh))
		}
		left = slices.Delete(left, i, i+1)
	}
	for _, e := range fresh {
		l.seen = max(l.seen, e.Index)
	}
	return fresh
}

// The client's address as the gateway sees it.
const clientIP = "127.0.0.1"

func ok(action string, kind events.ActorKind, actor string) want {
	return want{action, kind, actor, events.OutcomeSuccess, clientIP}
}

func failed(action string, kind events.ActorKind, actor string) want {
	return want{action, kind, actor, events.OutcomeFailure, clientIP}
}

// system is an entry of the audit service's own background work.
func system(action string) want {
	return want{action, events.ActorSystem, "audit", events.OutcomeSuccess, ""}
}

// TestAuditEndToEnd drives the identity flows through the real gateway
// and services of `infrapilot dev` and checks that each mutating request
// adds exactly its entries to the right org's audit chain — one per event
// it causes — with the right actor, ip and outcome, failed sign-ins
// included; that the chain verifies online and, exported, offline; that
// exports in every format and reports of every kind are served; and that
// another org sees none of it.
func TestAuditEndToEnd(t *testing.T) {
	c, _ := identityDev(t)
	start := time.Now().Add(-time.Minute).UTC()
	user := events.ActorUser

	// Sign-up: the org is created and its owner's first session starts.
	// The account itself (auth.user.registered) predates the org and stays
	// in the platform chain.
	a := register(c, "alice@audit.example.com", "Audit Alpha")
	logA := &auditLog{c: c, token: a.access, org: a.orgID}
	logA.expect(t, "register",
		ok("tenancy.org.created", user, a.userID), ok("tenancy.member.added", user, a.userID),
		ok("auth.session.started", user, a.userID))

	r := login(c, a.email, a.password)
	if r.Status != 200 {
		t.Fatalf("login: %d %s", r.Status, r.Raw)
	}
	access, refresh := r.str("access_token"), r.str("refresh_token")
	logA.expect(t, "login", ok("auth.login.succeeded", user, a.userID), ok("auth.session.started", user, a.userID))

	c.must(401, "POST", api+"/auth/login", "", "", map[string]any{"email": a.email, "password": "not the password"})
	logA.expect(t, "failed login", failed("auth.login.failed", user, a.userID))

	// A failed sign-in of an unknown address concerns no org: it is in
	// the platform chain only.
	c.must(401, "POST", api+"/auth/login", "", "", map[string]any{"email": "nobody@audit.example.com", "password": "whatever it is"})

	r = c.must(200, "POST", api+"/auth/refresh", "", "", map[string]any{"refresh_token": refresh})
	logA.expect(t, "refresh", ok("auth.session.refreshed", user, a.userID))
	c.must(204, "POST", api+"/auth/logout", "", "", map[string]any{"refresh_token": r.str("refresh_token")})
	logA.expect(t, "logout", ok("auth.session.revoked", user, a.userID))
	_ = access

	k := c.must(201, "POST", api+"/auth/api-keys", a.access, a.orgID, map[string]any{"name": "ci", "role": "admin"})
	keyID, key := k.str("id"), k.str("key")
	logA.expect(t, "API key create", ok("auth.apikey.created", user, a.userID))

	// A member joins: another user, signed up with an org of their own.
	b := register(c, "bob@audit.example.com", "Bob's Own")
	c.must(201, "POST", api+"/orgs/"+a.orgID+"/members", a.access, a.orgID, map[string]any{"email": b.email, "role": "viewer"})
	logA.expect(t, "member add", ok("tenancy.member.added", user, a.userID))
	c.must(200, "PATCH", api+"/orgs/"+a.orgID+"/members/"+b.userID, a.access, a.orgID, map[string]any{"role": "operator"})
	logA.expect(t, "role change", ok("tenancy.member.role_changed", user, a.userID))

	// From now on Bob's own security events are in Alpha's log too — and
	// in his own org's.
	c.must(401, "POST", api+"/auth/login", "", "", map[string]any{"email": b.email, "password": "not bob's password"})
	logA.expect(t, "member's failed login", failed("auth.login.failed", user, b.userID))
	logB := &auditLog{c: c, token: b.access, org: b.orgID}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if !slices.ContainsFunc(logB.all(), func(e events.AuditEntry) bool {
			return e.Action == "auth.login.failed" && e.Actor.ID == b.userID && e.Outcome == events.OutcomeFailure
		}) {
			return fmt.Errorf("Bob's failed login is not in his own org's log")
		}
		return nil
	})

	c.must(201, "POST", api+"/orgs/"+a.orgID+"/invitations", a.access, a.orgID, map[string]any{"email": "carol@audit.example.com", "role": "viewer"})
	logA.expect(t, "invitation", ok("tenancy.invitation.created", user, a.userID))

	et := c.must(201, "POST", api+"/orgs/"+a.orgID+"/enrollment-tokens", a.access, a.orgID, map[string]any{"name": "fleet", "max_uses": 3})
	logA.expect(t, "enrollment token create", ok("tenancy.enrollment_token.created", user, a.userID))
	c.must(200, "POST", api+"/orgs/"+a.orgID+"/enrollment-tokens/"+et.str("id")+"/revoke", a.access, a.orgID, nil)
	logA.expect(t, "enrollment token revoke", ok("tenancy.enrollment_token.revoked", user, a.userID))

	// The same through the API key: the actor is the key.
	et = c.must(201, "POST", api+"/orgs/"+a.orgID+"/enrollment-tokens", key, "", map[string]any{"name": "by key", "max_uses": 1})
	logA.expect(t, "enrollment token by API key", ok("tenancy.enrollment_token.created", events.ActorAPIKey, keyID))
	c.must(204, "DELETE", api+"/auth/api-keys/"+keyID, a.access, a.orgID, nil)
	logA.expect(t, "API key revoke", ok("auth.apikey.revoked", user, a.userID))

	// Second factor. Its setup stores a pending secret and records
	// auth.mfa.setup_started (without the secret); confirming it is
	// audited, and so is a wrong code at sign-in. The password step of an MFA sign-in records
	// nothing until the second factor decides.
	setup := c.must(200, "POST", api+"/auth/mfa/setup", a.access, "", nil)
	logA.expect(t, "MFA setup", ok("auth.mfa.setup_started", user, a.userID))
	code, err := totp.GenerateCode(setup.str("secret"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.must(200, "POST", api+"/auth/mfa/confirm", a.access, "", map[string]any{"code": code})
	logA.expect(t, "MFA confirm", ok("auth.mfa.enabled", user, a.userID))
	r = login(c, a.email, a.password)
	if r.Body["mfa_required"] != true {
		t.Fatalf("login with MFA: %s", r.Raw)
	}
	c.must(401, "POST", api+"/auth/mfa/verify", "", "", map[string]any{"mfa_token": r.str("mfa_token"), "code": "000000"})
	logA.expect(t, "MFA verify failure", failed("auth.mfa.failed", user, a.userID))

	// The whole chain verifies online.
	v := c.must(200, "GET", api+"/audit/verify", a.access, a.orgID, nil)
	if v.Body["ok"] != true || v.Body["checked"].(float64) < float64(logA.seen) {
		t.Fatalf("verify: %s", v.Raw)
	}
	entriesA := logA.all()

	exports := auditExports(t, c, a, start, logA.seen)
	reports := auditReports(t, c, a, start, logA.seen)
	// Who exported the log and pulled reports is in the log too.
	var ws []want
	for range exports {
		ws = append(ws, ok("audit.export.requested", user, a.userID), system("audit.export.started"), system("audit.export.completed"))
	}
	for range reports {
		ws = append(ws, ok("audit.report.generated", user, a.userID))
	}
	logA.expect(t, "exports and reports", ws...)

	// Org B (Bob's own) sees none of Alpha's entries, exports or reports.
	for _, e := range logB.all() {
		if e.OrgID != b.orgID || slices.ContainsFunc(entriesA, func(x events.AuditEntry) bool { return x.EventID == e.EventID }) {
			t.Fatalf("Bob's org sees %+v", e)
		}
	}
	list := c.must(200, "GET", api+"/audit/exports", b.access, b.orgID, nil)
	for _, id := range append(exports, reports...) {
		if strings.Contains(string(list.Raw), id) {
			t.Fatalf("B lists A's export %s", id)
		}
		for _, path := range []string{"/audit/exports/" + id, "/audit/exports/" + id + "/download", "/audit/reports/" + id} {
			if r := c.call("GET", api+path, b.access, b.orgID, nil); r.Status != http.StatusNotFound || strings.Contains(string(r.Raw), a.orgID) {
				t.Fatalf("B got %s: %d %s", path, r.Status, r.Raw)
			}
		}
	}
	// Alice, member of Alpha only, cannot read B's log by naming it.
	c.must(404, "GET", api+"/audit", a.access, b.orgID, nil)

	auditConfigAndHealth(t, c, a, logA)
}

// auditExports exports Alpha's log in every format, downloads each file,
// checks it (at least minRows entries each), verifies the JSONL one
// offline with `infrapilot audit verify`, and returns the export ids.
func auditExports(t *testing.T, c *apiClient, a account, start time.Time, minRows uint64) []string {
	t.Helper()
	from, to := start.Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var ids []string
	for _, format := range []string{"jsonl", "csv", "cef", "syslog"} {
		r := c.must(201, "POST", api+"/audit/exports", a.access, a.orgID, map[string]any{"format": format, "from": from, "to": to})
		id := r.str("id")
		// Small exports may be done by the time the job is visible.
		if id == "" || !slices.Contains([]string{events.AuditExportStatusQueued, events.AuditExportStatusRunning, events.AuditExportStatusDone}, r.str("status")) {
			t.Fatalf("%s export: %s", format, r.Raw)
		}
		var job response
		natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
			job = c.must(200, "GET", api+"/audit/exports/"+id, a.access, a.orgID, nil)
			if s := job.str("status"); s != events.AuditExportStatusDone {
				return fmt.Errorf("%s export is %s", format, s)
			}
			return nil
		})
		rows := uint64(job.Body["rows"].(float64))
		d := c.must(200, "GET", api+"/audit/exports/"+id+"/download", a.access, a.orgID, nil)
		if int64(len(d.Raw)) != int64(job.Body["bytes"].(float64)) || rows < minRows ||
			!strings.Contains(d.Header.Get("Content-Disposition"), id) {
			t.Fatalf("%s download: %d bytes (want %v), %d rows (want >= %d), job %s, headers %v", format, len(d.Raw), job.Body["bytes"], rows, minRows, job.Raw, d.Header)
		}
		lines := bytes.Split(bytes.TrimSuffix(d.Raw, []byte("\n")), []byte("\n"))
		switch format {
		case "jsonl":
			path := filepath.Join(t.TempDir(), "export.jsonl")
			if err := os.WriteFile(path, d.Raw, 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if err := runAuditVerify(context.Background(), []string{"verify", "--file", path}, &out, &errOut, func(string) string { return "" }); err != nil {
				t.Fatalf("infrapilot audit verify: %v\n%s%s", err, out.String(), errOut.String())
			}
			if !strings.HasPrefix(out.String(), "OK") {
				t.Fatalf("infrapilot audit verify: %s", out.String())
			}
		case "csv":
			recs, err := csv.NewReader(bytes.NewReader(d.Raw)).ReadAll()
			if err != nil || uint64(len(recs)) != rows+1 || !bytes.Contains(d.Raw, []byte("auth.login.failed")) {
				t.Fatalf("csv export: %d records, %v", len(recs), err)
			}
		case "cef":
			if uint64(len(lines)) != rows || !bytes.HasPrefix(lines[0], []byte("CEF:0|")) {
				t.Fatalf("cef export: %d lines: %s", len(lines), lines[0])
			}
		case "syslog":
			if uint64(len(lines)) != rows || !bytes.HasPrefix(lines[0], []byte("<")) {
				t.Fatalf("syslog export: %d lines: %s", len(lines), lines[0])
			}
		}
		ids = append(ids, id)
	}
	return ids
}

// auditReports pulls a report of every kind, as JSON and as CSV, and
// returns their ids.
func auditReports(t *testing.T, c *apiClient, a account, start time.Time, minRows uint64) []string {
	t.Helper()
	from, to := start.Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var ids []string
	for _, kind := range []string{"soc2", "hipaa", "access_review", "activity", "security"} {
		r := c.must(201, "POST", api+"/audit/reports", a.access, a.orgID, map[string]any{"kind": kind, "from": from, "to": to})
		id := r.str("id")
		if id == "" || uint64(r.Body["entries"].(float64)) < minRows {
			t.Fatalf("%s report: %s", kind, r.Raw)
		}
		doc := c.must(200, "GET", api+"/audit/reports/"+id, a.access, a.orgID, nil)
		if doc.str("kind") != kind || doc.str("org_id") != a.orgID || !strings.HasPrefix(doc.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s report: %s", kind, doc.Raw)
		}
		if kind == "security" && !bytes.Contains(doc.Raw, []byte("auth.login.failed")) {
			t.Fatalf("the security report lacks the failed sign-ins: %s", doc.Raw)
		}
		req, _ := http.NewRequest("GET", c.base+api+"/audit/reports/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+a.access)
		req.Header.Set("Accept", "text/csv")
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cr := csv.NewReader(resp.Body)
		cr.FieldsPerRecord = -1
		recs, err := cr.ReadAll()
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(recs) < 4 || recs[1][1] != kind {
			t.Fatalf("%s report as CSV: %d %v %v", kind, resp.StatusCode, err, recs)
		}
		ids = append(ids, id)
	}
	list := c.must(200, "GET", api+"/audit/reports", a.access, a.orgID, nil)
	for _, id := range ids {
		if !strings.Contains(string(list.Raw), id) {
			t.Fatalf("report %s not listed", id)
		}
	}
	return ids
}

// auditConfigAndHealth: SIEM destinations are configured through
// /audit/config with their secret never shown back; the forwarding test
// refuses a destination on a private network (the default); and /readyz
// reports the ClickHouse projection off without failing.
func auditConfigAndHealth(t *testing.T, c *apiClient, a account, logA *auditLog) {
	t.Helper()
	body := map[string]any{"retention_days": 365, "retention_policy": "archive", "forwarding": []map[string]any{{
		"id": "siem", "kind": "webhook", "url": "https://siem.invalid/hook", "secret": "webhook-secret-value"}}}
	r := c.must(200, "PUT", api+"/audit/config", a.access, a.orgID, body)
	if strings.Contains(string(r.Raw), "webhook-secret-value") || !strings.Contains(string(r.Raw), `"secret_set":true`) {
		t.Fatalf("config put: %s", r.Raw)
	}
	logA.expect(t, "audit configuration", ok("audit.config.updated", events.ActorUser, a.userID),
		ok("audit.forwarding.updated", events.ActorUser, a.userID))
	for _, e := range logA.all() {
		if bytes.Contains(e.Details, []byte("webhook-secret-value")) {
			t.Fatalf("the secret is in entry %d", e.Index)
		}
	}
	g := c.must(200, "GET", api+"/audit/config", a.access, a.orgID, nil)
	if strings.Contains(string(g.Raw), "webhook-secret-value") || !strings.Contains(string(g.Raw), `"id":"siem"`) {
		t.Fatalf("config get: %s", g.Raw)
	}
	res := c.must(200, "POST", api+"/audit/forwarding/test", a.access, a.orgID, map[string]any{"destination": map[string]any{
		"kind": "webhook", "url": "https://127.0.0.1:9/hook", "secret": "x"}})
	if res.Body["ok"] != false || !strings.Contains(res.str("error"), "private") {
		t.Fatalf("forwarding test to loopback: %s", res.Raw)
	}
	ready := c.must(200, "GET", "/readyz", "", "", nil)
	checks, _ := ready.Body["checks"].(map[string]any)
	if checks["service:audit"] != events.HealthOK || checks["service:audit/clickhouse"] != "off (not configured)" {
		t.Fatalf("readyz: %s", ready.Raw)
	}
}
