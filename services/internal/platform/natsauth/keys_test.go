package natsauth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natsauth"
	"github.com/nats-io/jwt/v2"
)

func TestKeysSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	path := filepath.Join(t.TempDir(), "nats-keys.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("keys file mode %04o, want 0600", st.Mode().Perm())
	}
	l, err := natsauth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.OperatorPublicKey() != k.OperatorPublicKey() {
		t.Fatal("operator changed across save/load")
	}
	for _, a := range []natsauth.Account{natsauth.AccountSys, natsauth.AccountApp, natsauth.AccountAgents, natsauth.AccountSIEM} {
		if l.AccountPublicKey(a) == "" || l.AccountPublicKey(a) != k.AccountPublicKey(a) {
			t.Fatalf("account %s changed across save/load", a)
		}
	}
	// Credentials issued by the loaded keys work on a hub run by the
	// original ones (the same operator and signing keys).
	h := newHub(t, k)
	creds, err := l.ServiceCreds("loaded")
	if err != nil {
		t.Fatal(err)
	}
	mustDial(t, h.url(), creds)
	agent, _, err := l.AgentCreds("o1", "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.startLeaf(agent).waitConnected(t)

	// LoadOrCreate loads what exists and creates what does not.
	again, err := natsauth.LoadOrCreate(path)
	if err != nil || again.OperatorPublicKey() != k.OperatorPublicKey() {
		t.Fatalf("LoadOrCreate did not load the existing keys: %v", err)
	}
	fresh, err := natsauth.LoadOrCreate(filepath.Join(t.TempDir(), "new.json"))
	if err != nil || fresh.OperatorPublicKey() == k.OperatorPublicKey() {
		t.Fatalf("LoadOrCreate did not create keys: %v", err)
	}
}

func TestKeysNeverShowTheirSeeds(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	path := filepath.Join(t.TempDir(), "nats-keys.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case string:
			if strings.HasPrefix(v, "S") && len(v) > 50 {
				seeds = append(seeds, v)
			}
		}
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	walk(doc)
	if len(seeds) != 6 { // operator, operator signing key, 4 account signing keys
		t.Fatalf("found %d seeds in the keys file, want 6", len(seeds))
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "keys", k)
	shown := fmt.Sprintf("%v %+v %#v %s", k, k, k, k) + logged.String()
	for _, s := range seeds {
		if strings.Contains(shown, s) || strings.Contains(shown, s[:12]) {
			t.Fatalf("a seed was printed: %s", shown)
		}
	}
	if !strings.Contains(shown, k.OperatorPublicKey()) {
		t.Fatalf("printing keys should still identify the operator: %s", shown)
	}

	// A file others can read is refused; a broken one is refused without
	// echoing its content.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natsauth.Load(path); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("a world-readable keys file was loaded: %v", err)
	}
	broken := filepath.Join(t.TempDir(), "broken.json")
	secret := strings.Replace(string(raw), "{", "{ SECRET-CONTENT", 1)
	if err := os.WriteFile(broken, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := natsauth.Load(broken); err == nil || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), seeds[0][:12]) {
		t.Fatalf("broken keys file: %v", err)
	}
}

func TestAgentCredsValidation(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	for _, tc := range []struct {
		org, agent string
		ttl        time.Duration
	}{
		{"O1", "a1", time.Hour}, // tags are lower-cased by the JWT library
		{"o1", "A1", time.Hour},
		{"o1", "a.b", time.Hour},
		{"o1", "*", time.Hour},
		{"o1", ">", time.Hour},
		{"", "a1", time.Hour},
		{"o1", "", time.Hour},
		{"o1", strings.Repeat("a", 129), time.Hour},
		{"o1", "a1", 0},
		{"o1", "a1", -time.Second},
		{"o1", "a1", natsauth.MaxCredentialTTL + time.Second},
	} {
		if _, _, err := k.AgentCreds(tc.org, tc.agent, tc.ttl); err == nil {
			t.Errorf("AgentCreds(%q, %q, %s) accepted", tc.org, tc.agent, tc.ttl)
		}
	}
	if _, err := k.SIEMCreds("O1", time.Hour); err == nil {
		t.Error("SIEMCreds accepted an upper-case org")
	}
	if _, err := k.ServiceCreds(""); err == nil {
		t.Error("ServiceCreds accepted an empty name")
	}
}

// The user JWT of an agent carries no permissions of its own: the server
// applies the AGENTS account's template to its tags.
func TestAgentCredsAreScoped(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	creds, pub, err := k.AgentCreds("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaaa", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := natsauth.UserPublicKey(creds); err != nil || got != pub {
		t.Fatalf("UserPublicKey = %q, %v; want %q", got, err, pub)
	}
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !uc.HasEmptyPermissions() {
		t.Errorf("agent JWT carries its own permissions: %+v", uc.UserPermissionLimits)
	}
	if uc.IssuerAccount != k.AccountPublicKey(natsauth.AccountAgents) || uc.Issuer == uc.IssuerAccount {
		t.Errorf("agent JWT not issued by the AGENTS signing key: issuer %s account %s", uc.Issuer, uc.IssuerAccount)
	}
	if !uc.Tags.Contains("org:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") || !uc.Tags.Contains("agent:0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaaa") {
		t.Errorf("tags %v", uc.Tags)
	}
	if d := time.Until(time.Unix(uc.Expires, 0)); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("expires in %s, want 24h", d)
	}
}
