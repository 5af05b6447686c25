package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/chaincheck"
	"github.com/infrapilot/infrapilot/services/audit/internal/retention"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// TestRetentionArchivesThenPrunesTheProjectionOnly gives two orgs a
// 30-day retention, one archiving and one deleting, and chains entries
// older than that before newer ones. The retention job archives the old
// entries (a verifiable JSONL export in the archive bucket) before it
// prunes them under the archive policy, records audit.retention.applied in
// each org's log, prunes the Postgres projection only — the stream keeps
// every entry — and verification still passes from the first kept entry.
func TestRetentionArchivesThenPrunesTheProjectionOnly(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig()
	cfg.Retention = retention.Config{FirstRun: 200 * time.Millisecond, Interval: 500 * time.Millisecond}
	e.startHost(cfg, "a1")
	archiving, deleting := "org-ret-archive", "org-ret-delete"
	old := time.Now().Add(-40 * 24 * time.Hour)
	const nOld = 20
	for _, org := range []string{archiving, deleting} {
		for i := range nOld {
			env := event(t, org, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: org}, i)
			env.Time = old.Add(time.Duration(i) * time.Minute).UTC()
			e.publish(env)
		}
		e.waitProjected(org, nOld, 30*time.Second) // the job prunes what the projection holds
	}
	days := 30
	for org, policy := range map[string]string{archiving: "archive", deleting: "delete"} {
		if _, err := e.putConfig(org, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: policy}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			e.publish(event(t, org, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: org}, 100+i))
		}
	}

	for org, policy := range map[string]string{archiving: "archive", deleting: "delete"} {
		var c events.AuditConfig
		natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
			if err := e.call(org, "admin", events.OpAuditGetConfig, nil, &c); err != nil {
				return err
			}
			if c.Retention == nil {
				return fmt.Errorf("%s not pruned yet", org)
			}
			return nil
		})
		r := c.Retention
		if r.ThroughIndex != nOld || r.Policy != policy || (policy == "archive") != (r.ArchiveID != "") {
			t.Fatalf("%s: retention %+v", org, r)
		}
		// The projection starts after the pruned entries; the stream has
		// them all.
		var left int
		if err := e.dbPool().QueryRow(context.Background(), `SELECT count(*) FROM entries WHERE org_id = $1 AND entry_index <= $2`,
			org, nOld).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%s: %d pruned entries left, %v", org, left, err)
		}
		if n := len(e.streamChain(org)); n < nOld+4 {
			t.Fatalf("%s: the stream holds %d entries", org, n)
		}
		// Verification starts after the pruning and passes.
		e.waitProjected(org, 4, 30*time.Second) // config, three new entries (and the retention entry)
		natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			v := e.verify(org, events.AuditVerifyRequest{})
			if !v.OK || v.FirstIndex != nOld+1 {
				return fmt.Errorf("%s: verify %+v", org, v)
			}
			return nil
		})
		// The log records the pruning.
		var page events.List[events.AuditEntry]
		if err := e.call(org, "admin", events.OpAuditList, events.AuditListRequest{Action: "audit.retention.applied"}, &page); err != nil {
			t.Fatal(err)
		}
		natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			if err := e.call(org, "admin", events.OpAuditList, events.AuditListRequest{Action: "audit.retention.applied"}, &page); err != nil {
				return err
			}
			if len(page.Items) != 1 || page.Items[0].Actor.ID != "audit.retention" {
				return fmt.Errorf("%s: retention entries %+v", org, page.Items)
			}
			return nil
		})
		if policy != "archive" {
			continue
		}
		var j events.AuditExport
		if err := e.call(org, "admin", events.OpAuditExportGet, events.AuditIDRequest{ID: r.ArchiveID}, &j); err != nil {
			t.Fatal(err)
		}
		if j.Purpose != events.AuditExportPurposeArchive || j.Status != events.AuditExportStatusDone || j.Rows != nOld ||
			j.FirstIndex != 1 || j.LastIndex != nOld || j.Bucket != events.AuditBucketArchive || j.ExpiresAt != "" {
			t.Fatalf("archive %+v", j)
		}
		res, err := chaincheck.VerifyJSONL(bytes.NewReader(e.object(j.Bucket, j.Object)), chaincheck.Options{})
		if err != nil || !res.OK || res.First != 1 || res.Last != nOld {
			t.Fatalf("the archive does not verify: %+v %v", res, err)
		}
	}
}
