package chaincheck

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/infrapilot/infrapilot/events"
)

// MaxFindings bounds how many problems a verification lists; the first
// bad index is always among them.
const MaxFindings = 32

// Options are what VerifyJSONL checks an export against besides itself.
type Options struct {
	// Checkpoints are signed checkpoints of the export's org. Each one
	// whose index lies within the export anchors every entry up to it.
	Checkpoints []events.SignedCheckpoint
	// PublicKey verifies the checkpoints; required when there are any.
	PublicKey ed25519.PublicKey
}

// Result is the verdict on an export.
type Result struct {
	OK      bool   `json:"ok"`
	Org     string `json:"org_id,omitempty"`
	First   uint64 `json:"first_index,omitempty"`
	Last    uint64 `json:"last_index,omitempty"`
	Checked uint64 `json:"checked"`
	// FirstBadIndex and Reason name the lowest index found wrong.
	FirstBadIndex uint64    `json:"first_bad_index,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Findings      []Problem `json:"findings,omitempty"`
	// Anchored lists the indices of the checkpoints that matched.
	Anchored []uint64 `json:"anchored,omitempty"`
	// Notes say what the verification could not cover.
	Notes []string `json:"notes,omitempty"`
}

// VerifyJSONL verifies an export of one org's chain read from r: one
// events.AuditEntry per line (blank lines ignored), in index order. The
// entries must link to each other; the first links to the genesis hash when
// it is entry 1 and is taken on trust otherwise. Each checkpoint within the
// export must verify and match the entry at its index, which detects any
// rewrite of the history up to it, even one that recomputed every hash.
// Only an I/O error is returned as an error; everything wrong with the
// content is a finding.
func VerifyJSONL(r io.Reader, opts Options) (Result, error) {
	if len(opts.Checkpoints) > 0 && len(opts.PublicKey) != ed25519.PublicKeySize {
		return Result{}, errors.New("chaincheck: checkpoints need the Ed25519 public key to verify them")
	}
	want := map[uint64]string{} // checkpoint index -> hash seen there
	for _, cp := range opts.Checkpoints {
		want[cp.Index] = ""
	}
	var (
		res    Result
		linker *Linker
		line   int
		seen   = map[uint64]bool{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes+2)
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if len(raw) == 0 || len(raw) == 1 && raw[0] == '\r' {
			continue
		}
		e, err := ParseLine(raw)
		if err != nil {
			idx := res.Last + 1
			if linker != nil {
				idx = linker.Next()
			}
			res.add(Problem{idx, fmt.Sprintf("line %d: %v", line, err)})
			continue
		}
		if linker == nil {
			linker = NewLinker(e.OrgID, 0, "", true)
			res.Org, res.First = e.OrgID, e.Index
		}
		if p := linker.Check(e); p != nil {
			res.add(*p)
		}
		res.Last = max(res.Last, e.Index)
		if _, ok := want[e.Index]; ok && !seen[e.Index] {
			want[e.Index] = e.Hash
			seen[e.Index] = true
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			res.add(Problem{res.Last + 1, fmt.Sprintf("line %d: longer than %d bytes", line+1, MaxLineBytes)})
		} else {
			return Result{}, fmt.Errorf("chaincheck: read export: %w", err)
		}
	}
	if linker != nil {
		res.Checked = linker.Checked()
	}
	if res.Checked == 0 {
		res.Notes = append(res.Notes, "the export holds no entries")
	} else if res.First > 1 {
		res.Notes = append(res.Notes, fmt.Sprintf("the export starts at entry %d: its link to entry %d is taken on trust", res.First, res.First-1))
	}
	res.checkpoints(opts, want, seen)
	res.finish()
	return res, nil
}

// checkpoints applies each checkpoint to the hashes seen at its index.
func (res *Result) checkpoints(opts Options, want map[uint64]string, seen map[uint64]bool) {
	latest := uint64(0)
	for _, cp := range opts.Checkpoints {
		if !seen[cp.Index] {
			switch {
			case !cp.Verify(opts.PublicKey):
				res.add(Problem{cp.Index, fmt.Sprintf("the checkpoint at index %d does not carry a valid signature of key %q", cp.Index, cp.KeyID)})
			case res.Checked > 0 && cp.OrgID == res.Org && cp.Index > res.Last:
				// The chain reached cp.Index when it was signed: an
				// export that stops short of it lost its tail (or was
				// cut on purpose: export through the checkpoint then).
				res.add(Problem{res.Last + 1, fmt.Sprintf("the export ends at entry %d but the signed checkpoint covers entry %d: entries %d..%d are missing",
					res.Last, cp.Index, res.Last+1, cp.Index)})
			default:
				res.Notes = append(res.Notes, fmt.Sprintf("checkpoint at index %d lies before the export (%d..%d): not applied", cp.Index, res.First, res.Last))
			}
			continue
		}
		if p := CheckCheckpoint(cp, opts.PublicKey, res.Org, want[cp.Index]); p != nil {
			res.add(*p)
			continue
		}
		res.Anchored = append(res.Anchored, cp.Index)
		latest = max(latest, cp.Index)
	}
	slices.Sort(res.Anchored)
	if len(opts.Checkpoints) == 0 {
		res.Notes = append(res.Notes, "no checkpoint given: a consistent rewrite of the whole export (every hash recomputed) cannot be told from the original")
	} else if latest > 0 && latest < res.Last {
		res.Notes = append(res.Notes, fmt.Sprintf("entries after index %d are checked for consistency only; no checkpoint covers them", latest))
	}
}

func (res *Result) add(p Problem) {
	if len(res.Findings) < MaxFindings {
		res.Findings = append(res.Findings, p)
	}
	if res.FirstBadIndex == 0 || p.Index < res.FirstBadIndex {
		res.FirstBadIndex, res.Reason = p.Index, p.Reason
	}
}

func (res *Result) finish() {
	res.OK = len(res.Findings) == 0 && res.FirstBadIndex == 0
	if res.FirstBadIndex == 0 && !res.OK {
		res.FirstBadIndex = res.Findings[0].Index
	}
	slices.SortStableFunc(res.Findings, func(a, b Problem) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
}
