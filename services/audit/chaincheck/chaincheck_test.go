package chaincheck_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/chaincheck"
)

// fixture is a chain of n entries of org "o1", with signed checkpoints at
// every tenth entry.
type fixture struct {
	entries []events.AuditEntry
	cps     []events.SignedCheckpoint
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
}

func newFixture(t testing.TB, n int) fixture {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{pub: pub, priv: priv}
	prev := events.GenesisHash
	for i := 1; i <= n; i++ {
		e := events.AuditEntry{OrgID: "o1", Index: uint64(i), PrevHash: prev, EventID: fmt.Sprintf("ev-%d", i),
			Time: fmt.Sprintf("2026-11-29T10:00:%02d.000000000Z", i%60), Actor: events.Actor{Kind: events.ActorUser, ID: "u1", IP: "203.0.113.9"},
			Action: "tenancy.member.added", Resource: events.AuditResource{Type: "org", ID: "o1"}, Outcome: events.OutcomeSuccess,
			Details: json.RawMessage(fmt.Sprintf(`{"n":%d,"note":"a \"quoted\" line\nbreak"}`, i))}
		f.entries = append(f.entries, rehash(t, e, prev))
		prev = f.entries[len(f.entries)-1].Hash
		if i%10 == 0 {
			f.cps = append(f.cps, f.sign(t, f.entries[i-1]))
		}
	}
	return f
}

func (f fixture) sign(t testing.TB, e events.AuditEntry) events.SignedCheckpoint {
	t.Helper()
	cp := events.SignedCheckpoint{OrgID: e.OrgID, Index: e.Index, Hash: e.Hash, Time: "2026-11-29T11:00:00Z"}
	if err := cp.Sign("k1", f.priv); err != nil {
		t.Fatal(err)
	}
	return cp
}

func rehash(t testing.TB, e events.AuditEntry, prev string) events.AuditEntry {
	t.Helper()
	e.PrevHash = prev
	h, err := e.ComputeHash()
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
	return e
}

func jsonl(t testing.TB, es []events.AuditEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, e := range es {
		line, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

func verify(t *testing.T, data []byte, opts chaincheck.Options) chaincheck.Result {
	t.Helper()
	res, err := chaincheck.VerifyJSONL(bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestIntactExportVerifies(t *testing.T) {
	f := newFixture(t, 30)
	res := verify(t, jsonl(t, f.entries), chaincheck.Options{Checkpoints: f.cps, PublicKey: f.pub})
	if !res.OK || res.Checked != 30 || res.First != 1 || res.Last != 30 || !slices.Equal(res.Anchored, []uint64{10, 20, 30}) || res.Org != "o1" {
		t.Fatalf("%+v", res)
	}
	// Blank lines and CRLF line ends are tolerated.
	crlf := bytes.ReplaceAll(jsonl(t, f.entries), []byte("\n"), []byte("\r\n\r\n"))
	if res := verify(t, crlf, chaincheck.Options{}); !res.OK || res.Checked != 30 {
		t.Fatalf("CRLF: %+v", res)
	}
	// A partial export (a time range) starts on trust; checkpoints before
	// it are not applied.
	res = verify(t, jsonl(t, f.entries[14:]), chaincheck.Options{Checkpoints: f.cps, PublicKey: f.pub})
	if !res.OK || res.First != 15 || !slices.Equal(res.Anchored, []uint64{20, 30}) || len(res.Notes) < 2 {
		t.Fatalf("partial: %+v", res)
	}
	// Without checkpoints it verifies, saying what it cannot tell.
	res = verify(t, jsonl(t, f.entries), chaincheck.Options{})
	if !res.OK || !strings.Contains(strings.Join(res.Notes, " "), "no checkpoint") {
		t.Fatalf("no checkpoints: %+v", res)
	}
}

// TestTamperedExportsAreDetected applies each kind of tampering to a JSONL
// export and checks the first bad index the verifier names.
func TestTamperedExportsAreDetected(t *testing.T) {
	f := newFixture(t, 30)
	opts := chaincheck.Options{Checkpoints: f.cps, PublicKey: f.pub}
	cases := []struct {
		name   string
		mutate func(es []events.AuditEntry) []events.AuditEntry
		opts   chaincheck.Options
		badAt  uint64
	}{
		{"edit a field", func(es []events.AuditEntry) []events.AuditEntry {
			es[6].Actor.IP = "10.6.6.6"
			return es
		}, opts, 7},
		{"edit details", func(es []events.AuditEntry) []events.AuditEntry {
			es[2].Details = json.RawMessage(`{"n":999}`)
			return es
		}, chaincheck.Options{}, 3},
		{"delete a line", func(es []events.AuditEntry) []events.AuditEntry {
			return slices.Delete(es, 11, 12)
		}, opts, 12},
		{"insert a line", func(es []events.AuditEntry) []events.AuditEntry {
			forged := es[9]
			forged.EventID, forged.Actor.ID = "forged", "intruder"
			forged = rehash(t, forged, es[8].Hash)
			return slices.Insert(es, 9, forged)
		}, opts, 10},
		{"swap two lines", func(es []events.AuditEntry) []events.AuditEntry {
			es[4], es[8] = es[8], es[4]
			return es
		}, opts, 5},
		{"truncate the tail", func(es []events.AuditEntry) []events.AuditEntry {
			return es[:25]
		}, opts, 26},
		{"recompute and rewrite from entry 15", func(es []events.AuditEntry) []events.AuditEntry {
			es[14].Actor.ID = "someone-else"
			for i := 14; i < len(es); i++ {
				es[i] = rehash(t, es[i], es[i-1].Hash)
			}
			return es
		}, opts, 20},
		{"edit a hash to match", func(es []events.AuditEntry) []events.AuditEntry {
			es[3].Actor.ID = "x"
			es[3] = rehash(t, es[3], es[2].Hash)
			return es
		}, chaincheck.Options{}, 4},
		{"another org's entry", func(es []events.AuditEntry) []events.AuditEntry {
			es[5].OrgID = "o2"
			es[5] = rehash(t, es[5], es[4].Hash)
			return es
		}, chaincheck.Options{}, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			es := c.mutate(slices.Clone(f.entries))
			res := verify(t, jsonl(t, es), c.opts)
			if res.OK || res.FirstBadIndex != c.badAt {
				t.Fatalf("first bad %d (%s), want %d; %+v", res.FirstBadIndex, res.Reason, c.badAt, res.Findings)
			}
		})
	}

	// A rewrite that recomputed every hash is invisible without a
	// checkpoint: that is what checkpoints are for.
	es := slices.Clone(f.entries)
	es[14].Actor.ID = "someone-else"
	for i := 14; i < len(es); i++ {
		es[i] = rehash(t, es[i], es[i-1].Hash)
	}
	if res := verify(t, jsonl(t, es), chaincheck.Options{}); !res.OK {
		t.Fatalf("a consistent rewrite without checkpoints: %+v", res)
	}
}

func TestCheckpointProblems(t *testing.T) {
	f := newFixture(t, 20)
	data := jsonl(t, f.entries)
	forged := f.cps[0]
	forged.Hash = f.entries[3].Hash
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	for name, opts := range map[string]chaincheck.Options{
		"forged checkpoint": {Checkpoints: []events.SignedCheckpoint{forged}, PublicKey: f.pub},
		"wrong key":         {Checkpoints: f.cps, PublicKey: other},
	} {
		if res := verify(t, data, opts); res.OK || res.FirstBadIndex != 10 {
			t.Errorf("%s: %+v", name, res)
		}
	}
	if _, err := chaincheck.VerifyJSONL(bytes.NewReader(data), chaincheck.Options{Checkpoints: f.cps}); err == nil {
		t.Fatal("checkpoints without a key accepted")
	}
}

func TestMalformedLines(t *testing.T) {
	f := newFixture(t, 5)
	lines := strings.Split(strings.TrimSpace(string(jsonl(t, f.entries))), "\n")
	for name, bad := range map[string]string{
		"not json":      `hello`,
		"unknown field": strings.Replace(lines[2], `"org_id"`, `"evil":1,"org_id"`, 1),
		"duplicate key": strings.Replace(lines[2], `"org_id":"o1"`, `"org_id":"o1","org_id":"o1"`, 1),
		"trailing data": lines[2] + ` {}`,
		"bad hash":      strings.Replace(lines[2], f.entries[2].Hash, strings.ToUpper(f.entries[2].Hash), 1),
		"zero index":    strings.Replace(lines[2], `"index":3`, `"index":0`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			doc := append(slices.Clone(lines[:2]), bad)
			doc = append(doc, lines[3:]...)
			res := verify(t, []byte(strings.Join(doc, "\n")), chaincheck.Options{})
			if res.OK || res.FirstBadIndex != 3 || !strings.Contains(res.Reason, "line 3") {
				t.Fatalf("%+v", res)
			}
		})
	}
	if _, err := chaincheck.ParseLine([]byte(lines[0] + "\r")); err != nil {
		t.Fatalf("CR: %v", err)
	}
}

// FuzzParseLine feeds the export line parser arbitrary bytes: it must
// never panic, and whatever it accepts must survive a round trip and hash.
func FuzzParseLine(f *testing.F) {
	fx := newFixture(f, 3)
	for _, line := range strings.Split(string(jsonl(f, fx.entries)), "\n") {
		f.Add([]byte(line))
	}
	f.Add([]byte(`{"org_id":"o","index":1,"prev_hash":"` + events.GenesisHash + `","hash":"` + events.GenesisHash +
		`","event_id":"e","time":"t","actor":{"kind":"user","id":"u"},"action":"a","resource":{"type":"t","id":"i"},"outcome":"success","details":[[[[{"a":{"a":1e999}}]]]]}`))
	f.Add([]byte(`{"details":{"a":1,"a":2}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := chaincheck.ParseLine(line)
		if err != nil {
			return
		}
		_, _ = e.ComputeHash() // may fail (e.g. 1e999), must not panic
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("accepted entry does not encode: %v", err)
		}
		e2, err := chaincheck.ParseLine(again)
		if err != nil {
			t.Fatalf("re-encoded entry refused: %v\n%s", err, again)
		}
		h1, err1 := e.ComputeHash()
		h2, err2 := e2.ComputeHash()
		if (err1 == nil) != (err2 == nil) || h1 != h2 {
			t.Fatalf("hash changed across a round trip: %s/%v vs %s/%v", h1, err1, h2, err2)
		}
	})
}
