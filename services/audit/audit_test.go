package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/chainstream"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// TestOneEntryPerEventWithActorIPAndOutcome publishes real envelopes on the
// domain streams and checks each becomes exactly one entry of its org's
// chain with the envelope's actor (ip and user agent included), the
// aggregate as resource, the data as details and the outcome its type
// implies; platform events go to the "platform" chain. The entries are
// served by the list operation, newest first, with filters and cursors.
func TestOneEntryPerEventWithActorIPAndOutcome(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1")

	user := events.Actor{Kind: events.ActorUser, ID: "u-1", IP: "203.0.113.9", UserAgent: "Mozilla/5.0"}
	org := "org-a"
	added := event(t, org, "tenancy.member.added", user, events.Aggregate{Type: "org", ID: org}, 1)
	denied := event(t, org, "policy.request.denied", user, events.Aggregate{Type: "policy", ID: "p1"}, 2)
	blocked := event(t, org, "policy.container.blocked", events.SystemActor("policy"), events.Aggregate{Type: "container", ID: "c1"}, 3)
	failed := event(t, events.PlatformOrg, "auth.login.failed", events.Actor{Kind: events.ActorUser, ID: "unknown", IP: "192.0.2.1"},
		events.Aggregate{Type: "login", ID: "x1"}, 4)
	for _, env := range []events.Envelope{added, denied, blocked, failed} {
		e.publish(env)
	}
	e.waitChained(org, 3, 20*time.Second)

	got := map[string]chainstream.Entry{}
	for _, en := range e.checkLinear(org, map[string]bool{added.ID: true, denied.ID: true, blocked.ID: true}) {
		got[en.EventID] = en
	}
	// The platform chain also holds the signing key's announcement.
	e.waitChained(events.PlatformOrg, 2, 20*time.Second)
	for _, en := range e.checkLinear(events.PlatformOrg, nil) {
		got[en.EventID] = en
	}
	for _, c := range []struct {
		env     events.Envelope
		outcome string
	}{{added, events.OutcomeSuccess}, {denied, events.OutcomeDenied}, {blocked, events.OutcomeDenied}, {failed, events.OutcomeFailure}} {
		en := got[c.env.ID]
		if en.Actor != c.env.Actor || en.Action != c.env.Type || en.Outcome != c.outcome ||
			en.Resource != (events.AuditResource{Type: c.env.Aggregate.Type, ID: c.env.Aggregate.ID}) || en.OrgID != c.env.OrgID {
			t.Errorf("entry for %s: %+v", c.env.Type, en.AuditEntry)
		}
		var d, want payload
		_ = json.Unmarshal(c.env.Data, &want)
		if err := json.Unmarshal(en.Details, &d); err != nil || d != want {
			t.Errorf("details of %s: %s", c.env.Type, en.Details)
		}
		if tm, err := time.Parse(time.RFC3339Nano, en.Time); err != nil || !tm.Equal(c.env.Time) {
			t.Errorf("time of %s: %q, event at %s", c.env.Type, en.Time, c.env.Time)
		}
	}

	// The projection serves the entries, newest first, filtered and paged.
	e.waitProjected(org, 3, 20*time.Second)
	var page events.List[events.AuditEntry]
	if err := e.call(org, "admin", events.OpAuditList, events.AuditListRequest{Limit: 2}, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].Index != 3 || page.Items[1].Index != 2 || page.NextCursor == "" {
		t.Fatalf("first page %+v", page)
	}
	if page.Items[0].Hash != got[page.Items[0].EventID].Hash {
		t.Fatal("listed entry differs from the stream's")
	}
	var rest events.List[events.AuditEntry]
	if err := e.call(org, "admin", events.OpAuditList, events.AuditListRequest{Limit: 2, Cursor: page.NextCursor}, &rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != 1 || rest.Items[0].Index != 1 || rest.NextCursor != "" {
		t.Fatalf("second page %+v", rest)
	}
	for _, c := range []struct {
		req  events.AuditListRequest
		want int
	}{
		{events.AuditListRequest{Action: "policy.*"}, 2},
		{events.AuditListRequest{Action: "tenancy.member.added"}, 1},
		{events.AuditListRequest{ResourceType: "container"}, 1},
		{events.AuditListRequest{Actor: "u-1"}, 2},
		{events.AuditListRequest{From: added.Time.Add(time.Hour).Format(time.RFC3339)}, 0},
		{events.AuditListRequest{To: added.Time.Add(time.Hour).Format(time.RFC3339)}, 3},
	} {
		var l events.List[events.AuditEntry]
		if err := e.call(org, "admin", events.OpAuditList, c.req, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != c.want {
			t.Errorf("list %+v: %d items, want %d", c.req, len(l.Items), c.want)
		}
	}
	// Another org sees nothing of org-a; bad input and low roles are refused.
	var other events.List[events.AuditEntry]
	if err := e.call("org-b", "admin", events.OpAuditList, events.AuditListRequest{}, &other); err != nil || len(other.Items) != 0 {
		t.Fatalf("another org's list: %v %+v", err, other)
	}
	if err := e.call(org, "viewer", events.OpAuditList, events.AuditListRequest{}, nil); err == nil || err.Code != events.CodeForbidden {
		t.Fatalf("viewer listed the audit log: %v", err)
	}
	if err := e.call(org, "admin", events.OpAuditList, events.AuditListRequest{From: "yesterday", Limit: 9999}, nil); err == nil ||
		err.Code != events.CodeInvalid || len(err.Fields) != 2 {
		t.Fatalf("bad filter: %+v", err)
	}
	if err := e.call(org, "admin", events.OpAuditList, events.AuditListRequest{Cursor: "bogus"}, nil); err == nil || err.Code != events.CodeInvalid {
		t.Fatalf("bad cursor: %+v", err)
	}

	if v := e.verify(org, events.AuditVerifyRequest{}); !v.OK || v.Checked != 3 {
		t.Fatalf("verify: %+v", v)
	}
}

// TestCheckpointsAndPublicKey checks that a checkpoint is signed every N
// entries and after T seconds, that the public key verifies them, and that
// the key is announced on the stream.
func TestCheckpointsAndPublicKey(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1") // CheckpointEvery 50, interval 2s
	org := "org-cp"
	var envs []events.Envelope
	for i := range 120 {
		envs = append(envs, event(t, org, "proxy.host.updated", events.SystemActor("test"), events.Aggregate{Type: "host", ID: "h1"}, i))
	}
	e.publishAsync(envs)
	e.waitChained(org, 120, 30*time.Second)

	var keys events.AuditPublicKeys
	if err := e.call(org, "admin", events.OpAuditPublicKey, nil, &keys); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(keys.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize || keys.KeyID == "" || len(keys.Keys) != 1 || !keys.Active {
		t.Fatalf("public key %+v", keys)
	}
	pub := ed25519.PublicKey(raw)

	// 50 and 100 by count, 120 by time.
	rd := chainstream.New(e.js)
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		cp, ok, err := rd.LastCheckpoint(context.Background(), org)
		if err != nil {
			return err
		}
		if !ok || cp.Index != 120 {
			return errorf("latest checkpoint %+v", cp)
		}
		return nil
	})
	chainEntries := e.checkLinear(org, nil)
	var cps events.List[events.SignedCheckpoint]
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if err := e.call(org, "admin", events.OpAuditCheckpoints, events.AuditPageRequest{}, &cps); err != nil {
			return err
		}
		if len(cps.Items) < 3 {
			return errorf("%d checkpoints projected", len(cps.Items))
		}
		return nil
	})
	indices := map[uint64]bool{}
	for _, cp := range cps.Items {
		if !cp.Verify(pub) || cp.KeyID != keys.KeyID {
			t.Errorf("checkpoint %d does not verify", cp.Index)
		}
		if chainEntries[cp.Index-1].Hash != cp.Hash {
			t.Errorf("checkpoint %d does not match the chain", cp.Index)
		}
		indices[cp.Index] = true
	}
	if !indices[50] || !indices[100] || !indices[120] {
		t.Fatalf("checkpoints at %v, want 50, 100 and 120", indices)
	}

	// The key is on the stream, in the platform chain too.
	e.waitChained(events.PlatformOrg, 1, 20*time.Second)
	pl := e.checkLinear(events.PlatformOrg, nil)
	if pl[0].Action != "audit.signing_key.created" || pl[0].Resource.ID != keys.KeyID {
		t.Fatalf("platform chain starts with %+v", pl[0].AuditEntry)
	}
}

// TestConfigIsStoredAsEvents checks GET/PUT config: defaults, validation,
// read-your-writes, the event on the stream (chained like any other).
func TestConfigIsStoredAsEvents(t *testing.T) {
	e := newEnv(t)
	e.startHost(testConfig(), "a1")
	org := "org-cfg"
	var c events.AuditConfig
	if err := e.call(org, "viewer", events.OpAuditGetConfig, nil, nil); err == nil || err.Code != events.CodeForbidden {
		t.Fatalf("viewer read the config: %v", err)
	}
	if err := e.call(org, "admin", events.OpAuditGetConfig, nil, &c); err != nil || !sameRetention(c, events.DefaultAuditConfig()) ||
		len(c.Forwarding) != 0 || c.Retention != nil || c.ClickHouse != "off (not configured)" {
		t.Fatalf("default config %+v %v", c, err)
	}
	days := 90
	bad := []events.AuditConfigRequest{
		{RetentionPolicy: "archive"},
		{RetentionDays: ptr(45), RetentionPolicy: "archive"},
		{RetentionDays: &days, RetentionPolicy: "shred"},
		{RetentionDays: &days, RetentionPolicy: "delete", ComplianceMode: true},
	}
	for _, req := range bad {
		if err := e.call(org, "admin", events.OpAuditPutConfig, req, nil); err == nil || err.Code != events.CodeInvalid || len(err.Fields) == 0 {
			t.Errorf("accepted %+v: %v", req, err)
		}
	}
	if err := e.call(org, "operator", events.OpAuditPutConfig, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: "delete"}, nil); err == nil ||
		err.Code != events.CodeForbidden {
		t.Fatalf("operator changed the config: %v", err)
	}
	if err := e.call(org, "admin", events.OpAuditPutConfig, events.AuditConfigRequest{RetentionDays: &days, RetentionPolicy: "archive", ComplianceMode: true}, &c); err != nil {
		t.Fatal(err)
	}
	if c.RetentionDays != 90 || c.RetentionPolicy != "archive" || !c.ComplianceMode || c.UpdatedBy != "admin-1" {
		t.Fatalf("config after put %+v", c)
	}
	var again events.AuditConfig
	if err := e.call(org, "admin", events.OpAuditGetConfig, nil, &again); err != nil || !sameRetention(again, c) || again.UpdatedAt != c.UpdatedAt {
		t.Fatalf("config read back %+v %v", again, err)
	}
	// The change is an event on the stream and so an audit entry.
	e.waitChained(org, 1, 20*time.Second)
	en := e.checkLinear(org, nil)[0]
	if en.Action != "audit.config.updated" || en.Actor.ID != "admin-1" || en.Actor.IP != "198.51.100.7" {
		t.Fatalf("config change entry %+v", en.AuditEntry)
	}
}

func ptr[T any](v T) *T { return &v }

// sameRetention compares the retention settings of two configurations.
func sameRetention(a, b events.AuditConfig) bool {
	return a.RetentionDays == b.RetentionDays && a.RetentionPolicy == b.RetentionPolicy && a.ComplianceMode == b.ComplianceMode
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
