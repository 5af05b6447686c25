package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/chaincheck"
	"github.com/infrapilot/infrapilot/services/internal/platform/config"
)

// runAuditVerify implements `infrapilot audit verify`: it verifies a JSONL
// export of an audit chain with no server, optionally against signed
// checkpoints and the audit public key. args are the arguments after
// "audit" ("verify" and the flags); a missing leading "verify" is
// tolerated. It returns an error when the export does not verify.
func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "verify" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("infrapilot audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "the JSONL export to verify (required; - for standard input)")
	cpFile := fs.String("checkpoint", "", "a file of signed checkpoints: one JSON object, a JSON array, JSON lines, or the reply of GET /api/v1/audit/checkpoints")
	pubKey := fs.String("public-key", "", "the audit public key: base64 of the raw Ed25519 key, or a file holding it or the reply of GET /api/v1/audit/public-key")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	fs.Usage = config.Usage(fs, `Usage: infrapilot audit verify --file export.jsonl [--checkpoint FILE --public-key FILE|BASE64] [--json]

Verifies an audit export offline, by the chain rule of docs/audit.md: every
entry's hash is the SHA-256 of the previous hash and the entry's canonical
JSON, and the entries link up. With signed checkpoints and the public key,
any rewrite of the history up to a checkpoint is detected, even one that
recomputed every hash. Exits 1 when the export does not verify.`)
	if err := config.Parse(fs, args, getenv); err != nil {
		return err
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "infrapilot audit verify: --file is required and takes no other arguments")
		return errUsage
	}
	if (*cpFile == "") != (*pubKey == "") {
		fmt.Fprintln(stderr, "infrapilot audit verify: --checkpoint and --public-key go together")
		return errUsage
	}
	var opts chaincheck.Options
	if *cpFile != "" {
		var err error
		if opts.Checkpoints, err = readCheckpoints(*cpFile); err != nil {
			return err
		}
		if opts.PublicKey, err = readPublicKey(*pubKey); err != nil {
			return err
		}
	}
	in, closeIn, err := openInput(*file)
	if err != nil {
		return err
	}
	defer closeIn()
	if err := ctx.Err(); err != nil {
		return err
	}
	res, err := chaincheck.VerifyJSONL(in, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		printVerdict(stdout, res)
	}
	if !res.OK {
		return fmt.Errorf("audit verify: the export does not verify (first bad entry %d)", res.FirstBadIndex)
	}
	return nil
}

func openInput(name string) (io.Reader, func(), error) {
	if name == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("audit verify: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}

func printVerdict(w io.Writer, res chaincheck.Result) {
	if res.OK {
		fmt.Fprintf(w, "OK: %d entries of org %s (%d..%d) verified", res.Checked, res.Org, res.First, res.Last)
		if len(res.Anchored) > 0 {
			fmt.Fprintf(w, "; anchored by signed checkpoints at %v", res.Anchored)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "FAILED: first bad entry %d: %s\n", res.FirstBadIndex, res.Reason)
		for _, f := range res.Findings {
			fmt.Fprintf(w, "  entry %d: %s\n", f.Index, f.Reason)
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// readCheckpoints reads checkpoints in any of the shapes the API and the
// stream give them.
func readCheckpoints(name string) ([]events.SignedCheckpoint, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("audit verify: checkpoint: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	var out []events.SignedCheckpoint
	var list events.List[events.SignedCheckpoint]
	switch {
	case len(raw) > 0 && raw[0] == '[':
		err = json.Unmarshal(raw, &out)
	case bytes.Contains(raw, []byte(`"items"`)) && json.Unmarshal(raw, &list) == nil:
		out = list.Items
	default:
		dec := json.NewDecoder(bytes.NewReader(raw))
		for dec.More() {
			var cp events.SignedCheckpoint
			if err = dec.Decode(&cp); err != nil {
				break
			}
			out = append(out, cp)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("audit verify: checkpoint file %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("audit verify: no checkpoint in %s", name)
	}
	for _, cp := range out {
		if cp.Index == 0 || cp.Signature == "" || cp.OrgID == "" {
			return nil, fmt.Errorf("audit verify: checkpoint file %s: a checkpoint lacks its index, org or signature", name)
		}
	}
	return out, nil
}

// readPublicKey reads the key from the flag's value or the file it names.
func readPublicKey(v string) (ed25519.PublicKey, error) {
	text := strings.TrimSpace(v)
	if b, err := os.ReadFile(v); err == nil {
		text = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) && strings.ContainsAny(v, `/\`) {
		return nil, fmt.Errorf("audit verify: public key: %w", err)
	}
	if strings.HasPrefix(text, "{") {
		var k events.AuditPublicKey
		if err := json.Unmarshal([]byte(text), &k); err != nil {
			return nil, fmt.Errorf("audit verify: public key: %w", err)
		}
		text = k.PublicKey
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == ed25519.PublicKeySize {
			return b, nil
		}
	}
	return nil, errors.New("audit verify: the public key is not base64 of a 32-byte Ed25519 key")
}
