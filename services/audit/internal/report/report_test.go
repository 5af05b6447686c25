package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

type sliceSource struct {
	entries []events.AuditEntry
	err     error
}

func (s sliceSource) Entries(_ context.Context, org string, from, to time.Time) iter.Seq2[events.AuditEntry, error] {
	return func(yield func(events.AuditEntry, error) bool) {
		for _, e := range s.entries {
			t, _ := time.Parse(time.RFC3339Nano, e.Time)
			// A buggy source: it leaks org_x's entries to every caller.
			if (e.OrgID != org && e.OrgID != "org_x") || t.Before(from) || !t.Before(to) {
				continue
			}
			if !yield(e, nil) {
				return
			}
		}
		if s.err != nil {
			yield(events.AuditEntry{}, s.err)
		}
	}
}

var (
	owner  = events.Actor{Kind: events.ActorUser, ID: "usr_owner", IP: "203.0.113.1"}
	userA  = events.Actor{Kind: events.ActorUser, ID: "usr_a", IP: "203.0.113.2"}
	userD  = events.Actor{Kind: events.ActorUser, ID: "usr_d", IP: "203.0.113.4"}
	system = events.SystemActor("auth")
)

// scenario is one org's chain from October to December 2026; the report
// period is November.
func scenario() []events.AuditEntry {
	type ev struct {
		at      string
		actor   events.Actor
		action  string
		res     events.AuditResource
		outcome string
		details string
	}
	org := events.AuditResource{Type: "org", ID: "org_1"}
	evs := []ev{
		{"2026-10-01T09:00:00Z", owner, ActionMemberAdded, org, "success", `{"user_id":"usr_a","role":"admin"}`},
		{"2026-10-01T09:01:00Z", owner, ActionMemberAdded, org, "success", `{"user_id":"usr_b","role":"viewer"}`},
		{"2026-10-02T09:00:00Z", owner, ActionMemberAdded, org, "success", `{"user_id":"usr_c","role":"viewer"}`},
		{"2026-10-03T09:00:00Z", owner, ActionMemberRemoved, org, "success", `{"user_id":"usr_c","role":"viewer"}`},
		{"2026-10-04T09:00:00Z", owner, "auth.apikey.created", events.AuditResource{Type: "apikey", ID: "key_1"}, "success", `{"name":"ci","role":"operator","prefix":"ip_ab"}`},
		{"2026-11-02T08:00:00Z", userA, ActionLoginSucceeded, events.AuditResource{Type: "login", ID: "h1"}, "success", `{"user_id":"usr_a","method":"password","mfa":true}`},
		{"2026-11-02T08:10:00Z", system, ActionLoginFailed, events.AuditResource{Type: "login", ID: "h2"}, "failure", `{"reason":"bad_password","ip":"198.51.100.9"}`},
		{"2026-11-02T08:10:05Z", system, ActionLoginFailed, events.AuditResource{Type: "login", ID: "h2"}, "failure", `{"reason":"bad_password","ip":"198.51.100.9"}`},
		{"2026-11-03T08:10:10Z", system, ActionLoginFailed, events.AuditResource{Type: "login", ID: "h2"}, "failure", `{"reason":"throttled","ip":"198.51.100.9"}`},
		{"2026-11-03T09:00:00Z", userA, ActionMFAFailed, events.AuditResource{Type: "user", ID: "usr_a"}, "failure", `{"stage":"login","reason":"bad_code"}`},
		{"2026-11-04T10:00:00Z", userA, ActionMemberRoleChange, org, "success", `{"user_id":"usr_b","role":"operator","previous_role":"viewer"}`},
		{"2026-11-05T10:00:00Z", userA, ActionMemberAdded, org, "success", `{"user_id":"usr_d","role":"operator"}`},
		{"2026-11-06T10:00:00Z", userD, "proxy.host.create", events.AuditResource{Type: "host", ID: "h_1"}, "denied", `{"permission":"proxy:write"}`},
		{"2026-11-06T10:05:00Z", userD, "policy.violation.blocked", events.AuditResource{Type: "container", ID: "c_1"}, "denied", `{"policy":"no-privileged"}`},
		{"2026-11-07T10:00:00Z", userA, ActionSessionRevoked, events.AuditResource{Type: "session", ID: "s_1"}, "success", `{"reason":"reuse"}`},
		{"2026-11-08T10:00:00Z", userA, ActionMemberRemoved, org, "success", `{"user_id":"usr_b","role":"operator"}`},
		{"2026-11-09T10:00:00Z", owner, "auth.apikey.revoked", events.AuditResource{Type: "apikey", ID: "key_1"}, "success", `{"revoked_by":"usr_owner"}`},
		{"2026-12-01T00:00:00Z", owner, ActionMemberAdded, org, "success", `{"user_id":"usr_e","role":"admin"}`},
	}
	prev := events.GenesisHash
	var out []events.AuditEntry
	for i, v := range evs {
		e := events.AuditEntry{OrgID: "org_1", Index: uint64(i + 1), PrevHash: prev, EventID: "evt_" + v.at, Time: v.at,
			Actor: v.actor, Action: v.action, Resource: v.res, Outcome: v.outcome, Details: json.RawMessage(v.details)}
		e.Hash, _ = e.ComputeHash()
		prev = e.Hash
		out = append(out, e)
	}
	// Another org's entry, which a buggy source hands out: never counted.
	out = append(out, events.AuditEntry{OrgID: "org_x", Index: 1, Time: "2026-11-10T00:00:00Z", Actor: userA,
		Action: ActionLoginFailed, Outcome: "failure"})
	return out
}

var (
	november = Request{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	fixedNow = func() time.Time { return time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC) }
)

func build(t *testing.T, k Kind, o Options) *Report {
	t.Helper()
	req := november
	req.Kind = k
	if o.Now == nil {
		o.Now = fixedNow
	}
	r, err := Build(context.Background(), sliceSource{entries: scenario()}, "org_1", req, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func section(t *testing.T, r *Report, id string) Section {
	t.Helper()
	for _, s := range r.Sections {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no section %s in %s", id, r.Kind)
	return Section{}
}

func col(s Section, name string) int { return slices.Index(s.Columns, name) }

func TestReportsGolden(t *testing.T) {
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			r := build(t, k, Options{})
			var j, c bytes.Buffer
			if err := r.WriteJSON(&j); err != nil {
				t.Fatal(err)
			}
			if err := r.WriteCSV(&c); err != nil {
				t.Fatal(err)
			}
			golden(t, string(k)+".json", j.Bytes())
			golden(t, string(k)+".csv", c.Bytes())
			// The CSV parses, and every record names its table.
			recs, err := func() ([][]string, error) {
				cr := csv.NewReader(&c)
				cr.FieldsPerRecord = -1
				return cr.ReadAll()
			}()
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if rec[0] == "" {
					t.Fatalf("record without a table: %q", rec)
				}
			}
		})
	}
}

func TestReportRange(t *testing.T) {
	r := build(t, KindActivity, Options{})
	// Entries 6..17 are November's.
	if r.Entries != 12 || r.FirstIndex != 6 || r.LastIndex != 17 {
		t.Fatalf("entries %d, indexes %d..%d", r.Entries, r.FirstIndex, r.LastIndex)
	}
	if s := section(t, r, "by_day"); s.Rows[0][0] != "2026-11-02" || s.Rows[0][1] != "3" {
		t.Fatalf("by_day: %v", s.Rows)
	}
}

func TestSecurityReport(t *testing.T) {
	r := build(t, KindSecurity, Options{})
	got := map[string]string{}
	for _, row := range section(t, r, "by_category").Rows {
		got[row[0]] = row[1]
	}
	want := map[string]string{CategoryFailedLogin: "3", CategoryMFAFailure: "1", CategoryDeniedRequest: "1", CategoryPolicyBlock: "1", CategoryTokenReuse: "1"}
	if len(got) != len(want) {
		t.Fatalf("categories %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %s, want %s (all %v)", k, got[k], v, got)
		}
	}
	// Failed logins are grouped by the source IP from their details.
	if s := section(t, r, "by_source"); s.Rows[0][0] != CategoryFailedLogin || s.Rows[0][1] != "198.51.100.9" || s.Rows[0][3] != "3" {
		t.Fatalf("by_source: %v", s.Rows)
	}
}

func TestAccessReview(t *testing.T) {
	r := build(t, KindAccessReview, Options{})
	m := section(t, r, "members")
	byUser := map[string][]string{}
	for _, row := range m.Rows {
		byUser[row[0]] = row
	}
	if len(byUser) != 3 {
		t.Fatalf("members: %v", m.Rows)
	}
	if a := byUser["usr_a"]; a[col(m, "role")] != "admin" || a[col(m, "status")] != "member" || a[col(m, "changes_in_period")] != "0" {
		t.Fatalf("usr_a: %v", a)
	}
	if b := byUser["usr_b"]; b[col(m, "status")] != "removed" || b[col(m, "changes_in_period")] != "2" || b[col(m, "last_change_by")] != "user:usr_a" {
		t.Fatalf("usr_b: %v", b)
	}
	if d := byUser["usr_d"]; d[col(m, "role")] != "operator" || d[col(m, "member_since")] != "2026-11-05T10:00:00Z" {
		t.Fatalf("usr_d: %v", d)
	}
	k := section(t, r, "api_keys")
	if len(k.Rows) != 1 || k.Rows[0][0] != "key_1" || k.Rows[0][col(k, "revoked_at")] != "2026-11-09T10:00:00Z" {
		t.Fatalf("api keys: %v", k.Rows)
	}
	if c := section(t, r, "changes"); c.Total != 3 {
		t.Fatalf("changes: %v", c.Rows)
	}
}

func TestSOC2AndHIPAA(t *testing.T) {
	r := build(t, KindSOC2, Options{})
	if s := section(t, r, "CC6.3"); s.Total != 1 || s.Rows[0][col(s, "previous_role")] != "viewer" || s.Rows[0][col(s, "role")] != "operator" {
		t.Fatalf("CC6.3: %v", s.Rows)
	}
	if s := section(t, r, "CC6.2"); s.Total != 3 {
		t.Fatalf("CC6.2: %v", s.Rows)
	}
	if s := section(t, r, "CC6.1"); s.Total != 7 {
		t.Fatalf("CC6.1: %d %v", s.Total, s.Rows)
	}
	if s := section(t, r, "CC7.2"); s.Total != 7 {
		t.Fatalf("CC7.2: %v", s.Rows)
	}
	h := build(t, KindHIPAA, Options{})
	if s := section(t, h, "164.308(a)(6)"); s.Total != 7 {
		t.Fatalf("incidents: %v", s.Rows)
	}
	if s := section(t, h, "164.312(b)"); s.Total != 12 {
		t.Fatalf("access: %v", s.Rows)
	}
}

func TestEvidenceIsCappedTotalsExact(t *testing.T) {
	r := build(t, KindSecurity, Options{MaxRows: 2})
	s := section(t, r, "events")
	if s.Total != 7 || len(s.Rows) != 2 || !s.Truncated {
		t.Fatalf("events: total %d rows %d truncated %v", s.Total, len(s.Rows), s.Truncated)
	}
}

func TestBuildErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Build(ctx, sliceSource{}, "org_1", Request{Kind: "pci", From: november.To, To: november.From}, Options{})
	if e := events.AsError(err); e.Code != events.CodeInvalid || len(e.Fields) != 2 {
		t.Fatalf("err = %+v", e)
	}
	if _, err := Build(ctx, sliceSource{}, "org.*", Request{Kind: KindSOC2, From: november.From, To: november.To}, Options{}); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("bad org: %v", err)
	}
	boom := errors.New("boom")
	req := november
	req.Kind = KindActivity
	if _, err := Build(ctx, sliceSource{entries: scenario(), err: boom}, "org_1", req, Options{}); !errors.Is(err, boom) {
		t.Fatalf("source error: %v", err)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file\n got:\n%s", name, got)
	}
}
