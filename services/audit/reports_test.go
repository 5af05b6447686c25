package audit_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// TestReportsAreComputedStoredAndPerOrg asks for every kind of report,
// reads both renderings back from the archive bucket, and checks that a
// report covers exactly its org and range, is listed, audited, and
// invisible to another org.
func TestReportsAreComputedStoredAndPerOrg(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1")
	orgA, orgB := "org-rep-a", "org-rep-b"
	admin := events.Actor{Kind: events.ActorUser, ID: "u-admin", IP: "203.0.113.8"}
	agg := events.Aggregate{Type: "org", ID: orgA}
	for i, typ := range []string{"tenancy.member.added", "tenancy.member.role_changed", "auth.apikey.created", "auth.login.failed", "policy.request.denied"} {
		e.publish(event(t, orgA, typ, admin, agg, i))
	}
	e.publish(event(t, orgB, "tenancy.member.added", admin, events.Aggregate{Type: "org", ID: orgB}, 9))
	e.waitProjected(orgA, 5, 30*time.Second)
	e.waitProjected(orgB, 1, 30*time.Second)

	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var ids []string
	for _, kind := range []string{"soc2", "hipaa", "access_review", "activity", "security"} {
		for _, format := range []string{"json", "csv"} {
			var rep events.AuditReport
			if err := e.call(orgA, "admin", events.OpAuditReportCreate, events.AuditReportRequest{Kind: kind, From: from, To: to, Format: format}, &rep); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if rep.ID == "" || rep.Kind != kind || rep.Format != format || rep.Entries < 5 || rep.FirstIndex != 1 ||
				rep.Bucket != events.AuditBucketArchive || len(rep.Objects) != 2 {
				t.Fatalf("%s report %+v", kind, rep)
			}
			for f, name := range rep.Objects {
				if !strings.HasPrefix(name, events.AuditObjectPrefix(orgA)) {
					t.Fatalf("%s rendering stored as %s", f, name)
				}
			}
			doc := e.object(rep.Bucket, rep.Objects["json"])
			var parsed struct {
				Kind     string `json:"kind"`
				OrgID    string `json:"org_id"`
				Entries  uint64 `json:"entries"`
				Sections []struct {
					ID string `json:"id"`
				} `json:"sections"`
			}
			if err := json.Unmarshal(doc, &parsed); err != nil || parsed.Kind != kind || parsed.OrgID != orgA ||
				parsed.Entries != rep.Entries || len(parsed.Sections) == 0 {
				t.Fatalf("%s JSON rendering: %v %s", kind, err, doc)
			}
			cr := csv.NewReader(bytes.NewReader(e.object(rep.Bucket, rep.Objects["csv"])))
			cr.FieldsPerRecord = -1 // one block per section, each with its columns
			recs, err := cr.ReadAll()
			if err != nil || len(recs) < 4 || recs[1][1] != kind || recs[1][2] != orgA {
				t.Fatalf("%s CSV rendering: %v %v", kind, err, recs)
			}
			if bytes.Contains(doc, []byte(orgB)) {
				t.Fatalf("%s report of A mentions B", kind)
			}
			ids = append(ids, rep.ID)
		}
	}
	var got events.AuditReport
	if err := e.call(orgA, "admin", events.OpAuditReportGet, events.AuditIDRequest{ID: ids[0]}, &got); err != nil || got.ID != ids[0] {
		t.Fatalf("get: %+v %v", got, err)
	}
	var list events.List[events.AuditReport]
	if err := e.call(orgA, "admin", events.OpAuditReportList, events.AuditPageRequest{Limit: 500}, &list); err != nil || len(list.Items) != len(ids) {
		t.Fatalf("list: %d %v", len(list.Items), err)
	}
	if list.Items[0].ID != ids[len(ids)-1] {
		t.Fatalf("list is not newest first")
	}

	// Another org sees none of them.
	if err := e.call(orgB, "admin", events.OpAuditReportGet, events.AuditIDRequest{ID: ids[0]}, nil); err == nil || err.Code != events.CodeNotFound {
		t.Fatalf("B read A's report: %v", err)
	}
	if err := e.call(orgB, "admin", events.OpAuditReportList, events.AuditPageRequest{}, &list); err != nil || len(list.Items) != 0 {
		t.Fatalf("B's list: %+v %v", list, err)
	}
	for _, req := range []events.AuditReportRequest{{Kind: "sox", From: from, To: to}, {Kind: "soc2", From: to, To: from}, {Kind: "soc2", From: from, To: to, Format: "pdf"}} {
		if err := e.call(orgA, "admin", events.OpAuditReportCreate, req, nil); err == nil || err.Code != events.CodeInvalid {
			t.Errorf("accepted %+v: %v", req, err)
		}
	}
	if err := e.call(orgA, "operator", events.OpAuditReportCreate, events.AuditReportRequest{Kind: "soc2", From: from, To: to}, nil); err == nil ||
		err.Code != events.CodeForbidden {
		t.Fatalf("an operator pulled a report: %v", err)
	}
}
