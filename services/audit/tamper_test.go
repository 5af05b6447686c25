package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/chaincheck"
	"github.com/infrapilot/infrapilot/services/audit/internal/chain"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/infrapilot/infrapilot/services/audit/internal/store"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

const tamperLen = 30

// tamperCase is one way an attacker with write access to the database
// (superuser, triggers switched off) changes an org's projected chain, and
// the first index verification must name.
type tamperCase struct {
	name    string
	badAt   uint64
	tamper  func(t *testing.T, a *attacker, org string)
	inFinds string // a reason fragment that must be among the findings
}

func tamperCases() []tamperCase {
	return []tamperCase{
		{"edit a field", 7, func(t *testing.T, a *attacker, org string) {
			a.exec(t, `UPDATE audit.entries SET actor_ip = '10.6.6.6' WHERE org_id = $1 AND entry_index = 7`, org)
		}, "content does not match its hash"},
		{"delete a row", 12, func(t *testing.T, a *attacker, org string) {
			a.exec(t, `DELETE FROM audit.entries WHERE org_id = $1 AND entry_index = 12`, org)
		}, "missing from the database"},
		{"insert a row", tamperLen + 1, func(t *testing.T, a *attacker, org string) {
			rows := a.rows(t, org)
			last := rows[len(rows)-1]
			forged := last.AuditEntry
			forged.EventID, forged.Action, forged.Details = "forged-event", "auth.apikey.created", json.RawMessage(`{"name":"backdoor"}`)
			if err := chain.Seal(&forged, last.Index, last.Hash); err != nil {
				t.Fatal(err)
			}
			a.insert(t, store.Row{AuditEntry: forged, StreamSeq: last.StreamSeq + 1000})
		}, "not on the stream"},
		{"swap two rows", 5, func(t *testing.T, a *attacker, org string) {
			a.exec(t, `UPDATE audit.entries SET entry_index = 1000 WHERE org_id = $1 AND entry_index = 5`, org)
			a.exec(t, `UPDATE audit.entries SET entry_index = 5 WHERE org_id = $1 AND entry_index = 9`, org)
			a.exec(t, `UPDATE audit.entries SET entry_index = 9 WHERE org_id = $1 AND entry_index = 1000`, org)
		}, "replaced"},
		{"truncate the tail", 26, func(t *testing.T, a *attacker, org string) {
			a.exec(t, `DELETE FROM audit.entries WHERE org_id = $1 AND entry_index > 25`, org)
		}, "missing from the database"},
		{"recompute and rewrite the whole chain", 8, func(t *testing.T, a *attacker, org string) {
			rows := a.rows(t, org)
			prev := rows[6] // entry 7 stays
			for _, r := range rows[7:] {
				e := r.AuditEntry
				if e.Index == 8 {
					e.Actor.ID = "someone-else"
				}
				if err := chain.Seal(&e, prev.Index, prev.Hash); err != nil {
					t.Fatal(err)
				}
				a.exec(t, `UPDATE audit.entries SET actor_id = $3, prev_hash = $4, hash = $5 WHERE org_id = $1 AND entry_index = $2`,
					org, int64(e.Index), e.Actor.ID, e.PrevHash, e.Hash)
				prev = store.Row{AuditEntry: e}
			}
		}, "signed checkpoint"},
	}
}

// TestTamperingIsDetected runs every tamper case against the real Postgres
// projection of its own org's chain, then verifies: each is detected with
// the first bad index. The whole-chain rewrite is consistent in the
// database; the stream and the signed checkpoint both give it away. The
// same tampering of a JSONL export is detected offline.
func TestTamperingIsDetected(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig()
	cfg.Chain.CheckpointEvery = 10
	e.startHost(cfg, "a1")
	cases := tamperCases()
	orgs := []string{"t-clean"}
	for i := range cases {
		orgs = append(orgs, fmt.Sprintf("t-%d", i))
	}
	e.chains(t, orgs, tamperLen)
	pub := e.publicKey(t)

	for _, org := range orgs {
		if v := e.verify(org, events.AuditVerifyRequest{}); !v.OK || v.Checked != tamperLen || !v.CheckpointVerified || v.Checkpoint.Index != tamperLen {
			t.Fatalf("%s before tampering: %+v", org, v)
		}
	}
	clean := exportJSONL(t, e, "t-clean")
	cp := e.lastCheckpoint(t, "t-clean")
	if res, err := chaincheck.VerifyJSONL(bytes.NewReader(clean), chaincheck.Options{Checkpoints: []events.SignedCheckpoint{cp}, PublicKey: pub}); err != nil ||
		!res.OK || res.Checked != tamperLen || len(res.Anchored) != 1 {
		t.Fatalf("clean export: %+v %v", res, err)
	}

	a := newAttacker(t, e)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			org := orgs[i+1]
			c.tamper(t, a, org)
			v := e.verify(org, events.AuditVerifyRequest{})
			if v.OK || v.FirstBadIndex != c.badAt {
				t.Fatalf("verify: ok=%v first bad %d (%s), want %d; findings %+v", v.OK, v.FirstBadIndex, v.Reason, c.badAt, v.Findings)
			}
			if !hasFinding(v.Findings, c.inFinds) {
				t.Errorf("no finding mentions %q: %+v", c.inFinds, v.Findings)
			}
			t.Logf("detected at %d: %s", v.FirstBadIndex, v.Reason)

			// The same change made to an export of the chain, verified
			// offline against the checkpoint.
			tampered := tamperExport(t, a, org)
			res, err := chaincheck.VerifyJSONL(bytes.NewReader(tampered), chaincheck.Options{
				Checkpoints: []events.SignedCheckpoint{e.lastCheckpoint(t, org)}, PublicKey: pub})
			if err != nil {
				t.Fatal(err)
			}
			if c.badAt > tamperLen {
				// An entry appended after the last checkpoint links
				// correctly: offline, only a later checkpoint (or the
				// stream, online) can tell. The verifier says so.
				if !res.OK || !strings.Contains(strings.Join(res.Notes, " "), "consistency only") {
					t.Fatalf("offline, entry after the checkpoint: %+v", res)
				}
				return
			}
			if res.OK {
				t.Fatalf("offline verification passed a tampered export: %+v", res)
			}
			t.Logf("offline: first bad %d: %s", res.FirstBadIndex, res.Reason)
		})
	}

	// A range that stops before the tampering verifies; the clean org is
	// still clean.
	if v := e.verify(orgs[1], events.AuditVerifyRequest{FromIndex: 1, ToIndex: 6}); !v.OK || v.Checked != 6 {
		t.Fatalf("range before the edit: %+v", v)
	}
	if v := e.verify("t-clean", events.AuditVerifyRequest{}); !v.OK {
		t.Fatalf("clean org: %+v", v)
	}
}

// TestProjectionIsAppendOnly checks that the database itself refuses
// UPDATE, DELETE and TRUNCATE of entries and checkpoints, that only the
// retention role may prune, and that verification then starts after the
// recorded prune.
func TestProjectionIsAppendOnly(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig()
	cfg.Chain.CheckpointEvery = 10
	e.startHost(cfg, "a1")
	org := "t-ro"
	e.chains(t, []string{org}, 20)
	db := e.dbPool()
	ctx := context.Background()
	for _, q := range []string{
		`UPDATE entries SET actor_ip = '1.2.3.4' WHERE org_id = 't-ro' AND entry_index = 3`,
		`DELETE FROM entries WHERE org_id = 't-ro' AND entry_index = 3`,
		`TRUNCATE entries`,
		`UPDATE checkpoints SET hash = 'x' WHERE org_id = 't-ro'`,
		`DELETE FROM checkpoints WHERE org_id = 't-ro'`,
	} {
		_, err := db.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "append-only") {
			t.Errorf("%s: %v", q, err)
		}
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM entries WHERE org_id = 't-ro'`).Scan(&n); err != nil || n != 20 {
		t.Fatalf("entries after refused changes: %d %v", n, err)
	}

	// The retention job's way: record the prune on the stream, then
	// delete as the retention role.
	es := eventstore.New(e.js, "audit")
	ref := eventstore.Ref{OrgID: org, Type: events.AuditAggRetention, ID: org}
	env, err := events.New(events.AuditRetentionApplied{ThroughIndex: 10, Before: time.Now().UTC().Format(time.RFC3339), Policy: events.RetentionDelete},
		events.Aggregate{Type: ref.Type, ID: ref.ID}, events.Meta{OrgID: org, Actor: events.SystemActor("audit-retention")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := es.Append(ctx, ref, 0, env); err != nil {
		t.Fatal(err)
	}
	deleted, err := store.New(db).PruneThrough(ctx, org, 10)
	if err != nil || deleted != 10 {
		t.Fatalf("prune: %d %v", deleted, err)
	}
	v := e.verify(org, events.AuditVerifyRequest{})
	if !v.OK || v.FirstIndex != 11 || v.Checked != 10 {
		t.Fatalf("verify after prune: %+v", v)
	}
	// The prune event is chained like any event, so entry 21 appears.
	e.waitChained(org, 21, 20*time.Second)
}

// chains publishes n events for each org and waits until they are chained,
// checkpointed at n and projected.
func (e *env) chains(t *testing.T, orgs []string, n int) {
	t.Helper()
	var envs []events.Envelope
	for _, org := range orgs {
		for i := range n {
			envs = append(envs, event(t, org, "tenancy.member.role_changed",
				events.Actor{Kind: events.ActorUser, ID: fmt.Sprintf("u%d", i%3), IP: "203.0.113.1", UserAgent: "curl/8"},
				events.Aggregate{Type: "org", ID: org}, i))
		}
	}
	e.publishAsync(envs)
	rd := chainstream.New(e.js)
	for _, org := range orgs {
		e.waitChained(org, n, 60*time.Second)
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			cp, ok, err := rd.LastCheckpoint(context.Background(), org)
			if err != nil || !ok || cp.Index != uint64(n) {
				return fmt.Errorf("checkpoint of %s: %+v %v", org, cp, err)
			}
			return nil
		})
		e.waitProjected(org, n, 30*time.Second)
	}
	// Every message up to the last checkpoint is projected.
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		var cps int
		if err := e.dbPool().QueryRow(context.Background(), `SELECT count(*) FROM checkpoints WHERE checkpoint_index = $1`, n).Scan(&cps); err != nil {
			return err
		}
		if cps < len(orgs) {
			return fmt.Errorf("%d of %d final checkpoints projected", cps, len(orgs))
		}
		return nil
	})
}

func (e *env) publicKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	var keys events.AuditPublicKeys
	if err := e.call("any-org", "admin", events.OpAuditPublicKey, nil, &keys); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(keys.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (e *env) lastCheckpoint(t *testing.T, org string) events.SignedCheckpoint {
	t.Helper()
	cp, ok, err := chainstream.New(e.js).LastCheckpoint(context.Background(), org)
	if err != nil || !ok {
		t.Fatalf("checkpoint of %s: %v", org, err)
	}
	return cp.SignedCheckpoint
}

// exportJSONL writes org's projected chain as a JSONL export: one entry
// per line, hashes included.
func exportJSONL(t *testing.T, e *env, org string) []byte {
	t.Helper()
	var b bytes.Buffer
	for r, err := range store.New(e.dbPool()).Range(context.Background(), org, 1, 0) {
		if err != nil {
			t.Fatal(err)
		}
		line, err := json.Marshal(r.AuditEntry)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

// tamperExport applies to an export what the attacker did to the
// database: the export of the tampered database.
func tamperExport(t *testing.T, a *attacker, org string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range a.rows(t, org) {
		line, _ := json.Marshal(r.AuditEntry)
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

func hasFinding(fs []events.AuditFinding, fragment string) bool {
	for _, f := range fs {
		if strings.Contains(f.Reason, fragment) {
			return true
		}
	}
	return false
}

// attacker has superuser access to the database and switches triggers off
// (session_replication_role = replica) for what it does.
type attacker struct {
	db *pgxpool.Pool
}

func newAttacker(t *testing.T, e *env) *attacker {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["session_replication_role"] = "replica"
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &attacker{db: db}
}

func (a *attacker) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := a.db.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (a *attacker) rows(t *testing.T, org string) []store.Row {
	t.Helper()
	st := store.New(a.scoped(t))
	var out []store.Row
	for r, err := range st.Range(context.Background(), org, 1, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (a *attacker) insert(t *testing.T, r store.Row) {
	t.Helper()
	if _, err := store.New(a.scoped(t)).InsertEntries(context.Background(), []store.Row{r}); err != nil {
		t.Fatal(err)
	}
}

// scoped is the attacker's pool with the audit schema on its search path.
func (a *attacker) scoped(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg := a.db.Config()
	cfg.ConnConfig.RuntimeParams["search_path"] = "audit"
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}
