// Package chaincheck verifies audit hash chains: entry by entry (Linker),
// against signed checkpoints (CheckCheckpoint), and whole JSONL exports
// (VerifyJSONL) with no server. The audit service's online verification and
// `infrapilot audit verify` share it, so both apply exactly the rule
// docs/audit.md describes and events.AuditEntry.ComputeHash implements.
//
// It is the one package of the audit service outside internal/: the
// command-line verifier lives in another package tree.
package chaincheck

import (
	"crypto/ed25519"
	"fmt"

	"github.com/infrapilot/infrapilot/events"
)

// Problem is one thing found wrong with a chain, located at the lowest
// index it affects.
type Problem struct {
	Index  uint64 `json:"index"`
	Reason string `json:"reason"`
}

// Error implements error.
func (p Problem) Error() string { return fmt.Sprintf("entry %d: %s", p.Index, p.Reason) }

// Linker checks that consecutive entries of one org's chain link: each
// entry's hash is the hash of its content, its index follows the previous
// one, and its prev_hash is the previous entry's hash. Feed it entries in
// index order. After a problem it re-anchors on the offending entry, so
// that one tampered entry is reported once and the rest of the chain is
// still checked.
type Linker struct {
	org      string
	next     uint64 // index expected next; 0 before the first entry
	prevHash string // hash the next entry must link to; "" when unknown
	checked  uint64
}

// NewLinker returns a linker for org's chain. When anchorIndex > 0 the
// first entry must have index anchorIndex+1 and link to anchorHash; with
// anchorIndex == 0 the first entry checked must be entry 1 and link to the
// genesis hash, unless lenient is set, in which case a chain that starts
// later (an export of a time range) is accepted as starting wherever its
// first entry says, with that entry's prev_hash taken on trust.
func NewLinker(org string, anchorIndex uint64, anchorHash string, lenient bool) *Linker {
	l := &Linker{org: org}
	switch {
	case anchorIndex > 0:
		l.next, l.prevHash = anchorIndex+1, anchorHash
	case !lenient:
		l.next, l.prevHash = 1, events.GenesisHash
	}
	return l
}

// Checked is how many entries Check has been given.
func (l *Linker) Checked() uint64 { return l.checked }

// Next is the index the linker expects next.
func (l *Linker) Next() uint64 { return l.next }

// Check checks e against the entries before it and returns the problem it
// finds, if any.
func (l *Linker) Check(e events.AuditEntry) *Problem {
	l.checked++
	p := l.check(e)
	// Re-anchor on e whatever happened, so the next entry is judged on
	// its own link.
	l.next, l.prevHash = e.Index+1, e.Hash
	if l.org == "" {
		l.org = e.OrgID
	}
	return p
}

func (l *Linker) check(e events.AuditEntry) *Problem {
	if l.org != "" && e.OrgID != l.org {
		return &Problem{e.Index, fmt.Sprintf("entry belongs to org %q, not %q", e.OrgID, l.org)}
	}
	if l.next != 0 && e.Index != l.next {
		if e.Index > l.next {
			return &Problem{l.next, fmt.Sprintf("entry %d is missing (the next entry present is %d): entries were deleted or reordered", l.next, e.Index)}
		}
		return &Problem{e.Index, fmt.Sprintf("entry %d appears again after entry %d: an entry was inserted, duplicated or moved", e.Index, l.next-1)}
	}
	if e.Index == 1 && e.PrevHash != events.GenesisHash {
		return &Problem{1, "the first entry does not link to the genesis hash"}
	}
	h, err := e.ComputeHash()
	if err != nil {
		return &Problem{e.Index, fmt.Sprintf("cannot hash entry: %v", err)}
	}
	if l.prevHash != "" && e.PrevHash != l.prevHash {
		if h != e.Hash {
			return &Problem{e.Index, "neither the entry's content nor its prev_hash match the chain: the entry was replaced"}
		}
		// e is self-consistent but links to something other than the
		// entry before it: that entry is not the one e was chained
		// after (it was edited and re-hashed, or e was inserted).
		return &Problem{e.Index - 1, fmt.Sprintf("entry %d is not the entry that entry %d was chained after (its hash differs from entry %d's prev_hash): entry %d was altered or an entry was inserted",
			e.Index-1, e.Index, e.Index, e.Index-1)}
	}
	if h != e.Hash {
		return &Problem{e.Index, "the entry's content does not match its hash: the entry was altered"}
	}
	return nil
}

// CheckCheckpoint checks a signed checkpoint against the hash the chain
// being verified has at the checkpoint's index. pub is the key the
// checkpoint must be signed with.
func CheckCheckpoint(cp events.SignedCheckpoint, pub ed25519.PublicKey, org string, hashAtIndex string) *Problem {
	if !cp.Verify(pub) {
		return &Problem{cp.Index, fmt.Sprintf("the checkpoint at index %d does not carry a valid signature of key %q", cp.Index, cp.KeyID)}
	}
	if cp.OrgID != org {
		return &Problem{cp.Index, fmt.Sprintf("the checkpoint is for org %q, not %q", cp.OrgID, org)}
	}
	if hashAtIndex != cp.Hash {
		return &Problem{cp.Index, fmt.Sprintf("entry %d does not match the signed checkpoint of %s: the history up to index %d was rewritten",
			cp.Index, cp.Time, cp.Index)}
	}
	return nil
}

// Reset re-anchors the linker: the next entry must be index+1 and link to
// hash. A verifier that learns an entry from elsewhere (the stream, when
// the database lacks it) uses it to judge the next entry on its own link.
func (l *Linker) Reset(index uint64, hash string) {
	l.next, l.prevHash = index+1, hash
}
