package chain

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

func sampleEntries() []events.AuditEntry {
	base := events.AuditEntry{OrgID: "o1", EventID: "0190a5b2-0000-7000-8000-000000000001", Time: "2026-11-29T10:00:00.123456789Z",
		Actor: events.Actor{Kind: events.ActorUser, ID: "u1", IP: "203.0.113.9", UserAgent: "Mozilla/5.0"}, Action: "tenancy.member.added",
		Resource: events.AuditResource{Type: "org", ID: "o1"}, Outcome: events.OutcomeSuccess,
		Details: json.RawMessage(`{"z":1,"a":"é","n":1.50,"list":[3,2,{"b":null,"a":true}],"big":1e21,"neg":-0.0}`)}
	out := []events.AuditEntry{base}
	e := base
	e.Actor = events.Actor{Kind: events.ActorSystem, ID: "scheduler"}
	e.Details = nil
	out = append(out, e)
	e = base
	e.Actor.UserAgent = "curl/8.0\r\nX-Injected: <script>&\"\\\u2028\x00\x1f\x7f"
	e.Actor.ID = "a\xffb\xc3"
	e.Details = json.RawMessage(" { \"html\" : \"<&>\" , \"ctl\":\"\\u0001\\n\\/\" , \"emoji\":\"\\ud83d\\ude00\" } ")
	out = append(out, e)
	e = base
	e.Details = json.RawMessage(`null`)
	e.Time = "not a time"
	out = append(out, e)
	return out
}

// TestPreparedIsCanonical holds the writer's fast canonical form to
// events.AuditEntry.Canonical, the rule, byte for byte, and its hash to
// ComputeHash.
func TestPreparedIsCanonical(t *testing.T) {
	for i, e := range sampleEntries() {
		checkPrepared(t, i, e)
	}
}

func checkPrepared(t *testing.T, i int, e events.AuditEntry) {
	t.Helper()
	p, err := prepare(e)
	if err != nil {
		t.Fatalf("%d: prepare: %v", i, err)
	}
	e.Details = p.details
	e.Index, e.PrevHash = 42, "ab"+events.GenesisHash[2:]
	want, err := e.Canonical()
	if err != nil {
		t.Fatalf("%d: canonical: %v", i, err)
	}
	if got := p.canonical(e.Index, e.PrevHash); !bytes.Equal(got, want) {
		t.Fatalf("%d: prepared canonical form differs\n got %s\nwant %s", i, got, want)
	}
	hash, wire, err := p.seal(e.Index, e.PrevHash)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := e.ComputeHash(); h != hash {
		t.Fatalf("%d: hash %s, want %s", i, hash, h)
	}
	var back events.AuditEntry
	if err := json.Unmarshal(wire, &back); err != nil {
		t.Fatalf("%d: wire form: %v\n%s", i, err, wire)
	}
	if h, err := back.ComputeHash(); err != nil || h != hash || back.Hash != hash || back.Index != 42 {
		t.Fatalf("%d: wire form does not verify: %v %s", i, err, wire)
	}
}

func TestUncanonicalDataIsWrapped(t *testing.T) {
	e := sampleEntries()[0]
	for _, d := range []string{`{"n":1e999}`, "{\"s\":\"\xff\"}"} {
		e.Details = json.RawMessage(d)
		p, err := prepare(e)
		if err != nil {
			t.Fatal(err)
		}
		var w map[string]string
		if err := json.Unmarshal(p.details, &w); err != nil || w["data_base64"] == "" {
			t.Fatalf("%q: details %s", d, p.details)
		}
		checkPrepared(t, 0, e)
	}
}

// FuzzPreparedIsCanonical varies every string of an entry and its data.
func FuzzPreparedIsCanonical(f *testing.F) {
	for _, e := range sampleEntries() {
		f.Add(e.Actor.ID, e.Actor.IP, e.Actor.UserAgent, e.Action, e.Resource.ID, e.Time, []byte(e.Details))
	}
	f.Fuzz(func(t *testing.T, id, ip, ua, action, resource, tm string, details []byte) {
		e := sampleEntries()[0]
		e.Actor.ID, e.Actor.IP, e.Actor.UserAgent, e.Action, e.Resource.ID, e.Time = id, ip, ua, action, resource, tm
		e.Details = nil
		if json.Valid(details) {
			e.Details = details
		}
		checkPrepared(t, 0, e)
	})
}
