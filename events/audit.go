package events

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gowebpki/jcs"
)

// GenesisHash is the prev_hash of the first entry of every org's chain:
// 32 zero bytes, hex encoded.
var GenesisHash = strings.Repeat("0", 64)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// AuditResource names what an audited action touched.
type AuditResource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// AuditEntry is one link of an org's audit hash chain, stored on
// AuditChain(org) in stream AUDIT. Index starts at 1; Time is RFC 3339 UTC
// with nanoseconds as written by the audit service, hashed as the string it
// is. Details holds the source event's data.
type AuditEntry struct {
	OrgID    string          `json:"org_id"`
	Index    uint64          `json:"index"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash,omitempty"`
	EventID  string          `json:"event_id"`
	Time     string          `json:"time"`
	Actor    Actor           `json:"actor"`
	Action   string          `json:"action"`
	Resource AuditResource   `json:"resource"`
	Outcome  string          `json:"outcome"`
	Details  json.RawMessage `json:"details,omitempty"`
}

// Canonical returns the RFC 8785 (JCS) canonical JSON of the entry without
// its hash field: the exact bytes that are hashed.
func (e AuditEntry) Canonical() ([]byte, error) {
	e.Hash = ""
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit: encode entry %d: %w", e.Index, err)
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("audit: canonicalise entry %d: %w", e.Index, err)
	}
	return out, nil
}

// ComputeHash returns hex(SHA-256(prev_hash bytes ‖ canonical JSON of the
// entry without hash)), the chain rule documented in docs/audit.md.
func (e AuditEntry) ComputeHash() (string, error) {
	prev, err := hex.DecodeString(e.PrevHash)
	if err != nil || len(prev) != sha256.Size {
		return "", Invalid("audit entry %d: prev_hash is not 32 hex-encoded bytes", e.Index)
	}
	canon, err := e.Canonical()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SignedCheckpoint is a signed statement that an org's chain had Hash at
// Index at Time. A verifier holding it detects any rewrite of the history
// before Index, even by someone with write access to every database.
type SignedCheckpoint struct {
	OrgID     string `json:"org_id"`
	Index     uint64 `json:"index"`
	Hash      string `json:"hash"`
	Time      string `json:"time"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature,omitempty"` // base64url Ed25519 signature
}

// SignedBytes is the JCS canonical JSON of {org_id, index, hash, time}: the
// message the checkpoint's signature covers.
func (c SignedCheckpoint) SignedBytes() ([]byte, error) {
	raw, err := json.Marshal(struct {
		OrgID string `json:"org_id"`
		Index uint64 `json:"index"`
		Hash  string `json:"hash"`
		Time  string `json:"time"`
	}{c.OrgID, c.Index, c.Hash, c.Time})
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// Sign fills in the checkpoint's signature with key.
func (c *SignedCheckpoint) Sign(keyID string, key ed25519.PrivateKey) error {
	c.KeyID = keyID
	msg, err := c.SignedBytes()
	if err != nil {
		return err
	}
	c.Signature = base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, msg))
	return nil
}

// Verify checks the checkpoint's signature against pub.
func (c SignedCheckpoint) Verify(pub ed25519.PublicKey) bool {
	sig, err := base64.RawURLEncoding.DecodeString(c.Signature)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return false
	}
	msg, err := c.SignedBytes()
	return err == nil && ed25519.Verify(pub, msg, sig)
}
