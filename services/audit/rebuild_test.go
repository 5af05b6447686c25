package audit_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// TestProjectionRebuildsFromTheStream empties the projection the way
// docs/audit.md says (as the retention role, then dropping the consumer)
// and checks that a restarted service rebuilds exactly the same rows.
func TestProjectionRebuildsFromTheStream(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig()
	cfg.Chain.CheckpointEvery = 10
	h := e.startHost(cfg, "a1")
	orgs := []string{"rb-1", "rb-2"}
	e.chains(t, orgs, 25)
	before := map[string][]byte{}
	for _, org := range orgs {
		before[org] = exportJSONL(t, e, org)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, err := e.dbPool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SET LOCAL ROLE audit_retention`, `TRUNCATE entries, checkpoints`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(ctx, events.StreamAudit, "audit_projection"); err != nil {
		t.Fatal(err)
	}
	e.startHost(cfg, "a2")
	for _, org := range orgs {
		e.waitProjected(org, 25, 30*time.Second)
		if got := exportJSONL(t, e, org); !bytes.Equal(got, before[org]) {
			t.Fatalf("%s rebuilt differently", org)
		}
		if v := e.verify(org, events.AuditVerifyRequest{}); !v.OK || v.Checked != 25 {
			t.Fatalf("verify %s after rebuild: %+v", org, v)
		}
	}
	var cps int
	if err := e.dbPool().QueryRow(ctx, `SELECT count(*) FROM checkpoints`).Scan(&cps); err != nil || cps < 4 {
		t.Fatalf("checkpoints rebuilt: %d %v", cps, err)
	}
}
