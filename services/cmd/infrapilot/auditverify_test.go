package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/events"
)

// auditFixture writes a 20-entry chain export, its checkpoints (every
// tenth entry) and public key into dir.
func auditFixture(t *testing.T, dir string) (export string, cps []events.SignedCheckpoint, pub ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	prev := events.GenesisHash
	for i := 1; i <= 20; i++ {
		e := events.AuditEntry{OrgID: "org1", Index: uint64(i), PrevHash: prev, EventID: fmt.Sprintf("e%d", i), Time: "2026-11-29T10:00:00Z",
			Actor: events.Actor{Kind: events.ActorUser, ID: "u1"}, Action: "auth.login.succeeded",
			Resource: events.AuditResource{Type: "user", ID: "u1"}, Outcome: events.OutcomeSuccess, Details: json.RawMessage(`{}`)}
		if e.Hash, err = e.ComputeHash(); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
		line, _ := json.Marshal(e)
		b.Write(append(line, '\n'))
		if i%10 == 0 {
			cp := events.SignedCheckpoint{OrgID: "org1", Index: e.Index, Hash: e.Hash, Time: "2026-11-29T10:00:01Z"}
			if err := cp.Sign("k1", priv); err != nil {
				t.Fatal(err)
			}
			cps = append(cps, cp)
		}
	}
	export = filepath.Join(dir, "export.jsonl")
	if err := os.WriteFile(export, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return export, cps, pub
}

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	export, cps, pub := auditFixture(t, dir)
	write := func(name string, v any) string {
		p := filepath.Join(dir, name)
		var data []byte
		if s, ok := v.(string); ok {
			data = []byte(s)
		} else {
			data, _ = json.Marshal(v)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyB64 := base64.StdEncoding.EncodeToString(pub)
	one := write("cp.json", cps[1])
	list := write("cps.json", events.List[events.SignedCheckpoint]{Items: cps})
	array := write("array.json", cps)
	keyFile := write("key.json", events.AuditPublicKey{KeyID: "k1", Algorithm: "Ed25519", PublicKey: keyB64})
	rawKeyFile := write("key.txt", keyB64+"\n")

	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runAuditVerify(context.Background(), args, &out, &errOut, func(string) string { return "" })
		return out.String() + errOut.String(), err
	}
	for _, args := range [][]string{
		{"verify", "--file", export},
		{"--file", export, "--checkpoint", one, "--public-key", keyB64},
		{"verify", "--file", export, "--checkpoint", list, "--public-key", keyFile},
		{"verify", "--file", export, "--checkpoint", array, "--public-key", rawKeyFile},
	} {
		out, err := run(args...)
		if err != nil || !strings.HasPrefix(out, "OK: 20 entries of org org1") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	out, err := run("verify", "--file", export, "--checkpoint", list, "--public-key", keyB64, "--json")
	var res struct {
		OK       bool     `json:"ok"`
		Anchored []uint64 `json:"anchored"`
	}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || !res.OK || len(res.Anchored) != 2 {
		t.Fatalf("--json: %v\n%s", err, out)
	}

	// A tampered export fails, naming the entry.
	data, _ := os.ReadFile(export)
	tampered := write("tampered.jsonl", strings.Replace(string(data), `"id":"u1"},"action":"auth.login.succeeded","resource":{"type":"user","id":"u1"},"outcome":"success","details":{}}`+"\n"+`{"org_id":"org1","index":5`,
		`"id":"u2"},"action":"auth.login.succeeded","resource":{"type":"user","id":"u1"},"outcome":"success","details":{}}`+"\n"+`{"org_id":"org1","index":5`, 1))
	out, err = run("verify", "--file", tampered, "--checkpoint", list, "--public-key", keyB64)
	if err == nil || !strings.Contains(out, "FAILED: first bad entry 4") {
		t.Fatalf("tampered: %v\n%s", err, out)
	}

	// Usage mistakes.
	for _, args := range [][]string{
		{"verify"},
		{"verify", "--file", export, "--checkpoint", one},
		{"verify", "--file", export, "extra"},
	} {
		if _, err := run(args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := run("verify", "--file", export, "--checkpoint", one, "--public-key", "bm90IGEga2V5"); err == nil {
		t.Error("a bad key was accepted")
	}
	if _, err := run("verify", "--file", filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Error("a missing file was accepted")
	}
}
