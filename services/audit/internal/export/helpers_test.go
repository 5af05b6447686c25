package export

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// chainOf links entries into a valid chain of org: indexes from 1,
// prev_hash and hash computed by the chain rule.
func chainOf(t testing.TB, org string, entries []events.AuditEntry) []events.AuditEntry {
	t.Helper()
	prev := events.GenesisHash
	out := make([]events.AuditEntry, len(entries))
	for i, e := range entries {
		e.OrgID, e.Index, e.PrevHash = org, uint64(i+1), prev
		h, err := e.ComputeHash()
		if err != nil {
			t.Fatal(err)
		}
		e.Hash, prev = h, h
		out[i] = e
	}
	return out
}

// trickyEntries holds every character the formats must escape: = \ | ] "
// and line breaks, in header and extension / structured-data positions.
func trickyEntries(t testing.TB) []events.AuditEntry {
	return chainOf(t, "org_1", []events.AuditEntry{
		{
			EventID: "0190a5b2-0000-7000-8000-000000000001", Time: "2026-11-29T10:00:00.123456789Z",
			Actor:  events.Actor{Kind: events.ActorUser, ID: "usr_1", IP: "203.0.113.9", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"},
			Action: "tenancy.member.added", Resource: events.AuditResource{Type: "org", ID: "org_1"},
			Outcome: events.OutcomeSuccess, Details: json.RawMessage(`{"user_id":"usr_2","role":"admin"}`),
		},
		{
			EventID: "0190a5b2-0000-7000-8000-000000000002", Time: "2026-11-29T10:00:01Z",
			Actor:  events.Actor{Kind: events.ActorUser, ID: `a=b\c|d]e"f`, IP: "2001:db8::1", UserAgent: "curl/8.0\r\nX-Injected: yes"},
			Action: "auth.login.failed", Resource: events.AuditResource{Type: "login|type", ID: "x=1]\"\\"},
			Outcome: events.OutcomeFailure, Details: json.RawMessage(`{"reason":"bad_password","note":"line1\nline2 = \\ | ] \""}`),
		},
		{
			EventID: "0190a5b2-0000-7000-8000-000000000003", Time: "2026-11-30T23:59:59.5Z",
			Actor:  events.Actor{Kind: events.ActorAPIKey, ID: "=HYPERLINK(\"http://evil\")", IP: "not an ip"},
			Action: "weird|act\\ion\nnext", Resource: events.AuditResource{Type: "policy", ID: "+cmd"},
			Outcome: events.OutcomeDenied,
		},
	})
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
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// manyEntries is a valid chain of n ordinary entries of org.
func manyEntries(t testing.TB, org string, n int) []events.AuditEntry {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	raw := make([]events.AuditEntry, n)
	for i := range raw {
		raw[i] = events.AuditEntry{
			EventID: fmt.Sprintf("evt-%d", i), Time: base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339Nano),
			Actor:  events.Actor{Kind: events.ActorUser, ID: "usr_1", IP: "198.51.100.7", UserAgent: "ua"},
			Action: "tenancy.member.added", Resource: events.AuditResource{Type: "org", ID: org},
			Outcome: events.OutcomeSuccess, Details: []byte(`{"user_id":"usr_2","role":"viewer"}`),
		}
	}
	return chainOf(t, org, raw)
}
