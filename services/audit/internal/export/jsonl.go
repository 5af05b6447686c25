package export

import (
	"encoding/json"
	"io"

	"github.com/infrapilot/infrapilot/events"
)

// JSONL writes one JSON object per line: the complete entry with prev_hash
// and hash, exactly the fields the chain rule covers, so that an export can
// be verified offline (`infrapilot audit verify --file`). JSON escapes every
// control character, so an entry never spans lines. HTML characters are not
// escaped (the file is data, not markup); the hash is computed over the
// canonical form, so the encoding of the file does not change it.
type JSONL struct {
	enc *json.Encoder
}

// NewJSONL returns a JSONL encoder writing to w.
func NewJSONL(w io.Writer) *JSONL {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSONL{enc: enc}
}

// Encode writes one entry and a newline.
func (j *JSONL) Encode(e events.AuditEntry) error {
	if err := j.enc.Encode(e); err != nil {
		return errEncode(FormatJSONL, e, err)
	}
	return nil
}

// Flush implements Encoder; JSONL holds nothing back.
func (j *JSONL) Flush() error { return nil }
