package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/chaincheck"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// object reads a whole object from one of the audit buckets.
func (e *env) object(bucket, name string) []byte {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := e.js.ObjectStore(ctx, bucket)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := st.Get(ctx, name)
	if err != nil {
		e.t.Fatalf("object %s/%s: %v", bucket, name, err)
	}
	defer res.Close()
	b, err := io.ReadAll(res)
	if err != nil {
		e.t.Fatalf("object %s/%s: %v", bucket, name, err)
	}
	return b
}

// waitExport polls org's export id until it is over.
func (e *env) waitExport(org, id string) events.AuditExport {
	e.t.Helper()
	var j events.AuditExport
	natstest.CheckFor(e.t, 60*time.Second, 50*time.Millisecond, func() error {
		if err := e.call(org, "admin", events.OpAuditExportGet, events.AuditIDRequest{ID: id}, &j); err != nil {
			return err
		}
		if j.Status != events.AuditExportStatusDone && j.Status != events.AuditExportStatusFailed {
			return fmt.Errorf("export %s is %s", id, j.Status)
		}
		return nil
	})
	return j
}

// bigEvents are n events of org whose data make an export of several
// MiB: more than a NATS message may carry.
func bigEvents(t *testing.T, org string, n int) []events.Envelope {
	pad := strings.Repeat("0123456789abcdef", 64) // 1 KiB of details per entry
	out := make([]events.Envelope, n)
	for i := range out {
		env, err := events.New(payload{T: "tenancy.org.updated", N: i, Note: pad}, events.Aggregate{Type: "org", ID: org},
			events.Meta{OrgID: org, Actor: events.Actor{Kind: events.ActorUser, ID: "u1", IP: "203.0.113.4"}})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = env
	}
	return out
}

// TestExportsRunInTheBackgroundIntoTheObjectStore exports an org's chain
// in every format. Each job is queued, runs in the background and ends
// done with its file in the exports bucket under the org's prefix; the
// files are streamed, larger than any NATS message; the JSONL one passes
// the offline verifier; another org sees none of it; and the export is
// itself audited.
func TestExportsRunInTheBackgroundIntoTheObjectStore(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1")
	orgA, orgB := "org-exp-a", "org-exp-b"
	const n = 9000
	e.publishAsync(bigEvents(t, orgA, n))
	e.publish(event(t, orgB, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: orgB}, 1))
	e.waitProjected(orgA, n, 120*time.Second)
	e.waitProjected(orgB, 1, 30*time.Second)

	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	jobs := map[string]events.AuditExport{}
	for _, f := range []string{"jsonl", "csv", "cef", "syslog"} {
		var j events.AuditExport
		if err := e.call(orgA, "admin", events.OpAuditExportCreate, events.AuditExportRequest{Format: f, From: from, To: to}, &j); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if j.ID == "" || (j.Status != events.AuditExportStatusQueued && j.Status != events.AuditExportStatusRunning) || j.Format != f {
			t.Fatalf("new %s job %+v", f, j)
		}
		jobs[f] = j
		if len(jobs) == 3 {
			// A fourth at once is over the per-org limit, unless one is
			// done already.
			var k events.AuditExport
			err := e.call(orgA, "admin", events.OpAuditExportCreate, events.AuditExportRequest{Format: "csv", From: from, To: to}, &k)
			if err != nil && (err.Code != events.CodeRateLimited || err.RetryAfter == 0) {
				t.Fatalf("a fourth export: %v", err)
			}
			e.waitExport(orgA, jobs["jsonl"].ID)
		}
	}
	for f, j := range jobs {
		j = e.waitExport(orgA, j.ID)
		// The org's log grows with the exports' own entries as they run.
		if j.Status != events.AuditExportStatusDone || j.Rows < n || j.FirstIndex != 1 || j.LastIndex != j.Rows || j.Attempts != 1 ||
			j.ContentType == "" || !strings.HasPrefix(j.FileName, "audit-"+orgA+"-"+j.ID+".") {
			t.Fatalf("%s job %+v", f, j)
		}
		if j.Bucket != events.AuditBucketExports || !strings.HasPrefix(j.Object, events.AuditObjectPrefix(orgA)) || j.ExpiresAt == "" {
			t.Fatalf("%s job stored at %s/%s", f, j.Bucket, j.Object)
		}
		body := e.object(j.Bucket, j.Object)
		sum := sha256.Sum256(body)
		if int64(len(body)) != j.Bytes || hex.EncodeToString(sum[:]) != j.SHA256 || len(body) < 8<<20 {
			t.Fatalf("%s file: %d bytes (job says %d), sha %s", f, len(body), j.Bytes, j.SHA256)
		}
		lines := bytes.Count(body, []byte("\n"))
		switch f {
		case "jsonl":
			res, err := chaincheck.VerifyJSONL(bytes.NewReader(body), chaincheck.Options{})
			if err != nil || !res.OK || res.Checked != j.Rows {
				t.Fatalf("the JSONL export does not verify: %+v %v", res, err)
			}
		case "csv":
			recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err != nil || uint64(len(recs)) != j.Rows+1 {
				t.Fatalf("csv: %d records, %v", len(recs), err)
			}
		default:
			if uint64(lines) != j.Rows {
				t.Fatalf("%s: %d lines", f, lines)
			}
		}
		jobs[f] = j
	}

	// Another org neither sees nor gets A's exports.
	var list events.List[events.AuditExport]
	if err := e.call(orgB, "admin", events.OpAuditExportList, events.AuditPageRequest{}, &list); err != nil || len(list.Items) != 0 {
		t.Fatalf("B's list: %+v %v", list, err)
	}
	if err := e.call(orgB, "admin", events.OpAuditExportGet, events.AuditIDRequest{ID: jobs["jsonl"].ID}, nil); err == nil || err.Code != events.CodeNotFound {
		t.Fatalf("B read A's export: %v", err)
	}
	if err := e.call(orgA, "admin", events.OpAuditExportList, events.AuditPageRequest{Limit: 2}, &list); err != nil ||
		len(list.Items) != 2 || list.NextCursor == "" {
		t.Fatalf("A's first page: %+v %v", list, err)
	}
	var rest events.List[events.AuditExport]
	if err := e.call(orgA, "admin", events.OpAuditExportList, events.AuditPageRequest{Cursor: list.NextCursor}, &rest); err != nil ||
		len(rest.Items) < 2 || rest.Items[0].ID == list.Items[1].ID {
		t.Fatalf("A's second page: %+v %v", rest, err)
	}

	// Bad requests and roles.
	for _, req := range []events.AuditExportRequest{{Format: "pdf", From: from, To: to}, {Format: "csv", To: to}, {Format: "csv", From: to, To: from}} {
		if err := e.call(orgA, "admin", events.OpAuditExportCreate, req, nil); err == nil || err.Code != events.CodeInvalid || len(err.Fields) == 0 {
			t.Errorf("accepted %+v: %v", req, err)
		}
	}
	if err := e.call(orgA, "viewer", events.OpAuditExportCreate, events.AuditExportRequest{Format: "csv", From: from, To: to}, nil); err == nil ||
		err.Code != events.CodeForbidden {
		t.Fatalf("a viewer exported: %v", err)
	}

	// Who exported what is in the org's own log.
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var page events.List[events.AuditEntry]
		if err := e.call(orgA, "admin", events.OpAuditList, events.AuditListRequest{Action: "audit.export.*", Limit: 100}, &page); err != nil {
			return err
		}
		counts := map[string]int{}
		for _, en := range page.Items {
			counts[en.Action]++
		}
		want := len(jobs)
		if counts["audit.export.requested"] < want || counts["audit.export.completed"] < want {
			return fmt.Errorf("export entries %v", counts)
		}
		return nil
	})
}
