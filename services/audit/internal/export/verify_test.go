package export

import (
	"bytes"
	"testing"

	"github.com/infrapilot/infrapilot/services/audit/chaincheck"
)

// The JSONL export is the verifiable one: the offline verifier
// (`infrapilot audit verify --file`) accepts it as written.
func TestJSONLExportPassesTheOfflineVerifier(t *testing.T) {
	t.Parallel()
	for name, entries := range map[string][]byte{
		"escaping": encodeAll(t, FormatJSONL, trickyEntries(t)),
		"long":     encodeAll(t, FormatJSONL, manyEntries(t, "org_a", 500)),
	} {
		res, err := chaincheck.VerifyJSONL(bytes.NewReader(entries), chaincheck.Options{})
		if err != nil || !res.OK {
			t.Fatalf("%s: %+v, %v", name, res, err)
		}
	}
}
